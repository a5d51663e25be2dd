"""collect/reducers.py: large answers are reduced in helper processes, with the same result and the
same errors as in process; anything a helper cannot do falls back to this process."""

from __future__ import annotations

import functools
import json
import os

import pytest

from kubectl_meshdoctor.collect import reducers
from kubectl_meshdoctor.collect.reducers import OFFLOAD_MIN_BYTES, ReducerProcesses, helper_count, reduce_inline
from kubectl_meshdoctor.envoy._decode import load_json_object
from kubectl_meshdoctor.errors import ParseError
from tests import reducer_probe

LARGE = b" " * OFFLOAD_MIN_BYTES + b"{}"


@pytest.fixture
def helpers():
    pool = ReducerProcesses(1)
    assert pool.running == 1
    yield pool
    pool.close()


def test_a_large_answer_is_reduced_in_a_helper_a_small_one_here(helpers):
    pid, size = helpers.reduce(reducer_probe.reducing_process, LARGE)
    assert pid != os.getpid() and size == len(LARGE)
    assert helpers.reduce(reducer_probe.reducing_process, b"{}") == (os.getpid(), 2)


def test_the_reduced_value_crosses_intact(helpers):
    document = {"configs": [{"name": f"outbound|9080||svc-{i}.ns.svc.cluster.local", "n": i, "ok": True,
                             "nested": {"list": [1.5, None, "é"]}} for i in range(3000)]}
    raw = json.dumps(document).encode()
    assert len(raw) > OFFLOAD_MIN_BYTES
    reduce = functools.partial(load_json_object, what="config_dump")
    assert helpers.reduce(reduce, raw) == reduce_inline(reduce, raw) == document


def test_a_parse_error_reads_as_in_process(helpers):
    reduce = functools.partial(load_json_object, what="config_dump")
    broken = b'{"configs": [' + b'{"a": 1},' * 20000 + b"]"
    with pytest.raises(ParseError) as here:
        reduce_inline(reduce, broken)
    with pytest.raises(ParseError) as there:
        helpers.reduce(reduce, broken)
    assert str(there.value) == str(here.value) and "not valid JSON" in str(here.value)
    with pytest.raises(ParseError, match=r"not valid JSON \(65538 bytes\)"):
        helpers.reduce(reducer_probe.refuses, LARGE)
    assert helpers.running == 1  # a refused answer is not a broken helper


def test_a_bug_is_raised_here_with_its_own_exception(helpers):
    with pytest.raises(KeyError, match="a reducer bug"):
        helpers.reduce(reducer_probe.has_a_bug, LARGE)
    assert helpers.running == 1


def test_a_closure_runs_in_this_process(helpers):
    assert helpers.reduce(lambda raw: os.getpid(), LARGE) == os.getpid()


def test_a_dead_helper_leaves_the_work_to_this_process(helpers):
    helpers._helpers[0].process.kill()
    helpers._helpers[0].process.wait()
    assert helpers.reduce(reducer_probe.reducing_process, LARGE) == (os.getpid(), len(LARGE))
    assert helpers.running == 0
    assert helpers.reduce(reducer_probe.reducing_process, LARGE) == (os.getpid(), len(LARGE))


def test_helpers_exit_when_closed():
    pool = ReducerProcesses(2)
    processes = [helper.process for helper in pool._helpers]
    assert len(processes) == 2 and all(p.poll() is None for p in processes)
    pool.close()
    assert all(p.poll() == 0 for p in processes)  # stdin closed: they end on their own
    assert pool.running == 0 and pool.reduce(reducer_probe.reducing_process, LARGE)[0] == os.getpid()


def test_no_interpreter_no_helpers(monkeypatch):
    monkeypatch.setattr(reducers.sys, "executable", "")
    pool = ReducerProcesses(2)
    assert pool.running == 0
    assert pool.reduce(reducer_probe.reducing_process, LARGE)[0] == os.getpid()


