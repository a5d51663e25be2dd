"""pilot-agent emulation without Envoy: the readiness rules word for word, and exec command handling."""

from __future__ import annotations

import asyncio
import json

import pytest

from kubectl_meshdoctor.lab.agent import (
    PodAgent,
    SidecarExec,
    config_status_error,
    envoy_readiness_error,
    readiness_verdict,
)


def test_no_config_verdict_is_pilot_agents_text():
    assert readiness_verdict("", "") == (
        "config not received from XDS server (is Istiod running?): cds updates: 0 successful, 0 rejected; "
        "lds updates: 0 successful, 0 rejected")


def test_partial_and_rejected_config_verdicts():
    assert config_status_error("cluster_manager.cds.update_success: 1\n") == (
        "config not fully received from XDS server: cds updates: 1 successful, 0 rejected; "
        "lds updates: 0 successful, 0 rejected")
    assert config_status_error(
        "cluster_manager.cds.update_rejected: 2\nlistener_manager.lds.update_success: 1\n") == (
        "config received from XDS server, but was rejected: cds updates: 0 successful, 2 rejected; "
        "lds updates: 1 successful, 0 rejected")


def test_server_state_and_workers():
    config_ok = "cluster_manager.cds.update_success: 1\nlistener_manager.lds.update_success: 1\n"
    assert readiness_verdict(config_ok, "listener_manager.workers_started: 1\nserver.state: 0\n") is None
    assert envoy_readiness_error("listener_manager.workers_started: 1\nserver.state: 2\n") == (
        "server is not live, current state is: PRE_INITIALIZING")
    assert envoy_readiness_error("listener_manager.workers_started: 0\nserver.state: 0\n") == (
        "workers have not yet started")
    assert envoy_readiness_error("server.state: 3\n").startswith(
        "failed to get readiness stats: listener_manager.workers_started is not yet updated: ")


def test_every_case_of_pilot_agents_probe_table(shared_dir):
    table = json.loads((shared_dir / "istio-data" / "readiness-probe-cases.json").read_text())
    assert table["cases"]
    for case in table["cases"]:
        # The table gives one stats text for both queries; each query's filter picks its own counters.
        verdict = readiness_verdict(case["stats"], case["stats"]) or ""
        if "error_prefix" in case:
            assert verdict.startswith(case["error_prefix"]), case["name"]
        else:
            assert verdict == case["error"], case["name"]


def _run(coro):
    return asyncio.run(coro)


@pytest.fixture
def sidecar_exec():
    agents = {
        ("shop", "cart-1"): PodAgent("shop", "cart-1", "nameserver 172.19.0.10\n", has_sidecar=True),
        ("shop", "db-0"): PodAgent("shop", "db-0", "nameserver 10.96.0.10\n", has_sidecar=False),
    }
    return SidecarExec(agents)


def test_unknown_command_is_a_missing_executable(sidecar_exec):
    result = _run(sidecar_exec.exec("shop", "cart-1", "istio-proxy", ["sh", "-c", "echo hi"]))
    assert result.exit_code == 127
    assert result.stderr == b'exec: "sh": executable file not found in $PATH\n'


def test_resolv_conf_in_any_container_but_pilot_agent_only_in_istio_proxy(sidecar_exec):
    assert _run(sidecar_exec.exec("shop", "db-0", "db", ["cat", "/etc/resolv.conf"])).stdout == (
        b"nameserver 10.96.0.10\n")
    assert _run(sidecar_exec.exec("shop", "cart-1", "cart", ["pilot-agent", "request", "GET", "stats"])
                ).exit_code == 127
    assert _run(sidecar_exec.exec("shop", "cart-1", "istio-proxy", ["cat", "/etc/hosts"])).exit_code == 1


def test_refused_port_reads_like_pilot_agent_and_curl(sidecar_exec):
    # The agent has no ports assigned: every mapped port refuses, as an Envoy that never started would.
    result = _run(sidecar_exec.exec("shop", "cart-1", "istio-proxy",
                                    ["pilot-agent", "request", "GET", "healthz/ready", "--debug-port", "15021"]))
    assert result.exit_code == 255
    assert b"connection refused" in result.stderr and result.stderr.startswith(b"Error: ")
    curl = _run(sidecar_exec.exec("shop", "cart-1", "istio-proxy",
                                  ["curl", "-sS", "http://localhost:15000/server_info"]))
    assert curl.exit_code == 7 and b"Failed to connect to localhost port 15000" in curl.stderr


def test_agent_debug_port_answers_404_and_exits_zero(sidecar_exec):
    result = _run(sidecar_exec.exec("shop", "cart-1", "istio-proxy",
                                    ["pilot-agent", "request", "GET", "debug/syncz", "--debug-port", "15004"]))
    assert (result.exit_code, result.stdout) == (0, b"404 page not found\n")
