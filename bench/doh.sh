#!/usr/bin/env bash
# DoH throughput of dnsward and Unbound side by side (issue 23): dnsperf's DoH mode (nghttp2,
# many streams per connection) at -c 1, 4, 16 with -q 100, and h2load at 1, 4, 16
# connections, each server pinned to one CPU and the client to the other. Both answer
# locally, so no upstream is involved: dnsward blocks *.blocked.test (a list), Unbound has
# `local-zone: "blocked.test." always_nxdomain`; both send NXDOMAIN for nN.blocked.test.
#   bench/doh.sh                      # about 3 minutes; a table on stdout
# Settings: DNSWARD (target/release/dnsward), DATA (/tmp/dnsward-doh-bench), DURATION (5 s
# per run), SERVER_CPU (0), CLIENT_CPU (1). Needs dnsperf, h2load (nghttp2-client), unbound,
# openssl. Every process it starts is stopped by PID at exit; every run is bounded.
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH/.." && pwd)
DNSWARD=${DNSWARD:-$REPO/target/release/dnsward}
DATA=${DATA:-/tmp/dnsward-doh-bench}
DURATION=${DURATION:-5}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
DW_UDP=5314 DW_DOH=4444 UB_UDP=5311 UB_DOH=4441

for t in dnsperf h2load unbound openssl taskset; do
  command -v "$t" >/dev/null || [ -x "/usr/sbin/$t" ] || { echo "missing: $t" >&2; exit 2; }
done
[ -x "$DNSWARD" ] || { echo "no dnsward at $DNSWARD (cargo build --release)" >&2; exit 2; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

mkdir -p "$DATA"
cd "$DATA"
[ -s cert.pem ] || timeout 60 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 3650 \
  -keyout key.pem -out cert.pem >/dev/null 2>&1
for i in $(seq 1 1000); do echo "n$i.blocked.test"; done >list.txt
sed 's/$/ A/' list.txt >queries.txt
# h2load sends one POST body over and over.
python3 -c "
import struct
name = b''.join(bytes([len(l)]) + l for l in b'n1.blocked.test'.split(b'.')) + b'\0'
open('query.bin', 'wb').write(struct.pack('>6H', 0, 0x0100, 1, 0, 0, 0) + name + struct.pack('>HH', 1, 1))"

cat >dnsward.toml <<EOF
[server]
listen = ["127.0.0.1:$DW_UDP"]
udp_workers = 1
https_listen = ["127.0.0.1:$DW_DOH"]
tls_cert = "$DATA/cert.pem"
tls_key = "$DATA/key.pem"

[resolver]
mode = "forward"
forwarders = ["127.0.0.1:9"]

[[lists]]
name = "bench"
category = "threat"
path = "$DATA/list.txt"
EOF
cat >unbound.conf <<EOF
server:
  interface: 127.0.0.1@$UB_UDP
  interface: 127.0.0.1@$UB_DOH
  https-port: $UB_DOH
  tls-service-key: "$DATA/key.pem"
  tls-service-pem: "$DATA/cert.pem"
  http-notls-downstream: no
  access-control: 127.0.0.0/8 allow
  num-threads: 1
  incoming-num-tcp: 1000
  username: ""
  chroot: ""
  directory: "$DATA"
  pidfile: ""
  use-syslog: no
  logfile: "$DATA/unbound.log"
  do-not-query-localhost: yes
  module-config: "iterator"
  local-zone: "blocked.test." always_nxdomain
EOF

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

start() { # name -> PID of the server, answering on its UDP port
  local udp
  case $1 in
    dnsward) taskset -c "$SERVER_CPU" "$DNSWARD" serve --config dnsward.toml >dnsward.log 2>&1 & udp=$DW_UDP ;;
    unbound) taskset -c "$SERVER_CPU" unbound -d -c unbound.conf >unbound.out 2>&1 & udp=$UB_UDP ;;
  esac
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 1 100); do
    dig +time=1 +tries=1 -p "$udp" @127.0.0.1 n1.blocked.test | grep -q NXDOMAIN && return 0
    sleep 0.1
  done
  echo "$1 did not come up" >&2
  exit 1
}

printf '| server | client | connections | q/s | lost | server CPU %% | CPU µs per query |\n|---|---|---|---|---|---|---|\n'
for server in dnsward unbound; do
  start "$server"
  port=$([ "$server" = dnsward ] && echo $DW_DOH || echo $UB_DOH)
  for c in 1 4 16; do
    t0=$(cpu_ticks "$SERVER_PID") s0=$(date +%s.%N)
    out=$(timeout $((DURATION + 30)) taskset -c "$CLIENT_CPU" dnsperf -m doh -s 127.0.0.1 -p "$port" \
      -d queries.txt -l "$DURATION" -t 5 -c "$c" -q 100 2>&1) || true
    t1=$(cpu_ticks "$SERVER_PID") s1=$(date +%s.%N)
    echo "$out" >"dnsperf-$server-$c.txt"
    qps=$(awk '/Queries per second/ { printf "%d", $4 }' <<<"$out")
    done_q=$(awk '/Queries completed/ { print $3 }' <<<"$out")
    lost=$(awk '/Queries lost/ { print $3 }' <<<"$out")
    awk -v s="$server" -v c="$c" -v q="$qps" -v l="$lost" -v n="$done_q" -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v hz="$hz" \
      'BEGIN { cpu = (t1 - t0) / hz; printf "| %s | dnsperf -q 100 | %d | %s | %s | %.0f | %.1f |\n", s, c, q, l, 100 * cpu / (s1 - s0), (n > 0 ? 1e6 * cpu / n : 0) }'
  done
  for c in 1 4 16; do
    t0=$(cpu_ticks "$SERVER_PID") s0=$(date +%s.%N)
    out=$(timeout $((DURATION + 30)) taskset -c "$CLIENT_CPU" h2load -c "$c" -m 10 -D "$DURATION" \
      -H 'content-type: application/dns-message' -d query.bin "https://127.0.0.1:$port/dns-query" 2>&1) || true
    t1=$(cpu_ticks "$SERVER_PID") s1=$(date +%s.%N)
    echo "$out" >"h2load-$server-$c.txt"
    rps=$(awk '/^finished in/ { gsub(",", "", $4); printf "%d", $4 }' <<<"$out")
    ok=$(awk '/^requests:/ { print $8 }' <<<"$out")
    bad=$(awk '/^requests:/ { print $10 + $12 }' <<<"$out")
    awk -v s="$server" -v c="$c" -v q="$rps" -v l="$bad" -v n="$ok" -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v hz="$hz" \
      'BEGIN { cpu = (t1 - t0) / hz; printf "| %s | h2load -m 10 | %d | %s | %s (failed+errored) | %.0f | %.1f |\n", s, c, q, l, 100 * cpu / (s1 - s0), (n > 0 ? 1e6 * cpu / n : 0) }'
  done
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
