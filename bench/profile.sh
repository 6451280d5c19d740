#!/usr/bin/env bash
# Where a cache hit's CPU goes: runs `bench/run.sh` with the `hit` workload for dnsward alone
# and, while dnsperf holds the fixed rate, records dnsward's worker with `perf record -g`;
# then prints the share of samples in the kernel, in dnsward's own code, in libc and in the
# vDSO, and the top symbols. With PEERS="echo" the C echo loop (bench/echo.c) is profiled
# the same way, the floor every resolver pays per packet on this machine.
#   FIXED_QPS=20000 bench/profile.sh            # about 1 minute; needs perf and root
#   FIXED_QPS=60000 PROFILED=echo bench/profile.sh
# Settings: FIXED_QPS (20000), PROFILED (dnsward | echo), PERF_SECS (6), OUT
# (/tmp/dnsward-profile). Every process started is stopped by PID (run.sh stops its own).
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
FIXED_QPS=${FIXED_QPS:-20000}
PROFILED=${PROFILED:-dnsward}
PERF_SECS=${PERF_SECS:-6}
OUT=${OUT:-/tmp/dnsward-profile}
command -v perf >/dev/null || { echo "profile.sh: needs perf (apt-get install linux-perf)" >&2; exit 2; }
mkdir -p "$OUT"
case $PROFILED in
  dnsward) peers="" ;;
  echo) peers="echo" ;;
  *) echo "profile.sh: PROFILED must be dnsward or echo" >&2; exit 2 ;;
esac
# dnsward is always run by run.sh; with PROFILED=echo the echo loop runs after it
FIXED_QPS=$FIXED_QPS WORKLOADS=hit PEERS=$peers DURATION=$((PERF_SECS + 4)) PLOTS=0 \
  OUT="$OUT/run" "$BENCH/run.sh" >"$OUT/run.log" 2>&1 &
RUN_PID=$!
trap 'kill "$RUN_PID" 2>/dev/null || true' EXIT
pat="dnsperf.*-Q $FIXED_QPS"
server_pid=""
for _ in $(seq 1800); do # at most 3 minutes until the fixed-rate run of the profiled server
  if dp=$(pgrep -f -- "$pat" | head -n1) && [ -n "$dp" ]; then
    if [ "$PROFILED" = echo ]; then
      server_pid=$(pgrep -f -- "/bin/echo 127.0.0.1 " | head -n1 || true)
    else
      server_pid=$(pgrep -f -- "dnsward serve --config /tmp/dnsward-bench/" | head -n1 || true)
    fi
    [ -n "$server_pid" ] && break
  fi
  sleep 0.1
done
[ -n "$server_pid" ] || { echo "profile.sh: the fixed-rate run of $PROFILED never started; see $OUT/run.log" >&2; exit 1; }
sleep 1 # past the rate's ramp
perf record -q -F 1999 -g -p "$server_pid" -o "$OUT/perf.data" -- sleep "$PERF_SECS" 2>/dev/null
wait "$RUN_PID" || true
trap - EXIT
echo "== $PROFILED at $FIXED_QPS q/s: share of samples by object"
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -n 8
echo "== top symbols"
perf report -i "$OUT/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -E '^ +[0-9]' | head -n 25
grep -E "hit at $FIXED_QPS" "$OUT/run.log" || true
