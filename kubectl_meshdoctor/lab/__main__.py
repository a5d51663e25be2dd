"""`python -m kubectl_meshdoctor.lab`: run the local mesh lab by hand (for `make demo` and exploring).

    python -m kubectl_meshdoctor.lab list
    python -m kubectl_meshdoctor.lab up --scenario bookinfo-healthy [--scenario ...] [--kubeconfig PATH]
    python -m kubectl_meshdoctor.lab up --all
    python -m kubectl_meshdoctor.lab up --bench 60

`up` keeps the lab running until Ctrl-C, then stops every process it started.
"""

from __future__ import annotations

import argparse
import shutil
import signal
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
    from kubectl_meshdoctor.lab.lab import Lab
    from kubectl_meshdoctor.lab.scenario import bench_scenario, scenario_names

    scenarios: list = list(scenario_names()) if args.all else list(args.scenario or [])
    if args.bench:
        scenarios.append(bench_scenario(pods=args.bench))
    if not scenarios:
        scenarios = ["bookinfo-healthy"]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Lab(scenarios) as lab:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubectl_meshdoctor.lab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the packaged scenarios")
    up = sub.add_parser("up", help="start the lab and keep it running until Ctrl-C")
    up.add_argument("--scenario", action="append", help="scenario name or YAML path (repeatable)")
    up.add_argument("--all", action="store_true", help="load every packaged scenario")
    up.add_argument("--bench", type=int, metavar="PODS", help="add a generated scenario of PODS meshed pods")
    up.add_argument("--kubeconfig", help="also copy the kubeconfig to this path")
    args = parser.parse_args(argv)
    try:
        return _list() if args.command == "list" else _up(args)
    except MeshDoctorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
