# pgolf_find_library(<name> <header> <library names>... [OPTIONAL] [DEPS <targets>...])
# makes the IMPORTED target pgolf::<name> with find_path and find_library alone:
# no pkg-config, which the offline GPU machine lacks. CMAKE_PREFIX_PATH comes
# before /usr, so the bundle of scripts/gpu_bundle.sh wins there; it holds only
# the static .a of a library, and DEPS are what a static one needs after it.
# OPTIONAL: a missing library is no error; the target is then not made.
function(pgolf_find_library name header)
  cmake_parse_arguments(PARSE_ARGV 2 arg "OPTIONAL" "" DEPS)
  if(arg_OPTIONAL)
    find_path(PGOLF_${name}_INCLUDE_DIR ${header})
    find_library(PGOLF_${name}_LIBRARY NAMES ${arg_UNPARSED_ARGUMENTS})
    if(NOT PGOLF_${name}_INCLUDE_DIR OR NOT PGOLF_${name}_LIBRARY)
      return()
    endif()
  else()
    find_path(PGOLF_${name}_INCLUDE_DIR ${header} REQUIRED)
    find_library(PGOLF_${name}_LIBRARY NAMES ${arg_UNPARSED_ARGUMENTS} REQUIRED)
  endif()
  add_library(pgolf::${name} UNKNOWN IMPORTED)
  set_target_properties(pgolf::${name} PROPERTIES IMPORTED_LOCATION ${PGOLF_${name}_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${PGOLF_${name}_INCLUDE_DIR})
  if(PGOLF_${name}_LIBRARY MATCHES "[.]a$")
    set_property(TARGET pgolf::${name} PROPERTY INTERFACE_LINK_LIBRARIES ${arg_DEPS})
  endif()
endfunction()
