#!/usr/bin/env bash
# What a dashboard left open costs DNS: cache hits with the analyst dashboard's overview polled
# every 2 s (its three routes, as the page loads them: /api/ui/overview, top and clients of the
# last hour) against the same server with nobody polling. Same binary, same config ([querylog]
# sqlite and the admin listener in both), runs interleaved (A B A B ...), each on a fresh store.
# Two figures a run, each with its per-run ratio (polling / none) and the medians:
#  - dnsward's CPU per answered query (utime + stime of the whole process, every thread: the
#    answer path, the SQLite writer and the dashboard's reads) at a fixed rate RATE that the
#    query log's writer sustains: nothing dropped, so both runs do the same work but for the
#    polling. This is the stable figure.
#  - the maximum q/s (dnsperf unthrottled). At the maximum the writer (a thread of dnsward at
#    sink_nice = 10, on the same CPU as the UDP worker) cannot keep up and its queue drops the
#    oldest events; how many it writes first depends on how the scheduler shares the CPU, and
#    each event written costs the answer path CPU, so the maximum moves with the share the
#    writer got. Each run's events written and dropped (`dnsward_querylog_*` on /metrics) and
#    dnsperf's lost queries are printed beside it.
# Everything on loopback: NSD serves the names on 127.62.0.1:$NSD_PORT, dnsward resolves them
# once and then answers from its cache, logging every query to SQLite.
# Needs dnsperf, nsd, dig, curl, bc and a release binary (cargo build --release).
#
#   bench/dashboard_poll.sh                 # RUNS=5 DURATION=10 RATE=30000 by default
#   DNSWARD=target/release/dnsward RUNS=5 DURATION=20 RATE=40000 bench/dashboard_poll.sh
set -euo pipefail

DNSWARD=${DNSWARD:-target/release/dnsward}
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
PORT=${PORT:-5407}
NSD_PORT=${NSD_PORT:-5408}
ADMIN_PORT=${ADMIN_PORT:-5409}
SERVER_CPU=${SERVER_CPU:-0}
DNSPERF_CPU=${DNSPERF_CPU:-1}
POLL_SECS=${POLL_SECS:-2}
RATE=${RATE:-30000}
# The server and dnsperf run at nice -10 (root only), ahead of background jobs on a shared
# machine, as in run.sh and alerts.sh.
NICE=${NICE:--10}
NAMES=1000
TOKEN=dashboard-poll-bench-token-0123456789

