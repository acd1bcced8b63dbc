#!/usr/bin/env bash
# The template worker built the way a user builds a copy of it: configured
# on its own against an installed librbee (find_package), then run.
source "$(dirname "$0")/samples_lib.sh"
need_samples "$QUEEN_BIN"
cmake=${CMAKE_COMMAND:-cmake}
san=()
[ -n "${RBEE_SANITIZE:-}" ] && san=("-fsanitize=$RBEE_SANITIZE")
# The compiler librbee was built with (its sanitizer runtime must match).
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$RBEE_BUILD_DIR/CMakeCache.txt")

step "install librbee into a temporary prefix, build samples/template against it"
"$cmake" --install "$RBEE_BUILD_DIR" --prefix "$TMP/prefix" >/dev/null
cp -r "$RBEE_SOURCE_DIR/samples/template" "$TMP/my-worker"
"$cmake" -S "$TMP/my-worker" -B "$TMP/build" -DCMAKE_PREFIX_PATH="$TMP/prefix" ${cc:+-DCMAKE_C_COMPILER="$cc"} \
  -DCMAKE_C_FLAGS="-Wall -Wextra -Werror ${san[*]:-}" -DCMAKE_EXE_LINKER_FLAGS="${san[*]:-}" \
  >"$TMP/configure.log" 2>&1 || { cat "$TMP/configure.log"; fail "configure"; }
"$cmake" --build "$TMP/build" >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; fail "build"; }
bin=$TMP/build/template-worker
[ -x "$bin" ] || fail "no template-worker built"
[ "$(wc -l <"$RBEE_SOURCE_DIR/samples/template/main.c")" -lt 100 ] || fail "the template is 100 lines or more"

step "run it against the local queen and echo a prompt"
export LD_LIBRARY_PATH=$TMP/prefix/lib
start_queen
start_worker t-template "$bin" --model hello
wait_status t-template ready
stream "$QURL" '{"model":"hello","operation":"echo","prompt":"one small step"}' "$TMP/e.sse"
[ "$(tokens "$TMP/e.sse" | tr -d '\n')" = "[hello] one small step" ] || fail "echo: $(tokens "$TMP/e.sse")"
# A 301-byte word of two-byte characters: sent in pieces of whole
# characters, nothing cut or dropped.
long="$(printf '\303\251%.0s' $(seq 150))x"
stream "$QURL" "{\"model\":\"hello\",\"operation\":\"echo\",\"prompt\":\"a $long b\"}" "$TMP/long.sse"
assert_contains "$TMP/long.sse" 'data: [DONE]' "long word"
[ "$(tokens "$TMP/long.sse" | tr -d '\n')" = "[hello] a $long b" ] || fail "long word: $(tokens "$TMP/long.sse")"
stream "$QURL" '{"model":"hello","operation":"echo","prompt":3}' "$TMP/bad.sse"
assert_contains "$TMP/bad.sse" '"code":"INVALID_PARAMS"' "bad prompt"
assert_contains "$TMP/bad.sse" 'prompt must be a string of at most 1048576 bytes (got a number)' "bad prompt"
echo "template checks passed"
