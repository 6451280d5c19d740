#!/usr/bin/env bash
# cache-hit.sh: cache-hit throughput (max q/s over UDP) of dnsward next to unbound and
# pdns-recursor, on the fake DNS hierarchy of ../shared/lab, in one run.
#
#   bench/cache-hit.sh                      # LIST=0 RUNS=3 DURATION=10, peers + dnsward
#   RUNS=1 DURATION=5 bench/cache-hit.sh    # quick check
#   LIST=10k bench/cache-hit.sh             # every resolver loaded with the 10k threat list
#
# Steps: check tools -> generate hierarchy/lists/query file if absent -> hierarchy up ->
# start peers (+ dnsward) pinned to SERVER_CPU -> warm every cache with the query file ->
# RUNS rounds of max-throughput dnsperf runs (round-robin over the resolvers) -> summary
# table -> stop everything this script started (EXIT trap, by recorded PID).
# It installs nothing, only uses loopback, and every wait is bounded.
#
# Env (defaults in brackets):
#   LIST [0]               list size every resolver loads: 0 | 10k | 100k | 1m
#   PEERS ["unbound pdns"] peer resolvers (peers.sh names; hickory works if installed)
#   DNSWARD [<repo>/target/release/dnsward]   missing binary -> peers only
#   QUERYLOG [0]           1 = also run "dnsward-log" (port 5305): the same binary logging every
#                          query, measured in the same rounds (LIST=0 only)
#   QUERYLOG_SINKS ["sqlite jsonl"]  the sinks dnsward-log writes: any of sqlite, jsonl
#   QUERYLOG_EXTRA []      more [querylog] lines for dnsward-log, e.g. "sink_nice = 0"
#                          (what the sinks wrote and dropped: "events lost" in logs/dnsward.out)
#   RUNS [3] DURATION [10] CLIENTS [4] OUTSTANDING [100]   passed to lab/bench.sh
#   QUERIES [1000]         names in the cache-hit query file
#   QF []                  use this dnsperf query file instead of the generated one
#   WARM_PASSES [2] WARM_QPS [3000]   cache warm-up: whole file sent WARM_PASSES times
#   STARTUP_TIMEOUT [300]  seconds a resolver may take to answer after start
#   SERVER_CPU [0] SERVER_NICE [-10] DNSPERF_CPU [1]   pinning (as in the lab scripts)
#   OUT [/tmp/lab-data/results]   cache-hit.tsv (summary) and cache-hit-runs.tsv (raw)
#   LAB [<repo>/../shared/lab]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(git -C "$HERE" rev-parse --show-toplevel 2>/dev/null || (cd "$HERE/.." && pwd))
LAB=${LAB:-$ROOT/../shared/lab}
DATA=/tmp/lab-data
H=$DATA/hierarchy
L=$DATA/lists

