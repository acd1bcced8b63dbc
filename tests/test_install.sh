#!/usr/bin/env bash
# Installs the build tree into a temporary prefix and builds a consumer
# against it twice: with find_package(rbee) and with pkg-config.
set -euo pipefail
: "${RBEE_BUILD_DIR:?}" "${RBEE_SOURCE_DIR:?}"
cmake=${CMAKE_COMMAND:-cmake}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$cmake" --install "$RBEE_BUILD_DIR" --prefix "$tmp/prefix" >/dev/null
san=()
# The compiler librbee was built with (its sanitizer runtime must match).
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$RBEE_BUILD_DIR/CMakeCache.txt")
cc=${cc:-cc}
[ -n "${RBEE_SANITIZE:-}" ] && san=("-fsanitize=$RBEE_SANITIZE")

# 1. CMake package.
"$cmake" -S "$RBEE_SOURCE_DIR/tests/consumer" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="${san[*]:-}" -DCMAKE_EXE_LINKER_FLAGS="${san[*]:-}" >/dev/null
"$cmake" --build "$tmp/cm" >/dev/null
out=$(LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/cm/consumer")
echo "cmake consumer: $out"
case "$out" in 0.1.0\ \{\"id\":\"worker-x-1\"*) ;; *) echo "unexpected output" >&2; exit 1 ;; esac

# 2. pkg-config, shared and static.
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
flags=$(pkg-config --cflags --libs rbee)
"$cc" -std=c11 -Wall -Werror "${san[@]}" "$RBEE_SOURCE_DIR/tests/consumer/main.c" -o "$tmp/pc" $flags
out2=$(LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/pc")
[ "$out2" = "$out" ] || { echo "pkg-config consumer differs: $out2" >&2; exit 1; }
# librbee.a with its dependencies' shared libraries (Debian ships no static
# libcurl dependencies), as the .pc file's Requires.private lists them.
deps=$(pkg-config --print-requires-private rbee | tr '\n' ' ')
"$cc" -std=c11 -Wall -Werror "${san[@]}" $(pkg-config --cflags rbee) \
  "$RBEE_SOURCE_DIR/tests/consumer/main.c" -o "$tmp/pcs" -L"$tmp/prefix/lib" \
  -Wl,-Bstatic -lrbee -Wl,-Bdynamic $(pkg-config --libs $deps libcjson) -lpthread -ldl -lm
out3=$("$tmp/pcs")
[ "$out3" = "$out" ] || { echo "static consumer differs: $out3" >&2; exit 1; }
echo "pkg-config consumers (shared, static): ok"
