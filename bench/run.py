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
sys.path.insert(0, str(ROOT))
from kubectl_meshdoctor.collect import DEFAULT_CONCURRENCY  # noqa: E402
VENV_BIN = Path(sys.executable).parent
KUBECTL = "/usr/bin/kubectl"
NAMESPACE = "bench"

# Targets from the issues (9: 15x, 200 MB, 1.5x the floors).
SPEEDUP_TARGET = 15.0  # sweep of 60 pods at least 15x faster than the sequential loop fetching the same
RSS_TARGET_MB = 200.0  # peak RSS of the process tree (kubectl -> plugin), at 60 and at 200 pods
FLOOR_RATIO_TARGET = 1.5  # sweep wall / exec-latency floor (execs x latency / concurrency)
POD_RATIO_TARGET = 1.5  # `pod NAME` wall / (its slowest single exec + the API lists)
RSS_FLAT_RATIO = 1.3  # peak RSS at the most pods / at the fewest: "flat as pods grow"
LINEAR_MARGINAL_RATIO = 1.3  # per-pod cost at the largest step / at the smallest step
ANALYSIS_RATIO_TARGET = 2.0  # reduce + check a pod's evidence / json.loads of its config_dump


# --- a child process, its wall time and peak memory -------------------------------------------------


@dataclass
class ChildRun:
    wall: float
    exit_code: int
    plugin_hwm_mb: float  # VmHWM of the pid after kubectl exec()ed the plugin into it
    # The tree: the plugin's VmHWM plus each of its children's (the reducer helpers), an upper bound of
    # their sum at any one time; at least GNU time's %M, which is the largest single process of the tree.
    tree_maxrss_mb: float
    image: str  # /proc/<pid>/comm as last seen: shows kubectl handed over to the plugin
    stdout: bytes


GNU_TIME = "/usr/bin/time"


