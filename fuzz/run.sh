#!/usr/bin/env bash
# Run every fuzz target (or those named) for N seconds each, one after the other, at the
# lowest CPU priority, one libFuzzer process at a time (no -jobs/-fork):
#
#   fuzz/run.sh            # every target, 30 s each
#   FUZZ_SECS=600 fuzz/run.sh dnswire doh
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Each target starts
# from its committed seeds (fuzz/seeds/TARGET) and the corpus it grew before (fuzz/corpus/
# TARGET, not committed); a crash is written to fuzz/artifacts/TARGET/ and ends the run with
# exit status 1. libFuzzer's log of each target: fuzz/logs/TARGET.log (the last "#N DONE" or
# "pulse" line has the executions, exec/s, cov and ft figures fuzz/README.md quotes).
set -euo pipefail
cd "$(dirname "$0")"
secs="${FUZZ_SECS:-30}"
rss_mb="${FUZZ_RSS_MB:-2048}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(dnswire query_pipeline classify dnssec_validate list_file rpz_zone config xfr tsig_key doh feed_guard)
fi
# -s none: dnsward is safe Rust (no unsafe on these paths); AddressSanitizer would only slow
# the search. Debug assertions stay on (cargo-fuzz's default), so overflow panics are found.
nice -n 19 cargo +nightly fuzz build -s none
mkdir -p logs
status=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  echo "== $t: ${secs} s"
  if ! nice -n 19 cargo +nightly fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -rss_limit_mb="$rss_mb" \
      -timeout=10 -print_final_stats=1 >"logs/$t.log" 2>&1; then
    echo "   CRASH or error: see fuzz/logs/$t.log and fuzz/artifacts/$t/"
    status=1
  fi
  grep -aE '^#[0-9]+[[:space:]]+(DONE|pulse)' "logs/$t.log" | tail -1 | sed 's/^/   /' || true
  grep -aE '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "logs/$t.log" | sed 's/^/   /' || true
done
exit $status