def test_helper_count(monkeypatch):
    monkeypatch.delenv(reducers.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setattr(reducers.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert helper_count(60) == reducers.MAX_HELPERS  # 7 spare CPUs, capped
    assert helper_count(1) == 0  # one pod: nothing to spread
    monkeypatch.setattr(reducers.os, "sched_getaffinity", lambda pid: {0, 1})
    assert helper_count(60) == 1  # this process keeps one CPU for the exec streams
    monkeypatch.setattr(reducers.os, "sched_getaffinity", lambda pid: {0})
    assert helper_count(60) == 0
    monkeypatch.setenv(reducers.ENVIRONMENT_VARIABLE, "0")
    monkeypatch.setattr(reducers.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert helper_count(60) == 0
    monkeypatch.setenv(reducers.ENVIRONMENT_VARIABLE, "9")
    assert helper_count(1) == reducers.MAX_HELPERS


# --- a sweep through the lab: real Envoy answers, reduced in helpers or here ---------------------------

from tests.test_collect_lab import lab_module, needs_envoy  # noqa: E402
from tests.test_masked_sweep import _findings, _what_checks_read  # noqa: E402


@needs_envoy
@pytest.mark.parametrize("scenario", ["bookinfo-healthy", "uh-selector-matches-nothing", "root-ca-mismatch"])
def test_a_sweep_reduced_in_helpers_finds_what_one_process_finds(scenario, monkeypatch):
    from kubectl_meshdoctor.collect import ClusterOptions, CollectOptions, collect_evidence

    # The lab's answers are small: every one goes to a helper here, to exercise that path end to end.
    monkeypatch.setattr(reducers, "OFFLOAD_MIN_BYTES", 0)
    offloaded = []
    real_reduce = reducers._Helper.reduce
    monkeypatch.setattr(reducers._Helper, "reduce", lambda self, *a: offloaded.append(1) or real_reduce(self, *a))
    with lab_module.Lab([scenario]) as lab:
        namespaces = sorted({o["metadata"]["name"] for e in lab.expanded for o in e.objects
                             if o.get("kind") == "Namespace"})

        def collect_all(helpers: int) -> list:
            monkeypatch.setenv(reducers.ENVIRONMENT_VARIABLE, str(helpers))
            return [collect_evidence(CollectOptions(
                cluster=ClusterOptions(kubeconfig=str(lab.kubeconfig), request_timeout=15.0),
                namespace=ns, progress=False, pod_timeout=30.0)) for ns in namespaces]

        here = collect_all(0)
        assert not offloaded
        there = collect_all(2)
    assert offloaded, "no answer went to a helper"
    for local, remote in zip(here, there):
        assert local.gaps == remote.gaps
        assert _findings(local) == _findings(remote)
        assert _what_checks_read(local) == _what_checks_read(remote)
        for pod, proxy in local.proxies.items():
            assert [c.serial for c in proxy.certs or ()] == [c.serial for c in remote.proxies[pod].certs or ()]


def test_a_stuck_helper_is_given_up_and_the_answer_reduced_here(helpers, monkeypatch):
    monkeypatch.setenv("REDUCER_PROBE_PARENT", str(os.getpid()))  # read by the helper at call time
    monkeypatch.setattr(reducers, "EXCHANGE_TIMEOUT_SECONDS", 0.5)
    process = helpers._helpers[0].process
    assert helpers.reduce(reducer_probe.stuck_in_a_helper, LARGE) == os.getpid()
    assert helpers.running == 0 and process.poll() is not None  # killed, not left behind


def test_in_the_sweeps_tail_an_answer_waiting_for_a_busy_helper_is_reduced_here():
    import threading

    spare = threading.Event()
    pool = ReducerProcesses(1, spare_here=spare.is_set)
    try:
        pid, _ = pool.reduce(reducer_probe.reducing_process, LARGE)
        assert pid != os.getpid()  # a free helper is used whether or not this process is spare
        busy = pool._idle.get()  # the one helper is taken, as by another worker's exchange
        result: list = []
        waiting = threading.Thread(target=lambda: result.append(pool.reduce(reducer_probe.reducing_process, LARGE)))
        waiting.start()
        waiting.join(0.2)
        assert waiting.is_alive() and not result  # not spare: it waits for the helper
        spare.set()  # the tail: few requests in flight
        waiting.join(5)
        assert result == [(os.getpid(), len(LARGE))]
        pool._idle.put(busy)
    finally:
        pool.close()