def run_child(argv: list[str], env: dict[str, str]) -> ChildRun:
    """Run ``argv`` under GNU time, which reports the peak RSS of the tree it started.

    Why not wait4 on our own child: Python starts children with vfork, so until exec the child shares
    this process's memory, and Linux carries that mm's high-water mark into the child's ru_maxrss at
    exec. The bench process holds the lab and parsed dumps (300+ MB after a repeat), which then showed
    up as the plugin's peak. GNU time forks from a process of a few MB, so its %M is the child's own.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        began = time.perf_counter()
        proc = subprocess.Popen([GNU_TIME, "-f", "%M", "-o", rss.name, *argv], env=env, stdout=out, stderr=err,
                                cwd=ROOT)
        peak = {"hwm_kb": 0, "comm": ""}
        helpers_kb: dict[str, int] = {}  # child pid -> its VmHWM as last seen
        done = threading.Event()

        def helper_peaks(plugin: str) -> None:
            for children in Path(f"/proc/{plugin}/task").glob("*/children"):
                try:
                    pids = children.read_text().split()
                except OSError:
                    continue
                for pid in pids:
                    try:
                        text = Path(f"/proc/{pid}/status").read_text()
                    except OSError:
                        continue
                    for line in text.splitlines():
                        if line.startswith("VmHWM:"):
                            helpers_kb[pid] = max(helpers_kb.get(pid, 0), int(line.split()[1]))

        def sample() -> None:
            status = None
            while not done.is_set() and status is None:  # the pid GNU time started: kubectl, then the plugin
                children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                try:
                    pids = children.read_text().split()
                except OSError:
                    pids = []
                if pids:
                    status = Path(f"/proc/{pids[0]}/status")
                else:
                    done.wait(0.005)
            while status is not None and not done.is_set():
                try:
                    for line in status.read_text().splitlines():
                        if line.startswith("Name:"):
                            peak["comm"] = line.split(None, 1)[1]
                        elif line.startswith("VmHWM:"):
                            peak["hwm_kb"] = max(peak["hwm_kb"], int(line.split()[1]))
                    helper_peaks(status.parent.name)
                except (OSError, ValueError, IndexError):
                    pass
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, _ = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - began
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        report = rss.read().split()
        if report and report[0] == "Command":  # "Command exited with non-zero status N", then %M
            report = report[-1:]
        largest_kb = int(report[-1]) if report and report[-1].isdigit() else 0
        tree_kb = max(largest_kb, peak["hwm_kb"] + sum(helpers_kb.values()))
    if proc.returncode not in (0, 1):  # 1: findings reported, the command worked
        raise SystemExit(f"bench: {' '.join(argv)} exited {proc.returncode}:\n{stderr.decode(errors='replace')[-2000:]}")
    return ChildRun(wall, proc.returncode, peak["hwm_kb"] / 1024, tree_kb / 1024, peak["comm"], stdout)


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
        if isinstance(self._handler, PerPodEnvoyTime):
            self._handler.envoy_seconds = 0.0

    @property
    def envoy_seconds(self) -> float:
        return getattr(self._handler, "envoy_seconds", 0.0)


BENCH_SERVICES = 1300  # outbound clusters per bench sidecar: a 6.6 MB whole config_dump
RECORDINGS = 3  # times each Envoy admin answer is timed before it is replayed


class PerPodEnvoyTime:
    """Gives every lab pod the admin timing of an Envoy of its own.

    The bench lab lets all pods share one real Envoy (60 Envoys of ~1300 clusters would not fit
    here). That Envoy answers admin requests on its single main thread, ~0.2 s for a config_dump part
    of 1300 clusters, so a concurrent sweep would queue behind it, which no cluster does: there every
    pod's Envoy answers on its own node at the same time. So the first answer for each admin request
    (config_dump parts, /certs, /stats, /server_info, the readiness probe) comes from the real Envoy and
    is timed alone (one recording at a time: the time of an idle Envoy, not of a queue; the quickest
    of three); later pods get
    the same bytes after waiting as long (a sleep, not CPU). One pod's admin requests still wait for
    each other during that time, as they would on its own Envoy's main thread; the readiness probe does
    not: it reaches pilot-agent through Envoy's 15021 listener (a worker thread), and pilot-agent stops
    asking Envoy's admin once the proxy was ready (the lab's agent does the same). The bytes are real Envoy output either
    way, and the sequential baseline gets exactly the same treatment. ``envoy_seconds`` adds up the Envoy
    time every answer took, for the round-trip floor.
    """

    def __init__(self, handler):
        self._handler = handler
        self._answers: dict[tuple[str, ...], tuple[object, float]] = {}
        self._recording = asyncio.Lock()  # one recording at a time: Envoy's own time, no queueing
        self._envoys: dict[tuple[str, str], asyncio.Lock] = {}  # one main thread per pod's Envoy
        self.replayed = 0
        self.envoy_seconds = 0.0

    async def __call__(self, namespace: str, pod: str, container: str, command: list[str]):
        if container != "istio-proxy" or tuple(command) == ("cat", "/etc/resolv.conf"):
            return await self._handler(namespace, pod, container, command)  # not an Envoy admin request
        key = (container, *command)
        if key not in self._answers:
            async with self._recording:
                if key not in self._answers:
                    # The quickest of three: one slow answer (a scheduler hiccup) would be replayed 60 times.
                    times = []
                    for _ in range(RECORDINGS):
                        began = time.perf_counter()
                        result = await self._handler(namespace, pod, container, command)
                        times.append(time.perf_counter() - began)
                    self._answers[key] = (result, min(times))
                    self.envoy_seconds += self._answers[key][1]
                    return result
        result, seconds = self._answers[key]
        self.replayed += 1
        self.envoy_seconds += seconds
        if "healthz/ready" in command:  # not the admin thread (see above)
            await asyncio.sleep(seconds)
            return result
        async with self._envoys.setdefault((namespace, pod), asyncio.Lock()):
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
    envoy_seconds: float = 0.0  # the Envoy time of every admin answer (see PerPodEnvoyTime)

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


def sweep(lab, meter: ExecMeter, pods: int, save: Path | None = None, full_dump: bool = False,
          concurrency: int | None = None) -> tuple[ChildRun, Politeness, dict]:
    first = len(lab.requests)
    meter.reset()
    argv = [KUBECTL, "meshdoctor", "-n", NAMESPACE, "namespace", "sweep", "-o", "json"]
    if save is not None:
        argv += ["--save", str(save)]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    env = plugin_env(lab)
    if full_dump:  # the whole config_dump in one exec, for the one-dump-or-parts comparison
        env["MESHDOCTOR_CONFIG_DUMP"] = "full"
    run = run_child(argv, env)
    seen = politeness(lab.requests[first:])
    seen.peak_exec_in_flight = meter.peak
    seen.envoy_seconds = meter.envoy_seconds
    report = json.loads(run.stdout)
    swept = [p for p in report.get("pods", []) if p["pod"].startswith(f"{NAMESPACE}/")]
    if len(swept) != pods or report.get("gaps"):
        raise SystemExit(f"bench: the sweep did not examine all {pods} pods cleanly: {len(swept)} pods, "
                         f"gaps {report.get('gaps')[:3]}")
    return run, seen, report


def baseline_commands() -> list[tuple[str, ...]]:
    """What the sweep runs in each healthy pod: the plugin's own command table without the fallbacks
    (the agent's readiness port, the whole dump, /certs) and the follow-ups of failing requests."""
    from kubectl_meshdoctor.collect.proxy import ADMIN_COMMANDS, CONFIG_PART_COMMANDS, READY, RESOLV_CONF

    return [READY, *ADMIN_COMMANDS.values(), *CONFIG_PART_COMMANDS, RESOLV_CONF]


def baseline(lab, sample_pods: int, commands_file: Path) -> tuple[float, Politeness]:
    first = len(lab.requests)
    env = plugin_env(lab)
    began = time.perf_counter()
    done = subprocess.run(["bash", str(ROOT / "bench" / "baseline.sh"), NAMESPACE, str(sample_pods),
                           str(commands_file)], env=env, capture_output=True, text=True)
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


def pod_command(lab, meter: ExecMeter) -> dict:
    """`pod NAME` on one bench pod against its floor: its slowest single exec + the API lists it needs.

    Each exec the plugin ran for that pod is timed alone as `kubectl exec` (kubectl start-up
    included, once); the lists as `kubectl get` of the same kinds (its start-ups taken out but one).
    """
    name = next(p for p in lab_pods(lab))
    first = len(lab.requests)
    env = plugin_env(lab)
    run = run_child([KUBECTL, "meshdoctor", "-n", NAMESPACE, "pod", name, "-o", "json"], env)
    execs = [tuple(urllib.parse.parse_qs(r.query).get("command", [])) for r in lab.requests[first:] if r.verb == "exec"]

    def timed(argv: list[str]) -> float:
        began = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True)
        return time.perf_counter() - began

    startup = min(timed([KUBECTL, "version", "--client"]) for _ in range(3))
    exec_walls = {" ".join(argv[:4]): timed([KUBECTL, "exec", "-n", NAMESPACE, name, "-c", "istio-proxy", "--", *argv])
                  for argv in execs}
    lists = [timed([KUBECTL, "get", "-n", NAMESPACE, "-o", "name",
                    "pods,services,endpoints,endpointslices.discovery.k8s.io,destinationrules.networking.istio.io,"
                    "virtualservices.networking.istio.io,peerauthentications.security.istio.io"]),
             timed([KUBECTL, "get", "-n", "istio-system", "-o", "name",
                    "services,endpoints,destinationrules.networking.istio.io,virtualservices.networking.istio.io,"
                    "peerauthentications.security.istio.io"]),
             timed([KUBECTL, "get", "-n", "kube-system", "-o", "name", "services", "-l", "k8s-app=kube-dns"])]
    slowest = max(exec_walls.values())
    api_lists = sum(lists) - len(lists) * startup
    floor = slowest + api_lists
    return {"podSeconds": run.wall, "podExecs": len(execs), "slowestExecSeconds": slowest,
            "slowestExec": max(exec_walls, key=exec_walls.get), "apiListsSeconds": api_lists,
            "kubectlStartupSeconds": startup, "podFloorSeconds": floor, "podOverFloor": run.wall / floor,
            "podPeakRssMB": run.tree_maxrss_mb}


