"""The Lab leaves no process behind: after a normal stop and after a failure during start."""

from __future__ import annotations


import pytest

from kubectl_meshdoctor.errors import UsageError
from kubectl_meshdoctor.lab.lab import Lab

pytestmark = pytest.mark.lab

ONE_POD = {
    "name": "one-pod",
    "namespaces": [{"name": "solo", "injection": True}],
    "workloads": [{"name": "api", "namespace": "solo", "app": "api", "port": 8080}],
    "services": [{"name": "api", "namespace": "solo", "selector": {"app": "api"},
                  "ports": [{"name": "http", "port": 8080}]}],
}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_stop_ends_every_envoy_and_removes_the_workdir():
    with Lab([ONE_POD]) as lab:
        pids = lab.envoy_pids()
        workdir = lab.workdir
        assert pids and all(_alive(pid) for pid in pids)
        assert lab.kubeconfig.is_file()
    assert not any(_alive(pid) for pid in pids)
    assert not workdir.exists()


def test_failure_during_start_stops_what_was_started(monkeypatch):
    started: list[int] = []

    def boom(self):
        started.extend(self.envoy_pids())
        raise RuntimeError("injected failure after the Envoys started")

    monkeypatch.setattr(Lab, "_drive_traffic", boom)
    with pytest.raises(RuntimeError):
        Lab([ONE_POD]).start()
    assert started and not any(_alive(pid) for pid in started)


def test_unknown_scenario_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown lab scenario 'no-such-scenario'"):
        Lab(["no-such-scenario"])


def test_cli_lists_the_packaged_scenarios(capsys):
    from kubectl_meshdoctor.lab.__main__ import main

    assert main(["list"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert {"bookinfo-healthy", "dns-clusterip-changed", "redis-headless-no-sidecar"} <= set(names)
