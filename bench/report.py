#!/usr/bin/env python3
"""Turns the figures of one bench/run.sh run into RESULTS.md and PNG plots.

  report.py --results DIR [--plots 0|1]

Reads DIR/results.tsv ("resolver, workload, metric, value" rows) and DIR/meta.txt
(machine, versions, load); writes DIR/RESULTS.md and, with gnuplot installed, DIR/*.png.
Every ratio is dnsward's figure over the peer's from the same run.
"""
import argparse
import os
import shutil
import subprocess
import tempfile

PEER_ORDER = ["dnsward", "unbound", "pdns", "hickory", "echo"]
NAMES = {"dnsward": "dnsward", "unbound": "Unbound", "pdns": "PowerDNS Recursor", "hickory": "hickory-dns",
         "echo": "C echo loop"}


def load(results):
    figures = {}
    with open(os.path.join(results, "results.tsv")) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 4:
                figures[tuple(parts[:3])] = parts[3]
    meta = {}
    with open(os.path.join(results, "meta.txt")) as f:
        for line in f:
            key, _, value = line.rstrip("\n").partition("=")
            meta[key] = value
    return figures, meta


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


class Report:
    def __init__(self, figures, meta):
        self.figures = figures
        self.meta = meta
        present = {key[0] for key in figures if key[0] in PEER_ORDER}
        self.resolvers = [r for r in PEER_ORDER if r in present]
        self.peers = [r for r in self.resolvers if r != "dnsward"]
        self.lines = []

    def get(self, resolver, workload, metric):
        return self.figures.get((resolver, workload, metric))

    def value(self, resolver, workload, metric):
        return number(self.get(resolver, workload, metric))

    def ratio(self, workload, metric, peer):
        a, b = self.value("dnsward", workload, metric), self.value(peer, workload, metric)
        if a is None or not b:
            return "-"
        return f"{a / b:.2f}x" if a / b >= 0.1 else f"{a / b:.3f}x"

    def out(self, text=""):
        self.lines.append(text)

    def table(self, title, rows, note=None):
        """rows: (label, workload, metric, formatter); one column per resolver, one per ratio.
        A table whose workloads did not run is left out."""
        rows = [row for row in rows if any(self.get(r, row[1], row[2]) for r in self.resolvers)]
        if not rows:
            return
        self.out(f"### {title}")
        self.out()
        head = ["", *[NAMES[r] for r in self.resolvers], *[f"dnsward / {NAMES[p]}" for p in self.peers]]
        self.out("| " + " | ".join(head) + " |")
        self.out("|" + "---|" * len(head))
        for label, workload, metric, fmt in rows:
            cells = [fmt(self.get(r, workload, metric)) for r in self.resolvers]
            ratios = [self.ratio(workload, metric, p) for p in self.peers]
            self.out("| " + " | ".join([label, *cells, *ratios]) + " |")
        self.out()
        if note:
            self.out(note)
            self.out()


def fmt_num(digits=0, unit=""):
    def f(text):
        v = number(text)
        if v is None:
            return "-"
        return f"{v:,.{digits}f}{unit}"
    return f


def fmt_mb(text):
    v = number(text)
    return "-" if v is None else f"{v / 1024:,.0f} MB"


def fmt_text(text):
    return text if text else "-"


