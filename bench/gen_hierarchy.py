#!/usr/bin/env python3
"""Writes a fake, deterministic DNS hierarchy for bench/run.sh (Python 3, standard library only).

Servers (all on loopback, port 53, served by NSD):
  127.60.0.1               the root (a.root-servers.net), also serves root-servers.net
  127.60.1.1 - .12         six TLDs, two name servers each (one NSD process)
  127.60.2.1 - .4          hosting providers 0 and 1 (NSD process "auth-a")
  127.60.2.5 - .8          hosting providers 2 and 3 (NSD process "auth-b")
Every second-level zone is hosted by one provider (two NS names, two addresses), so a
resolver talks to several servers on several addresses, as on the Internet.

Zone contents: apex A/AAAA/MX/TXT, mail and www (A, or a CNAME to the apex), a few hosts, some
of them CNAMEs across zones (host -> <x>.edgecdn-bench.net -> eN.g.globalcache-bench.org -> A:
a chain over three zones on both NSD processes). A share of zones are "bad" zones that exist
and resolve, and that every generated threat list blocks.

Output (--out): zones/, nsd-<part>.conf, root.hints, names/ (ground truth for gen_lists.py)
and queries/ (dnsperf input files: "name TYPE" lines). Same seed, same bytes.
"""
import argparse
import hashlib
import os
import random
import shutil

TTL = 86400
NEGATIVE_TTL = 3600
ROOT_ADDR = "127.60.0.1"
TLDS = ["com", "net", "org", "io", "info", "xyz"]
TLD_WEIGHTS = [50, 14, 10, 10, 8, 8]
PROVIDERS = [  # (zone, ns labels, addresses, NSD part)
    ("hostone-bench.net", ("ns1", "ns2"), ("127.60.2.1", "127.60.2.2"), "auth-a"),
    ("cloudns-bench.com", ("ns1", "ns2"), ("127.60.2.3", "127.60.2.4"), "auth-a"),
    ("vnhost-bench.io", ("dns1", "dns2"), ("127.60.2.5", "127.60.2.6"), "auth-b"),
    ("edgedns-bench.org", ("a.ns", "b.ns"), ("127.60.2.7", "127.60.2.8"), "auth-b"),
]
CDN_ZONE, EDGE_ZONE = "edgecdn-bench.net", "globalcache-bench.org"
EDGE_NAMES = 3000
SYLLABLES = """ba be bi bo bu ca co cu da de di do du fa fe fi fo ga ge go gu ha he hi ho
ka ke ki ko la le li lo lu ma me mi mo mu na ne ni no nu pa pe pi po ra re ri ro ru sa se si
so su ta te ti to tu va ve vi vo za zo an en in on un ar er or ir el al ol""".split()
HOSTS = ["api", "app", "cdn", "static", "img", "m", "shop", "blog", "login", "portal", "dev",
         "docs", "support", "status", "news", "vpn", "smtp", "admin", "pay", "account", "media",
         "video", "download", "files", "assets", "git", "beta", "search", "events", "id"]
CDN_HOSTS = {"cdn", "static", "img", "media", "video", "download", "files", "assets"}
MISSING_HOSTS = ["wpad", "autodiscover", "old", "intranet", "mail3", "ftp2", "test9"]


def stable_hash(text):
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=4).digest(), "big")


def ipv4_of(name):
    # 198.18.0.0/15 is reserved for benchmarks: these answers point nowhere.
    v = stable_hash(name)
    return "198.%d.%d.%d" % (18 + (v >> 24) % 2, (v >> 16) & 0xFF, 1 + (v & 0xFF) % 254)


def ipv6_of(name):
    v = stable_hash(name + "/6")
    return "2001:db8:%x:%x::1" % (v >> 16, v & 0xFFFF)


def label(rng, serial):
    word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
    return f"{word}{serial}" if rng.random() < 0.7 else f"{word}-{serial}"


