"""`make bench`: is `kubectl meshdoctor namespace sweep` fast and lean on a realistic mesh?

Why this exists: a sweep execs into every meshed pod and pulls megabytes of Envoy configuration from
each. Whether that is usable on a real namespace (tens to hundreds of pods, ~5 MB config_dumps, an
API server and kubelet adding latency to every exec) is a measurement, not a unit test, so it lives
here and never in tests/.

One run, one lab per pod count (real Envoys serving ~1000-cluster Istio-shaped config, an injected
per-exec latency standing in for API server + kubelet), and per repeat:
  (a) the plugin as a user runs it: `kubectl meshdoctor -n NS namespace sweep -o json` through the real
      kubectl, wall time and the plugin's peak RSS (VmHWM sampled from /proc; kubectl exec()s the
      plugin in place, so the pid is the plugin's; wait4's ru_maxrss bounds the whole child tree);
  (b) the baseline: bench/baseline.sh, one sequential `kubectl exec` per piece of evidence;
  (c) analysis alone: `kubectl meshdoctor analyze BUNDLE -o json` on a bundle saved by the sweep, and,
      per pod, reducing + checking a config_dump against a bare `json.loads` of the same bytes.
The lab API server's recorded requests show how polite the sweep was (lists per kind and namespace,
pagination, execs per pod, peak concurrent execs). Machines are shared and noisy: figures are
reported as ratios measured within one repeat, and as medians over the repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
KUBECTL = "/usr/bin/kubectl"
NAMESPACE = "bench"

# Targets from the issue.
SPEEDUP_TARGET = 10.0  # sweep of 60 pods at least 10x faster than the sequential loop
RSS_TARGET_MB = 300.0  # plugin peak RSS for 60 pods x ~5 MB dumps
RSS_FLAT_RATIO = 1.3  # peak RSS at the most pods / at the fewest: "flat as pods grow"
LINEAR_MARGINAL_RATIO = 1.3  # per-pod cost at the largest step / at the smallest step
ANALYSIS_RATIO_TARGET = 2.0  # reduce + check a pod's evidence / json.loads of its config_dump


# --- a child process, its wall time and peak memory -------------------------------------------------


@dataclass
class ChildRun:
    wall: float
    exit_code: int
    plugin_hwm_mb: float  # VmHWM of the pid after kubectl exec()ed the plugin into it
    tree_maxrss_mb: float  # wait4 ru_maxrss: max over the pid's images and its waited-for children
    image: str  # /proc/<pid>/comm as last seen: shows kubectl handed over to the plugin
    stdout: bytes


def run_child(argv: list[str], env: dict[str, str]) -> ChildRun:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, cwd=ROOT)
        peak = {"hwm_kb": 0, "comm": ""}
        done = threading.Event()

        def sample() -> None:
            status = Path(f"/proc/{proc.pid}/status")
            while not done.is_set():
                try:
                    for line in status.read_text().splitlines():
                        if line.startswith("Name:"):
                            peak["comm"] = line.split(None, 1)[1]
                        elif line.startswith("VmHWM:"):
                            peak["hwm_kb"] = max(peak["hwm_kb"], int(line.split()[1]))
                except (OSError, ValueError, IndexError):
                    pass
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode not in (0, 1):  # 1: findings reported, the command worked
        raise SystemExit(f"bench: {' '.join(argv)} exited {proc.returncode}:\n{stderr.decode(errors='replace')[-2000:]}")
    return ChildRun(wall, proc.returncode, peak["hwm_kb"] / 1024, usage.ru_maxrss / 1024, peak["comm"], stdout)


# --- the lab ----------------------------------------------------------------------------------------


class ExecMeter:
    """Wraps the lab API server's exec handler to see how many execs the client keeps in flight."""

    def __init__(self, handler):
        self._handler = handler
        self.in_flight = 0
        self.peak = 0

    async def __call__(self, *args, **kwargs):
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await self._handler(*args, **kwargs)
        finally:
            self.in_flight -= 1

    def reset(self) -> None:
        self.peak = self.in_flight