def write_markdown(report, results):
    m = report.meta
    r = report
    r.out("# Benchmark results")
    r.out()
    r.out(f"Written by `bench/run.sh` on {m.get('date', '?')} in {m.get('duration_s', '?')} s. "
          "Every figure below comes from this one run; ratios are dnsward's figure over the peer's.")
    r.out()
    r.out(f"- machine: {m.get('cpu', '?')}, {m.get('memory', '?')}, {m.get('os', '?')}")
    r.out(f"- **shared and busy**: other developers were compiling on the same machine; load average "
          f"at start {m.get('load_at_start', '?')}, at end {m.get('load_at_end', '?')} (1, 5, 15 min). "
          "Each resolver was pinned to CPU 0 and dnsperf to CPU 1, both at nice -10, but background "
          "work still took CPU from both: compare the resolvers within this run, not with other runs.")
    for res in r.resolvers:
        r.out(f"- {NAMES[res]}: {m.get('version_' + res, '?')}")
    r.out(f"- {m.get('nsd', 'nsd ?')}, dnsperf {m.get('dnsperf', '?')}")
    r.out(f"- settings: `{m.get('settings', '')}`")
    r.out(f"- hierarchy: {m.get('hierarchy', '')}")
    r.out()
    r.out("Lower is better for CPU per query, latency, load time and memory; higher for q/s. "
          "For those, a ratio below 1.00x means dnsward is better; for q/s, above 1.00x.")
    r.out()
    qps = m.get("settings", "")
    fixed = next((w.split("=")[1] for w in qps.split() if w.startswith("FIXED_QPS=")), "?")
    cold = next((w.split("=")[1] for w in qps.split() if w.startswith("COLD_QPS=")), "?")
    r.table("Headline", [
        (f"CPU per cache hit at {fixed} q/s", "hit", "cpu_us_per_query", fmt_num(2, " µs")),
        (f"CPU per blocked answer (1M list) at {fixed} q/s", "blocked", "cpu_us_per_query", fmt_num(2, " µs")),
        (f"CPU per query, 90/10 mix (1M list) at {fixed} q/s", "mix", "cpu_us_per_query", fmt_num(2, " µs")),
        (f"p99 latency, mix at {fixed} q/s", "mix", "fixed_p99_ms", fmt_num(1, " ms")),
        ("cold cache: resolutions per second", "cold-max", "qps", fmt_num(0)),
        (f"cold cache: average latency at {cold} q/s", "cold-fixed", "avg_ms", fmt_num(1, " ms")),
        ("1M-name list: load time", "list-1m", "load_s", fmt_num(2, " s")),
        ("1M-name list: RSS", "list-1m", "rss_kb", fmt_mb),
        ("1M-name list reload under load: queries lost", "reload", "lost", fmt_num(0)),
    ])
    write_targets(r)
    r.table(f"CPU per answered query at a fixed {fixed} q/s (µs of the resolver's utime+stime)", [
        ("cache hits", "hit", "cpu_us_per_query", fmt_num(2, " µs")),
        ("blocked names, 1M list", "blocked", "cpu_us_per_query", fmt_num(2, " µs")),
        ("90 % allowed / 10 % blocked, 1M list", "mix", "cpu_us_per_query", fmt_num(2, " µs")),
    ], "![CPU per query](cpu-per-query.png)")
    r.table(f"Latency at a fixed {fixed} q/s (from dnsperf -v)", [
        (f"{label} p{p}", w, f"fixed_p{k}_ms", fmt_num(3, " ms"))
        for w, label in (("hit", "cache hits"), ("blocked", "blocked"), ("mix", "mix"))
        for p, k in (("50", "50"), ("99", "99"), ("99.9", "999"))
    ] + [(f"{label}: answered q/s", w, "fixed_qps", fmt_num(0)) for w, label in
         (("hit", "cache hits"), ("blocked", "blocked"), ("mix", "mix"))],
        "![latency](latency.png)")
    r.table("Maximum q/s (dnsperf as fast as it can; on 2 CPUs dnsperf itself is the limit near 110k)", [
        ("cache hits, UDP", "hit", "max_qps", fmt_num(0)),
        ("blocked, 1M list, UDP", "blocked", "max_qps", fmt_num(0)),
        ("mix, 1M list, UDP", "mix", "max_qps", fmt_num(0)),
        ("cache hits, TCP", "tcp", "max_qps", fmt_num(0)),
        ("resolver CPU during cache hits, UDP", "hit", "max_srv_cpu_pct", fmt_num(0, " %")),
    ], "![maximum q/s](max-qps.png)")
    r.table("Cold cache: a fresh resolver, every question in a different zone", [
        ("questions sent (one per zone)", "cold-max", "questions", fmt_num(0)),
        ("resolution rate, as fast as answers come (q/s)", "cold-max", "qps", fmt_num(0)),
        ("  its average latency", "cold-max", "avg_ms", fmt_num(1, " ms")),
        ("  answered", "cold-max", "completed", fmt_num(0)),
        ("  response codes", "cold-max", "rcodes", fmt_text),
        (f"average latency at a fixed {cold} q/s", "cold-fixed", "avg_ms", fmt_num(2, " ms")),
        ("  p50", "cold-fixed", "p50_ms", fmt_num(2, " ms")),
        ("  p99", "cold-fixed", "p99_ms", fmt_num(2, " ms")),
        ("  answered", "cold-fixed", "completed", fmt_num(0)),
        ("  response codes", "cold-fixed", "rcodes", fmt_text),
        ("RSS after the run", "cold-fixed", "rss_kb_after", fmt_mb),
    ], "![cold cache](cold.png)")
    r.table("Encrypted DNS: cache hits over DoT and DoH (as fast as dnsperf goes; DoH with one client)", [
        ("DoT q/s", "dot", "max_qps", fmt_num(0)),
        ("  resolver CPU", "dot", "max_srv_cpu_pct", fmt_num(0, " %")),
        ("DoH q/s", "doh", "max_qps", fmt_num(0)),
        ("  resolver CPU", "doh", "max_srv_cpu_pct", fmt_num(0, " %")),
        ("UDP q/s, for comparison (from above)", "hit", "max_qps", fmt_num(0)),
    ], "PowerDNS Recursor and hickory-dns serve neither here.")
    r.table("DNSSEC: cold cache on a signed copy of the hierarchy, every resolver validating", [
        ("answer of the first question had AD (1 = validated)", "signed-cold-max", "validated", fmt_num(0)),
        ("resolution rate, signed and validating (q/s)", "signed-cold-max", "qps", fmt_num(0)),
        ("  unsigned, validation off (from above)", "cold-max", "qps", fmt_num(0)),
        ("CPU per resolution, signed and validating", "signed-cold-max", "cpu_us_per_query", fmt_num(1, " µs")),
        ("  unsigned, validation off (from above)", "cold-max", "cpu_us_per_query", fmt_num(1, " µs")),
        ("  answered", "signed-cold-max", "completed", fmt_num(0)),
        ("  response codes", "signed-cold-max", "rcodes", fmt_text),
        (f"average latency at a fixed {cold} q/s, signed", "signed-cold-fixed", "avg_ms", fmt_num(2, " ms")),
        ("  p99", "signed-cold-fixed", "p99_ms", fmt_num(2, " ms")),
    ], "Zones signed by `examples/sign_hierarchy.rs` (ECDSA P-256, NSEC, a KSK and a ZSK per zone); "
       "each resolver is given the signed root's DS as its only trust anchor.")
    r.table("Threat lists: time from start to the first blocked answer, and resident memory", [
        ("no list: time to the first answer", "list-0", "load_s", fmt_num(2, " s")),
        ("no list: RSS", "list-0", "rss_kb", fmt_mb),
        ("100k names: load time", "list-100k", "load_s", fmt_num(2, " s")),
        ("100k names: RSS", "list-100k", "rss_kb", fmt_mb),
        ("1M names: load time", "list-1m", "load_s", fmt_num(2, " s")),
        ("1M names: RSS", "list-1m", "rss_kb", fmt_mb),
        (f"real list ({m.get('real_list', '')}): load time", "list-real", "load_s", fmt_num(2, " s")),
        ("real list: RSS", "list-real", "rss_kb", fmt_mb),
    ], "![list load time and memory](lists.png)")
    r.table("Reload of the 1M list under a steady load", [
        ("steady load (q/s)", "reload", "qps", fmt_num(0)),
        ("queries sent during the run", "reload", "sent", fmt_num(0)),
        ("queries lost (dnsperf)", "reload", "lost", fmt_num(0)),
        ("answers per second over the run (= the load when nothing stalled)", "reload", "answered_qps", fmt_num(0)),
        ("run time", "reload", "runtime_s", fmt_num(1, " s")),
        ("reload command until done", "reload", "reload_s", fmt_num(2, " s")),
        ("RSS before the reload", "reload", "rss_kb_steady", fmt_mb),
        ("peak RSS during the run", "reload", "rss_kb_peak", fmt_mb),
    ], "dnsward: SIGHUP, done when `dnsward_policy_reloads` goes up; Unbound: `unbound-control "
       "auth_zone_reload`; PowerDNS: `rec_control reload-lua-config`; hickory-dns has no list reload.")
    if any(key[1] == "scaling" for key in r.figures):
        r.table(f"Scaling: {m.get('cpu', '?').split(' x ')[-1]} worker threads on every CPU, cache hits "
                "(dnsperf shares a CPU with the resolver here)", [
            ("max q/s, 1 worker on 1 CPU (from above)", "hit", "max_qps", fmt_num(0)),
            ("max q/s, all CPUs", "scaling", "max_qps", fmt_num(0)),
            (f"CPU per query at {fixed} q/s, 1 worker", "hit", "cpu_us_per_query", fmt_num(2, " µs")),
            (f"CPU per query at {fixed} q/s, all CPUs", "scaling", "cpu_us_per_query", fmt_num(2, " µs")),
            (f"p99 at {fixed} q/s, all CPUs", "scaling", "fixed_p99_ms", fmt_num(3, " ms")),
        ])
    if any(key[0] == "dnsward-log" for key in r.figures):
        write_querylog(r, m, fixed)
    with open(os.path.join(results, "RESULTS.md"), "w") as f:
        f.write("\n".join(r.lines).rstrip() + "\n")


