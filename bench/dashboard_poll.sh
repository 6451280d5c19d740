#!/usr/bin/env bash
# What a dashboard left open costs DNS: maximum q/s on cache hits with the analyst dashboard's
# overview polled every 2 s (its three routes, as the page loads them: /api/ui/overview, top
# and clients of the last hour) against the same server with nobody polling. Same binary, same
# config ([querylog] sqlite and the admin listener in both), runs interleaved (A B A B ...),
# the ratio of each run reported and their median.
# Everything on loopback: NSD serves the names on 127.62.0.1:$NSD_PORT, dnsward resolves them
# once and then answers from its cache, logging every query to SQLite.
# Needs dnsperf, nsd, dig, curl and a release binary (cargo build --release).
#
#   bench/dashboard_poll.sh                 # RUNS=5 DURATION=10 by default
#   DNSWARD=target/release/dnsward RUNS=5 DURATION=20 bench/dashboard_poll.sh
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

# The page's overview every POLL_SECS: its three routes side by side, as the browser asks.
poll() {
    local base="http://127.0.0.1:$ADMIN_PORT/api/ui"
    while :; do
        for route in "overview?since=1h" "top?since=1h&limit=10" "clients?since=1h&min_blocked=10&min_domains=3&limit=20"; do
            curl -sf -o /dev/null -H "Authorization: Bearer $TOKEN" "$base/$route" &
        done
        wait
        sleep "$POLL_SECS"
    done
}

run() { # poll|none -> q/s
    rm -f "$work/log.db"*
    taskset -c "$SERVER_CPU" "$DNSWARD" serve --config "$work/dnsward.toml" 2>"$work/server.log" &
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
    qps=$(taskset -c "$DNSPERF_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -d "$work/queries.txt" -l "$DURATION" -c 8 -q 200 2>/dev/null \
        | awk '/Queries per second/ { print $4 }')
    if [ -n "$poller_pid" ]; then
        kill "$poller_pid" 2>/dev/null || true; wait "$poller_pid" 2>/dev/null || true; poller_pid=
    fi
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
    echo "${qps:-0}"
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

none=(); polled=(); ratios=()
for r in $(seq 1 "$RUNS"); do
    a=$(run none); b=$(run poll)
    ratio=$(echo "scale=3; $b / $a" | bc)
    none+=("$a"); polled+=("$b"); ratios+=("$ratio")
    echo "run $r: no dashboard $a q/s, dashboard polling every ${POLL_SECS}s $b q/s, ratio $ratio"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
echo "median: no dashboard $(median "${none[@]}") q/s, polling $(median "${polled[@]}") q/s; median of the per-run ratios $(median "${ratios[@]}")"
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
