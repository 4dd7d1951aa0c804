#!/usr/bin/env bash
# Builds .gpu_bundle/ (git-ignored): what the offline GPU machine lacks to
# configure and build pgolf and its test binaries, to be carried there with the work
# tree (docs/BUILD.md). Runs here, on Debian 12 with its apt mirrors reachable:
# fetches the Debian packages with `apt-get download` (no root needed, nothing
# installed) and unpacks with `dpkg-deb -x` only what the build uses:
#
#   prefix/usr/include          headers: SentencePiece, CLI11, nlohmann-json,
#                               GoogleTest, Gloo, zstd, xz, brotli, libarchive, zlib
#   prefix/usr/lib/<arch>       static libzstd, liblzma, libbrotli*, libarchive,
#                               libz, libgtest(_main), without their .so, so they
#                               link statically; libsentencepiece(_train).so
#                               (Debian has no .a of it; self-contained: its
#                               protobuf-lite is built in), linked dynamically
#   prefix/usr/.../cmake        the CMake configs of CLI11, nlohmann-json, GTest
#   fortunes/                   the demo corpus (scripts/demo.sh, FORTUNES_DIR)
#   env.sh                      `source` it there (bash): CMAKE_PREFIX_PATH, ...
#
# The bundled libarchive.a is patched in one place (see "Static libarchive" below).
# Safe to run again: when the package versions and this script are unchanged it
# keeps the bundle; it ends with the bundle's size and the work tree's.
#
# Variables:
#   PGOLF_BUNDLE_REBUILD=1  rebuild even when the bundle is up to date
set -euo pipefail
cd "$(dirname "$0")/.."

BUNDLE=.gpu_bundle
ARCH=x86_64-linux-gnu
LIMIT=$((64 * 1024 * 1024))  # what may travel: work tree + carried folders
# The build's packages (headers, static libraries, CMake configs) and
# libsentencepiece0 for the .so files that libsentencepiece-dev only links to.
BUILD_PACKAGES=(libsentencepiece-dev libsentencepiece0 libcli11-dev nlohmann-json3-dev libgtest-dev
  libgloo-dev libzstd-dev liblzma-dev libbrotli-dev libarchive-dev zlib1g-dev)
FORTUNE_PACKAGES=(fortunes fortunes-min)
STATIC_LIBS=(libzstd.a liblzma.a libbrotlicommon.a libbrotlienc.a libbrotlidec.a libarchive.a libz.a
  libgtest.a libgtest_main.a)
SHARED_LIBS=(libsentencepiece libsentencepiece_train)

TMP=$(mktemp -d)
trap 'rm -rf "$TMP" "$BUNDLE.new"' EXIT
SCRIPT_NAME=gpu_bundle
QUIET_LOG=$TMP/log
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

for tool in apt-get apt-cache dpkg-deb ar objcopy cc git; do
  command -v "$tool" >/dev/null || fail "'$tool' not found (this script runs on the Debian machine)"
done

# The exact versions to fetch (apt's candidates) and, with this script's hash,
# the manifest that says whether an existing bundle is current.
candidates() {
  versions=()
  local p v
  for p in "${BUILD_PACKAGES[@]}" "${FORTUNE_PACKAGES[@]}"; do
    v=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/ {print $2}')
    [[ -n $v && $v != "(none)" ]] || { unknown_package=$p; return 1; }
    versions+=("$p=$v")
  done
  manifest=$(printf '%s\n' "${versions[@]}" "script $(sha256sum "$0" | cut -d' ' -f1)")
}
# A machine whose package lists were never fetched, or are older than the
# mirror, knows no version or one the mirror no longer has: as root the lists
# are fetched once (as scripts/setup.sh does before installing), else the
# message says how.
apt_update() {
  [[ $(id -u) -eq 0 ]] || fail "$1: run 'apt-get update' (as root) and retry"
  echo "gpu_bundle: $1: running apt-get update"
  quiet "apt-get update" apt-get update -qq
}
unknown_package=""
if ! candidates; then
  apt_update "apt knows no package '$unknown_package'"
  candidates || fail "apt knows no package '$unknown_package', even after apt-get update"
