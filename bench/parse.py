#!/usr/bin/env python3
"""Turns dnsperf output and /proc readings into figures, and figures into bench/RESULTS.md.

  parse.py perf OUTPUT_FILE CPU0 CPU1 CLK_TCK T0 T1   -> JSON: qps, completed, lost, mean latency,
                                                   server CPU us/query, server CPU busy share
  parse.py latency OUTPUT_FILE                         -> JSON: p99_ms, mean_ms (from dnsperf -v)
  parse.py report RESULTS.jsonl SIZE DURATION     -> markdown
"""
import json
import re
import sys


def num(pattern, text, default=0.0):
    m = re.search(pattern, text)
    return float(m.group(1)) if m else default


def perf(out, c0, c1, clk, t0, t1):
    completed = num(r"Queries completed:\s+(\d+)", out)
    cpu_s = (int(c1) - int(c0)) / int(clk)
    wall = float(t1) - float(t0)
    return {
        "qps": round(num(r"Queries per second:\s+([\d.]+)", out)),
        "completed": int(completed),
        "lost": int(num(r"Queries lost:\s+(\d+)", out)),
        "mean_ms": round(num(r"Average Latency \(s\):\s+([\d.]+)", out) * 1000, 3),
        "cpu_us_per_query": round(cpu_s / completed * 1e6, 2) if completed else None,
        "server_busy": round(cpu_s / wall, 2) if wall > 0 else None,
    }


def latency(out):
    lat = sorted(float(line.split()[-1]) for line in out.splitlines()
                 if line.startswith(">") and re.match(r"^[\d.]+$", line.split()[-1]))
    if not lat:
        return {"p99_ms": None, "mean_ms": None}
    return {"p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 3),
            "mean_ms": round(sum(lat) / len(lat) * 1000, 3)}


def report(path, size, duration):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    servers = [r["server"] for r in rows if r["set"] == "process"]
    perf_rows = {(r["server"], r["set"]): r for r in rows if r["set"] in ("blocked", "allowed", "mix")}
    proc = {r["server"]: r for r in rows if r["set"] == "process"}
    reload = {r["server"]: r for r in rows if r["set"] == "reload"}
    out = [f"# Benchmark results\n",
           f"{int(size):,}-domain feed; {duration} s per run; server pinned to CPU 0, dnsperf (1 thread) "
           f"on CPU 1; upstream nsd on 127.0.0.1. CPU/query = server user+sys time / queries answered. "
           f"`busy` < 0.95 means the server's core had idle time (client-bound run).\n",
           "| server | set | QPS | lost | mean ms | CPU us/query | busy | p99 ms @ half load |",
           "|---|---|---:|---:|---:|---:|---:|---:|"]
    for s in servers:
        for qset in ("blocked", "allowed", "mix"):
            r = perf_rows.get((s, qset))
            if r:
                out.append(f"| {s} | {qset} | {r['qps']:,} | {r['lost']} | {r['mean_ms']} | "
                           f"{r['cpu_us_per_query']} | {r['server_busy']} | {r.get('half_p99_ms')} |")
    out += ["", "| server | ready (s) | RSS after load (MiB) | peak RSS (MiB) | answers checked |",
            "|---|---:|---:|---:|---|"]
    for s in servers:
        p = proc[s]
        out.append(f"| {s} | {float(p['ready_s']):.2f} | {p['rss_kb'] / 1024:.0f} | "
                   f"{p['peak_rss_kb'] / 1024:.0f} | {p['answers']} |")
    if "iocsink" in reload:
        r = reload["iocsink"]
        rr = r["reload_run"]
        out += ["", f"Reload under load (SIGHUP during a {duration} s mix run): {rr['completed']:,} answered, "
                    f"{rr['lost']} lost; peak RSS {r['peak_rss_kb'] / 1024:.0f} MiB "
                    f"(steady {proc['iocsink']['rss_kb'] / 1024:.0f} MiB)."]
    if "iocsink" in proc:
        out += ["", "## Ratios (iocsink / peer; below 1 is better for CPU and memory, above 1 for QPS)", "",
                "| peer | set | CPU/query | QPS | ready | RSS |", "|---|---|---:|---:|---:|---:|"]
        for s in servers:
            if s == "iocsink":
                continue
            for qset in ("blocked", "allowed", "mix"):
                a, b = perf_rows.get(("iocsink", qset)), perf_rows.get((s, qset))
                if not a or not b or not b["cpu_us_per_query"] or not b["qps"]:
                    continue
                ready = rss = ""
                if qset == "blocked" and s != "floor":
                    ready = f"{float(proc['iocsink']['ready_s']) / max(float(proc[s]['ready_s']), 1e-3):.2f}"
                    rss = f"{proc['iocsink']['rss_kb'] / proc[s]['rss_kb']:.2f}"
                out.append(f"| {s} | {qset} | {a['cpu_us_per_query'] / b['cpu_us_per_query']:.2f} | "
                           f"{a['qps'] / b['qps']:.2f} | {ready} | {rss} |")
    print("\n".join(out))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "perf":
        print(json.dumps(perf(open(args[0]).read(), *args[1:])))
    elif cmd == "latency":
        print(json.dumps(latency(open(args[0]).read())))
    elif cmd == "report":
        report(*args)
    else:
        sys.exit(__doc__)
