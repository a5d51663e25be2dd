"""Reducing the sweep's large answers in helper processes, so JSON decoding is not held to one core.

Why: a sweep's own CPU is mostly decoding and walking config_dump answers (~23 ms for a 2.8 MB
clusters part of 1500 clusters, of which the reduced result is 120 KB), and in one process all of it
runs under one GIL, next to the exec streams' TLS and WebSocket work. Measured on the bench lab (60
pods, bench/RESULTS.md): the plugin's process sat at one full core while the round trips would have
allowed the sweep to finish in half the time. A helper process reduces an answer on another core and
sends back only the reduced value (pickled: ~1 ms to load for the clusters part).

How: ``ReducerProcesses`` starts a few helpers (``python -m kubectl_meshdoctor.collect.reducers``)
that import only the reducers. A worker thread with a large answer borrows a free helper, writes the
reducer (a module-level function or a ConfigPart, pickled by reference) and the raw bytes to its
stdin, and reads the result from its stdout. A ParseError comes back as its message and is raised
here, so gaps read exactly as when reducing in process. Small answers, and every answer when no helper
runs (one CPU, a helper that died, MESHDOCTOR_REDUCERS=0), are reduced in this process, one at a
time (``reduce_inline``), as before. The helpers read nothing but what this process sends them, and
exit when their stdin closes.
"""

from __future__ import annotations

import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from kubectl_meshdoctor.errors import ParseError

ENVIRONMENT_VARIABLE = "MESHDOCTOR_REDUCERS"  # how many helpers; 0: reduce everything in process
MAX_HELPERS = 4
# Below this an answer is reduced in process: shipping it costs more than decoding it here.
OFFLOAD_MIN_BYTES = 64 * 1024
STOP_GRACE_SECONDS = 2.0
# One exchange (send an answer, get its reduction) takes ~25 ms for 2.8 MB; a helper that takes this
# long is stuck or starved, and is given up for this process (which reduces in process from then on).
EXCHANGE_TIMEOUT_SECONDS = 30.0
PIPE_CHUNK = 1 << 20
TAIL_POLL_SECONDS = 0.02  # how often an answer waiting for a helper checks whether this process is spare

_REQUEST = struct.Struct(">II")  # reducer pickle length, raw answer length
_REPLY = struct.Struct(">I")  # reply pickle length
_OK, _PARSE_ERROR, _BUG = "ok", "parse-error", "bug"

# Parsing in process is CPU work under the GIL, so reducing one answer at a time loses no speed, and
# it keeps a single parsed answer (~4x its size as Python objects) in memory instead of one per worker.
_INLINE = threading.Lock()


def reduce_inline(reduce: Callable[[bytes], Any], raw: bytes) -> Any:
    with _INLINE:
        return reduce(raw)


def helper_count(meshed_pods: int) -> int:
    """Helpers for a sweep of ``meshed_pods``: one CPU less than the machine offers (this process keeps
    the exec streams), at most MAX_HELPERS, none for a single pod; MESHDOCTOR_REDUCERS overrides."""
    configured = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if configured.isdigit():
        return min(int(configured), MAX_HELPERS)
    if meshed_pods < 2:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))  # what this process may use (containers, taskset)
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(0, min(MAX_HELPERS, cpus - 1))


