# shellcheck shell=bash
# Sourced by bench/run.sh: one config writer and one command line per resolver, and how each
# reloads its list. Every resolver gets the same setup: WORKERS worker threads (1, or all
# CPUs for the scaling workload), answers cached up
# to CACHE_ENTRIES (Unbound counts bytes: its caches are sized well above what a run fills),
# the fake root from the generated root.hints, and the list in its own format.
# Needs: HIER, LISTS, CACHE_ENTRIES, WORKERS, QUERYLOG_SINKS, DNSWARD, HICKORY, REPO,
# RELOAD_TIMEOUT (set by run.sh).

port_of() {
  case $1 in
    unbound) echo 5301 ;; pdns) echo 5302 ;; hickory) echo 5303 ;; dnsward) echo 5304 ;; dnsward-log) echo 5305 ;;
    echo) echo 5309 ;;
  esac
}

# DoT and DoH ports of the resolvers that serve them (the tls workload): dnsward and Unbound.
tls_port_of() { case $1 in unbound) echo 8531 ;; dnsward) echo 8534 ;; esac; }
https_port_of() { case $1 in unbound) echo 4431 ;; dnsward) echo 4434 ;; esac; }

# Admin listener of dnsward (its /metrics tells when a reload has finished).
DNSWARD_ADMIN=127.0.0.1:9304

list_file_of() { # resolver list -> the list in the resolver's format ("" for list 0)
  [ "$2" = 0 ] && return 0
  case $1 in
    unbound | pdns) echo "$LISTS/rpz-$2.zone" ;;
    hickory) echo "$LISTS/hickory-$2.txt" ;;
    dnsward | dnsward-log) echo "$LISTS/domains-$2.txt" ;;
  esac
}

write_config() { # resolver list dir
  local r=$1 list=$2 dir=$3 port lf
  port=$(port_of "$r")
  lf=$(list_file_of "$r" "$list")
  case $r in
    dnsward | dnsward-log)
      cat >"$dir/dnsward.toml" <<EOF
[server]
listen = ["127.0.0.1:$port"]
udp_workers = $WORKERS
$([ -n "${UDP_BATCH:-}" ] && echo "udp_batch = $UDP_BATCH")

[resolver]
mode = "recursive"
root_hints = "$HIER/root.hints"
cache_size = $CACHE_ENTRIES
upstream_ipv6 = false
$(dnssec_of dnsward)

[policy]
watch = false

[admin]
listen = "$DNSWARD_ADMIN"
EOF
      if [ -n "${TLS_DIR:-}" ]; then # the tls workload: DoT and DoH too
        sed -i "0,/^listen = /s#^listen = .*#&\ntls_listen = [\"127.0.0.1:$(tls_port_of dnsward)\"]\nhttps_listen = [\"127.0.0.1:$(https_port_of dnsward)\"]\ntls_cert = \"$TLS_DIR/cert.pem\"\ntls_key = \"$TLS_DIR/key.pem\"#" "$dir/dnsward.toml"
      fi
      if [ "$r" = dnsward-log ]; then # the query log workload: every query to each sink
        printf '\n[querylog]\n' >>"$dir/dnsward.toml"
        for sink in $QUERYLOG_SINKS; do printf '%s = "%s/querylog.%s"\n' "$sink" "$dir" "$sink" >>"$dir/dnsward.toml"; done
      fi
      if [ -n "$lf" ]; then
        printf '\n[[lists]]\nname = "bench"\ncategory = "threat"\nformat = "plain"\npath = "%s"\n' "$lf" >>"$dir/dnsward.toml"
      fi
      ;;
    unbound)
      cat >"$dir/unbound.conf" <<EOF
server:
    interface: 127.0.0.1@$port
    do-ip6: no
    do-daemonize: no
    use-systemd: no
    username: ""
    chroot: ""
    directory: "$dir"
    pidfile: "$dir/unbound.pid"
    logfile: "$dir/unbound.log"
    verbosity: 0
    num-threads: $WORKERS
    root-hints: "$HIER/root.hints"
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    msg-cache-size: 256m
    rrset-cache-size: 512m
    neg-cache-size: 64m
    outgoing-range: 4096
    num-queries-per-thread: 4096
    so-rcvbuf: 8m
    so-sndbuf: 8m
    qname-minimisation: yes
    prefetch: no
$(dnssec_of unbound)
$(tls_of_unbound)
remote-control:
    control-enable: yes
    control-interface: 127.0.0.1
    control-port: 8953
    control-use-cert: no
EOF
      if [ -n "$lf" ]; then
        sed -i 's/^    prefetch: no$/&\n    module-config: "respip iterator"/' "$dir/unbound.conf"
        printf 'rpz:\n    name: rpz.bench\n    zonefile: "%s"\n    rpz-log: no\n' "$lf" >>"$dir/unbound.conf"
      else
        sed -i "s/^    prefetch: no$/&\n    module-config: \"${TRUST_ANCHOR:+validator }iterator\"/" "$dir/unbound.conf"
      fi
      ;;
    pdns)
      cat >"$dir/recursor.conf" <<EOF
local-address=127.0.0.1
local-port=$port
allow-from=127.0.0.0/8
hint-file=$HIER/root.hints
dont-query=
threads=$WORKERS
pdns-distributes-queries=no
reuseport=no
$(dnssec_of pdns)
socket-dir=$dir
max-cache-entries=$CACHE_ENTRIES
max-packetcache-entries=$CACHE_ENTRIES
qname-minimization=yes
daemon=no
disable-syslog=yes
quiet=yes
loglevel=3
webserver=no
EOF
      if [ -n "$lf" ]; then
        echo "lua-config-file=$dir/rpz.lua" >>"$dir/recursor.conf"
        printf 'rpzFile("%s", {policyName="rpz.bench"})\n' "$lf" >"$dir/rpz.lua"
      fi
      if [ -n "${TRUST_ANCHOR:-}" ]; then # the signed workload (no list): the lab root's DS
        echo "lua-config-file=$dir/ta.lua" >>"$dir/recursor.conf"
        awk '$4 == "DS" { printf "addTA(\"%s\", \"%s %s %s %s\")\n", $1, $5, $6, $7, $8 }' "$TRUST_ANCHOR" >"$dir/ta.lua"
      fi
      ;;
    hickory)
      cat >"$dir/hickory.toml" <<EOF
