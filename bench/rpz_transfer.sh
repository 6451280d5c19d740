#!/usr/bin/env bash
# RPZ transfer at size: a central dnsward serving a 1M-name list ([rpz_server]) and a second
# dnsward as its secondary ([[rpz]]), on 127.230.7.1 and .2 (loopback only). Prints the compile
# time, dig AXFR time and message count, the secondary's time to the zone in force, the time
# from an admin API change at the centre to a block at the secondary, and both RSS.
# Needs: cargo build --release, dig, curl, bc. Usage: bench/rpz_transfer.sh [NAMES]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/target/release/dnsward
NAMES=${1:-1000000}
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
W=$(mktemp -d)
trap 'kill $A $B 2>/dev/null || true; rm -rf "$W"' EXIT
A=; B=
cd "$W"
python3 -c "
import sys
with open('big.txt','w') as f:
    for i in range($NAMES): f.write(f'n{i}.bench-{i%97}.test\n')
"
echo "rpz-bench-token-0123456789abcdef" > token
cat > a.toml <<'T'
[server]
listen = ["127.230.7.1:5353"]
udp_workers = 1
[resolver]
mode = "forward"
forwarders = ["127.0.0.1:9"]
timeout_ms = 300
[policy]
watch = false
[[lists]]
name = "big"
category = "threat"
path = "big.txt"
[admin]
listen = "127.0.0.1:9471"
token_file = "token"
runtime_list = "runtime.txt"
[rpz_server]
listen = "127.230.7.1:5300"
zone = "rpz.bench."
allow_transfer = ["127.0.0.0/8"]
notify = ["127.230.7.2:5354"]
T
cat > b.toml <<'T'
[server]
listen = ["127.230.7.2:5353"]
udp_workers = 1
[resolver]
mode = "forward"
forwarders = ["127.0.0.1:9"]
timeout_ms = 300
[admin]
listen = "127.0.0.1:9472"
[[rpz]]
name = "central"
primary = "127.230.7.1:5300"
zone = "rpz.bench."
notify_listen = "127.230.7.2:5354"
path = "central.zone"
T
now() { date +%s.%N; }
wait_log() { for _ in $(seq 1 1500); do grep -qs "$2" "$1" && return 0; sleep 0.2; done; echo "timeout: $2" >&2; exit 1; }
t0=$(now)
DNSWARD_LOG=info "$BIN" serve --config a.toml > a.log 2>&1 & A=$!
wait_log a.log "rpz server listening"
echo "central: lists loaded and zone compiled after $(echo "$(now) - $t0" | bc) s; $(grep -o 'entries=[0-9]*' a.log | tail -1) RPZ entries; RSS $(ps -o rss= -p $A) KiB"
/usr/bin/time -f "dig AXFR: %e s" dig @127.230.7.1 -p 5300 rpz.bench. AXFR +tries=1 +time=60 > axfr.out 2> dig.time
cat dig.time; grep "XFR size" axfr.out
t0=$(now)
DNSWARD_LOG=info "$BIN" serve --config b.toml > b.log 2>&1 & B=$!
wait_log b.log "rpz central transferred"
wait_log b.log "lists loaded reason=\"rpz central transferred\""
echo "secondary: zone in force $(echo "$(now) - $t0" | bc) s after start; RSS $(ps -o rss= -p $B) KiB; copy on disk $(du -h central.zone | cut -f1)"
t0=$(now)
curl -s -o /dev/null -X POST -H "Authorization: Bearer $(cat token)" -H 'Content-Type: application/json' \
  http://127.0.0.1:9471/api/lists/runtime -d '{"name":"new-threat.example","added_by":"bench","reason":"bench"}'
for _ in $(seq 1 1200); do
  dig @127.230.7.2 -p 5353 new-threat.example +tries=1 +time=1 | grep -q "status: NXDOMAIN" && break
  sleep 0.05
done
echo "admin API add at the centre -> blocked at the secondary: $(echo "$(now) - $t0" | bc) s"
echo "RSS: central $(ps -o rss= -p $A) KiB, secondary $(ps -o rss= -p $B) KiB"
