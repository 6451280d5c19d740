#!/usr/bin/env bash
# dnsward against Unbound, PowerDNS Recursor (and hickory-dns when installed) on a generated
# DNS hierarchy served by NSD, everything on loopback. Run as root from anywhere in a clone:
#   bench/run.sh
# Writes bench/results/RESULTS.md, results.tsv and PNG plots. See bench/README.md for the
# workloads, every setting and how to read the figures.
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$BENCH/.." && pwd)

# ------------------------------------------------------------------ settings (environment)
WORKLOADS=${WORKLOADS:-"cold hit tcp tls lists blocked mix reload scaling signed"}
PEERS=${PEERS-"unbound pdns hickory"} # PEERS="": dnsward alone
DNSWARD=${DNSWARD:-$REPO/target/release/dnsward}
HICKORY=${HICKORY:-$(command -v hickory-dns || echo "$HOME/.cargo/bin/hickory-dns")}
DATA=${DATA:-/tmp/dnsward-bench}
OUT=${OUT:-$BENCH/results}
DURATION=${DURATION:-10}            # seconds per fixed-rate and max-rate run
FIXED_QPS=${FIXED_QPS:-20000}       # rate for CPU per query and latency percentiles
COLD_QPS=${COLD_QPS:-4000}          # fixed rate of the cold-cache latency run
COLD_TIMEOUT=${COLD_TIMEOUT:-60}    # bound on one cold-cache run
RELOAD_QPS=${RELOAD_QPS:-10000}     # steady load while the 1M list is reloaded
RELOAD_TIMEOUT=${RELOAD_TIMEOUT:-180} # bound on one list reload
CACHE_ENTRIES=${CACHE_ENTRIES:-1000000}
ZONES=${ZONES:-12000}
CLIENTS=${CLIENTS:-4}
OUTSTANDING=${OUTSTANDING:-100}
OUTSTANDING_COLD=${OUTSTANDING_COLD:-500}
SERVER_CPU=${SERVER_CPU:-0}
DNSPERF_CPU=${DNSPERF_CPU:-1}
SERVER_NICE=${SERVER_NICE:--10}     # run ahead of background work on a shared machine
DNSPERF_NICE=${DNSPERF_NICE:--10}
STARTUP_TIMEOUT=${STARTUP_TIMEOUT:-180}
PLOTS=${PLOTS:-1}
REAL_LIST=${REAL_LIST:-}            # a real list (plain or hosts): its load time and RSS too
QUERYLOG_SINKS=${QUERYLOG_SINKS:-"sqlite jsonl"} # the querylog workload
WORKERS=1                           # worker threads per resolver (all CPUs in the scaling workload)
SERVER_CPUS=$SERVER_CPU

HIER=$DATA/hierarchy
LISTS=$DATA/lists
RUN=$DATA/run
RAW=$DATA/raw
RESULTS_TSV=$OUT/results.tsv

say() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "error: $*"; exit 2; }
has() { [[ " $WORKLOADS " == *" $1 "* ]]; }

# shellcheck source=bench/resolvers.sh
. "$BENCH/resolvers.sh"
# shellcheck source=bench/measure.sh
. "$BENCH/measure.sh"

# ------------------------------------------------------------------ checks
for w in $WORKLOADS; do
  case $w in cold | hit | tcp | tls | lists | blocked | mix | reload | scaling | signed | querylog) ;;
    *) die "WORKLOADS: unknown workload '$w' (cold hit tcp tls lists blocked mix reload scaling signed querylog)" ;;
  esac
done
for p in $PEERS; do
  case $p in unbound | pdns | hickory | echo) ;; *) die "PEERS: unknown peer '$p' (unbound pdns hickory echo)" ;; esac
done
[ "$(id -u)" = 0 ] || die "run as root: NSD binds 127.60.x.x:53 and the servers run at nice $SERVER_NICE"
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need nsd nsd
need dnsperf dnsperf
need dig dnsutils
need python3 python3
need taskset util-linux
need setsid util-linux
need curl curl
need timeout coreutils
has tls && need openssl openssl
for p in $PEERS; do
  case $p in unbound) need unbound unbound ;; pdns) need pdns_recursor pdns-recursor ;; echo) need cc gcc ;; esac