class _Helper:
    def __init__(self, process: subprocess.Popen):
        self.process = process

    def reduce(self, reducer: bytes, raw: bytes) -> tuple[str, Any]:
        """One exchange; TimeoutError when the helper neither takes the answer nor replies in time."""
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        deadline = time.monotonic() + EXCHANGE_TIMEOUT_SECONDS
        _write_all(stdin.fileno(), [_REQUEST.pack(len(reducer), len(raw)), reducer, raw], deadline)
        (length,) = _REPLY.unpack(_read_exactly(stdout.fileno(), _REPLY.size, deadline))
        return pickle.loads(_read_exactly(stdout.fileno(), length, deadline))  # our own helper's reply

    def stop(self) -> None:
        try:
            if self.process.stdin:
                self.process.stdin.close()  # the helper exits at the end of its input
            self.process.wait(STOP_GRACE_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            if self.process.stdout:
                self.process.stdout.close()


def _write_all(fd: int, chunks: list[bytes], deadline: float) -> None:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
                raise TimeoutError("reducer helper does not take its input")
            view = view[os.write(fd, view[:PIPE_CHUNK]):]


def _read_exactly(fd: int, size: int, deadline: float) -> bytes:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    data = bytearray()
    while len(data) < size:
        if not poller.poll(max(0.0, deadline - time.monotonic()) * 1000):
            raise TimeoutError("reducer helper does not reply")
        chunk = os.read(fd, min(size - len(data), PIPE_CHUNK))
        if not chunk:
            raise EOFError("reducer helper ended")
        data += chunk
    return bytes(data)


class ReducerProcesses:
    """Helpers that reduce large answers; ``reduce`` is safe to call from many threads."""

    def __init__(self, count: int, spare_here: Callable[[], bool] | None = None):
        """``spare_here``: whether this process has CPU to spare now (the sweep's tail: few requests in
        flight), so an answer waiting for a busy helper is better reduced here than queued."""
        self._spare_here = spare_here
        self._idle: queue.Queue[_Helper] = queue.Queue()
        self._helpers: list[_Helper] = []
        self._alive = 0
        self._lock = threading.Lock()
        for _ in range(count):
            helper = _start_helper()
            if helper is None:
                break  # no interpreter to start: reduce in process
            self._helpers.append(helper)
            self._idle.put(helper)
        self._alive = len(self._helpers)

    @property
    def running(self) -> int:
        return self._alive

    def reduce(self, reduce: Callable[[bytes], Any], raw: bytes) -> Any:
        if len(raw) < OFFLOAD_MIN_BYTES or not self._alive:
            return reduce_inline(reduce, raw)
        try:
            reducer = pickle.dumps(reduce, protocol=pickle.HIGHEST_PROTOCOL)  # by reference: a few bytes
        except (pickle.PickleError, AttributeError, TypeError):
            return reduce_inline(reduce, raw)  # a closure: only this process can run it
        helper = self._free_helper()
        if helper is None:
            return reduce_inline(reduce, raw)
        try:
            kind, value = helper.reduce(reducer, raw)
        except BaseException as exc:
            # The helper died, stuck or its pipe broke (or this thread was interrupted mid-exchange):
            # it is not used again, and this answer is reduced here.
            with self._lock:
                self._alive -= 1
            helper.process.kill()
            helper.stop()
            if not isinstance(exc, Exception):
                raise  # Ctrl-C
            return reduce_inline(reduce, raw)  # the same value, or the same error, from this process
        self._idle.put(helper)
        if kind == _PARSE_ERROR:
            raise ParseError(value)
        if kind == _BUG:
            return reduce_inline(reduce, raw)  # the same bug, raised here with its own traceback
        return value

    def _free_helper(self) -> _Helper | None:
        """A free helper, waited for; None once this process has CPU to spare (see ``spare_here``).

        Why: at the end of a sweep the last answers queued for the helpers (~0.15 s each) while this
        process, its requests done, sat idle. Reducing here earlier, while answers still stream in, was
        measured slower: this process's CPU is then the exec streams'.
        """
        if self._spare_here is None:
            return self._idle.get()
        while True:
            try:
                return self._idle.get(timeout=TAIL_POLL_SECONDS)
            except queue.Empty:
                if self._spare_here():
                    return None

    def close(self) -> None:
        for helper in self._helpers:
            helper.stop()
        self._helpers.clear()
        self._alive = 0


def _start_helper() -> _Helper | None:
    if not sys.executable:
        return None
    env = dict(os.environ)
    # The helper imports this package from where this process found it, however it was installed.
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    try:
        process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, env=env, close_fds=True)
    except OSError:
        return None
    return _Helper(process)


# --- the helper process -------------------------------------------------------------------------------


def serve(source=None, sink=None) -> None:
    """Reduce each answer read from ``source`` and write the result to ``sink``, until end of input."""
    source = source or sys.stdin.buffer
    sink = sink or sys.stdout.buffer
    while True:
        header = source.read(_REQUEST.size)
        if len(header) != _REQUEST.size:
            return
        reducer_length, raw_length = _REQUEST.unpack(header)
        reduce = pickle.loads(source.read(reducer_length))  # sent by the parent process: our own reducers
        raw = source.read(raw_length)
        try:
            reply: tuple[str, Any] = (_OK, reduce(raw))
        except ParseError as exc:
            reply = (_PARSE_ERROR, str(exc))
        except Exception as exc:  # noqa: BLE001 - the parent reduces again in process and raises it there
            reply = (_BUG, repr(exc))
        del raw
        data = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        sink.write(_REPLY.pack(len(data)))
        sink.write(data)
        sink.flush()


if __name__ == "__main__":
    serve()