class Zone:
    def __init__(self, name, ns_names):
        self.name = name
        self.ns_names = ns_names
        self.records = []
        self.owners = {}  # fully qualified owner -> set of types

    def add(self, owner, rtype, rdata):
        fqdn = self.name if owner == "@" else f"{owner}.{self.name}"
        self.owners.setdefault(fqdn, set()).add(rtype)
        self.records.append(f"{owner} IN {rtype} {rdata}")

    def text(self):
        head = [f"$ORIGIN {self.name}.", f"$TTL {TTL}",
                f"@ IN SOA {self.ns_names[0]}. hostmaster.{self.name}. 1 7200 3600 1209600 {NEGATIVE_TTL}"]
        head += [f"@ IN NS {ns}." for ns in self.ns_names]
        return "\n".join(head + self.records) + "\n"


def provider_ns(provider):
    zone, labels, _, _ = provider
    return tuple(f"{lab}.{zone}" for lab in labels)


def fill_regular(zone, rng, cdn, cdn_serial):
    """Adds the records of an ordinary zone; returns its CNAME-chain hosts and the next CDN serial."""
    name = zone.name
    chains = []
    zone.add("@", "A", ipv4_of(name))
    if rng.random() < 0.6:
        zone.add("@", "AAAA", ipv6_of(name))
    zone.add("@", "MX", f"10 mail.{name}.")
    zone.add("@", "TXT", '"v=spf1 mx ~all"')
    zone.add("mail", "A", ipv4_of("mail." + name))
    if rng.random() < 0.5:
        zone.add("www", "CNAME", f"{name}.")
        chains.append(f"www.{name}")
    else:
        zone.add("www", "A", ipv4_of("www." + name))
    for host in rng.sample(HOSTS, rng.randint(2, 8)):
        fqdn = f"{host}.{name}"
        if host in CDN_HOSTS and rng.random() < 0.6:
            edge_label = f"{name.replace('.', '-')}-{host}"
            zone.add(host, "CNAME", f"{edge_label}.{CDN_ZONE}.")
            cdn.add(edge_label, "CNAME", f"e{cdn_serial % EDGE_NAMES}.g.{EDGE_ZONE}.")
            cdn_serial += 1
            chains.append(fqdn)
        else:
            zone.add(host, "A", ipv4_of(fqdn))
            if rng.random() < 0.3:
                zone.add(host, "AAAA", ipv6_of(fqdn))
    return chains, cdn_serial


def build(args):
    rng = random.Random(args.seed)
    infra = {}
    for provider in PROVIDERS:
        zone = Zone(provider[0], provider_ns(provider))
        for ns, addr in zip(provider_ns(provider), provider[2]):
            zone.add(ns[: -len(provider[0]) - 1], "A", addr)
        infra[provider[0]] = zone
    cdn = Zone(CDN_ZONE, provider_ns(PROVIDERS[0]))
    edge = Zone(EDGE_ZONE, provider_ns(PROVIDERS[3]))
    for i in range(EDGE_NAMES):
        edge.add(f"e{i}.g", "A", ipv4_of(f"e{i}.g.{EDGE_ZONE}"))
    infra[CDN_ZONE], infra[EDGE_ZONE] = cdn, edge

    regular, bad, chains = [], [], []
    zones = []
    cdn_serial = 0
    for serial in range(args.zones + args.bad_zones):
        tld = rng.choices(TLDS, weights=TLD_WEIGHTS)[0]
        name = f"{label(rng, serial)}.{tld}"
        provider = PROVIDERS[stable_hash(name) % len(PROVIDERS)]
        zone = Zone(name, provider_ns(provider))
        zone.provider = provider
        if serial < args.bad_zones:
            for host in ("@", "www", "login", "secure"):
                zone.add(host, "A", ipv4_of(f"{host}.{name}"))
            bad.append(name)
        else:
            new_chains, cdn_serial = fill_regular(zone, rng, cdn, cdn_serial)
            chains += new_chains
            regular.append(name)
        zones.append(zone)
    for zone in infra.values():
        zone.provider = next(p for p in PROVIDERS if provider_ns(p) == zone.ns_names)
    return infra, zones, regular, bad, chains