fi

if [[ ${PGOLF_BUNDLE_REBUILD:-0} != 1 && -f $BUNDLE/manifest && $(cat "$BUNDLE/manifest") == "$manifest" ]]; then
  echo "gpu_bundle: $BUNDLE is up to date"
else
  echo "gpu_bundle: downloading ${#versions[@]} Debian packages"
  mkdir -p "$TMP/debs"
  if ! (cd "$TMP/debs" && apt-get download "${versions[@]}" > "$QUIET_LOG" 2>&1); then
    apt_update "apt-get download failed ($(grep -m1 -E '^E:' "$QUIET_LOG" || tail -n 1 "$QUIET_LOG"))"
    candidates || fail "apt knows no package '$unknown_package', even after apt-get update"
    (cd "$TMP/debs" && quiet "apt-get download" apt-get download "${versions[@]}")
  fi
  for p in "${BUILD_PACKAGES[@]}"; do quiet "unpack $p" dpkg-deb -x "$TMP"/debs/"${p}"_*.deb "$TMP/root"; done
  for p in "${FORTUNE_PACKAGES[@]}"; do quiet "unpack $p" dpkg-deb -x "$TMP"/debs/"${p}"_*.deb "$TMP/fortunes"; done

  echo "gpu_bundle: assembling $BUNDLE"
  rm -rf "$BUNDLE.new"
  new=$BUNDLE.new/prefix/usr
  lib=$new/lib/$ARCH
  mkdir -p "$lib/cmake" "$new/share/cmake" "$BUNDLE.new/fortunes"
  cp -a "$TMP/root/usr/include" "$new/"
  for a in "${STATIC_LIBS[@]}"; do
    [[ -f $TMP/root/usr/lib/$ARCH/$a ]] || fail "$a is not in the packages"
    cp "$TMP/root/usr/lib/$ARCH/$a" "$lib/"
  done
  # Real files under both names, no symbolic links (a copy may not keep them):
  # the linker's lib*.so and the loader's soname lib*.so.0.
  for s in "${SHARED_LIBS[@]}"; do
    cp -L "$TMP/root/usr/lib/$ARCH/$s.so.0" "$lib/$s.so.0"
    cp -L "$TMP/root/usr/lib/$ARCH/$s.so.0" "$lib/$s.so"
  done
  cp -a "$TMP/root/usr/lib/$ARCH/cmake/GTest" "$lib/cmake/"
  cp -a "$TMP/root/usr/share/cmake/CLI11" "$TMP/root/usr/share/cmake/nlohmann_json" "$new/share/cmake/"

  # Static libarchive: archive_write_set_format_ustar.o needs one helper from
  # archive_write_set_format.o, whose table of every writer format pulls in all
  # of them (7zip, xar, zip, mtree, ...) and with them libxml2 (and ICU, ~36 MB),
  # nettle, bzip2, zlib and liblzma. Weakening that member's references to the
  # format setters lets the linker leave the unused writers out: pgolf and its
  # tests (ustar writer, tar reader, in memory) then need no other library.
  # Only archive_write_set_format(code) by number is lost (it would jump to 0
  # for a writer not linked); pgolf calls the setters by name.
  (
    cd "$lib"
    quiet "extract archive_write_set_format.o" ar x libarchive.a archive_write_set_format.o
    quiet "weaken its format references" objcopy --wildcard --weaken-symbol='archive_write_set_format_*' archive_write_set_format.o
    quiet "replace archive_write_set_format.o" ar rs libarchive.a archive_write_set_format.o
    rm archive_write_set_format.o
  )

  # Check: a program using what pgolf uses of the C libraries links against the
  # bundle alone (no -L/usr, no other library) and runs.
  cat >"$TMP/check.c" <<'EOF'