done
if ((${#missing[@]})); then
  die "missing Debian packages; install them with: apt-get install -y $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
fi
(($(nproc) >= 2)) || die "needs 2 CPUs: the resolver runs on SERVER_CPU, dnsperf on DNSPERF_CPU"
[ -x "$DNSWARD" ] || die "no dnsward binary at $DNSWARD: build it with 'cargo build --release' (or set DNSWARD=)"

RESOLVERS=(dnsward)
for p in $PEERS; do
  if [ "$p" = hickory ] && [ ! -x "$HICKORY" ]; then
    say "hickory-dns not installed: skipped (cargo install hickory-dns --version 0.26.3 --features blocklist,recursor)"
    continue
  fi
  RESOLVERS+=("$p")
done

mkdir -p "$RUN" "$RAW" "$OUT"
if [[ " ${RESOLVERS[*]} " == *" echo "* ]]; then # the floor row: bench/echo.c
  mkdir -p "$DATA/bin"
  timeout 60 cc -O2 -o "$DATA/bin/echo" "$BENCH/echo.c" || die "cc could not build bench/echo.c"
fi

# ------------------------------------------------------------------ cleanup
STARTED_PIDS=() # every process this script started, stopped by PID at exit
stop_pid() { # pid -> TERM, up to 30 s to exit, then KILL; forgotten once stopped
  local pid=$1 kept=() p
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid" 2>/dev/null || true; }
  fi
  # a stopped PID may be reused by another process: never signal it again
  for p in "${STARTED_PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  STARTED_PIDS=("${kept[@]}")
}
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  set +e
  for ((i = ${#STARTED_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${STARTED_PIDS[i]}"; done
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_busy() { [ -n "$(ss -Hlun "sport = :$1" 2>/dev/null)" ]; }

# ------------------------------------------------------------------ data
START_TS=$(date +%s)
LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
if [ ! -f "$HIER/stats.txt" ] || [ "$(sed -n 's/^regular_zones=//p' "$HIER/stats.txt")" != "$ZONES" ]; then
  say "generating the hierarchy ($ZONES zones) in $HIER"
  timeout 600 python3 "$BENCH/gen_hierarchy.py" --out "$HIER" --run "$RUN/nsd" --zones "$ZONES" >/dev/null ||
    die "gen_hierarchy.py failed"
fi
if [ ! -f "$LISTS/mix-1m.txt" ] || [ "$LISTS/mix-1m.txt" -ot "$HIER/stats.txt" ]; then
  say "generating the threat lists (0, 100k, 1M names) in $LISTS"
  timeout 600 python3 "$BENCH/gen_lists.py" --out "$LISTS" --hierarchy "$HIER" >/dev/null || die "gen_lists.py failed"
fi
if [ -n "$REAL_LIST" ]; then
  [ -r "$REAL_LIST" ] || die "REAL_LIST: cannot read $REAL_LIST"
  timeout 600 python3 "$BENCH/gen_lists.py" --out "$LISTS" --hierarchy "$HIER" --from "$REAL_LIST" --tag real >/dev/null ||
    die "gen_lists.py could not convert $REAL_LIST"
fi

# ------------------------------------------------------------------ the hierarchy (NSD)
wait_answer() { # server name type status timeout-s -> 0 when the server answers with STATUS
  local end=$((SECONDS + $5))
  while ((SECONDS < end)); do
    dig +time=1 +tries=1 +noall +comments -p "${6:-53}" @"$1" "$2" "$3" 2>/dev/null | grep -q "status: $4" && return 0
    sleep 0.05
  done
  return 1
}
# start_nsds DIR: NSD on the hierarchy whose nsd-*.conf files are in DIR (the unsigned one, or
# the signed copy of the signed workload), up and answering, kept off the resolver's CPU.
NSD_PIDS=()
start_nsds() {
  local dir=$1 part pf parent pid
  NSD_PIDS=()
  for part in root tld auth-a auth-b; do
    pf=$(awk -F'"' '/pidfile:/ { print $2 }' "$dir/nsd-$part.conf")
    mkdir -p "$(dirname "$pf")"
    if [ -f "$pf" ] && kill -0 "$(cat "$pf")" 2>/dev/null; then die "an NSD of a previous run is still up (pid $(cat "$pf")); stop it first"; fi
    rm -f "$pf"
    timeout 120 nsd -c "$dir/nsd-$part.conf" || die "nsd $part did not start; see $(dirname "$pf")/nsd.log"
    for _ in $(seq 100); do [ -s "$pf" ] && break; sleep 0.1; done
    [ -s "$pf" ] || die "nsd $part wrote no pid file"
    STARTED_PIDS+=("$(cat "$pf")")
    NSD_PIDS+=("$(cat "$pf")")
  done
  wait_answer 127.60.0.1 com NS NOERROR 60 || die "the root server does not answer"
  wait_answer 127.60.2.1 hostone-bench.net SOA NOERROR 300 || die "the auth-a server does not answer"
  wait_answer 127.60.2.5 edgedns-bench.org SOA NOERROR 300 || die "the auth-b server does not answer"
  for parent in "${NSD_PIDS[@]}"; do
    for pid in "$parent" $(pgrep -P "$parent" || true); do taskset -a -p -c "$DNSPERF_CPU" "$pid" >/dev/null 2>&1 || true; done
  done
}
stop_nsds() { local pid; for pid in "${NSD_PIDS[@]}"; do stop_pid "$pid"; done; NSD_PIDS=(); }
start_nsds "$HIER"
first_zone=$(head -n1 "$HIER/names/regular-zones.txt")
say "hierarchy up: $(tr '\n' ' ' <"$HIER/stats.txt")"

# ------------------------------------------------------------------ resolvers
RES_PID=
start_resolver() { # resolver list -> sets RES_PID; records load time and RSS; 1 if it did not come up
  local r=$1 list=$2 port dir t0 cmd name want
  port=$(port_of "$r")
  dir=$RUN/$r-$list
  rm -rf "$dir" && mkdir -p "$dir"
  port_busy "$port" && { say "UDP port $port is taken by another process: $r not started"; return 1; }
  write_config "$r" "$list" "$dir"
  mapfile -t cmd < <(command_of "$r" "$dir")
  [ "$list" != 0 ] && cat "$(list_file_of "$r" "$list")" >/dev/null # time the parse, not the disk
  t0=$(date +%s.%N)
  setsid nice -n "$SERVER_NICE" taskset -c "$SERVER_CPUS" "${cmd[@]}" >"$dir/out.log" 2>&1 &
  RES_PID=$!
  STARTED_PIDS+=("$RES_PID")
  # ready = the first correct answer: without a list a real name, with one a listed name
  # blocked (NXDOMAIN; hickory-dns answers 0.0.0.0 instead)
  if [ "$list" = 0 ]; then name="www.$first_zone" want="status: NOERROR"; else name=$(head -n1 "$LISTS/domains-$list.txt") want="status: NXDOMAIN|[[:space:]]0\.0\.0\.0$"; fi
  local end=$((SECONDS + STARTUP_TIMEOUT))
  while ((SECONDS < end)); do
    kill -0 "$RES_PID" 2>/dev/null || { say "$r exited at startup:"; tail -n 5 "$dir/out.log" >&2; return 1; }
    if dig +time=1 +tries=1 +noall +comments +answer -p "$port" @127.0.0.1 "$name" A 2>/dev/null | grep -Eq "$want"; then
      local loaded
      loaded=$(date +%s.%N)
      # the first start of this resolver with this list is the one reported
      if ! grep -q "^$r	list-$list	load_s	" "$RESULTS_TSV"; then
        record "$r" "list-$list" load_s "$(awk -v a="$t0" -v b="$loaded" 'BEGIN { printf "%.2f", b - a }')"
        sleep 1
        record "$r" "list-$list" rss_kb "$(rss_kb "$RES_PID")"
      fi
      say "$r up with list $list (pid $RES_PID)"
      return 0
    fi
    sleep 0.05
  done
  say "$r gave no '$want' for $name within ${STARTUP_TIMEOUT}s; see $dir/out.log"
  return 1
}
stop_resolver() { stop_pid "$RES_PID"; RES_PID=; }

# ------------------------------------------------------------------ workloads
: >"$RESULTS_TSV"
say "resolvers: ${RESOLVERS[*]} | workloads: $WORKLOADS | load average at start: $LOAD_AT_START"
QF_HIT=$HIER/queries/hit.txt
QF_COLD=$HIER/queries/cold.txt

if has cold || has hit || has tcp; then # no list
  for r in "${RESOLVERS[@]}"; do
    port=$(port_of "$r")
    start_resolver "$r" 0 || continue
    if has cold && [ "$r" != echo ]; then
      cold_run "$r" cold-max "$port" "$RES_PID" "$QF_COLD" ""
      stop_resolver
      start_resolver "$r" 0 || continue
      cold_run "$r" cold-fixed "$port" "$RES_PID" "$QF_COLD" "$COLD_QPS"
    fi
    if has hit || has tcp; then
      warm "$r" "$port" "$QF_HIT" 2 5000
      if has hit; then
        fixed_rate "$r" hit "$port" "$RES_PID" "$QF_HIT" "$FIXED_QPS" "$DURATION"
        max_rate "$r" hit "$port" "$RES_PID" "$QF_HIT" "$DURATION" udp
      fi
      has tcp && [ "$r" != echo ] && max_rate "$r" tcp "$port" "$RES_PID" "$QF_HIT" "$DURATION" tcp
    fi
    stop_resolver
  done
fi

if has tls; then # DoT and DoH, cache hits, for the resolvers that serve them
  TLS_DIR=$DATA/tls
  mkdir -p "$TLS_DIR"
  [ -s "$TLS_DIR/cert.pem" ] || timeout 60 openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -days 3650 \
    -keyout "$TLS_DIR/key.pem" -out "$TLS_DIR/cert.pem" >/dev/null 2>&1 || die "openssl could not make the test certificate"
  for r in "${RESOLVERS[@]}"; do
    [ "$r" = echo ] && continue # the floor row: cache hits only
    [ -n "$(tls_port_of "$r")" ] || continue
    start_resolver "$r" 0 || continue
    warm "$r" "$(port_of "$r")" "$QF_HIT" 2 5000
    max_rate "$r" dot "$(tls_port_of "$r")" "$RES_PID" "$QF_HIT" "$DURATION" dot
    # one client, as in earlier runs (bench/doh.sh measures 1, 4 and 16 connections)
    CLIENTS=1 max_rate "$r" doh "$(https_port_of "$r")" "$RES_PID" "$QF_HIT" "$DURATION" doh \
      -O "doh-uri=https://127.0.0.1:$(https_port_of "$r")/dns-query"
    stop_resolver
  done
  TLS_DIR=
fi

if has lists; then
  for r in "${RESOLVERS[@]}"; do
    [ "$r" = echo ] && continue # the floor row: cache hits only
    start_resolver "$r" 100k && stop_resolver
    if [ -n "$REAL_LIST" ]; then start_resolver "$r" real && stop_resolver; fi
  done
fi

if has lists || has blocked || has mix || has reload; then # the 1M list
  for r in "${RESOLVERS[@]}"; do
    [ "$r" = echo ] && continue # the floor row: cache hits only
    port=$(port_of "$r")
    start_resolver "$r" 1m || continue
    if has blocked; then
      fixed_rate "$r" blocked "$port" "$RES_PID" "$LISTS/blocked-1m.txt" "$FIXED_QPS" "$DURATION"
      max_rate "$r" blocked "$port" "$RES_PID" "$LISTS/blocked-1m.txt" "$DURATION" udp
    fi
    if has mix || has reload; then
      warm "$r" "$port" "$LISTS/mix-1m.txt" 1 3000
    fi
    if has mix; then
      fixed_rate "$r" mix "$port" "$RES_PID" "$LISTS/mix-1m.txt" "$FIXED_QPS" "$DURATION"
      max_rate "$r" mix "$port" "$RES_PID" "$LISTS/mix-1m.txt" "$DURATION" udp
    fi
    has reload && reload_under_load "$r" "$port" "$RES_PID" "$RUN/$r-1m" "$LISTS/mix-1m.txt" "$RELOAD_QPS"
    stop_resolver
  done
fi

if has querylog; then # dnsward with its query log, on cache hits (compare with the hit workload)
  r=dnsward-log port=$(port_of dnsward-log)
  if start_resolver "$r" 0; then
    warm "$r" "$port" "$QF_HIT" 2 5000
    fixed_rate "$r" querylog "$port" "$RES_PID" "$QF_HIT" "$FIXED_QPS" "$DURATION"
    max_rate "$r" querylog "$port" "$RES_PID" "$QF_HIT" "$DURATION" udp
    stop_resolver
  fi
fi

if has scaling; then # every CPU and as many workers; dnsperf shares DNSPERF_CPU with the resolver
  WORKERS=$(nproc) SERVER_CPUS=0-$(($(nproc) - 1))
  for r in "${RESOLVERS[@]}"; do
    [ "$r" = echo ] && continue # the floor row: cache hits only
    port=$(port_of "$r")
    start_resolver "$r" 0 || continue
    warm "$r" "$port" "$QF_HIT" 2 5000
    fixed_rate "$r" scaling "$port" "$RES_PID" "$QF_HIT" "$FIXED_QPS" "$DURATION"
    max_rate "$r" scaling "$port" "$RES_PID" "$QF_HIT" "$DURATION" udp
    stop_resolver
  done
  WORKERS=1 SERVER_CPUS=$SERVER_CPU
fi

if has signed; then # cold cache on a signed copy of the hierarchy, every resolver validating
  SIGNED=$DATA/signed
  signer=$REPO/target/release/examples/sign_hierarchy
  if [ ! -x "$signer" ]; then
    say "building the signer: cargo build --release --example sign_hierarchy"
    (cd "$REPO" && timeout 1200 cargo build --release --example sign_hierarchy >"$DATA/signer-build.log" 2>&1) ||
      die "could not build the signer; see $DATA/signer-build.log"
  fi
  # signatures are valid 30 days: sign again when the copy is older than 20 or the hierarchy newer
  if [ ! -s "$SIGNED/trust-anchor.ds" ] || [ "$SIGNED/trust-anchor.ds" -ot "$HIER/stats.txt" ] ||
    [ -n "$(find "$SIGNED/trust-anchor.ds" -mtime +20)" ]; then
    say "signing the hierarchy (ECDSA P-256, NSEC) in $SIGNED"
    timeout 900 "$signer" "$HIER" "$SIGNED" >&2 || die "sign_hierarchy failed"
    for conf in "$HIER"/nsd-*.conf; do
      sed -e "s#\"$HIER/zones\"#\"$SIGNED/zones\"#" -e "s#\"$RUN/nsd/#\"$RUN/nsd-signed/#g" "$conf" >"$SIGNED/$(basename "$conf")"
    done
  fi
  stop_nsds
  start_nsds "$SIGNED"
  TRUST_ANCHOR=$SIGNED/trust-anchor.ds
  for r in "${RESOLVERS[@]}"; do
    [ "$r" = echo ] && continue # the floor row: cache hits only
    [ "$r" = hickory ] && continue # its recursor's validation is not what is measured here
    port=$(port_of "$r")
    start_resolver "$r" 0 || continue
    ad=$(dig +time=2 +tries=1 +dnssec -p "$port" @127.0.0.1 "www.$(sed -n 2p "$HIER/names/regular-zones.txt")" A | grep -c "flags:.* ad" || true)
    record "$r" signed-cold-max validated "$ad"
    cold_run "$r" signed-cold-max "$port" "$RES_PID" "$QF_COLD" ""
    stop_resolver
    start_resolver "$r" 0 || continue
    cold_run "$r" signed-cold-fixed "$port" "$RES_PID" "$QF_COLD" "$COLD_QPS"
    stop_resolver
  done
  TRUST_ANCHOR=
  stop_nsds
fi

# ------------------------------------------------------------------ report
{
  echo "date=$(date -u +'%Y-%m-%d %H:%M UTC')"
  echo "duration_s=$(($(date +%s) - START_TS))"
  echo "load_at_start=$LOAD_AT_START"
  echo "load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) x $(nproc)"
  echo "memory=$(awk '/^MemTotal/ { printf "%.0f GB", $2 / 1048576 }' /proc/meminfo)"
  echo "os=$(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
  echo "nsd=$(nsd -v 2>&1 | head -n1)"
  echo "dnsperf=$(dnsperf -h 2>&1 | awk '/^Version/ { print $2 }')"
  for r in "${RESOLVERS[@]}"; do echo "version_$r=$(version_of "$r")"; done
  echo "querylog_sinks=$QUERYLOG_SINKS"
  if [ -n "$REAL_LIST" ]; then echo "real_list=$(basename "$REAL_LIST"), $(wc -l <"$LISTS/domains-real.txt") names"; fi
  echo "settings=WORKLOADS=\"$WORKLOADS\" DURATION=$DURATION FIXED_QPS=$FIXED_QPS COLD_QPS=$COLD_QPS RELOAD_QPS=$RELOAD_QPS CACHE_ENTRIES=$CACHE_ENTRIES ZONES=$ZONES CLIENTS=$CLIENTS OUTSTANDING=$OUTSTANDING"
  echo "hierarchy=$(tr '\n' ' ' <"$HIER/stats.txt")"
} >"$OUT/meta.txt"
python3 "$BENCH/report.py" --results "$OUT" --plots "$PLOTS" || die "report.py failed"
say "done in $(($(date +%s) - START_TS)) s: $OUT/RESULTS.md"
