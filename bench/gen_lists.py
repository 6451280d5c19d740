#!/usr/bin/env python3
"""Writes deterministic threat lists for bench/run.sh (Python 3, standard library only).

Each size is a prefix of one sequence of names: the bad zones of the hierarchy first (so a
blocked name is checked against a zone that really resolves), then synthetic threat names
(phishing-like, DGA-like, hosts under free-hosting suffixes), never equal to or a parent of
a name that exists in the hierarchy. Every entry blocks the name and all its subdomains.

For each size S (0 = the empty control list), in --out:
  domains-S.txt          plain domains, one a line (dnsward)
  rpz-S.zone             an RPZ zone "rpz.bench.": "name CNAME ." and "*.name CNAME ."
                         (Unbound and PowerDNS Recursor; NXDOMAIN for the name and below)
  hickory-S.txt          "name" and "*.name" lines (hickory-dns matches subdomains only
                         through explicit wildcards)
  blocked-S.txt          dnsperf questions for listed names: half the entry, half a subdomain
  mix-S.txt              90 % of queries/allowed.txt and 10 % of blocked-S.txt, shuffled
--from FILE --tag TAG converts a real plain or hosts list into the same formats.
"""
import argparse
import os
import random
import sys

SIZES = {"0": 0, "100k": 100_000, "1m": 1_000_000}
TLDS = ["com", "net", "xyz", "top", "info", "online", "site", "shop", "ru", "cn", "tk", "vn",
        "io", "live", "icu", "buzz", "cc", "club", "app", "link"]
BRANDS = ["paypal", "apple", "microsoft", "office365", "amazon", "netflix", "google", "facebook",
          "binance", "coinbase", "metamask", "chase", "dhl", "fedex", "vietcombank", "shopee",
          "steam", "adobe", "dropbox", "docusign", "zalo", "momo", "usps", "instagram"]
BAIT = ["secure", "login", "verify", "account", "update", "support", "signin", "wallet",
        "billing", "confirm", "recovery", "alert", "unlock", "bonus", "gift", "airdrop", "promo"]
FREE_HOSTING = ["duckdns.org", "web.app", "github.io", "blogspot.com", "pages.dev",
                "workers.dev", "netlify.app", "vercel.app", "glitch.me", "r2.dev"]
SUBDOMAINS = ["www", "login", "secure", "m", "account", "verify", "app", "cdn", "mail", "api"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def threat_name(rng):
    p = rng.random()
    if p < 0.45:
        words = [rng.choice(BRANDS), rng.choice(BAIT)]
        rng.shuffle(words)
        first = "-".join(words) + (str(rng.randint(1, 9999)) if rng.random() < 0.8 else "")
    elif p < 0.80:  # DGA-like
        first = "".join(rng.choice(LETTERS) for _ in range(rng.randint(9, 18)))
    else:  # a host under a free hosting or dynamic DNS suffix
        first = "".join(rng.choice(LETTERS) for _ in range(rng.randint(6, 12)))
        return f"{first}.{rng.choice(FREE_HOSTING)}"
    name = f"{first}.{rng.choice(TLDS)}"
    return f"{rng.choice(SUBDOMAINS)}.{name}" if rng.random() < 0.1 else name


def read_lines(path):
    with open(path) as f:
        return [line.split()[0].lower().rstrip(".") for line in f if line.strip()]


def sequence(hierarchy, count, seed):
    names = os.path.join(hierarchy, "names")
    protected = set(read_lines(os.path.join(names, "existing-names.txt")))
    out = read_lines(os.path.join(names, "bad-zones.txt"))
    seen = set(out)
    rng = random.Random(seed)
    while len(out) < count:
        name = threat_name(rng)
        labels = name.split(".")
        # neither the name nor any parent may be a name that exists in the hierarchy
        if name in seen or any(".".join(labels[i:]) in protected for i in range(len(labels))):
            continue
        seen.add(name)
        out.append(name)
    return out[:count]


def write_lines(path, lines):
    with open(path, "w") as f:
        f.writelines(line + "\n" for line in lines)


def write_formats(out, tag, names):
    write_lines(os.path.join(out, f"domains-{tag}.txt"), names)
    write_lines(os.path.join(out, f"hickory-{tag}.txt"), (x for n in names for x in (n, "*." + n)))
    with open(os.path.join(out, f"rpz-{tag}.zone"), "w") as f:
        f.write("$ORIGIN rpz.bench.\n$TTL 300\n"
                "@ IN SOA localhost. hostmaster.rpz.bench. 1 3600 600 86400 300\n@ IN NS localhost.\n")
        f.writelines(f"{n} CNAME .\n*.{n} CNAME .\n" for n in names)


def blocked_questions(names, count, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        name = rng.choice(names)
        if rng.random() >= 0.5:
            name = f"{rng.choice(SUBDOMAINS)}.{name}"
        out.append(f"{name} {'AAAA' if rng.random() < 0.15 else 'A'}")
    return out


def mix(allowed, blocked, seed):
    rng = random.Random(seed)
    return [rng.choice(blocked) if rng.random() < 0.10 else line for line in allowed]


def parse_real_list(path):
    """Plain or hosts lines; comments and blank lines skipped."""
    out, seen = [], set()
    with open(path, errors="replace") as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            if not fields:
                continue
            name = (fields[1] if len(fields) > 1 else fields[0]).lower().rstrip(".")
            if name.startswith("*."):
                name = name[2:]
            if "." in name and name not in seen:
                seen.add(name)
                out.append(name)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--hierarchy", required=True, help="output directory of gen_hierarchy.py")
    ap.add_argument("--sizes", default="0,100k,1m", help="comma-separated: " + ",".join(SIZES))
    ap.add_argument("--blocked-queries", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=1617)
    ap.add_argument("--from", dest="source", help="convert this real list instead")
    ap.add_argument("--tag", help="file tag for --from")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    allowed = [line.rstrip("\n") for line in open(os.path.join(args.hierarchy, "queries", "allowed.txt"))]

    if args.source:
        names = parse_real_list(args.source)
        if not names:
            sys.exit(f"{args.source}: no domain names found")
        tag = args.tag or os.path.splitext(os.path.basename(args.source))[0]
        write_formats(args.out, tag, names)
        blocked = blocked_questions(names, args.blocked_queries, args.seed)
        write_lines(os.path.join(args.out, f"blocked-{tag}.txt"), blocked)
        write_lines(os.path.join(args.out, f"mix-{tag}.txt"), mix(allowed, blocked, args.seed))
        print(f"{tag}: {len(names)} names")
        return

    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        sys.exit(f"unknown size(s) {', '.join(unknown)}; known: {', '.join(SIZES)}")
    names = sequence(args.hierarchy, max(SIZES[s] for s in sizes), args.seed)
    for size in sizes:
        listed = names[: SIZES[size]]
        write_formats(args.out, size, listed)
        if listed:
            blocked = blocked_questions(listed, args.blocked_queries, args.seed + SIZES[size])
            write_lines(os.path.join(args.out, f"blocked-{size}.txt"), blocked)
            write_lines(os.path.join(args.out, f"mix-{size}.txt"), mix(allowed, blocked, args.seed + 1))
        print(f"{size}: {len(listed)} names")


if __name__ == "__main__":
    main()