def tld_addresses():
    return {tld: (f"127.60.1.{2 * i + 1}", f"127.60.1.{2 * i + 2}") for i, tld in enumerate(TLDS)}


def write_parents(out, slds):
    """Root and TLD zones: delegations with glue for in-bailiwick name servers."""
    addrs = tld_addresses()
    root = [f"$ORIGIN .", f"$TTL {TTL}",
            f". IN SOA a.root-servers.net. hostmaster.root-servers.net. 1 1800 900 604800 {NEGATIVE_TTL}",
            ". IN NS a.root-servers.net.", f"a.root-servers.net. IN A {ROOT_ADDR}"]
    tld_zones = {tld: Zone(tld, (f"a.nic.{tld}", f"b.nic.{tld}")) for tld in TLDS}
    for tld, zone in tld_zones.items():
        for ns, addr in zip(zone.ns_names, addrs[tld]):
            root += [f"{tld}. IN NS {ns}.", f"{ns}. IN A {addr}"]
            zone.records.append(f"{ns}. IN A {addr}")
    tld_zones["net"].records += ["root-servers.net. IN NS a.root-servers.net.",
                                 f"a.root-servers.net. IN A {ROOT_ADDR}"]
    glue = {ns: addr for p in PROVIDERS for ns, addr in zip(provider_ns(p), p[2])}
    for zone in slds:
        parent = tld_zones[zone.name.rsplit(".", 1)[1]]
        for ns in zone.ns_names:
            parent.records.append(f"{zone.name}. IN NS {ns}.")
            if ns.endswith("." + zone.name):
                parent.records.append(f"{ns}. IN A {glue[ns]}")
    write(os.path.join(out, "zones", "root.zone"), "\n".join(root) + "\n")
    write(os.path.join(out, "zones", "root-servers.net.zone"),
          Zone("root-servers.net", ("a.root-servers.net",)).text() + f"a IN A {ROOT_ADDR}\n")
    for tld, zone in tld_zones.items():
        write(os.path.join(out, "zones", f"{tld}.zone"), zone.text())


def nsd_conf(out, run, part, addresses, zone_files):
    lines = ["server:"] + [f"    ip-address: {a}" for a in addresses]
    lines += ["    port: 53", "    do-ip6: no", "    server-count: 1", '    username: ""',
              '    chroot: ""', f'    zonesdir: "{out}/zones"', '    database: ""',
              f'    zonelistfile: "{run}/{part}/zone.list"', f'    xfrdfile: "{run}/{part}/xfrd.state"',
              f'    xfrdir: "{run}/{part}"', f'    pidfile: "{run}/{part}/nsd.pid"',
              f'    logfile: "{run}/{part}/nsd.log"', "    verbosity: 0", "    refuse-any: yes",
              "    rrl-ratelimit: 0", "    rrl-whitelist-ratelimit: 0",
              "    receive-buffer-size: 8388608", "    send-buffer-size: 8388608",
              "remote-control:", "    control-enable: no"]
    for zone, path in zone_files:
        lines += ["zone:", f"    name: {zone}", f'    zonefile: "{path}"']
    write(os.path.join(out, f"nsd-{part}.conf"), "\n".join(lines) + "\n")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def write_lines(path, lines):
    write(path, "".join(line + "\n" for line in lines))