listen_addrs_ipv4 = ["127.0.0.1"]
listen_port = $port
directory = "$dir"
drop_privileges = false

[[zones]]
zone = "."
zone_type = "External"
EOF
      if [ -n "$lf" ]; then cat >>"$dir/hickory.toml"; fi <<EOF

[[zones.stores]]
type = "blocklist"
lists = ["$lf"]
wildcard_match = true
min_wildcard_depth = 2
sinkhole_ipv4 = "0.0.0.0"
sinkhole_ipv6 = "::"
log_clients = false
EOF
      cat >>"$dir/hickory.toml" <<EOF

[[zones.stores]]
type = "recursor"
roots = "$HIER/root.hints"
ns_cache_size = 100000
response_cache_size = $CACHE_ENTRIES
deny_server = []
EOF
      ;;
  esac
}

# DNSSEC: off, as the peers are set up, on the unsigned hierarchy; with TRUST_ANCHOR (a DS
# file: the signed workload) every resolver validates from that anchor.
dnssec_of() {
  case $1 in
    dnsward)
      if [ -n "${TRUST_ANCHOR:-}" ]; then printf 'dnssec = "validate"\ntrust_anchor = "%s"\n' "$TRUST_ANCHOR"; else echo 'dnssec = "off"'; fi ;;
    unbound)
      if [ -n "${TRUST_ANCHOR:-}" ]; then printf '    trust-anchor-file: "%s"\n    val-log-level: 1\n' "$TRUST_ANCHOR"; fi ;;
    pdns)
      if [ -n "${TRUST_ANCHOR:-}" ]; then echo "dnssec=validate"; else echo "dnssec=off"; fi ;;
  esac
}

# Unbound's DoT and DoH listeners for the tls workload (TLS_DIR holds cert.pem and key.pem).
tls_of_unbound() {
  [ -n "${TLS_DIR:-}" ] || return 0
  cat <<EOT
    interface: 127.0.0.1@$(tls_port_of unbound)
    interface: 127.0.0.1@$(https_port_of unbound)
    tls-port: $(tls_port_of unbound)
    https-port: $(https_port_of unbound)
    tls-service-key: "$TLS_DIR/key.pem"
    tls-service-pem: "$TLS_DIR/cert.pem"
    http-endpoint: "/dns-query"
    incoming-num-tcp: 1000
EOT
}

command_of() { # resolver dir -> prints the command line, one word a line
  case $1 in
    dnsward | dnsward-log) printf '%s\n' "$DNSWARD" serve --config "$2/dnsward.toml" ;;
    unbound) printf '%s\n' unbound -d -c "$2/unbound.conf" ;;
    pdns) printf '%s\n' pdns_recursor --config-dir="$2" ;;
    hickory) printf '%s\n' "$HICKORY" -c "$2/hickory.toml" --workers "$WORKERS" -q ;;
    echo) printf '%s\n' "$DATA/bin/echo" 127.0.0.1 "$(port_of echo)" "${ECHO_BATCH:-1}" ;;
  esac
}

version_of() {
  case $1 in
    dnsward | dnsward-log) # the last commit that changed the code, and the checkout's
      echo "dnsward $(timeout 5 "$DNSWARD" --version 2>/dev/null | awk '{print $NF}'), code of git $(git -C "$REPO" log -1 --format=%h -- src Cargo.toml Cargo.lock 2>/dev/null) (checkout $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null))" ;;
    unbound) timeout 5 unbound -V 2>/dev/null | awk 'NR == 1 { print "unbound " $2 }' ;;
    pdns) timeout 5 pdns_recursor --version 2>&1 | grep -o 'Recursor [0-9][0-9.]*' | head -n1 | sed 's/^/PowerDNS /' ;;
    hickory) timeout 5 "$HICKORY" --version 2>/dev/null | head -n1 ;;
    echo) echo "C echo loop (bench/echo.c, ${ECHO_BATCH:-1} per system call)" ;;
  esac
}

reload_list() { # resolver pid dir -> triggers a full reload of the list; returns when it is done (bounded)
  local r=$1 pid=$2 dir=$3 before end
  case $r in
    dnsward | dnsward-log)
      # SIGHUP returns at once; the reload is done when dnsward_policy_reloads goes up
      before=$(policy_reloads)
      kill -HUP "$pid"
      end=$((SECONDS + RELOAD_TIMEOUT))
      while [ "$(policy_reloads)" = "$before" ]; do
        ((SECONDS < end)) || return 1
        sleep 0.05
      done
      ;;
    unbound) timeout "$RELOAD_TIMEOUT" unbound-control -c "$dir/unbound.conf" auth_zone_reload rpz.bench >/dev/null ;;
    pdns) timeout "$RELOAD_TIMEOUT" rec_control --socket-dir="$dir" --timeout="$RELOAD_TIMEOUT" reload-lua-config >/dev/null ;;
    *) return 1 ;;
  esac
}

policy_reloads() {
  timeout 2 curl -s "http://$DNSWARD_ADMIN/metrics" 2>/dev/null | awk '/^dnsward_policy_reloads/ { print $2 }'
}
