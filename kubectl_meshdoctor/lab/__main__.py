"""`python -m kubectl_meshdoctor.lab`: run the local mesh lab by hand (for `make demo` and exploring).

    python -m kubectl_meshdoctor.lab list
    python -m kubectl_meshdoctor.lab up --scenario bookinfo-healthy [--scenario ...] [--kubeconfig PATH]
    python -m kubectl_meshdoctor.lab up --all
    python -m kubectl_meshdoctor.lab up --bench 60 [--bench-services 1300] [--exec-latency 0.15]
    python -m kubectl_meshdoctor.lab demo [-- EXTRA SWEEP FLAGS]

`up` keeps the lab running until Ctrl-C, then stops every process it started. `demo` loads every
seed scenario, runs `kubectl meshdoctor namespace sweep -A` against it (through the real kubectl when
it is installed), prints what a user would see, and stops the lab; then one multi-cluster story
(`lab/multicluster.py`: three contexts, one of them unreachable).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import threading

from kubectl_meshdoctor.errors import MeshDoctorError


def _list() -> int:
    from kubectl_meshdoctor.lab.scenario import load_scenario, scenario_names

    for name in scenario_names():
        description = " ".join(str(load_scenario(name).get("description", "")).split())
        print(f"{name:28} {description}")
    return 0


def _up(args: argparse.Namespace) -> int:
    from kubectl_meshdoctor.lab.apiserver import AccessPolicy
    from kubectl_meshdoctor.lab.lab import Lab
    from kubectl_meshdoctor.lab.scenario import bench_scenario, scenario_names

    scenarios: list = list(scenario_names()) if args.all else list(args.scenario or [])
    if args.bench:
        scenarios.append(bench_scenario(pods=args.bench, services=args.bench_services))
    if not scenarios:
        scenarios = ["bookinfo-healthy"]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    policy = AccessPolicy(exec_latency=args.exec_latency) if args.exec_latency > 0 else None
    with Lab(scenarios, policy=policy) as lab:
        if args.kubeconfig:
            shutil.copyfile(lab.kubeconfig, args.kubeconfig)
        kubeconfig = args.kubeconfig or str(lab.kubeconfig)
        print(f"lab up in {lab.startup_seconds:.1f}s: {len(lab.proxies)} Envoy(s), "
              f"scenarios: {', '.join(lab.scenario_expectations())}")
        print(f"kubeconfig: {kubeconfig}")
        print(f"export KUBECONFIG={kubeconfig}")
        print("Ctrl-C to stop.", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    print("lab stopped")
    return 0


def sweep_command(extra: list[str]) -> list[str]:
    """`kubectl meshdoctor namespace sweep -A` through the real kubectl when the plugin is on PATH."""
    kubectl = shutil.which("kubectl")
    if kubectl and shutil.which("kubectl-meshdoctor"):
        return [kubectl, "meshdoctor", "namespace", "sweep", "-A", *extra]
    return [sys.executable, "-m", "kubectl_meshdoctor", "namespace", "sweep", "-A", *extra]


def _demo(extra: list[str]) -> int:
    from kubectl_meshdoctor.lab.lab import Lab
    from kubectl_meshdoctor.lab.scenario import scenario_names

    names = list(scenario_names())
    print(f"starting the mesh lab: {len(names)} scenarios ({', '.join(names)})", flush=True)
    with Lab(names) as lab:
        command = sweep_command(extra)
        shown = " ".join(["kubectl", *command[1:]] if command[0].endswith("kubectl") else command)
        print(f"lab up in {lab.startup_seconds:.1f}s with {len(lab.proxies)} real Envoy(s)", flush=True)
        print(f"$ KUBECONFIG={lab.kubeconfig} {shown}\n", flush=True)
        env = {**os.environ, "KUBECONFIG": str(lab.kubeconfig)}
        status = subprocess.run(command, env=env, stdin=subprocess.DEVNULL).returncode
    print(f"\n(sweep exit status {status}: 1 means error findings were reported; lab stopped)")
    if status in (0, 1):
        from kubectl_meshdoctor.lab.multicluster import demo_story

        # The same sweep without -A: the story appends its own scope and --context.
        story = [a for a in command if a != "-A"]
        status = demo_story(story, " ".join(["kubectl", *story[1:]] if story[0].endswith("kubectl") else story))
        print(f"\n(multi-cluster sweep exit status {status}; labs stopped)")
    # The demo works when the sweeps report findings (1) or none (0); anything else is a failure.
    return 0 if status in (0, 1) else status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubectl_meshdoctor.lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the packaged scenarios")
    up = sub.add_parser("up", help="start the lab and keep it running until Ctrl-C")
    up.add_argument("--scenario", action="append", help="scenario name or YAML path (repeatable)")
    up.add_argument("--all", action="store_true", help="load every packaged scenario")
    up.add_argument("--bench", type=int, metavar="PODS", help="add a generated scenario of PODS meshed pods")
    up.add_argument("--bench-services", type=int, default=1300, metavar="N",
                    help="Services (outbound clusters) per --bench sidecar; 1300 give a 6.6 MB config_dump")
    up.add_argument("--exec-latency", type=float, default=0.0, metavar="SECONDS",
                    help="added to every exec, like an API server and kubelet round trip (the bench uses 0.15)")
    up.add_argument("--kubeconfig", help="also copy the kubeconfig to this path")
    demo = sub.add_parser("demo", help="load every seed scenario, sweep it with the plugin, stop the lab")
    demo.add_argument("extra", nargs=argparse.REMAINDER, help="extra flags for the sweep (after --)")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return _demo([a for a in args.extra if a != "--"])
        return _list() if args.command == "list" else _up(args)
    except MeshDoctorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