def queries(args, all_slds, regular):
    """dnsperf query files; each has its own seeded generator so adding one changes no other."""
    regular_set = set(regular)
    owners = sorted((owner, types) for zone in all_slds if zone.name in regular_set
                    for owner, types in zone.owners.items())

    def question(rng):
        owner, types = rng.choice(owners)
        p = rng.random()
        if "CNAME" in types:
            return f"{owner} A" if p < 0.85 else f"{owner} AAAA"
        if p < 0.72:
            return f"{owner} A"
        if p < 0.90:
            return f"{owner} AAAA"  # NODATA where the name has none, as happy-eyeballs clients do
        return f"{owner} MX" if "MX" in types else f"{owner} TXT" if "TXT" in types else f"{owner} A"

    def missing(rng):
        if rng.random() < 0.7:
            return f"{rng.choice(MISSING_HOSTS)}.{rng.choice(regular)} A"
        return f"nosuch{rng.randint(1, 10**6)}.{rng.choice(TLDS)} A"

    rng = random.Random(args.seed + 1)
    hits = []
    while len(hits) < args.hit_queries:
        q = question(rng)
        if q not in hits:
            hits.append(q)
    rng = random.Random(args.seed + 2)
    # the allowed part of the mix: 93 % names that exist (chains included), 7 % NXDOMAIN
    allowed = [missing(rng) if rng.random() < 0.07 else question(rng) for _ in range(args.allowed_queries)]
    rng = random.Random(args.seed + 3)
    cold = [f"www.{name} A" for name in regular]  # one question per zone: every one is a cold miss
    rng.shuffle(cold)
    qdir = os.path.join(args.out, "queries")
    write_lines(os.path.join(qdir, "hit.txt"), hits)
    write_lines(os.path.join(qdir, "allowed.txt"), allowed)
    write_lines(os.path.join(qdir, "cold.txt"), cold)
    write_lines(os.path.join(qdir, "nxdomain.txt"), [missing(rng) for _ in range(2000)])
    return owners


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (replaced)")
    ap.add_argument("--run", required=True, help="directory where NSD keeps its pid files and logs")
    ap.add_argument("--zones", type=int, default=12000, help="ordinary second-level zones")
    ap.add_argument("--bad-zones", type=int, default=500, help="zones that every threat list blocks")
    ap.add_argument("--hit-queries", type=int, default=1000, help="distinct questions in queries/hit.txt")
    ap.add_argument("--allowed-queries", type=int, default=5000, help="lines of queries/allowed.txt")
    ap.add_argument("--seed", type=int, default=1616)
    args = ap.parse_args()
    if args.zones < 1000:
        ap.error("--zones must be at least 1000")

    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    for sub in ("zones/sld", "names", "queries"):
        os.makedirs(os.path.join(args.out, sub))
    infra, zones, regular, bad, chains = build(args)
    all_slds = list(infra.values()) + zones
    write_parents(args.out, all_slds)
    by_part = {"auth-a": [], "auth-b": []}
    for zone in all_slds:
        write(os.path.join(args.out, "zones", "sld", f"{zone.name}.zone"), zone.text())
        by_part[zone.provider[3]].append((zone.name, f"sld/{zone.name}.zone"))
    addrs = tld_addresses()
    nsd_conf(args.out, args.run, "root", [ROOT_ADDR],
             [(".", "root.zone"), ("root-servers.net", "root-servers.net.zone")])
    nsd_conf(args.out, args.run, "tld", [a for tld in TLDS for a in addrs[tld]],
             [(tld, f"{tld}.zone") for tld in TLDS])
    for part, entries in by_part.items():
        nsd_conf(args.out, args.run, part, [a for p in PROVIDERS if p[3] == part for a in p[2]], entries)
    write(os.path.join(args.out, "root.hints"),
          f".                    3600000 NS A.ROOT-SERVERS.NET.\nA.ROOT-SERVERS.NET.  3600000 A  {ROOT_ADDR}\n")

    owners = queries(args, all_slds, regular)
    names = os.path.join(args.out, "names")
    write_lines(os.path.join(names, "regular-zones.txt"), regular)
    write_lines(os.path.join(names, "bad-zones.txt"), bad)
    write_lines(os.path.join(names, "cname-chains.txt"), chains)
    # every existing name and its parents: a generated threat entry must never cover one
    bad_set = set(bad)
    write_lines(os.path.join(names, "existing-names.txt"),
                sorted({o for zone in all_slds if zone.name not in bad_set for o in zone.owners}))
    stats = (f"seed={args.seed}\nsecond_level_zones={len(all_slds)}\nregular_zones={len(regular)}\n"
             f"bad_zones={len(bad)}\ncname_chains={len(chains)}\nowner_names={len(owners)}\n"
             f"nsd_parts=root tld auth-a auth-b\n")
    write(os.path.join(args.out, "stats.txt"), stats)
    print(stats, end="")


if __name__ == "__main__":
    main()
