#!/usr/bin/env bash
# What the query-log sinks cost DNS, on loopback: dnsward (release build) answers blocked names
# from a list (no upstream needed, every answer logged) while dnsperf asks, with the query log
# off, to JSON lines, to dnstap (a file), to ClickHouse, and to all three at once (SETS picks).
# ClickHouse (Debian's clickhouse-server) runs niced on dnsperf's CPU with a temporary config.
#   cargo build --release && bench/clickhouse.sh
# Per sink set: dnsward's CPU per query at a fixed rate (FIXED_QPS) and whether every event
# reached ClickHouse, then the highest rate (dnsperf unthrottled) and the events ClickHouse got.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
DNSWARD=${DNSWARD:-$REPO/target/release/dnsward}
DURATION=${DURATION:-10}
FIXED_QPS=${FIXED_QPS:-30000}
SETS=${SETS:-"off jsonl dnstap clickhouse jsonl+dnstap+clickhouse"}
SERVER_CPU=${SERVER_CPU:-0}
DNSPERF_CPU=${DNSPERF_CPU:-1}
# ClickHouse shares dnsperf's CPU, niced: it stands for a server elsewhere, and must not take
# the resolver's CPU in one set and not in the other.
CH_CPU=${CH_CPU:-$DNSPERF_CPU}
WORK=$(mktemp -d /tmp/dnsward-ch-bench.XXXXXX)
DNS_PORT=${DNS_PORT:-5391}
CH_PORT=${CH_PORT:-18191}

