#!/usr/bin/env python3
"""Checks of the benchmark's helpers: python3 bench/test_generators.py (about 20 s).

The generators must be deterministic (figures from two machines compare only on the same
hierarchy), a threat list must never block a name the hierarchy serves as allowed, and the
dnsperf parser must read what dnsperf 2.10 prints.
"""
import hashlib
import os
import subprocess
import sys
import tempfile
import unittest

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
import dnsperf_stats  # noqa: E402

DNSPERF_OUTPUT = """DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 5304 -d q.txt -l 2 -Q 1000 -v
> NOERROR www.a.com A 0.000400
> NOERROR www.b.com A 0.000100
> T www.c.com A
> NXDOMAIN www.d.com A 0.000300
> NOERROR www.e.com A 0.000200
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         5
  Queries completed:    4 (80.00%)
  Queries lost:         1 (20.00%)

  Response codes:       NOERROR 3 (75.00%), NXDOMAIN 1 (25.00%)
  Average packet size:  request 29, response 45
  Run time (s):         2.000131
  Queries per second:   1.999869

  Average Latency (s):  0.000250 (min 0.000100, max 0.000400)
  Latency StdDev (s):   0.000129
"""


def tree_digest(root):
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:  # the NSD configs name the output directory
                digest.update(f.read().replace(root.encode(), b"OUT"))
    return digest.hexdigest()


def generate(out, zones=1000):
    subprocess.run([sys.executable, os.path.join(BENCH, "gen_hierarchy.py"), "--out", out,
                    "--run", "/nonexistent/run", "--zones", str(zones)], check=True, capture_output=True)


class DnsperfStats(unittest.TestCase):
    def test_reads_summary_and_latencies(self):
        with tempfile.NamedTemporaryFile("w", suffix=".out", delete=False) as f:
            f.write(DNSPERF_OUTPUT)
        try:
            got = dnsperf_stats.parse(f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(got["sent"], 5)
        self.assertEqual(got["completed"], 4)
        self.assertEqual(got["lost"], 1)
        self.assertEqual(got["rcodes"], "NOERROR:3,NXDOMAIN:1")
        self.assertEqual(got["runtime_s"], 2.0)
        self.assertEqual(got["avg_ms"], 0.25)
        # sorted latencies 0.1 0.2 0.3 0.4 ms; the timed-out query has none
        self.assertEqual(got["p50_ms"], 0.3)
        self.assertEqual(got["p99_ms"], 0.4)


class Generators(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.hier = os.path.join(cls.tmp.name, "h")
        generate(cls.hier)
        cls.lists = os.path.join(cls.tmp.name, "l")
        subprocess.run([sys.executable, os.path.join(BENCH, "gen_lists.py"), "--out", cls.lists,
                        "--hierarchy", cls.hier, "--sizes", "0,100k"], check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def read(self, *parts):
        with open(os.path.join(*parts)) as f:
            return [line.split()[0] for line in f if line.strip()]

    def test_hierarchy_is_deterministic(self):
        again = os.path.join(self.tmp.name, "again")
        generate(again)
        self.assertEqual(tree_digest(self.hier), tree_digest(again))

    def test_hierarchy_spreads_zones_over_both_provider_servers(self):
        for part in ("auth-a", "auth-b"):
            with open(os.path.join(self.hier, f"nsd-{part}.conf")) as f:
                self.assertGreater(f.read().count("zone:"), 300, part)

    def test_cold_queries_name_one_zone_each(self):
        zones = [q.split(".", 1)[1] for q in self.read(self.hier, "queries", "cold.txt")]
        self.assertEqual(len(zones), 1000)
        self.assertEqual(len(set(zones)), 1000)

    def test_lists_never_cover_an_allowed_name(self):
        listed = set(self.read(self.lists, "domains-100k.txt"))
        self.assertEqual(len(listed), 100_000)
        for name in self.read(self.hier, "queries", "allowed.txt"):
            labels = name.split(".")
            for i in range(len(labels)):
                self.assertNotIn(".".join(labels[i:]), listed, name)

    def test_lists_start_with_the_bad_zones(self):
        bad = self.read(self.hier, "names", "bad-zones.txt")
        self.assertEqual(self.read(self.lists, "domains-100k.txt")[: len(bad)], bad)

    def test_rpz_blocks_each_name_and_its_subdomains(self):
        with open(os.path.join(self.lists, "rpz-100k.zone")) as f:
            records = [line.split() for line in f if "CNAME" in line]
        self.assertEqual(len(records), 200_000)
        first = self.read(self.lists, "domains-100k.txt")[0]
        self.assertIn([first, "CNAME", "."], records)
        self.assertIn(["*." + first, "CNAME", "."], records)


if __name__ == "__main__":
    unittest.main()
