# The tools: the commands outside the train, eval and export path (tokenizer,
# shard, data, bench, compare, submit, download, inspect, unpack) and the
# sources only they need. The full tree builds them into pgolf; the code
# archive, the counted code (README "Code bytes"), leaves this file and
# PGOLF_TOOL_FILES out, and a tree unpacked from it builds pgolf without them. Included by CMakeLists.txt and by
# cmake/embed_sources.cmake (which embeds every other file).
set(PGOLF_TOOL_FILES
  cmake/tools.cmake
  include/pgolf/app/bench.h src/app/bench.cpp
  include/pgolf/app/compare.h src/app/compare.cpp
  include/pgolf/app/submit.h src/app/submit.cpp
  include/pgolf/app/tool_commands.h src/app/tool_commands.cpp
  include/pgolf/app/tools.h src/app/tools.cpp
  include/pgolf/core/http.h src/core/http.cpp
  include/pgolf/data/caseops.h src/data/caseops.cpp
  include/pgolf/data/corpus.h src/data/corpus.cpp
  include/pgolf/data/download.h src/data/download.cpp
  include/pgolf/data/tokenizer_train.h src/data/tokenizer_train.cpp
  include/pgolf/eval/stats.h src/eval/stats.cpp
  include/pgolf/export/unpack.h src/export/unpack.cpp)

# Adds the tools to pgolf_core and pgolf: called by CMakeLists.txt once both exist.
function(pgolf_add_tools)
  pgolf_find_library(sentencepiece_train sentencepiece_trainer.h sentencepiece_train DEPS pgolf::sentencepiece)
  # libcurl (libcurl4-openssl-dev), for `pgolf download` only, is optional: the
  # offline GPU machine's bundle has none, and there pgolf builds without it and
  # `pgolf download` says what is missing. -DPGOLF_DOWNLOAD=OFF leaves it out
  # where it is installed too (scripts/gpu_kit.sh: the kit carries no libcurl).
  option(PGOLF_DOWNLOAD "link libcurl, where found, for pgolf download" ON)
  if(PGOLF_DOWNLOAD)
    pgolf_find_library(curl curl/curl.h curl OPTIONAL)
  endif()
  target_link_libraries(pgolf_core PRIVATE pgolf::sentencepiece_train)
  if(TARGET pgolf::curl)
    message(STATUS "pgolf: libcurl ${PGOLF_curl_LIBRARY}: pgolf download enabled")
    target_link_libraries(pgolf_core PRIVATE pgolf::curl)
    # On src/core/http.cpp alone: the precompiled header, shared by every target, stays the same.
    set_property(SOURCE src/core/http.cpp APPEND PROPERTY COMPILE_DEFINITIONS PGOLF_WITH_CURL=1)
  else()
    message(STATUS "pgolf: libcurl not found (install libcurl4-openssl-dev) or PGOLF_DOWNLOAD=OFF: pgolf download disabled")
  endif()
  target_sources(pgolf PRIVATE src/app/tools.cpp)
  set_property(SOURCE src/app/main.cpp APPEND PROPERTY COMPILE_DEFINITIONS PGOLF_TOOLS=1)
endfunction()
