#!/usr/bin/env python3
"""Measure how long `kubectl meshdoctor version` and `kubectl meshdoctor checks` take to start.

Two installs, each run through the real kubectl with a python3 that has nothing installed into it:
* the console script of a `uv tool install` (what pipx and uv users get), and
* the linux/amd64 krew archive (built here into a temporary directory unless --archive names one),
  installed as krew installs it; its first run, which lays the PEX out under PEX_ROOT, is timed apart.

Every run is a fresh process (the OS file cache is warm, and the .pyc files exist after the first run),
timed by hyperfine when it is on PATH, else by a loop here. Shared machines are noisy: the CPU time
(user + sys) is the steadier figure. No network use except the dependency downloads of the install.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from fresh_host import KUBECTL, bare_python, host_env  # noqa: E402  (the install tests' host, shared)

COMMANDS = ("version", "checks")


def install_console_script(work: Path, python_bin: Path) -> Path:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        raise SystemExit("error: uv is needed (pip install uv, or the dev extra)")
    env = host_env(work / "home", python_bin)
    env.update(UV_TOOL_DIR=str(work / "uv-tools"), UV_TOOL_BIN_DIR=str(work / "uv-bin"), UV_PYTHON_DOWNLOADS="never",
               UV_CACHE_DIR=str(Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "uv"))
    subprocess.run([uv, "tool", "install", "--quiet", "--python", str(python_bin / "python3"), str(REPO)], env=env,
                   check=True)
    return work / "uv-bin"


def install_archive(work: Path, archive: Path | None) -> Path:
    if archive is None:
        sys.path.insert(0, str(REPO / "scripts"))
        import build_dist

        linux_amd64 = next(t for t in build_dist.TARGETS if t.name == "linux-amd64")
        archive = build_dist.build(work / "dist", None, targets=(linux_amd64,))[linux_amd64]
    store, bin_dir = work / "krew-store", work / "krew-bin"
    store.mkdir()
    bin_dir.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(store, filter="data")
    (bin_dir / "kubectl-meshdoctor").symlink_to(store / "kubectl-meshdoctor")
    return bin_dir


def time_runs(env: dict[str, str], command: str, runs: int, export: Path) -> dict[str, float]:
    """Mean, median and min wall time, and mean CPU time, in seconds."""
    argv = [str(KUBECTL), "meshdoctor", command]
    if shutil.which("hyperfine"):
        subprocess.run(["hyperfine", "--shell=none", "--warmup", "3", "--runs", str(runs), "--style", "none",
                        "--export-json", str(export), " ".join(argv)], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        result = json.loads(export.read_text())["results"][0]
        return {"mean": result["mean"], "median": result["median"], "min": result["min"],
                "cpu": result["user"] + result["system"]}
    walls, cpus = [], []
    for _ in range(runs + 3):
        before, started = os.times(), time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        after = os.times()
        walls.append(time.perf_counter() - started)
        cpus.append(after.children_user - before.children_user + after.children_system - before.children_system)
    walls, cpus = walls[3:], cpus[3:]
    return {"mean": statistics.fmean(walls), "median": statistics.median(walls), "min": min(walls),
            "cpu": statistics.fmean(cpus)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--archive", type=Path, help="a linux/amd64 krew archive (default: build one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="meshdoctor-startup-") as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        python_bin = bare_python(work / "python")
        installs = {
            "console script (uv tool install)": install_console_script(work, python_bin),
            "krew archive (linux/amd64 PEX)": install_archive(work, args.archive),
        }
        krew_env = host_env(work / "home", installs["krew archive (linux/amd64 PEX)"], python_bin)
        started = time.perf_counter()
        subprocess.run([str(KUBECTL), "meshdoctor", "version"], env=krew_env, check=True, stdout=subprocess.DEVNULL)
        first_run = time.perf_counter() - started

        print("| install | command | mean | median | min | CPU (user+sys) |\n|---|---|---|---|---|---|")
        for label, bin_dir in installs.items():
            env = host_env(work / "home", bin_dir, python_bin)
            for command in COMMANDS:
                figures = time_runs(env, command, args.runs, work / "hyperfine.json")
                print(f"| {label} | `kubectl meshdoctor {command}` | {figures['mean']:.3f} s | {figures['median']:.3f} s "
                      f"| {figures['min']:.3f} s | {figures['cpu']:.3f} s |")
        print(f"\nkrew archive, first run after install (lays the PEX out under ~/.cache/pex): {first_run:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