LIST=${LIST:-0}
PEERS=${PEERS:-unbound pdns}
DNSWARD=${DNSWARD:-$ROOT/target/release/dnsward}
case $DNSWARD in /*) ;; *) DNSWARD=$PWD/$DNSWARD ;; esac
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
QUERIES=${QUERIES:-1000}
QF=${QF:-}
WARM_PASSES=${WARM_PASSES:-2}
WARM_QPS=${WARM_QPS:-3000}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-300}
OUT=${OUT:-$DATA/results}
export SERVER_CPU=${SERVER_CPU:-0} SERVER_NICE=${SERVER_NICE:--10} DNSPERF_CPU=${DNSPERF_CPU:-1}
export CLIENTS=${CLIENTS:-4} OUTSTANDING=${OUTSTANDING:-100} DNSWARD
unset QPS # max throughput only

say() { printf '[cache-hit %s] %s\n' "$(date +%T)" "$*"; }
die() { printf '[cache-hit] error: %s\n' "$*" >&2; exit 2; }
port_of() { case $1 in unbound) echo 5301 ;; pdns) echo 5302 ;; hickory) echo 5303 ;; dnsward) echo 5304 ;; dnsward-log) echo 5305 ;; *) die "unknown peer $1" ;; esac; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

for v in RUNS DURATION QUERIES WARM_PASSES WARM_QPS STARTUP_TIMEOUT; do
  is_uint "${!v}" || die "$v must be a non-negative integer (got '${!v}')"
done
((RUNS >= 1 && RUNS <= 50)) || die "RUNS must be 1..50"
((DURATION >= 1 && DURATION <= 600)) || die "DURATION must be 1..600"
((WARM_PASSES <= 10)) || die "WARM_PASSES must be 0..10"
((WARM_QPS >= 1)) || die "WARM_QPS must be >= 1"
case $LIST in 0 | 10k | 100k | 1m) ;; *) [ -f "$L/rpz-$LIST.zone" ] || die "LIST=$LIST: not one of 0,10k,100k,1m and no $L/rpz-$LIST.zone" ;; esac
for p in $PEERS; do
  case $p in unbound | pdns | hickory) ;; *) die "PEERS may contain unbound, pdns, hickory (dnsward is added by itself)" ;; esac
done

# ---------------------------------------------------------------- prerequisites
if [ ! -x "$LAB/peers.sh" ]; then die "lab scripts not found at $LAB (set LAB=/path/to/shared/lab)"; fi
[ "$(id -u)" = 0 ] || die "run as root: NSD binds 127.53.x.x:53 and the servers run at nice $SERVER_NICE"
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 (Debian package $2)"); }
need nsd nsd
need dnsperf dnsperf
need dig dnsutils
need bc bc
need python3 python3
need taskset util-linux
need setsid util-linux
need pgrep procps
need timeout coreutils
need join coreutils
need getconf libc-bin
need git git
[ -x /usr/bin/time ] || missing+=("/usr/bin/time (Debian package time)")
for p in $PEERS; do
  case $p in
    unbound) need unbound unbound ;;
    pdns) need pdns_recursor pdns-recursor ;;
    hickory) [ -x "${HICKORY:-$(command -v hickory-dns || echo "$HOME/.cargo/bin/hickory-dns")}" ] ||
      missing+=("hickory-dns (cargo install hickory-dns --version 0.26.3 --features blocklist,recursor)") ;;
  esac
done
if ((${#missing[@]})); then
  printf '[cache-hit] missing tools:\n' >&2
  printf '  - %s\n' "${missing[@]}" >&2
  printf '[cache-hit] install with: apt-get update && apt-get install -y nsd unbound pdns-recursor dnsperf dnsutils bc time\n' >&2
  exit 2
fi

WITH_DNSWARD=1
if [ ! -x "$DNSWARD" ]; then
  say "dnsward binary not found at $DNSWARD (build it with 'cargo build --release' or set DNSWARD=...): benchmarking the peers only"
  WITH_DNSWARD=0
fi

mkdir -p "$DATA/logs" "$DATA/run" "$DATA/bench" "$OUT"
TMP=$(mktemp -d "$DATA/bench/cache-hit.XXXXXX")
RUN_ID=$(date +%Y%m%dT%H%M%S)-$$

# ---------------------------------------------------------------- cleanup (EXIT trap)
STARTED=()      # resolvers this script started (stopped with peers.sh down, which kills by PID)
STARTED_HIER=0  # 1 if this script brought the hierarchy up
FAILED=()
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$? p i
  trap - EXIT INT TERM
  set +e
  for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
    p=${STARTED[i]}
    if [ "$p" = dnsward-log ]; then # not a peers.sh name: stop it by its recorded PID
      if alive "$DATA/run/$p/pid"; then
        kill -TERM "$(cat "$DATA/run/$p/pid")" 2>/dev/null
        for _ in $(seq 50); do alive "$DATA/run/$p/pid" || break; sleep 0.2; done
      fi
      rm -f "$DATA/run/$p/pid"
      continue
    fi
    timeout 30 "$LAB/peers.sh" down "$p" >/dev/null 2>&1 || say "warning: could not stop $p (pid file $DATA/run/$p/pid)"
  done
  if [ "$STARTED_HIER" = 1 ]; then timeout 60 "$LAB/hierarchy.sh" down >/dev/null 2>&1 || say "warning: hierarchy.sh down failed"; fi
  rm -rf "$TMP"
  if ((${#STARTED[@]})) || [ "$STARTED_HIER" = 1 ]; then
    say "stopped what this script started: ${STARTED[*]:-}$([ "$STARTED_HIER" = 1 ] && echo ' hierarchy')"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log_size() { stat -c %s "$1" 2>/dev/null || echo 0; }
log_since() { # file offset -> the last 15 lines written after offset
  [ -f "$1" ] && tail -c +$(($2 + 1)) "$1" | tail -n 15 >&2
  return 0
}
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
port_busy() { command -v ss >/dev/null 2>&1 && [ -n "$(ss -Hlun "sport = :$1" 2>/dev/null)" ]; }

# ---------------------------------------------------------------- data: hierarchy, lists, query file
if [ ! -f "$H/stats.txt" ]; then
  say "generating the fake hierarchy in $H (once, ~10 s)"
  timeout 900 python3 "$LAB/gen-hierarchy.py" --out "$H" >"$DATA/logs/gen-hierarchy.log" 2>&1 ||
    die "gen-hierarchy.py failed; see $DATA/logs/gen-hierarchy.log"
fi
need_list() { [ -f "$L/rpz-$1.zone" ] && [ -f "$L/domains-$1.txt" ] && [ -f "$L/hickory-$1.txt" ]; }
if ! need_list "$LIST" || ! need_list 0; then
  sizes=0; [ "$LIST" != 0 ] && sizes="$LIST"
  say "generating lists (--sizes $sizes) in $L"
  timeout 1800 python3 "$LAB/gen-blocklist.py" --out "$L" --hierarchy "$H" --sizes "$sizes" >"$DATA/logs/gen-blocklist.log" 2>&1 ||
    die "gen-blocklist.py failed; see $DATA/logs/gen-blocklist.log"
fi

if [ -z "$QF" ]; then
  # QUERIES names that exist in the hierarchy, with the lab's realistic qtype mix (A 72%,
  # AAAA 18% - NODATA where no AAAA exists -, MX, TXT): the first QUERIES distinct lines of
  # names/queries-allowed.txt whose owner is in names/all-owner-names.txt (no NXDOMAIN).
  QF=$DATA/bench/cache-hit-$QUERIES.txt
  if [ ! -s "$QF" ] || [ "$QF" -ot "$H/names/queries-allowed.txt" ]; then
    awk -v n="$QUERIES" 'NR == FNR { own[$1] = 1; next }
      ($1 in own) && !seen[$0]++ { print; if (++k >= n) exit }' \
      "$H/names/all-owner-names.txt" "$H/names/queries-allowed.txt" >"$QF.tmp"
    mv "$QF.tmp" "$QF"
  fi
fi
[ -s "$QF" ] || die "empty or missing query file $QF"
QLINES=$(wc -l <"$QF")

# ---------------------------------------------------------------- hierarchy
running=0
for part in root tld auth; do alive "$DATA/run/nsd-$part/nsd.pid" && running=$((running + 1)); done
if ((running == 3)); then
  say "hierarchy already running (not started here; left running at exit)"
elif ((running == 0)); then
  STARTED_HIER=1
  timeout 900 "$LAB/hierarchy.sh" up || die "hierarchy.sh up failed; see $DATA/logs/nsd-*.log"
else
  die "hierarchy partly running ($running/3 nsd); check '$LAB/hierarchy.sh status'"
fi

# ---------------------------------------------------------------- resolvers
start_dnsward_minimal() { # NAME -- LIST=0: own config without [[lists]], started the way peers.sh starts it
  local name=${1:-dnsward} r port pid t0 end qn st off
  r=$DATA/run/$name
  port=$(port_of "$name")
  mkdir -p "$r"
  cat >"$r/dnsward.toml" <<EOF
# written by bench/cache-hit.sh (LIST=0: no [[lists]])
[server]
listen = ["127.0.0.1:$port"]

[resolver]
mode = "recursive"
root_hints = "$H/root.hints"
cache_size = 2000000
EOF
  if [ "$name" = dnsward-log ]; then
    rm -f "$r"/querylog.db* "$r"/querylog.jsonl*
    printf '\n[querylog]\n' >>"$r/dnsward.toml"
    for sink in ${QUERYLOG_SINKS:-sqlite jsonl}; do
      case $sink in
        sqlite) printf 'sqlite = "%s/querylog.db"\n' "$r" >>"$r/dnsward.toml" ;;
        jsonl) printf 'jsonl = "%s/querylog.jsonl"\n' "$r" >>"$r/dnsward.toml" ;;
        *) die "QUERYLOG_SINKS: unknown sink $sink (sqlite, jsonl)" ;;
      esac
    done
    [ -n "${QUERYLOG_EXTRA:-}" ] && printf '%s\n' "$QUERYLOG_EXTRA" >>"$r/dnsward.toml"
  fi
  STARTED+=("$name")
  off=$(log_size "$DATA/logs/dnsward.out")
  t0=$(date +%s.%N)
  setsid nice -n "$SERVER_NICE" taskset -c "$SERVER_CPU" "$DNSWARD" serve --config "$r/dnsward.toml" >>"$DATA/logs/dnsward.out" 2>&1 &
  pid=$!
  echo "$pid" >"$r/pid"
  echo 0 >"$r/list"
  qn=$(head -n1 "$H/names/regular-zones.txt")
  end=$((SECONDS + STARTUP_TIMEOUT))
  while ((SECONDS < end)); do # bounded; 2 s probes so a crashed process is noticed at once
    kill -0 "$pid" 2>/dev/null || { say "$name exited during startup; its output:"; log_since "$DATA/logs/dnsward.out" "$off"; return 1; }
    if st=$(timeout 10 python3 "$LAB/probe.py" wait "127.0.0.1:$port" "$qn" A --expect noerror --since "$t0" --timeout 2 2>/dev/null); then
      sleep 1
      printf '%s\t%s\t0\tstartup_s=%s\trss_kb=%s\tpid=%s\n' "$(date +%FT%T)" "$name" "$st" \
        "$(awk '/^VmRSS/{print $2}' "/proc/$pid/status")" "$pid" | tee -a "$DATA/results/startup.tsv"
      return 0
    fi
  done
  say "$name did not answer $qn A with NOERROR within ${STARTUP_TIMEOUT}s; see $DATA/logs/dnsward.out"
  return 1
}

start_one() { # peer -> 0 if running and answering
  local p=$1 port
  port=$(port_of "$p")
  if alive "$DATA/run/$p/pid"; then
    say "$p is already running (pid $(cat "$DATA/run/$p/pid"), not started by this script): skipped; stop it with '$LAB/peers.sh down $p'"
    return 1
  fi
  if port_busy "$port"; then
    say "UDP port $port is already in use by another process: $p skipped"
    return 1
  fi
  if [ "$p" = dnsward ] || [ "$p" = dnsward-log ]; then
    if [ "$LIST" = 0 ]; then
      start_dnsward_minimal "$p"
      return
    fi
    [ "$p" = dnsward-log ] && { say "dnsward-log runs with LIST=0 only"; return 1; }
  fi
  STARTED+=("$p")
  rm -f "$DATA/run/$p/pid"
  local off; off=$(log_size "$DATA/logs/$p.out")
  # peers.sh waits up to 600 s for an answer; watch the server so a crash is noticed at once
  timeout $((STARTUP_TIMEOUT + 30)) "$LAB/peers.sh" up "$p" "$LIST" &
  local upid=$! end=$((SECONDS + STARTUP_TIMEOUT + 40)) rc=0
  while kill -0 "$upid" 2>/dev/null && ((SECONDS < end)); do
    if [ -f "$DATA/run/$p/pid" ] && ! alive "$DATA/run/$p/pid"; then
      sleep 0.5
      kill -0 "$upid" 2>/dev/null && kill -TERM "$upid" 2>/dev/null
      say "$p exited during startup; its output:"
      log_since "$DATA/logs/$p.out" "$off"
      break
    fi
    sleep 0.2
  done
  wait "$upid" || rc=$?
  if ((rc != 0)) || ! alive "$DATA/run/$p/pid"; then say "$p failed to start; see $DATA/logs/$p.*"; return 1; fi
}

TARGETS=()
ALL=()
read -r -a ALL <<<"$PEERS"
((WITH_DNSWARD)) && ALL+=(dnsward)
((WITH_DNSWARD)) && [ "${QUERYLOG:-0}" = 1 ] && ALL+=(dnsward-log)
mkdir -p "$DATA/results"
for p in "${ALL[@]}"; do
  if start_one "$p"; then TARGETS+=("$p"); else FAILED+=("$p"); fi
done
((${#TARGETS[@]})) || die "no resolver is up"

pid_of() { cat "$DATA/run/$1/pid"; }

# ---------------------------------------------------------------- warm-up
warm_tmo=$((QLINES * 3 / WARM_QPS + 60))
for p in "${TARGETS[@]}"; do
  port=$(port_of "$p")
  for i in $(seq "$WARM_PASSES"); do
    out=$(WARM=1 RUNS=0 RESULTS="$TMP/warm.tsv" timeout "$warm_tmo" "$LAB/bench.sh" "127.0.0.1:$port" "$QF" warm 2>&1 || true)
    say "$p warm pass $i/$WARM_PASSES: $(printf '%s' "$out" | grep '^warm:' | sed 's/^warm: //' | tr '\t' ' ')"
  done
done

# ---------------------------------------------------------------- measured runs (round-robin)
load=$(cut -d' ' -f1-3 /proc/loadavg)
say "measuring: ${TARGETS[*]} | list=$LIST | $QLINES queries from $QF | $RUNS x ${DURATION}s | clients=$CLIENTS outstanding=$OUTSTANDING | server CPU $SERVER_CPU, dnsperf CPU $DNSPERF_CPU | loadavg $load"
awk -v l="${load%% *}" 'BEGIN { exit !(l > 0.7) }' &&
  say "warning: the machine is busy (loadavg $load); figures will be low and noisy"
run_tmo=$((DURATION + 60))
for i in $(seq "$RUNS"); do
  for p in "${TARGETS[@]}"; do
    port=$(port_of "$p")
    kill -0 "$(pid_of "$p")" 2>/dev/null || { say "$p is no longer running"; continue; }
    line=$(RUNS=1 RESULTS="$TMP/$p.tsv" SERVER_PID="$(pid_of "$p")" timeout "$run_tmo" \
      "$LAB/bench.sh" "127.0.0.1:$port" "$QF" "cache-hit/$p/$LIST" 2>&1 | grep '^run=' || true)
    say "round $i/$RUNS $p: $(printf '%s' "$line" | tr '\t' ' ' | sed 's/^run=1 //')"
  done
done

# ---------------------------------------------------------------- summary
field() { # file key -> one value per row
  awk -F'\t' -v k="$2=" '{ for (i = 1; i <= NF; i++) if (index($i, k) == 1) print substr($i, length(k) + 1) }' "$1"
}
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.1f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
per_cpu() { # file -> per run: q/s divided by the server's CPU share (q/s per fully used core; rough when CPU-starved)
  awk -F'\t' '{ q = ""; c = ""
    for (i = 1; i <= NF; i++) { if (index($i, "qps=") == 1) q = substr($i, 5); if (index($i, "srv_cpu=") == 1) c = substr($i, 9) + 0 }
    if (q != "" && c > 0) print q * 100 / c }' "$1"
}
other_load() { # file -> per run: busy% of SERVER_CPU minus the server's own CPU% (= foreign load on the server's CPU)
  awk -F'\t' -v k="cpu${SERVER_CPU}_busy=" '{ b = ""; s = ""
    for (i = 1; i <= NF; i++) { if (index($i, k) == 1) b = substr($i, length(k) + 1); if (index($i, "srv_cpu=") == 1) s = substr($i, 9) }
    if (b != "" && s != "") { d = b - s; print (d < 0 ? 0 : d) } }' "$1" | tr -d %
}
minmax() { sort -g | awk 'NR == 1 { a = $1 } { b = $1 } END { if (NR) printf "%s..%s", a, b }'; }

declare -A MED PC
for p in "${TARGETS[@]}"; do
  f=$TMP/$p.tsv
  [ -s "$f" ] || continue
  MED[$p]=$(field "$f" qps | median)
  PC[$p]=$(per_cpu "$f" | median)
  sed "s/^/$RUN_ID\t/" "$f" >>"$OUT/cache-hit-runs.tsv"
done
dw=${MED[dnsward]:-}
dw_pc=${PC[dnsward]:-}

SUMMARY=$OUT/cache-hit.tsv
[ -s "$SUMMARY" ] || printf 'date\trun_id\tpeer\tlist\tquery_file\tqueries\truns\tduration_s\tqps_median\tqps_min_max\tlost_total\tsrv_cpu_median\tother_load_median\tqps_per_srv_cpu_median\tdnsward_ratio\tdnsward_ratio_per_cpu\tversion\n' >"$SUMMARY"
version_of() {
  case $1 in
    unbound) unbound -V 2>/dev/null | awk 'NR == 1 { print "unbound-" $2 }' ;;
    pdns) pdns_recursor --version 2>&1 | grep -o 'Recursor [0-9][0-9.]*' | head -n1 | sed 's/^Recursor /pdns-recursor-/' ;;
    hickory) "${HICKORY:-hickory-dns}" --version 2>/dev/null | head -n1 | tr ' ' - ;;
    dnsward) timeout 5 "$DNSWARD" --version 2>/dev/null | head -n1 | tr ' ' - ;;
  esac
}
echo
printf 'cache-hit q/s (UDP, max throughput, %s runs x %ss, list=%s, %s queries; run %s)\n' "$RUNS" "$DURATION" "$LIST" "$QLINES" "$RUN_ID"
printf '%-9s %6s %11s %21s %6s %8s %9s %12s %13s %13s\n' peer port median_qps "min..max" lost srv_cpu other_cpu qps_per_cpu "dnsward/peer" "(per cpu)"
for p in "${TARGETS[@]}"; do
  f=$TMP/$p.tsv
  [ -s "$f" ] || { printf '%-9s %6s %12s\n' "$p" "$(port_of "$p")" "no data"; continue; }
  med=${MED[$p]}
  mm=$(field "$f" qps | minmax)
  lost=$(field "$f" lost | awk '{ s += $1 } END { print s + 0 }')
  cpu=$(field "$f" srv_cpu | tr -d % | median)
  oth=$(other_load "$f" | median)
  pc=${PC[$p]:-}
  ratio=- ratio_pc=-
  if [ -n "$dw" ] && [ "$p" != dnsward ] && [ -n "$med" ]; then
    ratio=$(awk -v a="$dw" -v b="$med" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
    [ -n "$dw_pc" ] && [ -n "$pc" ] && ratio_pc=$(awk -v a="$dw_pc" -v b="$pc" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')
  fi
  printf '%-9s %6s %11s %21s %6s %8s %9s %12s %13s %13s\n' "$p" "$(port_of "$p")" "$med" "$mm" "$lost" "${cpu:+$cpu%}" "${oth:+$oth%}" "$pc" "$ratio" "$ratio_pc"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date +%FT%T)" "$RUN_ID" "$p" "$LIST" "$QF" "$QLINES" \
    "$RUNS" "$DURATION" "$med" "$mm" "$lost" "${cpu:+$cpu%}" "${oth:+$oth%}" "$pc" "$ratio" "$ratio_pc" "$(version_of "$p" || true)" >>"$SUMMARY"
done
echo "srv_cpu: the resolver's CPU use during the runs; other_cpu: CPU ${SERVER_CPU} busy with other processes (high = figures understated);"
echo "qps_per_cpu: q/s / srv_cpu, a rough efficiency figure for a shared machine (the headline is median_qps on a quiet machine)"
((WITH_DNSWARD)) || echo "(dnsward not run: no binary at $DNSWARD)"
((${#FAILED[@]})) && echo "not measured (failed to start or skipped): ${FAILED[*]}"
echo "summary appended to $SUMMARY; raw per-run rows in $OUT/cache-hit-runs.tsv"
((${#FAILED[@]} == 0)) || exit 3
exit 0
