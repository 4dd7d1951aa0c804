# Writes OUT: a header defining PGOLF_CODE_BYTES, the total size of the source
# needed to rebuild pgolf (CMakeLists.txt, cmake/, include/, src/). Run by the
# build whenever one of those files changes.
file(GLOB_RECURSE files ${SRC}/include/* ${SRC}/src/* ${SRC}/cmake/*)
list(APPEND files ${SRC}/CMakeLists.txt)
set(total 0)
foreach(f IN LISTS files)
  file(SIZE ${f} size)
  math(EXPR total "${total} + ${size}")
endforeach()
file(WRITE ${OUT}.tmp "#pragma once\n#define PGOLF_CODE_BYTES ${total}\n")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