def write_targets(r):
    """The targets of issues 16 and 10, each with dnsward's figure and the peer's."""
    rows = []

    def compare(label, workload, metric, peer, limit, unit):
        a, b = r.value("dnsward", workload, metric), r.value(peer, workload, metric)
        if a is None or b is None or not b:
            return
        rows.append((label, f"{a:g}{unit}", f"{NAMES[peer]} {b:g}{unit}", f"{a / b:.2f}x",
                     "met" if limit(a / b) else "**not met**"))

    for workload, what in (("hit", "cache hits"), ("blocked", "blocked"), ("mix", "mix")):
        compare(f"CPU per query, {what}: <= 0.75x Unbound", workload, "cpu_us_per_query", "unbound", lambda x: x <= 0.75, " µs")
        compare(f"CPU per query, {what}: <= 0.9x PowerDNS", workload, "cpu_us_per_query", "pdns", lambda x: x <= 0.9, " µs")
    compare("p99 at the fixed rate, mix: <= PowerDNS", "mix", "fixed_p99_ms", "pdns", lambda x: x <= 1.0, " ms")
    hit, blocked = r.value("dnsward", "hit", "fixed_p99_ms"), r.value("dnsward", "blocked", "fixed_p99_ms")
    if hit is not None and blocked is not None:
        rows.append(("p99 of a blocked answer vs a cache hit (dnsward): nothing added", f"{blocked:g} ms",
                     f"cache hit {hit:g} ms", f"{blocked / hit:.2f}x" if hit else "-",
                     "met" if blocked <= hit * 1.1 else "**not met**"))
    load, rss, base = (r.value("dnsward", w, k) for w, k in (("list-1m", "load_s"), ("list-1m", "rss_kb"), ("list-0", "rss_kb")))
    if load is not None:
        rows.append(("1M list load <= 1 s", f"{load:g} s", "", "", "met" if load <= 1 else "**not met**"))
    if rss is not None and base is not None:
        extra = (rss - base) / 1024
        rows.append(("1M list <= 64 MB above the empty list", f"{extra:.0f} MB", "", "", "met" if extra <= 64 else "**not met**"))
    lost, steady, peak = (r.value("dnsward", "reload", k) for k in ("lost", "rss_kb_steady", "rss_kb_peak"))
    if lost is not None:
        rows.append(("reload under load loses 0 queries", f"{lost:g} lost", "", "", "met" if lost == 0 else "**not met**"))
    if steady and peak is not None:
        rows.append(("reload peak RSS <= 1.5x steady", f"{peak / steady:.2f}x", "", "", "met" if peak <= 1.5 * steady else "**not met**"))
    compare("cold cache: resolution rate >= 1.0x Unbound (issue 10)", "cold-max", "qps", "unbound", lambda x: x >= 1.0, " q/s")
    compare("cold cache: average latency at the fixed rate <= 2x Unbound (issue 10)", "cold-fixed", "avg_ms", "unbound", lambda x: x <= 2.0, " ms")
    signed, unsigned = r.value("dnsward", "signed-cold-max", "cpu_us_per_query"), r.value("dnsward", "cold-max", "cpu_us_per_query")
    if signed is not None and unsigned:
        rows.append(("cold cache, signed and validating: CPU per resolution <= 1.5x unsigned (issue 11)",
                     f"{signed:g} µs", f"unsigned {unsigned:g} µs", f"{signed / unsigned:.2f}x",
                     "met" if signed <= 1.5 * unsigned else "**not met**"))
    compare("cold cache, signed and validating: CPU per resolution <= Unbound's (issue 11)", "signed-cold-max",
            "cpu_us_per_query", "unbound", lambda x: x <= 1.0, " µs")
    if not rows:
        return
    r.out("### Targets (issues 16, 10 and 11)")
    r.out()
    r.out("| target | dnsward | peer, same run | ratio | |")
    r.out("|---|---|---|---|---|")
    for row in rows:
        r.out("| " + " | ".join(row) + " |")
    r.out()