class PerPodEnvoyTime:
    """Gives every lab pod the config_dump timing of an Envoy of its own.

    The bench lab lets all pods share one real Envoy (60 Envoys of ~1000 clusters would not fit
    here). That Envoy builds each config_dump on its single main thread, ~0.3 s for 1000 clusters, so
    a concurrent sweep would queue behind it, which no cluster does: there every pod's Envoy answers
    on its own node at the same time. So the first answer for each config_dump request (path and
    mask) comes from the real Envoy and is timed; later pods get the same bytes after waiting as long
    (a sleep, not CPU). The bytes are real Envoy output either way, and the sequential baseline gets
    exactly the same treatment.
    """

    def __init__(self, handler):
        self._handler = handler
        self._answers: dict[tuple[str, ...], tuple[object, float]] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}
        self.replayed = 0

    async def __call__(self, namespace: str, pod: str, container: str, command: list[str]):
        if not any("config_dump" in arg for arg in command):
            return await self._handler(namespace, pod, container, command)
        key = (container, *command)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            if key not in self._answers:
                began = time.perf_counter()
                result = await self._handler(namespace, pod, container, command)
                self._answers[key] = (result, time.perf_counter() - began)
                return result
        result, seconds = self._answers[key]
        self.replayed += 1
        await asyncio.sleep(seconds)
        return result


def start_lab(pods: int, services: int, exec_latency: float):
    from kubectl_meshdoctor.lab.apiserver import AccessPolicy
    from kubectl_meshdoctor.lab.lab import Lab
    from kubectl_meshdoctor.lab.scenario import bench_scenario

    lab = Lab([bench_scenario(pods=pods, services=services, namespace=NAMESPACE)],
              policy=AccessPolicy(exec_latency=exec_latency))
    lab.start()
    meter = ExecMeter(PerPodEnvoyTime(lab.server.exec_handler))
    lab.server.exec_handler = meter
    return lab, meter


def plugin_env(lab) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["KUBECONFIG"] = str(lab.kubeconfig)
    env.pop("NO_COLOR", None)
    return env


# --- what the API server saw ------------------------------------------------------------------------


@dataclass
class Politeness:
    list_operations: dict[str, int]  # path -> lists started (first pages)
    list_pages: int
    lists_without_limit: int
    continued_pages: int
    execs: int
    logs: int
    gets: int
    exec_commands: set[tuple[str, ...]] = field(default_factory=set)
    peak_exec_in_flight: int = 0

    def to_dict(self, pods: int) -> dict:
        return {
            "listOperations": self.list_operations,
            "listOperationsMaxPerPath": max(self.list_operations.values(), default=0),
            "listPages": self.list_pages,
            "listPagesWithoutLimit": self.lists_without_limit,
            "continuedPages": self.continued_pages,
            "execs": self.execs,
            "execsPerPod": round(self.execs / pods, 2),
            "logs": self.logs,
            "gets": self.gets,
            "peakExecInFlight": self.peak_exec_in_flight,
        }


def politeness(requests: list) -> Politeness:
    operations: Counter[str] = Counter()
    pages = no_limit = continued = execs = logs = gets = 0
    commands: set[tuple[str, ...]] = set()
    for request in requests:
        query = urllib.parse.parse_qs(request.query, keep_blank_values=True)
        if request.verb == "list":
            pages += 1
            no_limit += "limit" not in query
            if query.get("continue"):
                continued += 1
            else:
                operations[request.path + (f"?labelSelector={query['labelSelector'][0]}"
                                           if query.get("labelSelector") else "")] += 1
        elif request.verb == "exec":
            execs += 1
            commands.add(tuple(query.get("command", [])))
        elif request.verb == "log":
            logs += 1
        elif request.verb == "get":
            gets += 1
    return Politeness(dict(operations), pages, no_limit, continued, execs, logs, gets, commands)


# --- one repeat -------------------------------------------------------------------------------------


def sweep(lab, meter: ExecMeter, pods: int, save: Path | None = None) -> tuple[ChildRun, Politeness, dict]:
    first = len(lab.requests)
    meter.reset()
    argv = [KUBECTL, "meshdoctor", "-n", NAMESPACE, "namespace", "sweep", "-o", "json"]
    if save is not None:
        argv += ["--save", str(save)]
    run = run_child(argv, plugin_env(lab))
    seen = politeness(lab.requests[first:])
    seen.peak_exec_in_flight = meter.peak
    report = json.loads(run.stdout)
    swept = [p for p in report.get("pods", []) if p["pod"].startswith(f"{NAMESPACE}/")]
    if len(swept) != pods or report.get("gaps"):
        raise SystemExit(f"bench: the sweep did not examine all {pods} pods cleanly: {len(swept)} pods, "
                         f"gaps {report.get('gaps')[:3]}")
    return run, seen, report


