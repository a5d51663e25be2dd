"""A/B of sweep variants on one bench lab, interleaved, with the CPU each process spent.

Why: on a shared 2-core machine the load moves between minutes, so two variants are only comparable
when they alternate on the same lab. A variant is a name and extra environment for the plugin (e.g.
PYTHONPATH to a sitecustomize that hides a module). Prints per run: wall, the plugin's CPU (user+sys
of the kubectl child tree), the tree's peak RSS, the lab process's CPU (API server + exec relay; the bench itself idles)
and the 1-minute load average.

    .venv/bin/python bench/ab.py --pods 60 --rounds 3 A= B=PYTHONPATH=/tmp/x
    .venv/bin/python bench/ab.py --pods 60 --py-spy /tmp/sweep.txt A=
    PYSPY_FLAGS=--subprocesses .venv/bin/python bench/ab.py --py-spy /tmp/all.txt A=   (every thread, helpers too)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402


def one(lab, env: dict[str, str], concurrency: int, py_spy: str | None) -> dict:
    argv = [bench.KUBECTL, "meshdoctor", "-n", bench.NAMESPACE, "namespace", "sweep", "-o", "json",
            "--concurrency", str(concurrency)]
    if py_spy:
        argv = [str(bench.VENV_BIN / "py-spy"), "record", *os.environ.get("PYSPY_FLAGS", "--gil").split(), "--nonblocking", "--format", "raw", "-r", "100",
                "-o", py_spy, "--", *argv]
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before_self = time.process_time()
    if py_spy:
        began = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True)
        wall, rss_mb = time.perf_counter() - began, 0.0
        if done.returncode not in (0, 1, 2):
            raise SystemExit(f"sweep failed ({done.returncode}): {done.stderr[-2000:]!r}")
    else:  # the tree's peak RSS, reducer helpers included (see run.run_child)
        run = bench.run_child(argv, env)
        wall, rss_mb = run.wall, run.tree_maxrss_mb
    lab_cpu = time.process_time() - before_self
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    plugin_cpu = (after.ru_utime - before_children.ru_utime) + (after.ru_stime - before_children.ru_stime)
    return {"wall": wall, "plugin_cpu": plugin_cpu, "lab_cpu": lab_cpu, "rss_mb": rss_mb, "load": os.getloadavg()[0]}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=60)
    parser.add_argument("--services", type=int, default=bench.BENCH_SERVICES)
    parser.add_argument("--exec-latency", type=float, default=0.15)
    parser.add_argument("--concurrency", type=int, default=bench.DEFAULT_CONCURRENCY)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--py-spy", help="record the first variant's sweep with py-spy into this file")
    parser.add_argument("variants", nargs="+", help="NAME=[VAR=VALUE[,VAR=VALUE...]]")
    args = parser.parse_args()
    lab, meter = bench.start_lab(args.pods, args.services, args.exec_latency)
    try:
        base = bench.plugin_env(lab)
        variants = {}
        for spec in args.variants:
            name, _, assignments = spec.partition("=")
            env = dict(base)
            for item in filter(None, assignments.split(",")):
                key, _, value = item.partition("=")
                env[key] = value
            variants[name] = env
        one(lab, base, args.concurrency, None)  # warm: every config_dump answer recorded once
        if args.py_spy:
            print(one(lab, next(iter(variants.values())), args.concurrency, args.py_spy), flush=True)
            return 0
        results: dict[str, list[dict]] = {name: [] for name in variants}
        for round_ in range(args.rounds):
            for name, env in variants.items():
                result = one(lab, env, args.concurrency, None)
                results[name].append(result)
                print(f"round {round_ + 1} {name:12} wall {result['wall']:5.2f} s  plugin cpu "
                      f"{result['plugin_cpu']:5.2f} s  lab cpu {result['lab_cpu']:5.2f} s  tree rss {result['rss_mb']:4.0f} MB  "
                      f"load {result['load']:.1f}",
                      flush=True)
        floor = args.pods * 8 * args.exec_latency / args.concurrency
        for name, runs in results.items():
            wall = statistics.median(r["wall"] for r in runs)
            print(f"median {name:12} wall {wall:5.2f} s ({wall / floor:.2f}x floor {floor:.2f} s)  plugin cpu "
                  f"{statistics.median(r['plugin_cpu'] for r in runs):5.2f} s  lab cpu "
                  f"{statistics.median(r['lab_cpu'] for r in runs):5.2f} s  tree rss "
                  f"{statistics.median(r['rss_mb'] for r in runs):4.0f} MB")
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