def write_querylog(r, m, fixed):
    """dnsward with its query log against dnsward without, both on cache hits."""
    r.out(f"### Query log cost: dnsward on cache hits, logging every query to {m.get('querylog_sinks', '?')}")
    r.out()
    r.out("| | logging off | logging on | on / off |")
    r.out("|---|---|---|---|")
    for label, metric, fmt in ((f"CPU per query at {fixed} q/s", "cpu_us_per_query", fmt_num(2, " µs")),
                               (f"p99 at {fixed} q/s", "fixed_p99_ms", fmt_num(3, " ms")),
                               ("max q/s", "max_qps", fmt_num(0))):
        off, on = r.get("dnsward", "hit", metric), r.get("dnsward-log", "querylog", metric)
        ratio = f"{number(on) / number(off):.2f}x" if number(on) is not None and number(off) else "-"
        r.out(f"| {label} | {fmt(off)} | {fmt(on)} | {ratio} |")
    r.out()


def plot(report, results):
    if shutil.which("gnuplot") is None:
        print("gnuplot not installed (apt-get install gnuplot-nox): no plots")
        return
    r = report
    tmp = tempfile.mkdtemp(prefix="dnsward-plots-")

    def bars(name, title, ylabel, rows, logscale=False):
        """rows: (label, workload, metric, scale); one bar per resolver in each group."""
        data = os.path.join(tmp, name + ".dat")
        lines = []
        for label, workload, metric, scale in rows:
            vals = [r.value(res, workload, metric) for res in r.resolvers]
            if any(v is not None for v in vals):
                lines.append('"%s" ' % label + " ".join("NaN" if v is None else f"{v * scale:g}" for v in vals))
        if not lines:
            print(f"{name}.png: no figures (workload not run)")
            return
        with open(data, "w") as f:
            f.write("\n".join(lines) + "\n")
        cols = ", ".join(f"'' using {i + 2}:xtic(1) title '{NAMES[res]}'" for i, res in enumerate(r.resolvers))
        script = "\n".join([
            "set terminal pngcairo size 900,480 font 'sans,10'",
            f"set output '{os.path.join(results, name + '.png')}'",
            f"set title '{title}'", f"set ylabel '{ylabel}'",
            "set style data histogram", "set style histogram cluster gap 1",
            "set style fill solid 0.8 border -1", "set boxwidth 0.9", "set key top left",
            "set grid ytics", "set yrange [0:*]" if not logscale else "set logscale y",
            f"plot '{data}' " + cols.replace("''", "", 1)])
        done = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True, timeout=60)
        if done.returncode != 0:
            print(f"{name}.png: gnuplot failed: {done.stderr.strip()}")

    bars("cpu-per-query", "CPU per answered query at a fixed rate (lower is better)", "µs", [
        ("cache hits", "hit", "cpu_us_per_query", 1), ("blocked (1M list)", "blocked", "cpu_us_per_query", 1),
        ("90/10 mix (1M list)", "mix", "cpu_us_per_query", 1)])
    bars("latency", "Latency at a fixed rate, 90/10 mix and cache hits (lower is better)", "ms", [
        ("hit p50", "hit", "fixed_p50_ms", 1), ("hit p99", "hit", "fixed_p99_ms", 1),
        ("hit p99.9", "hit", "fixed_p999_ms", 1), ("mix p50", "mix", "fixed_p50_ms", 1),
        ("mix p99", "mix", "fixed_p99_ms", 1), ("mix p99.9", "mix", "fixed_p999_ms", 1)], logscale=True)
    bars("max-qps", "Maximum q/s (higher is better; dnsperf-bound near 110k on 2 CPUs)", "thousand q/s", [
        ("cache hits", "hit", "max_qps", 1e-3), ("blocked", "blocked", "max_qps", 1e-3),
        ("mix", "mix", "max_qps", 1e-3), ("TCP cache hits", "tcp", "max_qps", 1e-3)])
    bars("cold", "Cold cache: resolution rate (q/s / 100) and average latency at a fixed rate (ms)", "", [
        ("max rate (q/s / 100)", "cold-max", "qps", 1e-2), ("avg latency, fixed rate (ms)", "cold-fixed", "avg_ms", 1)])
    bars("lists", "Threat lists: load time (s) and resident memory (MB / 100)", "", [
        ("100k: load s", "list-100k", "load_s", 1), ("1M: load s", "list-1m", "load_s", 1),
        ("100k: RSS MB/100", "list-100k", "rss_kb", 1 / 102400), ("1M: RSS MB/100", "list-1m", "rss_kb", 1 / 102400)])
    shutil.rmtree(tmp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--plots", default="1")
    args = ap.parse_args()
    figures, meta = load(args.results)
    report = Report(figures, meta)
    write_markdown(report, args.results)
    if args.plots == "1":
        plot(report, args.results)


if __name__ == "__main__":
    main()