def baseline(lab, sample_pods: int) -> tuple[float, Politeness]:
    first = len(lab.requests)
    env = plugin_env(lab)
    began = time.perf_counter()
    done = subprocess.run(["bash", str(ROOT / "bench" / "baseline.sh"), NAMESPACE, str(sample_pods)],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"bench: baseline.sh failed: {done.stdout}{done.stderr[-2000:]}")
    return wall, politeness(lab.requests[first:])


def fetch_dump(lab) -> bytes:
    with urllib.request.urlopen(f"{lab.proxies[0].envoy.admin_url}/config_dump", timeout=30) as response:
        return response.read()


def best_of(fn, rounds: int) -> float:
    """The fastest of a few timings: the least disturbed by other processes on a shared machine."""
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def analysis_costs(bundle_dir: Path, dump: bytes, pods: int, rounds: int = 5) -> dict:
    from kubectl_meshdoctor.analysis import analyze
    from kubectl_meshdoctor.bundle import EvidenceBundle
    from kubectl_meshdoctor.envoy.config_dump import summarize_config_dump

    bundle = EvidenceBundle.load(bundle_dir)
    load = best_of(lambda: EvidenceBundle.load(bundle_dir), 2)
    checks = best_of(lambda: analyze(bundle), 2)
    # The yardstick is the bare parse at its fastest: with the GC paused too, as the reducer does.
    gc.disable()
    try:
        parse = min(best_of(lambda: json.loads(dump), rounds), best_of(lambda: json.loads(dump.decode()), rounds))
    finally:
        gc.enable()
    reduce = best_of(lambda: summarize_config_dump(dump), rounds)
    per_pod = reduce + checks / pods
    return {"dumpBytes": len(dump), "jsonLoads": parse, "reduce": reduce, "checksAllPods": checks,
            "checksPerPod": checks / pods, "bundleLoad": load, "reduceOverParse": reduce / parse,
            "analysisOverParse": per_pod / parse}


def one_repeat(lab, meter: ExecMeter, pods: int, baseline_pods: int, bundle_dir: Path) -> dict:
    run, seen, _ = sweep(lab, meter, pods)
    base_wall, base_seen = baseline(lab, baseline_pods)
    # A sequential loop costs the same for every pod; only its one `kubectl get pods` is shared.
    base_full = base_wall * pods / baseline_pods
    offline = run_child([KUBECTL, "meshdoctor", "analyze", str(bundle_dir), "-o", "json"], plugin_env(lab))
    costs = analysis_costs(bundle_dir, fetch_dump(lab), pods)
    same = seen.exec_commands == base_seen.exec_commands
    return {
        "sweepSeconds": run.wall,
        "pluginPeakRssMB": run.plugin_hwm_mb,
        "treeMaxRssMB": run.tree_maxrss_mb,
        "pluginImage": run.image,
        "baselineSeconds": base_full,
        "baselineSampleSeconds": base_wall,
        "baselineSamplePods": baseline_pods,
        "baselineSameCommands": same,
        "speedup": base_full / run.wall,
        "analyzeBundleSeconds": offline.wall,
        "analyzeOverSweep": offline.wall / run.wall,
        "perPod": costs,
        "analysisOverParse": costs["analysisOverParse"],
        "politeness": seen.to_dict(pods),
        "baselineExecsPerPod": round(base_seen.execs / baseline_pods, 2),
    }


# --- summary ----------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def summarize(pods: int, repeats: list[dict]) -> dict:
    keys = ("sweepSeconds", "pluginPeakRssMB", "treeMaxRssMB", "baselineSeconds", "speedup",
            "analyzeBundleSeconds", "analyzeOverSweep", "analysisOverParse")
    out = {k: median([r[k] for r in repeats]) for k in keys}
    out["reduceOverParse"] = median([r["perPod"]["reduceOverParse"] for r in repeats])
    out["sweepSecondsPerPod"] = out["sweepSeconds"] / pods
    out["baselineSecondsPerPod"] = out["baselineSeconds"] / pods
    out["pods"] = pods
    out["politeness"] = repeats[-1]["politeness"]
    out["baselineSameCommands"] = all(r["baselineSameCommands"] for r in repeats)
    return out


