#!/usr/bin/env python3
"""Reads the output of one dnsperf run and prints its figures as "key=value" lines.

  dnsperf_stats.py FILE

Keys: sent, completed, lost, interrupted, runtime_s, qps, avg_ms, rcodes (e.g. NOERROR:1000,NXDOMAIN:20) and, when the
run used -v (dnsperf 2.10 has no latency histogram, so every answer is listed), p50_ms,
p99_ms and p999_ms computed from the per-answer latencies ("> RCODE name type SECONDS").
"""
import sys


def percentile(sorted_values, fraction):
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


def parse(path):
    figures = {}
    latencies = []
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("> "):
                fields = line.split()
                if fields[1] != "T":  # T: timed out, no latency
                    try:
                        latencies.append(float(fields[-1]))
                    except ValueError:
                        pass
                continue
            text = line.strip()
            key, _, value = text.partition(":")
            words = value.split()
            if key == "Queries sent" and words:
                figures["sent"] = int(words[0])
            elif key == "Queries completed" and words:
                figures["completed"] = int(words[0])
            elif key == "Queries lost" and words:
                figures["lost"] = int(words[0])
            elif key == "Queries interrupted" and words:
                figures["interrupted"] = int(words[0])
            elif key == "Run time (s)" and words:
                figures["runtime_s"] = round(float(words[0]), 3)
            elif key == "Queries per second" and words:
                figures["qps"] = round(float(words[0]), 1)
            elif key == "Response codes":
                # "NOERROR 1000 (98.04%), NXDOMAIN 20 (1.96%)"
                parts = [p.split() for p in value.split(",") if p.strip()]
                figures["rcodes"] = ",".join(f"{p[0]}:{p[1]}" for p in parts if len(p) >= 2)
            elif key.startswith("Average Latency (s)") and words:
                figures["avg_ms"] = round(float(words[0]) * 1000, 3)
    if latencies:
        latencies.sort()
        for name, fraction in (("p50_ms", 0.5), ("p99_ms", 0.99), ("p999_ms", 0.999)):
            figures[name] = round(percentile(latencies, fraction) * 1000, 3)
    return figures


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: dnsperf_stats.py FILE")
    for key, value in parse(sys.argv[1]).items():
        print(f"{key}={value}")


if __name__ == "__main__":
    main()
