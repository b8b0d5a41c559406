#!/usr/bin/env bash
# A fuzzing campaign (issue 16): each libFuzzer target (ASan + UBSan, tests/fuzz) runs for
# SECONDS from its committed corpus, then what it found that covers new code is merged back into
# tests/fuzz/corpus/<target>: -merge=1 keeps the committed seeds and adds the fewest inputs that
# reach code they do not (-use_counters=0: new edges, not new hit counts, or the corpus would
# grow by a thousand files a target); -max_len caps their size. One line per target goes to
# bench/fuzz/campaign.tsv and the start and end of the libFuzzer output (its status lines and
# final statistics) to bench/fuzz/<target>.log, so that bench/README.md's table is recomputable;
# the whole output stays in $FUZZ_BUILD/<target>.log. A crash leaves its input in bench/fuzz/
# and the script exits 1.
#
#   scripts/fuzz_campaign.sh [SECONDS] [TARGET...]     (default 600 s, every target)
#
# Needs clang (Debian's clang-14 has libFuzzer); builds /tmp/splitinfer-fuzz from tests/fuzz.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame roundtrip head cabac_model yaml coco request)
build=${FUZZ_BUILD:-/tmp/splitinfer-fuzz}
out=$root/bench/fuzz
mkdir -p "$out"
command -v clang++ > /dev/null || { echo "fuzz_campaign: needs clang++ (apt install clang)" >&2; exit 1; }
cmake -S "$root/tests/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DSPLITINFER_FUZZ=ON > /dev/null
cmake --build "$build" -j "${JOBS:-2}" > /dev/null
[ -s "$out/campaign.tsv" ] ||
  printf 'date\ttarget\tseconds\texecutions\texec_per_s\tcoverage\tfeatures\tcorpus_before\tcorpus_after\tfindings\n' \
    > "$out/campaign.tsv"
status=0
for t in "${targets[@]}"; do
  corpus=$root/tests/fuzz/corpus/$t
  work=$(mktemp -d)
  before=$(find "$corpus" -type f | wc -l)
  log=$build/$t.log
  echo "fuzz_campaign: $t for $seconds s"
  set +e
  (cd "$out" && "$build/${t}_fuzz" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=16384 \
     -print_final_stats=1 -artifact_prefix="$out/${t}-" "$work" "$corpus") > "$log" 2>&1
  rc=$?
  set -e
  findings=$(find "$out" -maxdepth 1 -name "${t}-crash-*" -o -maxdepth 1 -name "${t}-leak-*" \
               -o -maxdepth 1 -name "${t}-timeout-*" -o -maxdepth 1 -name "${t}-oom-*" | wc -l)
  [ $rc -eq 0 ] || status=1
  "$build/${t}_fuzz" -merge=1 -use_counters=0 -max_len=16384 -rss_limit_mb=2048 "$corpus" "$work" >> "$log" 2>&1
  rm -rf "$work"
  after=$(find "$corpus" -type f | wc -l)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  # The last status line of the run (before the merge): "#N DONE cov: C ft: F corp: ...".
  line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|REDUCE|NEW)' "$log" | grep -v MERGE | tail -1 || true)
  cov=$(echo "$line" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$line" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%F)" "$t" "$seconds" "${execs:-?}" "${rate:-?}" \
    "${cov:-?}" "${ft:-?}" "$before" "$after" "$findings" >> "$out/campaign.tsv"
  tail -1 "$out/campaign.tsv"
  { head -n 30 "$log"; echo "[...]"; grep -Ev '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -n 40; } > "$out/$t.log"
done
exit $status