#include <archive.h>
#include <archive_entry.h>
#include <brotli/decode.h>
#include <brotli/encode.h>
#include <lzma.h>
#include <zlib.h>
#include <zstd.h>
int main(void) {
  struct archive* w = archive_write_new();
  struct archive* r = archive_read_new();
  int ok = archive_write_set_format_ustar(w) == ARCHIVE_OK && archive_read_support_format_tar(r) == ARCHIVE_OK;
  archive_write_free(w);
  archive_read_free(r);
  return !(ok && ZSTD_versionNumber() && lzma_version_number() && zlibVersion() && BrotliEncoderVersion() &&
           BrotliDecoderVersion());
}
EOF
  quiet "check link of the static libraries (missing symbols above)" cc -o "$TMP/check" "$TMP/check.c" \
    -I"$new/include" "$lib"/libarchive.a "$lib"/libbrotlienc.a "$lib"/libbrotlidec.a "$lib"/libbrotlicommon.a \
    "$lib"/libzstd.a "$lib"/liblzma.a "$lib"/libz.a -lm
  quiet "check run of the static libraries" "$TMP/check"

  # The demo corpus: every fortune file but the .dat indexes and the .u8 links.
  n=0
  for f in "$TMP"/fortunes/usr/share/games/fortunes/*; do
    [[ $f == *.dat || -L $f || ! -f $f ]] && continue
    cp "$f" "$BUNDLE.new/fortunes/"
    n=$((n + 1))
  done
  [[ $n -gt 0 ]] || fail "no fortune files in ${FORTUNE_PACKAGES[*]}"

  cat >"$BUNDLE.new/env.sh" <<EOF
# Source this (bash) on the offline GPU machine, from any folder:
#   source .gpu_bundle/env.sh && bash scripts/setup.sh
# Written by scripts/gpu_bundle.sh; paths follow this file's own location.
PGOLF_BUNDLE=\$(cd "\$(dirname "\${BASH_SOURCE[0]}")" && pwd)
export PGOLF_BUNDLE
# find_package (CLI11, nlohmann_json, GTest), find_library and find_path
# (cmake/libraries.cmake, FindZLIB, Gloo's headers) search it before /usr.
export CMAKE_PREFIX_PATH=\$PGOLF_BUNDLE/prefix/usr\${CMAKE_PREFIX_PATH:+:\$CMAKE_PREFIX_PATH}
# libsentencepiece(_train).so.0, the only bundled library linked dynamically
# (the binaries' build-tree RUNPATH names this folder too).
export LD_LIBRARY_PATH=\$PGOLF_BUNDLE/prefix/usr/lib/$ARCH\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
# scripts/setup.sh: no Debian packages to install; scripts/demo.sh: the corpus.
export PGOLF_SKIP_APT=1
export FORTUNES_DIR=\$PGOLF_BUNDLE/fortunes
# LibTorch from the machine's own PyTorch, unless already chosen.
if [[ -z \${PGOLF_TORCH_PREFIX:-} ]]; then
  for py in python3 /opt/torch/.venv/bin/python3; do
    PGOLF_TORCH_PREFIX=\$("\$py" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null) && break
  done
  if [[ -n \$PGOLF_TORCH_PREFIX ]]; then export PGOLF_TORCH_PREFIX; else unset PGOLF_TORCH_PREFIX; fi
fi
EOF
  echo "$manifest" >"$BUNDLE.new/manifest"
  rm -rf "$BUNDLE"
  mv "$BUNDLE.new" "$BUNDLE"
  echo "gpu_bundle: built $BUNDLE (${#STATIC_LIBS[@]} static libraries, $n fortune files)"
fi

bundle_bytes=$(du -sb "$BUNDLE" | cut -f1)
# What travels with it: tracked files and untracked ones git does not ignore.
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
total=$((bundle_bytes + tree_bytes))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "gpu_bundle: $BUNDLE $bundle_bytes bytes ($(mib "$bundle_bytes")), work tree $tree_bytes bytes," \
  "together $(mib "$total") of the $(mib "$LIMIT") that may travel"
if [[ $total -gt $LIMIT ]]; then
  echo "gpu_bundle: WARNING: bundle + work tree exceed 64 MiB" >&2
fi