for tool in dnsperf nsd dig taskset curl bc; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install dnsperf nsd dnsutils curl bc)" >&2; exit 1; }
done
[ -x "$DNSWARD" ] || { echo "no release binary at $DNSWARD (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d /tmp/dnsward-dashboard-poll.XXXXXX)
server_pid=
nsd_pid=
poller_pid=
cleanup() {
    for p in "$poller_pid" "$server_pid" "$nsd_pid"; do
        if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

# The root zone holds every name itself (no delegation): one NSD answers them all.
{
    echo '. 3600 IN SOA a.root.test. hostmaster.root.test. 1 7200 900 86400 300'
    echo '. 3600 IN NS a.root.test.'
    echo 'a.root.test. 3600 IN A 127.62.0.1'
    for i in $(seq 0 $((NAMES - 1))); do echo "www.site$i.com. 3600 IN A 192.0.2.$((i % 250 + 1))"; done
} > "$work/root.zone"
cat > "$work/nsd.conf" <<EOF
server:
    ip-address: 127.62.0.1@$NSD_PORT
    zonesdir: "$work"
    pidfile: "$work/nsd.pid"
    zonelistfile: "$work/zone.list"
    xfrdfile: "$work/xfrd.state"
    database: ""
    username: ""
    logfile: "$work/nsd.log"
    server-count: 1
    verbosity: 0
zone:
    name: "."
    zonefile: "root.zone"
EOF
taskset -c "$DNSPERF_CPU" nsd -d -c "$work/nsd.conf" &
nsd_pid=$!
for _ in $(seq 1 50); do
    dig +short +time=1 +tries=1 @127.62.0.1 -p "$NSD_PORT" www.site1.com A >/dev/null 2>&1 && break
    sleep 0.2
done
for i in $(seq 0 $((NAMES - 1))); do echo "www.site$i.com A"; done > "$work/queries.txt"
# a few blocked names among them, so the top lists have rows to rank
for i in $(seq 0 19); do echo "c2-$i.evil.example A"; done >> "$work/queries.txt"
echo ".  3600000 IN NS a.root.test." > "$work/root.hints"
echo "a.root.test. 3600000 IN A 127.62.0.1" >> "$work/root.hints"
echo "evil.example" > "$work/threats.txt"
printf '%s\n' "$TOKEN" > "$work/token"

cat > "$work/dnsward.toml" <<EOF
[server]
listen = ["127.0.0.1:$PORT"]
udp_workers = 1
name = "bench-1"

[resolver]
root_hints = "$work/root.hints"
upstream_port = $NSD_PORT
dnssec = "off"

[policy]
watch = false

[[lists]]
name = "threats"
category = "threat"
path = "$work/threats.txt"

[querylog]
sqlite = "$work/log.db"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"
token_file = "$work/token"
runtime_list = "$work/runtime.txt"
EOF

# The page's overview every POLL_SECS: its three routes side by side, as the browser asks
# (curl on dnsperf's CPU: the analyst's browser is not on the resolver).
poll() {
    local base="http://127.0.0.1:$ADMIN_PORT/api/ui"
    while :; do
        for route in "overview?since=1h" "top?since=1h&limit=10" "clients?since=1h&min_blocked=10&min_domains=3&limit=20"; do
            taskset -c "$DNSPERF_CPU" curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "$base/$route" &
        done
        wait
        sleep "$POLL_SECS"
    done
}

TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# CPU ticks of the UDP workers and of the SQLite writer: "answer writer" (the rest of the
# process, its total less these, is the tokio threads: the admin listener and the dashboard's
# reads on the blocking pool)
thread_ticks() {
    local a=0 w=0 t c
    for t in /proc/"$1"/task/*; do
        c=$(awk '{ print $14 + $15 }' "$t/stat" 2>/dev/null) || continue
        case "$(cat "$t/comm" 2>/dev/null)" in
            udp-*) a=$((a + c)) ;;
            querylog-sqlite*) w=$((w + c)) ;;
        esac
    done
    echo "$a $w"
}
# The SQLite sink's events written and dropped so far: "written dropped".
sink_counts() {
    curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN_PORT/metrics" \
        | awk '/^dnsward_querylog_written\{sink="sqlite"\}/ { w = $2 } /^dnsward_querylog_dropped\{sink="sqlite"\}/ { d = $2 }
               END { print w + 0, d + 0 }'
}
# dnsperf's output -> "q/s completed lost"
dnsperf_figures() {
    awk '/Queries per second/ { qps = $4 } /Queries completed/ { done = $3 } /Queries lost/ { lost = $3 }
         END { printf "%s %s %s\n", (qps ? qps : 0), done + 0, lost + 0 }'
}

run() { # poll|none -> "cpu-µs-per-query answer writer other fixed-lost fixed-dropped max-q/s max-lost max-written max-dropped"
    rm -f "$work/log.db"*
    nice -n "$NICE" taskset -c "$SERVER_CPU" "$DNSWARD" serve --config "$work/dnsward.toml" 2>"$work/server.log" &
    server_pid=$!
    for _ in $(seq 1 100); do
        dig +short +time=1 +tries=1 @127.0.0.1 -p "$PORT" www.site0.com A 2>/dev/null | grep -q 192.0.2 && break
        sleep 0.2
    done
    # Warm the cache: every name once.
    taskset -c "$DNSPERF_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -d "$work/queries.txt" -n 1 -c 4 -q 50 >/dev/null 2>&1 || true
    if [ "$1" = poll ]; then
        poll >/dev/null 2>&1 &
        poller_pid=$!
    fi
    local t0 t1 a0 s0 a1 s1 w0 d0 w1 d1 w2 d2 qps done_q lost cpu split mqps mlost
    # 1. a fixed rate: CPU per answered query
    read -r w0 d0 <<<"$(sink_counts)"
    read -r a0 s0 <<<"$(thread_ticks "$server_pid")"
    t0=$(cpu_ticks "$server_pid")
    read -r qps done_q lost <<<"$(nice -n "$NICE" taskset -c "$DNSPERF_CPU" dnsperf -s 127.0.0.1 -p "$PORT" \
        -d "$work/queries.txt" -l "$DURATION" -Q "$RATE" -c 8 -q 200 2>/dev/null | dnsperf_figures)"
    t1=$(cpu_ticks "$server_pid")
    read -r a1 s1 <<<"$(thread_ticks "$server_pid")"
    read -r w1 d1 <<<"$(sink_counts)"
    per() { awk -v t="$1" -v hz="$TICKS" -v n="$done_q" 'BEGIN { printf "%.3f", (n ? t * 1e6 / hz / n : 0) }'; }
    cpu=$(per "$((t1 - t0))")
    split="$(per "$((a1 - a0))") $(per "$((s1 - s0))") $(per "$((t1 - t0 - (a1 - a0) - (s1 - s0)))")"
    # 2. the maximum
    read -r mqps done_q mlost <<<"$(nice -n "$NICE" taskset -c "$DNSPERF_CPU" dnsperf -s 127.0.0.1 -p "$PORT" \
        -d "$work/queries.txt" -l "$DURATION" -c 8 -q 200 2>/dev/null | dnsperf_figures)"
    sleep 1   # the writer's last batch
    read -r w2 d2 <<<"$(sink_counts)"
    if [ -n "$poller_pid" ]; then
        kill "$poller_pid" 2>/dev/null || true; wait "$poller_pid" 2>/dev/null || true; poller_pid=
    fi
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
    echo "$cpu $split $lost $((d1 - d0)) $mqps $mlost $((w2 - w1)) $((d2 - d1))"
}

# the overview must answer (a poller that only gets errors measures nothing)
check_routes() {
    taskset -c "$SERVER_CPU" "$DNSWARD" serve --config "$work/dnsward.toml" 2>"$work/server.log" &
    server_pid=$!
    local ok=
    for _ in $(seq 1 100); do
        if curl -sf -o "$work/overview.json" -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN_PORT/api/ui/overview?since=1h"; then ok=1; break; fi
        sleep 0.2
    done
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
    [ -n "$ok" ] || { echo "the overview did not answer: $(tail -5 "$work/server.log")" >&2; exit 1; }
}
check_routes

ratio() { echo "scale=3; $2 / $1" | bc; }
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
cpu_a=(); cpu_b=(); cpu_r=(); max_a=(); max_b=(); max_r=(); rest_a=(); rest_b=()
echo "fixed rate $RATE q/s and the maximum, ${DURATION}s each; dashboard polling every ${POLL_SECS}s or none; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$RUNS"); do
    read -r ac aa aw_ ao al ad am aml aw amd <<<"$(run none)"
    read -r bc_ ba bw_ bo bl bd bm bml bw bmd <<<"$(run poll)"
    cpu_a+=("$ac"); cpu_b+=("$bc_"); cpu_r+=("$(ratio "$ac" "$bc_")"); rest_a+=("$ao"); rest_b+=("$bo")
    max_a+=("$am"); max_b+=("$bm"); max_r+=("$(ratio "$am" "$bm")")
    echo "run $r: CPU a query at $RATE q/s: none $ac µs, polling $bc_ µs, ratio ${cpu_r[-1]} (lost $al / $bl, log dropped $ad / $bd)"
    echo "run $r:   of which answer path $aa / $ba µs, SQLite writer $aw_ / $bw_ µs, the rest (admin listener, dashboard reads) $ao / $bo µs"
    echo "run $r: max q/s: none $am, polling $bm, ratio ${max_r[-1]} (lost $aml / $bml; log written $aw / $bw, dropped $amd / $bmd)"
done
echo "median CPU a query at $RATE q/s: none $(median "${cpu_a[@]}") µs, polling $(median "${cpu_b[@]}") µs; median of the per-run ratios $(median "${cpu_r[@]}")"
echo "median CPU a query of the rest (admin listener, dashboard reads): none $(median "${rest_a[@]}") µs, polling $(median "${rest_b[@]}") µs"
echo "median max q/s: none $(median "${max_a[@]}"), polling $(median "${max_b[@]}"); median of the per-run ratios $(median "${max_r[@]}")"
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
