# cmake -DFILE=<ELF file> -P scripts/set_runpath.cmake: replaces the file's run
# path (the build tree's LibTorch and bundle folders) with $ORIGIN/../lib, the
# kit's own library folder (scripts/gpu_kit.sh). CMake edits the ELF in place;
# the new path is shorter than the old, so it fits where the old one was.
file(RPATH_SET FILE "${FILE}" NEW_RPATH "$ORIGIN/../lib")
