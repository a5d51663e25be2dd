"""A small cluster for testing the lab's API server: a few pods, services and Istio objects, an exec
handler that echoes its command (or fails, or prints a lot, on request) and a log handler."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from kubectl_meshdoctor.lab.apiserver import ExecResult, ObjectStore

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def pod(namespace: str, name: str, labels: dict[str, str], *, node: str = "node-1", phase: str = "Running",
        containers: tuple[str, ...] = ("app", "istio-proxy")) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": c, "image": f"example/{c}:1"} for c in containers]},
        "status": {"phase": phase, "podIP": "10.0.0.1"},
    }


def service(namespace: str, name: str, app: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
        "spec": {"selector": {"app": app}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }


VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
    "metadata": {"name": "web-routes", "namespace": "shop"},
    "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": "web", "subset": "v1"}}]}]},
}
DESTINATION_RULE = {
    "apiVersion": "networking.istio.io/v1beta1", "kind": "DestinationRule",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"host": "web", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]},
}

SHOP_PODS = ("db-1", "web-1", "web-2")


def lab_objects() -> list[dict]:
    return [
        pod("shop", "web-1", {"app": "web", "version": "v1"}),
        pod("shop", "web-2", {"app": "web", "version": "v2"}, node="node-2"),
        pod("shop", "db-1", {"app": "db", "tier": "data"}, phase="Pending"),
        pod("tools", "toolbox", {"app": "toolbox"}, containers=("toolbox",)),
        pod("tools", "finished-job", {"app": "job"}, phase="Succeeded", containers=("job",)),
        service("shop", "web", "web"),
        service("shop", "db", "db"),
    ]


def lab_store(*, istio_installed: bool = True) -> ObjectStore:
    objects = lab_objects()
    if istio_installed:
        objects += [VIRTUAL_SERVICE, DESTINATION_RULE]
    return ObjectStore(objects, istio_installed=istio_installed)


def big_output(size: int) -> bytes:
    """Deterministic, non-repeating-per-64KiB bytes, so a lost or reordered frame is detected."""
    line_count = size // 16 + 1
    return b"".join(b"%015d\n" % i for i in range(line_count))[:size]


async def echo_exec(namespace: str, pod_name: str, container: str, command: list[str]) -> ExecResult:
    """`exit N` exits N; `big N` prints N bytes; anything else is echoed with its address."""
    if command[:1] == ["exit"]:
        return ExecResult(int(command[1]), stderr=b"exiting as asked\n")
    if command[:1] == ["big"]:
        return ExecResult(0, stdout=big_output(int(command[1])))
    return ExecResult(0, stdout=f"{namespace}/{pod_name}/{container}: {' '.join(command)}\n".encode(),
                      stderr=b"to stderr\n")


async def numbered_log(namespace: str, pod_name: str, container: str, since_seconds: int | None,
                       tail_lines: int | None) -> str:
    lines = [f"{namespace}/{pod_name}/{container} line {i}" for i in range(1, 11)]
    if tail_lines is not None:
        lines = lines[-tail_lines:] if tail_lines else []
    if since_seconds is not None:
        lines.append(f"since={since_seconds}")
    return "".join(line + "\n" for line in lines)


def run_kubectl(kubeconfig: Path, cache_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real kubectl; its discovery cache is private to the test so no other run leaks into it."""
    return subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "--cache-dir", str(cache_dir), *args],
                          capture_output=True, text=True, timeout=120)
