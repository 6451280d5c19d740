#!/usr/bin/env bash
# The soak run with faults (issue 25): SOAK_SECS (default 1800) of mixed traffic at SOAK_QPS
# (default 200) against one dnsward on loopback while faults are injected on a schedule;
# see bench/soak.py for what runs and bench/README.md ("Soak") for how to read the report.
#
#   bench/soak.sh                         # 30 minutes
#   SOAK_SECS=300 SOAK_QPS=100 bench/soak.sh
#   DNSWARD=target/debug/dnsward bench/soak.sh
#
# Needs: python3 with chdb (pip install chdb: the ClickHouse sink's server), openssl (the
# DoT/DoH certificate). Everything listens on 127.0.0.0/8; every process it starts is stopped
# by its PID at the end (also on Ctrl-C). Writes bench/results/soak.{json,tsv,svg}.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${DNSWARD:-}" ] && [ ! -x target/release/dnsward ]; then
  cargo build --release --bin dnsward
fi
export SOAK_SECS="${SOAK_SECS:-1800}"
# the run itself is bounded: SOAK_SECS plus start-up and accounting
exec timeout --kill-after=30 "$((SOAK_SECS + 600))" python3 bench/soak.py