say() { printf '[ch-bench %s] %s\n' "$(date +%T)" "$*" >&2; }
CH_PID=""
DW_PID=""
cleanup() {
  [ -n "$DW_PID" ] && kill "$DW_PID" 2>/dev/null || true
  [ -n "$CH_PID" ] && kill "$CH_PID" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap cleanup EXIT

# ---------------------------------------------------------------- ClickHouse, niced
mkdir -p "$WORK/ch"
cat >"$WORK/ch/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>$CH_PORT</http_port>
  <path>$WORK/ch/data/</path>
  <tmp_path>$WORK/ch/tmp/</tmp_path>
  <user_files_path>$WORK/ch/user_files/</user_files_path>
  <format_schema_path>$WORK/ch/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <timezone>UTC</timezone>
</yandex>
EOF
cat >"$WORK/ch/users.xml" <<'EOF'
<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default></default></quotas>
</yandex>
EOF
(cd "$WORK/ch" && exec taskset -c "$CH_CPU" nice -n 10 /usr/sbin/clickhouse-server --config-file="$WORK/ch/config.xml" >"$WORK/ch/server.log" 2>&1) &
CH_PID=$!
for _ in $(seq 1 300); do
  curl -fs "http://127.0.0.1:$CH_PORT/?query=SELECT%201" >/dev/null 2>&1 && break
  sleep 0.2
done
ch() { curl -fsS "http://127.0.0.1:$CH_PORT/" --data-binary "$1"; }
ch "SELECT version()" >/dev/null || { say "ClickHouse did not start: $(tail -5 "$WORK/ch/server.log")"; exit 2; }
say "ClickHouse $(ch 'SELECT version()') on 127.0.0.1:$CH_PORT (nice 10, CPU $CH_CPU)"

# ---------------------------------------------------------------- list and queries
python3 - "$WORK" <<'EOF'
import sys
w = sys.argv[1]
with open(f"{w}/threat.txt", "w") as f, open(f"{w}/queries.txt", "w") as q:
    for i in range(10000):
        f.write(f"bad{i}.example\n")
        q.write(f"host.bad{i}.example A\n")
EOF

config() { # $1: the [querylog] lines
  cat <<EOF
[server]
listen = ["127.0.0.1:$DNS_PORT"]
udp_workers = 1
name = "bench-1"
[policy]
watch = false
[[lists]]
name = "threat"
category = "threat"
path = "$WORK/threat.txt"
[querylog]
$1
EOF
}

# Rows ClickHouse got since $1, once it has $2 of them or they stopped growing for 3 s
# (bounded: 60 s); "-" without ClickHouse.
wait_rows() {
  [[ $name == *clickhouse* ]] || { echo -; return; }
  local last=-1 same=0 n
  for _ in $(seq 1 120); do
    n=$(( $(ch "SELECT count() FROM dnsward.queries") - $1 ))
    [ "$n" -ge "$2" ] && break
    if [ "$n" -eq "$last" ]; then same=$((same + 1)); [ "$same" -ge 6 ] && break; else same=0; fi
    last=$n
    sleep 0.5
  done
  echo "$n"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_set() { # $1: name, $2: [querylog] lines
  local name=$1 ql=$2
  config "$ql" >"$WORK/$name.toml"
  if [[ $name == *clickhouse* ]]; then
    "$DNSWARD" logs --config "$WORK/$name.toml" init-clickhouse >/dev/null
    ch "TRUNCATE TABLE dnsward.queries" >/dev/null
  fi
  taskset -c "$SERVER_CPU" "$DNSWARD" serve --config "$WORK/$name.toml" 2>"$WORK/$name.log" &
  DW_PID=$!
  for _ in $(seq 1 100); do
    dig +short +tries=1 +time=1 -p "$DNS_PORT" @127.0.0.1 host.bad1.example >/dev/null 2>&1 && break
    sleep 0.1
  done
  sleep 1 # the warm-up query's event is in ClickHouse before counting starts
  local hz t0 t1 out done_q qps rows
  hz=$(getconf CLK_TCK)
  rows_before() { if [[ $name == *clickhouse* ]]; then ch "SELECT count() FROM dnsward.queries"; else echo 0; fi; }
  # fixed rate
  local r0; r0=$(rows_before)
  t0=$(cpu_ticks "$DW_PID")
  if [ -n "${PERF:-}" ]; then # PERF=1: where dnsward's CPU goes at the fixed rate
    perf record -q -F 499 -g -p "$DW_PID" -o "$WORK/$name.perf" -- sleep "$DURATION" 2>/dev/null &
  fi
  out=$(taskset -c "$DNSPERF_CPU" dnsperf -s 127.0.0.1 -p "$DNS_PORT" -d "$WORK/queries.txt" -l "$DURATION" -Q "$FIXED_QPS" -c 4 -q 500 2>&1)
  t1=$(cpu_ticks "$DW_PID")
  done_q=$(sed -n 's/.*Queries completed:[[:space:]]*\([0-9]*\).*/\1/p' <<<"$out")
  rows=$(wait_rows "$r0" "$done_q")
  local us_per_q
  us_per_q=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v q="$done_q" 'BEGIN { printf "%.2f", t / hz * 1e6 / q }')
  printf '%-18s fixed %6d q/s: %8d answered, dnsward CPU %5s us/query, ClickHouse rows %8s\n' \
    "$name" "$FIXED_QPS" "$done_q" "$us_per_q" "$rows"
  # max rate
  r0=$(rows_before)
  t0=$(cpu_ticks "$DW_PID")
  out=$(taskset -c "$DNSPERF_CPU" dnsperf -s 127.0.0.1 -p "$DNS_PORT" -d "$WORK/queries.txt" -l "$DURATION" -c 4 -q 500 2>&1)
  t1=$(cpu_ticks "$DW_PID")
  done_q=$(sed -n 's/.*Queries completed:[[:space:]]*\([0-9]*\).*/\1/p' <<<"$out")
  qps=$(sed -n 's/.*Queries per second:[[:space:]]*\([0-9.]*\).*/\1/p' <<<"$out")
  rows=$(wait_rows "$r0" "$done_q")
  local lost; lost=$(sed -n 's/.*Queries lost:[[:space:]]*\([0-9]*\).*/\1/p' <<<"$out")
  us_per_q=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v q="$done_q" 'BEGIN { printf "%.2f", t / hz * 1e6 / q }')
  local busy; busy=$(awk -v t=$((t1 - t0)) -v hz="$hz" -v d="$DURATION" 'BEGIN { printf "%.0f", t / hz / d * 100 }')
  printf '%-18s max          : %8d answered, %9s q/s, %6s lost, dnsward CPU %5s us/query (%s%% of a CPU), ClickHouse rows %8s\n' \
    "$name" "$done_q" "$qps" "$lost" "$us_per_q" "$busy" "$rows"
  if [ -n "${PERF:-}" ]; then
    wait %perf 2>/dev/null || sleep 1
    {
      perf report -q -i "$WORK/$name.perf" --no-children -g none --sort comm 2>/dev/null | grep -v '^$'
      perf report -q -i "$WORK/$name.perf" --no-children -g none --sort comm,dso,sym 2>/dev/null | grep -v '^$' | head -25
      # each thread's own top symbols (percent of that thread)
      for comm in $(perf report -q -i "$WORK/$name.perf" --no-children -g none --sort comm 2>/dev/null | awk 'NF {print $2}'); do
        echo "== $comm"
        perf report -q -i "$WORK/$name.perf" --no-children -g none --comms "$comm" --percentage relative --sort dso,sym 2>/dev/null | grep -v '^$' | head -15
      done
    } >"$REPO/target/perf-$name.txt" || true
    cp "$WORK/$name.perf" "$REPO/target/perf-$name.data" 2>/dev/null || true
  fi
  kill -TERM "$DW_PID"
  wait "$DW_PID" || true
  DW_PID=""
  grep -h "events lost in total" "$WORK/$name.log" | sed "s/^/  $name: /" || true
}

for s in $SETS; do
  case $s in
    off) run_set off "" ;;
    jsonl) run_set jsonl "jsonl = \"$WORK/q.jsonl\"" ;;
    dnstap) run_set dnstap "dnstap = \"file:$WORK/q.dnstap\"" ;;
    clickhouse) run_set clickhouse "clickhouse = \"http://127.0.0.1:$CH_PORT\"
clickhouse_spool_dir = \"$WORK/spool\"" ;;
    jsonl+clickhouse) run_set jsonl+clickhouse "jsonl = \"$WORK/q2.jsonl\"
clickhouse = \"http://127.0.0.1:$CH_PORT\"
clickhouse_spool_dir = \"$WORK/spool\"" ;;
    jsonl+dnstap+clickhouse) run_set jsonl+dnstap+clickhouse "jsonl = \"$WORK/q3.jsonl\"
dnstap = \"file:$WORK/q3.dnstap\"
clickhouse = \"http://127.0.0.1:$CH_PORT\"
clickhouse_spool_dir = \"$WORK/spool\"" ;;
    *) say "unknown set $s"; exit 2 ;;
  esac
  rm -f "$WORK"/q*.jsonl* "$WORK"/q*.dnstap*
done
rm -rf "$WORK"
