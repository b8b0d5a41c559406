#!/usr/bin/env bash
# scripts/check_docs.py on the repository must pass, and must fail when a quoted number or a
# generated table is edited by hand (checked on a copy of the docs and artifacts).
# Usage: check_docs_test.sh path/to/splitinfer SOURCE_DIR
set -u
BIN=$(realpath "$1")
SRC=$2
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$PY" "$SRC/scripts/check_docs.py" --root "$SRC" --bin "$BIN" || { echo "FAIL: the docs do not match their artifacts"; exit 1; }
mkdir -p "$TMP/bench" "$TMP/scripts"
cp -r "$SRC/README.md" "$SRC/docs" "$SRC/configs" "$TMP/"
cp -r "$SRC/bench/README.md" "$SRC/bench/results" "$TMP/bench/"
[ -d "$SRC/bench/fuzz" ] && cp -r "$SRC/bench/fuzz" "$TMP/bench/"
cp "$SRC/scripts/check_docs.py" "$TMP/scripts/"
"$PY" "$TMP/scripts/check_docs.py" --root "$TMP" --bin "$BIN" > /dev/null || { echo "FAIL: the copy does not pass"; exit 1; }
expect_fail() {  # NAME FILE SED-EXPRESSION TEXT-IN-OUTPUT
  cp "$TMP/$2" "$TMP/$2.orig"
  sed -i "$3" "$TMP/$2"
  cmp -s "$TMP/$2" "$TMP/$2.orig" && { echo "FAIL: $1: the edit changed nothing (stale test)"; exit 1; }
  out=$("$PY" "$TMP/scripts/check_docs.py" --root "$TMP" --bin "$BIN" 2>&1)
  rc=$?
  mv "$TMP/$2.orig" "$TMP/$2"
  if [ $rc -ne 1 ] || ! grep -qF "$4" <<< "$out"; then
    echo "FAIL: $1: exit $rc, want 1 with '$4' in:"; echo "$out"; exit 1
  fi
  echo "ok   $1"
}
expect_fail "a number in prose" docs/planning.md 's/(worst -7\.2 %)/(worst -7.1 %)/' \
  'docs/planning.md should say "Every validated configuration is within 15 % (worst -7.2 %)"'
expect_fail "a cell of a plan table" docs/planning.md 's/| 1 | 10 | stem b2 tensor zstd | - | 33203.0 | 219.86 |/| 1 | 10 | stem b2 tensor zstd | - | 33203.0 | 209.86 |/' \
  'generated block (plan 1 --node configs/devices/profiles/resnet50_raspberry-pi-4.yaml'
expect_fail "a cell of a committed-output table" docs/planning.md 's/| 13.32 | 14.32 | -2.6 % |/| 13.32 | 14.32 | -2.5 % |/' \
  'generated block (table bench/results/epyc_vm_2026-12-05/fmnist_plan.txt 2) differs'
expect_fail "an artifact behind a claim" bench/results/epyc_vm_2026-12-05/fmnist_plan.txt 's/planned in 21.2 ms/planned in 25.0 ms/' \
  'should say "Planned in 25.0 ms.'
echo "check_docs: passes on the repository and fails on each hand edit"
