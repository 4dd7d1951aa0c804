// Documentation text in the code (each key's help for --help and `pgolf
// config --list`): the counted code (export/minify.h) keeps PGOLF_DOC("") in
// its place, so a submission's code pays for the program and not for its
// manual. The full build prints the text; the counted build prints the keys
// without it.
#pragma once

#define PGOLF_DOC(text) text
