// The code archive's minifier against hand-written inputs and outputs.
#include <gtest/gtest.h>

#include "pgolf/export/minify.h"

using namespace pgolf;

TEST(Minify, CppDropsCommentsBlankLinesAndIndentation) {
  const std::string in =
      "// file comment\n"
      "#include <vector>  // the vector\n"
      "\n"
      "/* a block\n"
      "   comment */\n"
      "int f(int a,   int b) {\n"
      "  \treturn a /* inline */ + b;   \n"
      "}\n";
  EXPECT_EQ(minify_cpp(in), "#include <vector>\nint f(int a, int b) {\nreturn a + b;\n}\n");
}

TEST(Minify, CppKeepsLiteralsExactly) {
  const std::string in =
      "const char* s = \"a // not a comment /* nor this */  two  spaces\";\n"
      "const char* e = \"quote \\\" and // still string\";  // gone\n"
      "char q = '\"';  char sl = '/';  char bs = '\\'';  // gone\n"
      "int n = 1'000'000;  // a digit separator, not a character literal\n"
      "const char* u = u8\"x  y\";\n";
  EXPECT_EQ(minify_cpp(in),
            "const char* s = \"a // not a comment /* nor this */  two  spaces\";\n"
            "const char* e = \"quote \\\" and // still string\";\n"
            "char q = '\"'; char sl = '/'; char bs = '\\'';\n"
            "int n = 1'000'000;\n"
            "const char* u = u8\"x  y\";\n");
}

// Documentation (core/doc.h) is the one literal text that goes: a PGOLF_DOC
// call of string literals only keeps an empty one, again on a second pass;
// anything else named so, or in a literal, stays.
TEST(Minify, CppEmptiesDocumentationStrings) {
  const std::string in =
      "key(\"A\", PGOLF_DOC(\"the help, with ) and \\\" inside\"\n"
      "    \" continued\"));\n"
      "#define PGOLF_DOC(text) text\n"
      "f(MY_PGOLF_DOC(\"kept\"), PGOLF_DOC(x), \"PGOLF_DOC(\\\"kept\\\")\");\n";
  const std::string out =
      "key(\"A\", PGOLF_DOC(\"\"));\n"
      "#define PGOLF_DOC(text) text\n"
      "f(MY_PGOLF_DOC(\"kept\"), PGOLF_DOC(x), \"PGOLF_DOC(\\\"kept\\\")\");\n";
  EXPECT_EQ(minify_cpp(in), out);
  EXPECT_EQ(minify_cpp(out), out);
}

TEST(Minify, CppKeepsRawStringsWithTheirLines) {
  const std::string in =
      "auto r = R\"x(line one // kept\n"
      "\n"
      "    indented \"quoted\" )\" still in\n"
      ")x\";  // gone\n"
      "auto p = R\"(/* kept */)\";\n"
      "auto notraw = FOR\"(\";  // FOR is no raw prefix\n";
  EXPECT_EQ(minify_cpp(in),
            "auto r = R\"x(line one // kept\n"
            "\n"
            "    indented \"quoted\" )\" still in\n"
            ")x\";\n"
            "auto p = R\"(/* kept */)\";\n"
            "auto notraw = FOR\"(\";\n");
}

TEST(Minify, CppKeepsPreprocessorLinesAndContinuations) {
  const std::string in =
      "#define TWICE(x) \\\n"
      "    ((x) + (x))  /* sum */\n"
      "#if defined(A)  // comment\n"
      "#  error \"no\"\n"
      "#endif\n"
      "// a comment continued \\\n"
      "on this line\n"
      "int x;\n";
  EXPECT_EQ(minify_cpp(in), "#define TWICE(x) \\\n((x) + (x))\n#if defined(A)\n# error \"no\"\n#endif\nint x;\n");
}

TEST(Minify, CppIsIdempotentAndEndsWithOneNewline) {
  const std::string in = "  int a;/**/int b;\r\n\n\n// end";
  const std::string once = minify_cpp(in);
  EXPECT_EQ(once, "int a; int b;\n");
  EXPECT_EQ(minify_cpp(once), once);
  EXPECT_EQ(minify_cpp(""), "");
  EXPECT_EQ(minify_cpp("// only a comment\n"), "");
}

TEST(Minify, CmakeDropsCommentsOutsideQuotes) {
  const std::string in =
      "# The project.\n"
      "project(p  LANGUAGES CXX)  # trailing\n"
      "\n"
      "  set(A \"# not a comment\" B)\n"
      "#[[ a bracket\n"
      "comment ]]\n"
      "file(WRITE out \"line one\n"
      "    # kept, indented\n"
      "\\\" escaped quote\")\n"
      "set(C [=[ # bracket argument ]=] \\# escaped)\n";
  EXPECT_EQ(minify_cmake(in),
            "project(p LANGUAGES CXX)\n"
            "set(A \"# not a comment\" B)\n"
            "file(WRITE out \"line one\n"
            "    # kept, indented\n"
            "\\\" escaped quote\")\n"
            "set(C [=[ # bracket argument ]=] \\# escaped)\n");
  EXPECT_EQ(minify_cmake(minify_cmake(in)), minify_cmake(in));
}

TEST(Minify, ChoosesTheMinifierByFileName) {
  EXPECT_EQ(minify_source("CMakeLists.txt", "a() # c\n"), "a()\n");
  EXPECT_EQ(minify_source("cmake/x.cmake", "a() # c\n"), "a()\n");
  EXPECT_EQ(minify_source("src/a.cu", "a; // c\n"), "a;\n");
  EXPECT_EQ(minify_source("include/a.h", "a; // c\n"), "a;\n");
  EXPECT_EQ(minify_source("notes.txt", "a; // c\n"), "a; // c\n");
}
