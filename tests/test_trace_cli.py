"""``pod NAME --trace`` through typer's CliRunner: bad input exits 2 before any cluster is contacted,
collection errors keep their exit codes, and the exit code follows the walk's verdict."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from kubectl_meshdoctor.cli import app
from kubectl_meshdoctor.collect import trace as trace_collect
from kubectl_meshdoctor.collect.trace import TraceEvidence
from kubectl_meshdoctor.envoy.xds_index import XdsIndex
from kubectl_meshdoctor.errors import ClusterError

runner = CliRunner()
POD = {"kind": "Pod", "metadata": {"name": "web", "namespace": "shop"}}
# The smallest dump a walk can use: a wildcard HTTP listener for port 80 whose route sends / to one cluster.
DUMP = {"configs": [
    {"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump", "dynamic_active_clusters": [
        {"cluster": {"name": "outbound|80||api.shop.svc.cluster.local", "type": "EDS"}}]},
    {"@type": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump", "dynamic_endpoint_configs": [
        {"endpoint_config": {"cluster_name": "outbound|80||api.shop.svc.cluster.local", "endpoints": [
            {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "10.0.0.5", "port_value": 80}}},
                               "health_status": "HEALTHY"}]}]}}]},
    {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump", "dynamic_listeners": [
        {"name": "0.0.0.0_80", "active_state": {"listener": {"name": "0.0.0.0_80", "filter_chains": [{"filters": [
            {"name": "envoy.filters.network.http_connection_manager",
             "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager"
                                       ".v3.HttpConnectionManager", "rds": {"route_config_name": "80"}}}]}]}}}]},
    {"@type": "type.googleapis.com/envoy.admin.v3.RoutesConfigDump", "dynamic_route_configs": [
        {"route_config": {"name": "80", "virtual_hosts": [{"name": "api.shop.svc.cluster.local:80", "domains": ["api"],
                                                           "routes": [{"match": {"prefix": "/v1"},
                                                                       "route": {"cluster": "outbound|80||api.shop.svc.cluster.local"}}]}]}}]},
]}


@pytest.fixture
def collected(monkeypatch):
    calls: list = []

    def fake(options, target):
        calls.append((options, target))
        if isinstance(fake.outcome, BaseException):
            raise fake.outcome
        return fake.outcome

    fake.outcome = TraceEvidence(pod=POD, index=XdsIndex.from_dict(DUMP))
    monkeypatch.setattr(trace_collect, "collect_trace", fake)
    fake.calls = calls
    return fake


def one_line_error(result, code: int) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stdout
    return lines[0]


@pytest.mark.parametrize("args, message", [
    (["pod", "web", "--trace", "api:0"], "port '0'"),
    (["pod", "web", "--trace", "api", "--method", "BREW"], "invalid --method"),
    (["pod", "web", "--trace", "api", "-H", "x"], "invalid --header"),
    (["pod", "web", "--method", "POST"], "use them with --trace"),
    (["pod", "web", "--trace", "api", "--save", "x.tgz"], "does not apply to --trace"),
])
def test_bad_trace_input_exits_2_before_collecting(collected, args, message):
    assert message in one_line_error(runner.invoke(app, args), 2)
    assert collected.calls == []


def test_collection_errors_keep_their_exit_codes(collected):
    collected.outcome = ClusterError("cannot read the Envoy configuration of shop/web: exec refused")
    assert "exec refused" in one_line_error(runner.invoke(app, ["pod", "web", "--trace", "api"]), 3)


def test_exit_code_follows_the_verdict_and_json_carries_the_hops(collected):
    ok = runner.invoke(app, ["pod", "web", "-n", "shop", "--trace", "api/v1/items", "-o", "json"])
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    document = json.loads(ok.stdout)
    assert document["kind"] == "Trace" and document["verdict"] == "ok"
    assert [h["step"] for h in document["hops"]] == ["listener", "route", "cluster", "endpoints", "tls", "server"]
    options, target = collected.calls[0]
    assert (options.pod, options.namespace, target.host, target.path) == ("web", "shop", "api", "/v1/items")
    missed = runner.invoke(app, ["pod", "web", "--trace", "api/other"])
    assert missed.exit_code == 1 and "ANSWER: the request stops at the route hop" in missed.stdout
