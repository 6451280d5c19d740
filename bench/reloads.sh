#!/usr/bin/env bash
# Memory through list reloads (issue 23): dnsward with no list, then with the 1M-name list of
# bench/run.sh (run `WORKLOADS=lists bench/run.sh` once to generate it), RSS one second after
# the load, then N reloads by SIGHUP: the peak RSS during each (VmHWM, reset before it through
# /proc/PID/clear_refs) and the RSS after each, one second after the reload finished.
#   bench/reloads.sh                  # about a minute; one line per step on stdout
# Settings: DNSWARD (target/release/dnsward), DATA (/tmp/dnsward-bench, as run.sh),
# RELOADS (10). Every process it starts is stopped by PID; every wait is bounded.
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH/.." && pwd)
DNSWARD=${DNSWARD:-$REPO/target/release/dnsward}
DATA=${DATA:-/tmp/dnsward-bench}
RELOADS=${RELOADS:-10}
LIST=$DATA/lists/domains-1m.txt
DIR=$DATA/reloads
PORT=5306 ADMIN=127.0.0.1:9306

[ -s "$LIST" ] || { echo "no $LIST: run 'WORKLOADS=lists PEERS= bench/run.sh' first" >&2; exit 2; }
[ -x "$DNSWARD" ] || { echo "no dnsward at $DNSWARD" >&2; exit 2; }
mkdir -p "$DIR"
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$PID/status"; }
hwm() { awk '/^VmHWM/ { print $2 }' "/proc/$PID/status"; }
reloads() { timeout 2 curl -s "http://$ADMIN/metrics" | awk '/^dnsward_policy_reloads/ { print $2 }'; }

UP=
start() { # list file or "" -> PID serving, UP = seconds until it answered its metrics
  local list=$1 t0
  {
    printf '[server]\nlisten = ["127.0.0.1:%s"]\nudp_workers = 1\n\n' "$PORT"
    printf '[resolver]\nmode = "forward"\nforwarders = ["127.0.0.1:9"]\n\n[policy]\nwatch = false\n\n'
    printf '[admin]\nlisten = "%s"\n' "$ADMIN"
    [ -n "$list" ] && printf '\n[[lists]]\nname = "bench"\ncategory = "threat"\nformat = "plain"\npath = "%s"\n' "$list"
  } >"$DIR/dnsward.toml"
  t0=$(date +%s.%N)
  "$DNSWARD" serve --config "$DIR/dnsward.toml" >"$DIR/out.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 600); do
    if [ -n "$(reloads)" ]; then
      UP=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
      return 0
    fi
    sleep 0.05
  done
  echo "dnsward did not come up" >&2
  exit 1
}

start ""
sleep 1
empty=$(rss)
kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
echo "empty list: RSS $((empty / 1024)) MB"

start "$LIST"
sleep 1
loaded=$(rss)
echo "1M list: up in ${UP} s; RSS 1 s after: $((loaded / 1024)) MB, $(((loaded - empty) / 1024)) MB above the empty list"
sleep 9
echo "1M list: RSS 10 s after: $(($(rss) / 1024)) MB"
steady=$(rss)
for i in $(seq 1 "$RELOADS"); do
  before=$(reloads)
  echo 5 >"/proc/$PID/clear_refs"
  kill -HUP "$PID"
  for _ in $(seq 1 1200); do [ "$(reloads)" != "$before" ] && break; sleep 0.05; done
  [ "$(reloads)" != "$before" ] || { echo "reload $i did not finish" >&2; exit 1; }
  peak=$(hwm)
  sleep 1
  after=$(rss)
  [ "$i" = 1 ] && first=$after
  awk -v i="$i" -v p="$peak" -v a="$after" -v s="$steady" -v f="$first" \
    'BEGIN { printf "reload %d: peak %d MB (%.2fx the steady %d MB), RSS 1 s after %d MB (%+.1f %% of after the first)\n", i, p / 1024, p / s, s / 1024, a / 1024, 100 * (a - f) / f }'
done