def verdicts(summaries: dict[int, dict], concurrency: int) -> dict[str, dict]:
    sizes = sorted(summaries)
    ref = summaries[60] if 60 in summaries else summaries[sizes[len(sizes) // 2]]
    result: dict[str, dict] = {}
    result["speedup>=10x"] = {"value": ref["speedup"], "met": ref["speedup"] >= SPEEDUP_TARGET,
                              "at": ref["pods"]}
    result["rss<=300MB"] = {"value": ref["pluginPeakRssMB"], "met": ref["pluginPeakRssMB"] <= RSS_TARGET_MB,
                            "at": ref["pods"]}
    result["analysis<=2x parse"] = {"value": ref["analysisOverParse"],
                                    "met": ref["analysisOverParse"] <= ANALYSIS_RATIO_TARGET, "at": ref["pods"]}
    polite = ref["politeness"]
    result["polite"] = {
        "value": f"lists/path max {polite['listOperationsMaxPerPath']}, pages w/o limit "
                 f"{polite['listPagesWithoutLimit']}, peak execs in flight {polite['peakExecInFlight']}",
        "met": polite["listOperationsMaxPerPath"] == 1 and polite["listPagesWithoutLimit"] == 0
        and polite["peakExecInFlight"] <= concurrency and polite["gets"] <= 10,
        "at": ref["pods"]}
    if len(sizes) >= 3:
        t = [summaries[n]["sweepSeconds"] for n in sizes]
        first = (t[1] - t[0]) / (sizes[1] - sizes[0])
        last = (t[-1] - t[-2]) / (sizes[-1] - sizes[-2])
        result["linear"] = {"value": f"per-pod {first:.3f}s -> {last:.3f}s ({last / first:.2f}x), "
                                     f"R^2 {r_squared(sizes, t):.3f}",
                            "met": last <= LINEAR_MARGINAL_RATIO * first and r_squared(sizes, t) >= 0.98,
                            "at": sizes}
    if len(sizes) >= 2:
        low, high = summaries[sizes[0]]["pluginPeakRssMB"], summaries[sizes[-1]]["pluginPeakRssMB"]
        result["rss flat"] = {"value": f"{low:.0f} -> {high:.0f} MB ({high / low:.2f}x)",
                              "met": high / low <= RSS_FLAT_RATIO, "at": sizes}
    return result


def r_squared(xs: list[int], ys: list[float]) -> float:
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sxx
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - intercept - slope * x) ** 2 for x, y in zip(xs, ys))
    return 1.0 - residual / total if total else 1.0


def print_table(summaries: dict[int, dict], checks: dict[str, dict]) -> None:
    rows = [
        ("pods", "{:d}", "pods"),
        ("sweep wall s", "{:.2f}", "sweepSeconds"),
        ("sweep s/pod", "{:.3f}", "sweepSecondsPerPod"),
        ("baseline wall s", "{:.1f}", "baselineSeconds"),
        ("speedup (baseline/sweep)", "{:.1f}x", "speedup"),
        ("plugin peak RSS MB", "{:.0f}", "pluginPeakRssMB"),
        ("child tree maxrss MB", "{:.0f}", "treeMaxRssMB"),
        ("analyze bundle s", "{:.2f}", "analyzeBundleSeconds"),
        ("analyze / sweep", "{:.2f}", "analyzeOverSweep"),
        ("reduce dump / json.loads", "{:.2f}x", "reduceOverParse"),
        ("reduce+check / json.loads", "{:.2f}x", "analysisOverParse"),
    ]
    sizes = sorted(summaries)
    print()
    print(f"{'median of repeats':28}" + "".join(f"{n:>12}" for n in sizes))
    for label, fmt, key in rows:
        print(f"{label:28}" + "".join(f"{fmt.format(summaries[n][key]):>12}" for n in sizes))
    print()
    print("API requests during one sweep (lab API server):")
    for n in sizes:
        p = summaries[n]["politeness"]
        print(f"  {n} pods: {sum(p['listOperations'].values())} list operations "
              f"({p['listPages']} pages, {p['continuedPages']} continued, {p['listPagesWithoutLimit']} without limit), "
              f"max {p['listOperationsMaxPerPath']} per kind+namespace; {p['gets']} gets; "
              f"{p['execs']} execs ({p['execsPerPod']}/pod), {p['logs']} logs; peak {p['peakExecInFlight']} execs in flight")
        for path, count in sorted(p["listOperations"].items()):
            print(f"      {count} x list {path}")
    print()
    for name, verdict in checks.items():
        value = verdict["value"]
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        print(f"  [{'MET ' if verdict['met'] else 'MISS'}] {name:22} {shown}  (pods {verdict['at']})")


