# shellcheck shell=bash
# Sourced by bench/run.sh: dnsperf runs and what they measure. Every dnsperf is pinned to
# DNSPERF_CPU and bounded by `timeout`; every figure goes to $RESULTS_TSV as
# "resolver<TAB>workload<TAB>metric<TAB>value" (report.py turns that file into RESULTS.md).
# Needs: BENCH, RAW, RESULTS_TSV, DNSPERF_CPU, DNSPERF_NICE, CLIENTS, OUTSTANDING.

record() { # resolver workload metric value
  [ -n "$4" ] && printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS_TSV"
  return 0
}

cpu_ticks() { # pid -> utime + stime of the whole process (all threads), in clock ticks
  awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
hwm_kb() { awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

stat_of() { # stats-file key -> value ("" when absent)
  awk -F= -v k="$2" '$1 == k { print $2 }' "$1"
}

# dnsperf with the common options; stdout+stderr to $1. Returns 0 even when dnsperf fails
# (a dead resolver shows up as lost queries in the figures).
dnsperf_run() { # out-file timeout-s dnsperf-args...
  local out=$1 limit=$2
  shift 2
  timeout "$limit" nice -n "$DNSPERF_NICE" taskset -c "$DNSPERF_CPU" \
    dnsperf -s 127.0.0.1 -t 5 "$@" >"$out" 2>&1 || true
}

warm() { # resolver port query-file passes qps -> sends the file PASSES times at QPS
  local lines
  lines=$(wc -l <"$3")
  dnsperf_run "$RAW/$1-warm-$(basename "$3")" $((lines * $4 / $5 + 30)) \
    -p "$2" -d "$3" -n "$4" -Q "$5" -c "$CLIENTS" -q "$OUTSTANDING"
}

# A fixed rate for DURATION seconds: CPU µs per answered query from the resolver's
# utime+stime delta, and latency percentiles from dnsperf -v.
fixed_rate() { # resolver workload port pid query-file qps duration
  local r=$1 w=$2 port=$3 pid=$4 qf=$5 qps=$6 dur=$7 raw t0 t1 done_q tck
  raw=$RAW/$r-$w-fixed$qps
  t0=$(cpu_ticks "$pid")
  # enough queries in flight (50 ms worth) that the rate holds when answers slow down
  dnsperf_run "$raw.out" $((dur + 30)) -p "$port" -d "$qf" -l "$dur" -Q "$qps" -c "$CLIENTS" -q $((qps / 20 > OUTSTANDING ? qps / 20 : OUTSTANDING)) -v
  t1=$(cpu_ticks "$pid")
  python3 "$BENCH/dnsperf_stats.py" "$raw.out" >"$raw.stats"
  rm -f "$raw.out" # -v output is large; the figures are kept
  tck=$(getconf CLK_TCK)
  done_q=$(stat_of "$raw.stats" completed)
  if [ -n "$done_q" ] && ((done_q > 0)); then
    record "$r" "$w" cpu_us_per_query "$(awk -v d=$((t1 - t0)) -v t="$tck" -v n="$done_q" 'BEGIN { printf "%.2f", d / t * 1e6 / n }')"
  fi
  record "$r" "$w" fixed_qps "$qps"
  for k in qps lost avg_ms p50_ms p99_ms p999_ms rcodes; do record "$r" "$w" "fixed_$k" "$(stat_of "$raw.stats" $k)"; done
  say "$r $w at $qps q/s: $(tr '\n' ' ' <"$raw.stats")cpu_us_per_query=$(awk -F'\t' -v r="$r" -v w="$w" '$1 == r && $2 == w && $3 == "cpu_us_per_query" { v = $4 } END { print v }' "$RESULTS_TSV")"
}

# As fast as dnsperf can send for DURATION seconds (MODE udp or tcp).
max_rate() { # resolver workload port pid query-file duration mode [more dnsperf args]
  local r=$1 w=$2 port=$3 pid=$4 qf=$5 dur=$6 mode=${7:-udp} raw t0 t1 tck
  shift 7
  raw=$RAW/$r-$w-max-$mode
  t0=$(cpu_ticks "$pid")
  dnsperf_run "$raw.out" $((dur + 30)) -m "$mode" -p "$port" -d "$qf" -l "$dur" -c "$CLIENTS" -q "$OUTSTANDING" "$@"
  t1=$(cpu_ticks "$pid")
  python3 "$BENCH/dnsperf_stats.py" "$raw.out" >"$raw.stats"
  tck=$(getconf CLK_TCK)
  for k in qps lost avg_ms rcodes; do record "$r" "$w" "max_$k" "$(stat_of "$raw.stats" $k)"; done
  record "$r" "$w" max_srv_cpu_pct "$(awk -v d=$((t1 - t0)) -v t="$tck" -v s="$dur" 'BEGIN { printf "%.0f", d / t / s * 100 }')"
  say "$r $w max ($mode): $(tr '\n' ' ' <"$raw.stats")"
}

# Cold cache: every question in its own zone, sent once to a freshly started resolver.
# QPS empty = as fast as answers come back (OUTSTANDING_COLD in flight).
cold_run() { # resolver workload port pid query-file qps
  local r=$1 w=$2 port=$3 pid=$4 qf=$5 qps=$6 raw lines args t0 t1 done_q
  raw=$RAW/$r-$w
  lines=$(wc -l <"$qf")
  args=(-p "$port" -d "$qf" -n 1 -c "$CLIENTS")
  if [ -n "$qps" ]; then
    # enough in flight that the rate, not the outstanding limit, sets the pace
    args+=(-Q "$qps" -q $((qps / 2)) -v)
  else
    args+=(-q "$OUTSTANDING_COLD")
  fi
  t0=$(cpu_ticks "$pid")
  dnsperf_run "$raw.out" $((COLD_TIMEOUT + 10)) -l "$COLD_TIMEOUT" "${args[@]}"
  t1=$(cpu_ticks "$pid")
  python3 "$BENCH/dnsperf_stats.py" "$raw.out" >"$raw.stats"
  done_q=$(stat_of "$raw.stats" completed)
  if [ -n "$done_q" ] && ((done_q > 0)); then
    record "$r" "$w" cpu_us_per_query "$(awk -v d=$((t1 - t0)) -v t="$(getconf CLK_TCK)" -v n="$done_q" 'BEGIN { printf "%.1f", d / t * 1e6 / n }')"
  fi
  [ -n "$qps" ] && rm -f "$raw.out"
  record "$r" "$w" questions "$lines"
  [ -n "$qps" ] && record "$r" "$w" fixed_qps "$qps"
  for k in qps completed lost avg_ms p50_ms p99_ms p999_ms rcodes; do record "$r" "$w" "$k" "$(stat_of "$raw.stats" $k)"; done
  record "$r" "$w" rss_kb_after "$(rss_kb "$pid")"
  say "$r $w: $(tr '\n' ' ' <"$raw.stats")"
}

# Reload of the list under a steady load: queries lost (dnsperf) and peak RSS during the run
# (VmHWM, reset just before through /proc/PID/clear_refs). The load starts SETTLE seconds
# before the reload and stops (SIGINT: dnsperf prints its figures) SETTLE seconds after it
# is done, however long the reload takes (bounded by RELOAD_TIMEOUT).
reload_under_load() { # resolver port pid dir query-file qps
  local r=$1 port=$2 pid=$3 dir=$4 qf=$5 qps=$6 raw steady load_pid t0 t1 settle=3 reloaded=1
  raw=$RAW/$r-reload
  steady=$(rss_kb "$pid")
  echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || say "warning: cannot reset the peak RSS of $r (not root?)"
  timeout $((RELOAD_TIMEOUT + 30)) nice -n "$DNSPERF_NICE" taskset -c "$DNSPERF_CPU" dnsperf -s 127.0.0.1 -t 5 \
    -p "$port" -d "$qf" -l $((RELOAD_TIMEOUT + 2 * settle)) -Q "$qps" -c "$CLIENTS" -q "$OUTSTANDING" >"$raw.out" 2>&1 &
  load_pid=$!
  sleep "$settle"
  t0=$(date +%s.%N)
  reload_list "$r" "$pid" "$dir" || reloaded=0
  t1=$(date +%s.%N)
  sleep "$settle"
  kill -INT "$load_pid" 2>/dev/null || true
  wait "$load_pid" || true
  python3 "$BENCH/dnsperf_stats.py" "$raw.out" >"$raw.stats"
  if ((reloaded == 0)); then
    record "$r" reload note "no list reload"
    say "$r: no list reload command (or it failed); reload not measured"
    return 0
  fi
  record "$r" reload qps "$qps"
  record "$r" reload reload_s "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
  for k in sent lost rcodes runtime_s; do record "$r" reload "$k" "$(stat_of "$raw.stats" $k)"; done
  # dnsperf stops sending while OUTSTANDING queries wait, so "lost" understates a stall: the
  # answers per second over the whole run show it (the steady rate when nothing stalled)
  record "$r" reload answered_qps "$(stat_of "$raw.stats" qps)"
  record "$r" reload rss_kb_steady "$steady"
  record "$r" reload rss_kb_peak "$(hwm_kb "$pid")"
  say "$r reload under $qps q/s: $(tr '\n' ' ' <"$raw.stats")reload_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') steady_rss=${steady}kB peak=$(hwm_kb "$pid")kB"
}
