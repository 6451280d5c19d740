#!/usr/bin/env bash
# What 10 alert rules (new_domain included) cost the answer path: maximum q/s on cache hits
# with no rule against 10 rules, same binary, same names, runs interleaved (A B A B ...).
# Cache hits are the worst case: with watch/new_domain rules every allowed query becomes an
# event pushed to the alerts' queue, while without rules (and no [querylog]) none is built.
# Everything on loopback: NSD serves the names on 127.61.0.1:$NSD_PORT, dnsward resolves them
# once and then answers from its cache; the webhook and syslog targets are closed ports, so
# deliveries fail and wait in the outbox, as with a receiver that is down.
# Needs dnsperf, nsd, dig and a release binary (cargo build --release).
#
#   bench/alerts.sh                 # RUNS=3 DURATION=10 by default
# Reports the maximum q/s and the server's CPU µs a query (utime+stime over the answers) of
# each run: on a busy machine the CPU a query moves less than the maximum rate.
#   DNSWARD=target/release/dnsward RUNS=5 DURATION=20 bench/alerts.sh
set -euo pipefail

DNSWARD=${DNSWARD:-target/release/dnsward}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
PORT=${PORT:-5397}
NSD_PORT=${NSD_PORT:-5398}
SERVER_CPU=${SERVER_CPU:-0}
DNSPERF_CPU=${DNSPERF_CPU:-1}
NAMES=1000

for tool in dnsperf nsd dig taskset; do
    command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install dnsperf nsd dnsutils)" >&2; exit 1; }
done
[ -x "$DNSWARD" ] || { echo "no release binary at $DNSWARD (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d /tmp/dnsward-alerts-bench.XXXXXX)
server_pid=
nsd_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    if [ -n "$nsd_pid" ]; then kill "$nsd_pid" 2>/dev/null || true; wait "$nsd_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# The root zone holds every name itself (no delegation): one NSD answers them all.
{
    echo '. 3600 IN SOA a.root.test. hostmaster.root.test. 1 7200 900 86400 300'
    echo '. 3600 IN NS a.root.test.'
    echo 'a.root.test. 3600 IN A 127.61.0.1'
    for i in $(seq 0 $((NAMES - 1))); do echo "www.site$i.com. 3600 IN A 192.0.2.$((i % 250 + 1))"; done
} > "$work/root.zone"
cat > "$work/nsd.conf" <<EOF
server:
    ip-address: 127.61.0.1@$NSD_PORT
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
    dig +short +time=1 +tries=1 @127.61.0.1 -p "$NSD_PORT" www.site1.com A >/dev/null 2>&1 && break
    sleep 0.2
done
for i in $(seq 0 $((NAMES - 1))); do echo "www.site$i.com A"; done > "$work/queries.txt"
echo ".  3600000 IN NS a.root.test." > "$work/root.hints"
echo "a.root.test. 3600000 IN A 127.61.0.1" >> "$work/root.hints"
echo "never-queried.example" > "$work/threats.txt"
for i in $(seq 1 1000); do echo "watched$i.example"; done > "$work/watch.txt"

base="[server]
listen = [\"127.0.0.1:$PORT\"]
udp_workers = 1

[resolver]
root_hints = \"$work/root.hints\"
upstream_port = $NSD_PORT
dnssec = \"off\"

[policy]
watch = false

[[lists]]
name = \"threats\"
category = \"threat\"
path = \"$work/threats.txt\"
"
printf '%s' "$base" > "$work/none.toml"
{
    printf '%s' "$base"
    cat <<EOF

[alerting]
history = "$work/alerts.db"
state_dir = "$work/alert-state"

[[alerts]]
name = "watch-1"
kind = "watch"
names = ["phish.example", "fake-tickets.example"]
webhook = "http://127.0.0.1:9/hook"

[[alerts]]
name = "watch-file"
kind = "watch"
names_file = "$work/watch.txt"
webhook = "http://127.0.0.1:9/hook"

[[alerts]]
name = "watch-default"
kind = "watch"
group = "default"
names = ["c2.example"]
syslog = "udp://127.0.0.1:9"

[[alerts]]
name = "threshold-threat"
kind = "client_threshold"
count = 10
category = "threat"
webhook = "http://127.0.0.1:9/hook"

[[alerts]]
name = "threshold-any"
kind = "client_threshold"
count = 50
window = "1m"
webhook = "http://127.0.0.1:9/hook"

[[alerts]]
name = "new-domains"
kind = "new_domain"
nod_days = 30
ignore = ["agency.example"]
webhook = "http://127.0.0.1:9/hook"

[[alerts]]
name = "new-domains-syslog"
kind = "new_domain"
nod_days = 7
syslog = "udp://127.0.0.1:9"

[[alerts]]
name = "log-drops"
kind = "querylog_drops"
webhook = "http://127.0.0.1:9/hook"

[[alerts]]
name = "feeds"
kind = "feed_failure"
webhook = "http://127.0.0.1:9/hook"

[[alerts]]
name = "bogus"
kind = "dnssec_bogus"
count = 10
webhook = "http://127.0.0.1:9/hook"
EOF
} > "$work/rules.toml"

# The server and dnsperf run at nice -10 (root only), ahead of background builds on a shared
# machine, as in run.sh.
NICE=${NICE:--10}
TICKS=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

run() { # config -> "q/s CPU-µs-per-query"
    rm -rf "$work/alert-state" "$work/alerts.db"*
    nice -n "$NICE" taskset -c "$SERVER_CPU" "$DNSWARD" serve --config "$1" 2>"$work/server.log" &
    server_pid=$!
    for _ in $(seq 1 100); do
        dig +short +time=1 +tries=1 @127.0.0.1 -p "$PORT" www.site0.com A 2>/dev/null | grep -q 192.0.2 && break
        sleep 0.2
    done
    # Warm the cache: every name once.
    taskset -c "$DNSPERF_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -d "$work/queries.txt" -n 1 -c 4 -q 50 >/dev/null 2>&1 || true
    local t0 t1 out
    t0=$(cpu_ticks "$server_pid")
    out=$(nice -n "$NICE" taskset -c "$DNSPERF_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -d "$work/queries.txt" -l "$DURATION" -c 8 -q 200 2>/dev/null || true)
    t1=$(cpu_ticks "$server_pid")
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
    awk -v t="$((t1 - t0))" -v hz="$TICKS" '
        /Queries per second/ { qps = $4 }
        /Queries completed/ { done = $3 }
        END { printf "%s %.3f\n", (qps ? qps : 0), (done ? t * 1e6 / hz / done : 0) }' <<<"$out"
}

none=(); rules=(); none_cpu=(); rules_cpu=()
for r in $(seq 1 "$RUNS"); do
    read -r a ac <<<"$(run "$work/none.toml")"
    read -r b bc_ <<<"$(run "$work/rules.toml")"
    none+=("$a"); rules+=("$b"); none_cpu+=("$ac"); rules_cpu+=("$bc_")
    echo "run $r: no rules $a q/s ($ac µs CPU a query), 10 rules $b q/s ($bc_ µs CPU a query)"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mn=$(median "${none[@]}"); mr=$(median "${rules[@]}")
cn=$(median "${none_cpu[@]}"); cr=$(median "${rules_cpu[@]}")
echo "median cache hits: no rules $mn q/s, 10 rules $mr q/s, ratio $(echo "scale=3; $mr / $mn" | bc)"
echo "median CPU a query: no rules $cn µs, 10 rules $cr µs, ratio $(echo "scale=3; $cr / $cn" | bc)"
echo "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