def machine() -> dict:
    from kubectl_meshdoctor.lab.envoy import envoy_binary

    envoy = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True).stdout.strip()
    kubectl = subprocess.run([KUBECTL, "version", "--client", "-o", "json"], capture_output=True, text=True)
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "envoy": envoy.split("version:")[-1].strip() if envoy else "unknown",
        "kubectl": json.loads(kubectl.stdout or "{}").get("clientVersion", {}).get("gitVersion", "unknown"),
        "loadAverageAtStart": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", default="60", help="comma-separated pod counts, e.g. 20,60,200 (default 60)")
    parser.add_argument("--repeat", type=int, default=3, help="repeats per pod count; medians are reported")
    parser.add_argument("--exec-latency", type=float, default=0.150, help="seconds added to every exec")
    parser.add_argument("--services", type=int, default=1000, help="Services (= outbound clusters) per Envoy")
    parser.add_argument("--baseline-pods", type=int, default=6,
                        help="pods the sequential loop is timed on, scaled to all pods (0: all)")
    parser.add_argument("--concurrency", type=int, default=16, help="the plugin's default, to judge politeness")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args(argv)
    sizes = sorted({int(p) for p in args.pods.split(",") if p.strip()})
    if not sizes or min(sizes) < 1 or args.repeat < 1:
        parser.error("--pods takes positive counts and --repeat at least 1")
    if shutil.which("kubectl-meshdoctor", path=str(VENV_BIN)) is None:
        parser.error(f"kubectl-meshdoctor is not installed in {VENV_BIN} (make test installs it)")

    settings = {"pods": sizes, "repeat": args.repeat, "execLatencySeconds": args.exec_latency,
                "servicesPerEnvoy": args.services, "baselinePods": args.baseline_pods,
                "namespace": NAMESPACE, "kubectl": KUBECTL}
    print(f"bench: pods {sizes}, repeat {args.repeat}, exec latency {args.exec_latency * 1000:.0f} ms, "
          f"{args.services} services per Envoy", flush=True)
    summaries: dict[int, dict] = {}
    raw: dict[int, list[dict]] = {}
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="meshdoctor-bench-") as tmp:
        for pods in sizes:
            lab, meter = start_lab(pods, args.services, args.exec_latency)
            try:
                print(f"  lab of {pods} pods up in {lab.startup_seconds:.1f}s", flush=True)
                sample = pods if args.baseline_pods <= 0 else min(pods, args.baseline_pods)
                raw[pods] = []
                bundle_dir = Path(tmp) / f"bundle-{pods}"
                sweep(lab, meter, pods, save=bundle_dir)  # untimed: writing a bundle is not part of (a)
                for index in range(args.repeat):
                    result = one_repeat(lab, meter, pods, sample, bundle_dir)
                    raw[pods].append(result)
                    print(f"  {pods} pods, repeat {index + 1}: sweep {result['sweepSeconds']:.2f}s, "
                          f"RSS {result['pluginPeakRssMB']:.0f} MB, baseline {result['baselineSeconds']:.1f}s "
                          f"({sample} pods timed), speedup {result['speedup']:.1f}x, "
                          f"analysis/parse {result['analysisOverParse']:.2f}x", flush=True)
            finally:
                lab.stop()
            summaries[pods] = summarize(pods, raw[pods])
    checks = verdicts(summaries, args.concurrency)
    print_table(summaries, checks)
    results = {"settings": settings, "machine": machine(), "elapsedSeconds": time.monotonic() - began,
               "summary": {str(n): s for n, s in summaries.items()}, "repeats": {str(n): r for n, r in raw.items()},
               "targets": checks}
    Path(args.out).write_text(json.dumps(results, indent=2, default=list) + "\n")
    print(f"\nresults written to {args.out} ({time.monotonic() - began:.0f}s)")
    return 0 if all(v["met"] for v in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
