#!/usr/bin/env bash
# Signs a copy of the generated hierarchy with ldns (ECDSA P-256, one key per zone, NSEC),
# bottom up: every second-level zone, their DS records into the TLD zones, the TLDs, their
# DS records into the root, the root. Writes the root's DS as the trust anchor.
#   bench/sign_hierarchy.sh HIERARCHY OUT RUN
# OUT gets zones/, nsd-*.conf (pid files and logs under RUN), root.hints, trust-anchor.ds.
# About 20 ms of work per zone, spread over every CPU.
set -euo pipefail
[ $# = 3 ] || { echo "usage: $0 HIERARCHY OUT RUN" >&2; exit 2; }
HIER=$1 OUT=$2 RUN=$3
for t in ldns-keygen ldns-signzone; do
  command -v "$t" >/dev/null || { echo "$0: $t is missing (apt-get install -y ldnsutils)" >&2; exit 2; }
done
[ -f "$HIER/zones/root.zone" ] || { echo "$0: $HIER holds no generated hierarchy" >&2; exit 2; }

rm -rf "$OUT"
mkdir -p "$OUT/zones/sld" "$OUT/keys"
cp "$HIER/zones/"*.zone "$OUT/zones/"
cp "$HIER/root.hints" "$OUT/"

# sign_zone ZONE-NAME FILE: key, signed zone in place (FILE.signed renamed over FILE), DS kept.
sign_zone() {
  local zone=$1 file=$2 keys=$OUT/keys key
  key=$(cd "$keys" && ldns-keygen -a ECDSAP256SHA256 -k "$zone")
  ldns-signzone -f "$file.signed" "$file" "$keys/$key" && mv "$file.signed" "$file"
  # the DS without the comment ldns appends
  sed 's/;.*//' "$keys/$key.ds" >"$keys/$zone.ds"
}
export -f sign_zone
export OUT

# 1. second-level zones, in parallel (the bulk of the work)
find "$HIER/zones/sld" -name '*.zone' -printf '%f\n' | sed 's/\.zone$//' |
  xargs -P "$(nproc)" -I{} bash -c 'cp "$0/zones/sld/{}.zone" "$OUT/zones/sld/{}.zone" && sign_zone "{}." "$OUT/zones/sld/{}.zone"' "$HIER"
sign_zone root-servers.net. "$OUT/zones/root-servers.net.zone"

# 2. DS records into each TLD, then the TLDs
for f in "$OUT/zones/"*.zone; do
  tld=$(basename "$f" .zone)
  case $tld in root | root-servers.net) continue ;; esac
  cat "$OUT/keys/"*".$tld..ds" >>"$f" 2>/dev/null || true
done
cat "$OUT/keys/root-servers.net..ds" >>"$OUT/zones/net.zone"
for f in "$OUT/zones/"*.zone; do
  tld=$(basename "$f" .zone)
  case $tld in root | root-servers.net) continue ;; esac
  sign_zone "$tld." "$f"
done

# 3. TLD DS records into the root, the root, and its DS as the trust anchor
for f in "$OUT/zones/"*.zone; do
  tld=$(basename "$f" .zone)
  case $tld in root | root-servers.net) continue ;; esac
  cat "$OUT/keys/$tld..ds" >>"$OUT/zones/root.zone"
done
sign_zone . "$OUT/zones/root.zone"
cp "$OUT/keys/..ds" "$OUT/trust-anchor.ds"

# 4. NSD configurations: the same servers, the signed zones, their own pid files
for conf in "$HIER"/nsd-*.conf; do
  sed -e "s#zonesdir: \"$HIER/zones\"#zonesdir: \"$OUT/zones\"#" \
    -e "s#\"[^\"]*/nsd/\([a-z-]*\)/#\"$RUN/\1/#g" "$conf" >"$OUT/$(basename "$conf")"
done
echo "signed $(find "$OUT/zones" -name '*.zone' | wc -l) zones; trust anchor: $(cat "$OUT/trust-anchor.ds")"
