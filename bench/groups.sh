#!/usr/bin/env bash
# Blocked-answer throughput with a 1M-name list: no groups against 8 groups (the querying
# client in one of them), same binary, same list, runs interleaved (A B A B ...).
# Everything on loopback; blocked answers need no upstream (the root hints name an address
# nothing listens on). Needs dnsperf and a release binary (cargo build --release).
#
#   bench/groups.sh                 # RUNS=3 DURATION=10 by default
#   DNSWARD=target/release/dnsward RUNS=5 DURATION=20 bench/groups.sh
set -euo pipefail

DNSWARD=${DNSWARD:-target/release/dnsward}
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
PORT=${PORT:-5399}
SERVER_CPU=${SERVER_CPU:-0}
DNSPERF_CPU=${DNSPERF_CPU:-1}
N=1000000

command -v dnsperf >/dev/null || { echo "dnsperf is missing (apt-get install dnsperf)" >&2; exit 1; }
[ -x "$DNSWARD" ] || { echo "no release binary at $DNSWARD (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d /tmp/dnsward-groups-bench.XXXXXX)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# The same synthetic list as benches/matcher.rs and examples/memory.rs.
awk -v n=$N 'BEGIN { split("com net org info", t, " "); for (i = 0; i < n; i++) printf "n%d-ab.zone%d.%s\n", i, i % 1000, t[i % 4 + 1] }' > "$work/list.txt"
# 10,000 blocked 5-label queries spread over the list.
awk -v n=$N 'BEGIN { split("com net org info", t, " "); for (k = 0; k < 10000; k++) { i = (k * 7919) % n; printf "www.api.n%d-ab.zone%d.%s A\n", i, i % 1000, t[i % 4 + 1] } }' > "$work/queries.txt"
echo ".  3600000 IN NS a.root.test." > "$work/root.hints"
echo "a.root.test. 3600000 IN A 127.0.0.99" >> "$work/root.hints"

base="[server]
listen = [\"127.0.0.1:$PORT\"]
udp_workers = 1

[resolver]
root_hints = \"$work/root.hints\"

[policy]
watch = false

[[lists]]
name = \"big\"
category = \"threat\"
path = \"$work/list.txt\"
"
for k in 1 2 3 4 5 6 7; do
    echo "x$k.example" > "$work/extra$k.txt"
    base+="
[[lists]]
name = \"extra$k\"
category = \"threat\"
path = \"$work/extra$k.txt\"
"
done
printf '%s' "$base" > "$work/flat.toml"
{
    printf '%s' "$base"
    # 8 groups, 64 CIDRs each (the sender, 127.0.0.1, is in g0 through 127.0.0.0/24).
    for k in 0 1 2 3 4 5 6 7; do
        lists="\"big\""
        [ $k -gt 0 ] && lists+=", \"extra$k\""
        clients=""
        for j in $(seq 0 63); do clients+="\"10.$k.$j.0/24\", "; done
        [ $k -eq 0 ] && clients+="\"127.0.0.0/24\", "
        printf '\n[[groups]]\nname = "g%d"\nlists = [%s]\nclients = [%s]\n' $k "$lists" "${clients%, }"
    done
} > "$work/grouped.toml"

run() { # config -> q/s
    taskset -c "$SERVER_CPU" "$DNSWARD" serve --config "$1" 2>"$work/server.log" &
    server_pid=$!
    for _ in $(seq 1 200); do
        if dig +short +time=1 +tries=1 @127.0.0.1 -p "$PORT" www.api.n0-ab.zone0.com A >/dev/null 2>&1 \
            && dig @127.0.0.1 -p "$PORT" +time=1 +tries=1 www.api.n0-ab.zone0.com A | grep -q NXDOMAIN; then
            break
        fi
        sleep 0.2
    done
    qps=$(taskset -c "$DNSPERF_CPU" dnsperf -s 127.0.0.1 -p "$PORT" -d "$work/queries.txt" -l "$DURATION" -c 8 -q 200 2>/dev/null \
        | awk '/Queries per second/ { print $4 }')
    kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=
    echo "${qps:-0}"
}

flat=(); grouped=()
for r in $(seq 1 "$RUNS"); do
    f=$(run "$work/flat.toml"); g=$(run "$work/grouped.toml")
    flat+=("$f"); grouped+=("$g")
    echo "run $r: no groups $f q/s, 8 groups $g q/s"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
mf=$(median "${flat[@]}"); mg=$(median "${grouped[@]}")
echo "median blocked answers: no groups $mf q/s, 8 groups $mg q/s, ratio $(echo "scale=3; $mg / $mf" | bc)"
echo "load average during the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