def lab_pods(lab) -> list[str]:
    return sorted(o["metadata"]["name"] for e in lab.expanded for o in e.objects
                  if o.get("kind") == "Pod" and o["metadata"].get("namespace") == NAMESPACE)


def one_repeat(lab, meter: ExecMeter, pods: int, baseline_pods: int, bundle_dir: Path, commands_file: Path,
               latency: float, concurrency: int, compare_full: bool) -> dict:
    run, seen, _ = sweep(lab, meter, pods, concurrency=concurrency)
    full = sweep(lab, meter, pods, full_dump=True, concurrency=concurrency)[0] if compare_full else None
    base_wall, base_seen = baseline(lab, baseline_pods, commands_file)
    # A sequential loop costs the same for every pod; only its one `kubectl get pods` is shared.
    base_full = base_wall * pods / baseline_pods
    offline = run_child([KUBECTL, "meshdoctor", "analyze", str(bundle_dir), "-o", "json"], plugin_env(lab))
    costs = analysis_costs(bundle_dir, fetch_dump(lab), pods)
    same = seen.exec_commands == base_seen.exec_commands
    floor = seen.execs * latency / concurrency  # every exec's latency, spread over the execs in flight
    # Each exec also waits for its Envoy to build the answer (~0.2 s for a 1300-cluster config_dump
    # part): the floor of the round trips, were the plugin's own work free.
    round_trips = (seen.execs * latency + seen.envoy_seconds) / concurrency
    return {
        "sweepSeconds": run.wall,
        "execLatencyFloorSeconds": floor,
        "sweepOverFloor": run.wall / floor,
        "envoyAnswerSeconds": seen.envoy_seconds,
        "roundTripFloorSeconds": round_trips,
        "sweepOverRoundTripFloor": run.wall / round_trips,
        "fullDumpSweepSeconds": full.wall if full else None,
        "fullDumpTreeMaxRssMB": full.tree_maxrss_mb if full else None,
        "fullDumpOverParts": full.wall / run.wall if full else None,
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
            "analyzeBundleSeconds", "analyzeOverSweep", "analysisOverParse", "execLatencyFloorSeconds",
            "sweepOverFloor", "roundTripFloorSeconds", "sweepOverRoundTripFloor", "fullDumpSweepSeconds",
            "fullDumpTreeMaxRssMB", "fullDumpOverParts")
    out = {k: median([r[k] for r in repeats]) if all(r.get(k) is not None for r in repeats) else None
           for k in keys}
    out["reduceOverParse"] = median([r["perPod"]["reduceOverParse"] for r in repeats])
    out["sweepSecondsPerPod"] = out["sweepSeconds"] / pods
    out["baselineSecondsPerPod"] = out["baselineSeconds"] / pods
    out["pods"] = pods
    out["politeness"] = repeats[-1]["politeness"]
    out["baselineSameCommands"] = all(r["baselineSameCommands"] for r in repeats)
    return out


def verdicts(summaries: dict[int, dict], concurrency: int, pod: dict | None) -> dict[str, dict]:
    sizes = sorted(summaries)
    ref = summaries[60] if 60 in summaries else summaries[sizes[len(sizes) // 2]]
    result: dict[str, dict] = {}
    result["speedup>=15x"] = {"value": ref["speedup"], "met": ref["speedup"] >= SPEEDUP_TARGET,
                              "at": ref["pods"]}
    result["sweep<=1.5x floor"] = {
        "value": f"{ref['sweepSeconds']:.2f}s / floor {ref['execLatencyFloorSeconds']:.2f}s = {ref['sweepOverFloor']:.2f}x",
        "met": ref["sweepOverFloor"] <= FLOOR_RATIO_TARGET, "at": ref["pods"]}
    for n in sizes:
        if n in (60, 200) or n == sizes[-1]:
            result[f"tree rss<=200MB @{n}"] = {"value": summaries[n]["treeMaxRssMB"],
                                               "met": summaries[n]["treeMaxRssMB"] <= RSS_TARGET_MB, "at": n}
    if pod is not None:
        result["pod<=1.5x floor"] = {
            "value": f"{pod['podSeconds']:.2f}s / ({pod['slowestExecSeconds']:.2f}s exec + "
                     f"{pod['apiListsSeconds']:.2f}s lists) = {pod['podOverFloor']:.2f}x",
            "met": pod["podOverFloor"] <= POD_RATIO_TARGET, "at": 1}
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
        low, high = summaries[sizes[0]]["treeMaxRssMB"], summaries[sizes[-1]]["treeMaxRssMB"]
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
        ("exec-latency floor s", "{:.2f}", "execLatencyFloorSeconds"),
        ("sweep / floor", "{:.2f}x", "sweepOverFloor"),
        ("round-trip floor s (+ Envoy's answer time)", "{:.2f}", "roundTripFloorSeconds"),
        ("sweep / round-trip floor", "{:.2f}x", "sweepOverRoundTripFloor"),
        ("whole-dump sweep s", "{:.2f}", "fullDumpSweepSeconds"),
        ("whole-dump / parts", "{:.2f}x", "fullDumpOverParts"),
        ("whole-dump tree maxrss MB", "{:.0f}", "fullDumpTreeMaxRssMB"),
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
        shown = ["-" if summaries[n][key] is None else fmt.format(summaries[n][key]) for n in sizes]
        print(f"{label:28}" + "".join(f"{value:>12}" for value in shown))
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
    # 1300: the 6.5 MB whole dump, now that each TLS context carries Istio's SDS config source
    # (1500 services gave 6.35 MB with name-only secret references, 7.56 MB with SDS ones).
    parser.add_argument("--services", type=int, default=BENCH_SERVICES,
                        help=f"Services (= outbound clusters) per Envoy; {BENCH_SERVICES} give a 6.6 MB config_dump")
    parser.add_argument("--baseline-pods", type=int, default=6,
                        help="pods the sequential loop is timed on, scaled to all pods (0: all)")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY,
                        help="the sweep's --concurrency (default: the plugin's default); the floor uses it")
    parser.add_argument("--no-compare-full", action="store_true",
                        help="skip the whole-config_dump sweep (MESHDOCTOR_CONFIG_DUMP=full) of each repeat")
    parser.add_argument("--no-pod", action="store_true", help="skip timing `pod NAME` against its floor")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results.json"))
    args = parser.parse_args(argv)
    sizes = sorted({int(p) for p in args.pods.split(",") if p.strip()})
    if not sizes or min(sizes) < 1 or args.repeat < 1:
        parser.error("--pods takes positive counts and --repeat at least 1")
    if shutil.which("kubectl-meshdoctor", path=str(VENV_BIN)) is None:
        parser.error(f"kubectl-meshdoctor is not installed in {VENV_BIN} (make test installs it)")

    settings = {"pods": sizes, "repeat": args.repeat, "execLatencySeconds": args.exec_latency,
                "servicesPerEnvoy": args.services, "baselinePods": args.baseline_pods,
                "concurrency": args.concurrency, "namespace": NAMESPACE, "kubectl": KUBECTL}
    pod_result = None
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
                commands_file = Path(tmp) / "commands.tsv"
                commands_file.write_text("".join("\t".join(argv) + "\n" for argv in baseline_commands()))
                sweep(lab, meter, pods, save=bundle_dir, concurrency=args.concurrency)  # untimed: writes a bundle
                if pod_result is None and not args.no_pod and (pods == 60 or pods == sizes[-1]):
                    pod_result = pod_command(lab, meter)
                    print(f"  pod NAME: {pod_result['podSeconds']:.2f}s, slowest exec "
                          f"{pod_result['slowestExecSeconds']:.2f}s + lists {pod_result['apiListsSeconds']:.2f}s "
                          f"-> {pod_result['podOverFloor']:.2f}x", flush=True)
                for index in range(args.repeat):
                    result = one_repeat(lab, meter, pods, sample, bundle_dir, commands_file, args.exec_latency,
                                        args.concurrency, not args.no_compare_full)
                    result["loadAverage"] = os.getloadavg()
                    raw[pods].append(result)
                    print(f"  {pods} pods, repeat {index + 1}: sweep {result['sweepSeconds']:.2f}s "
                          f"(floor {result['execLatencyFloorSeconds']:.2f}s, with Envoy's answer time "
                          f"{result['roundTripFloorSeconds']:.2f}s), tree RSS {result['treeMaxRssMB']:.0f} MB, "
                          f"whole-dump sweep {result['fullDumpSweepSeconds'] or 0:.2f}s, "
                          f"baseline {result['baselineSeconds']:.1f}s ({sample} pods timed), "
                          f"speedup {result['speedup']:.1f}x, load {result['loadAverage'][0]:.1f}", flush=True)
            finally:
                lab.stop()
            summaries[pods] = summarize(pods, raw[pods])
    checks = verdicts(summaries, args.concurrency, pod_result)
    print_table(summaries, checks)
    results = {"settings": settings, "machine": machine(), "elapsedSeconds": time.monotonic() - began,
               "summary": {str(n): s for n, s in summaries.items()}, "repeats": {str(n): r for n, r in raw.items()},
               "podCommand": pod_result, "loadAverageAtEnd": os.getloadavg(),
               "targets": checks}
    Path(args.out).write_text(json.dumps(results, indent=2, default=list) + "\n")
    print(f"\nresults written to {args.out} ({time.monotonic() - began:.0f}s)")
    return 0 if all(v["met"] for v in checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
