"""Real Envoys behind the emulated pilot-agent: what exec into istio-proxy returns in the lab."""

from __future__ import annotations

import json

import pytest

from kubectl_meshdoctor.lab.lab import Lab

pytestmark = pytest.mark.lab

# Small on purpose (three Envoys): a reviews service with DR subsets, a client, and a pod cut off from istiod.
TINY = {
    "name": "tiny",
    "namespaces": [{"name": "reads", "injection": True}, {"name": "cutoff", "injection": True}],
    "workloads": [
        {"name": "front", "namespace": "reads", "app": "front", "port": 8000},
        {"name": "reviews-v1", "namespace": "reads", "app": "reviews", "version": "v1", "port": 9080},
        {"name": "orphan", "namespace": "cutoff", "app": "orphan", "port": 8080, "sidecar": {"state": "no-xds"}},
    ],
    "services": [
        {"name": "reviews", "namespace": "reads", "selector": {"app": "reviews"},
         "ports": [{"name": "http", "port": 9080}]},
    ],
    "objects": [{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
                 "metadata": {"name": "reviews", "namespace": "reads"},
                 "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}}],
}


@pytest.fixture(scope="module")
def lab():
    with Lab([TINY, "redis-headless-no-sidecar"]) as running:
        yield running


def _pilot_agent(lab, namespace, app, *args):
    pod = lab.pods(namespace, app)[0]
    return lab.exec(namespace, pod, "istio-proxy", ["pilot-agent", "request", "GET", *args])


def test_server_info_is_real_envoy_json(lab):
    result = _pilot_agent(lab, "reads", "front", "server_info")
    assert result.exit_code == 0
    info = json.loads(result.stdout)
    assert info["state"] == "LIVE"
    assert info["command_line_options"]["concurrency"] == 1
    assert info["node"]["id"].startswith("sidecar~10.244.")


def test_config_dump_has_subset_cluster_and_route(lab):
    result = _pilot_agent(lab, "reads", "front", "config_dump")
    dump = json.loads(result.stdout)
    types = [c["@type"].rsplit(".", 1)[-1] for c in dump["configs"]]
    assert types[:2] == ["BootstrapConfigDump", "ClustersConfigDump"]
    clusters = {c["cluster"]["name"] for c in dump["configs"][1]["dynamic_active_clusters"]}
    assert "outbound|9080|v1|reviews.reads.svc.cluster.local" in clusters
    assert "outbound|9080||reviews.reads.svc.cluster.local" in clusters


def test_ready_pod_answers_200_on_15021_and_15020(lab):
    for port in ("15021", "15020"):
        result = _pilot_agent(lab, "reads", "reviews", "healthz/ready", "--debug-port", port)
        assert result.exit_code == 0, result.stderr


def test_no_xds_pod_refuses_15021_and_explains_on_15020(lab):
    info = json.loads(_pilot_agent(lab, "cutoff", "orphan", "server_info").stdout)
    assert info["state"] == "PRE_INITIALIZING"
    refused = _pilot_agent(lab, "cutoff", "orphan", "healthz/ready", "--debug-port", "15021")
    assert refused.exit_code == 255 and b"connection refused" in refused.stderr
    verdict = _pilot_agent(lab, "cutoff", "orphan", "healthz/ready", "--debug-port", "15020")
    assert verdict.exit_code == 255
    assert verdict.stderr == (b"Error: received unsuccessful status code 503: config not received from XDS server "
                              b"(is Istiod running?): cds updates: 0 successful, 0 rejected; lds updates: "
                              b"0 successful, 0 rejected\n")
    log = lab.logs("cutoff", lab.pods("cutoff", "orphan")[0])
    assert "Envoy proxy is NOT ready: config not received from XDS server" in log


def test_redis_client_log_holds_real_uf_urx_line(lab):
    log = lab.logs("cache-demo", lab.pods("cache-demo", "session-api")[0])
    lines = [line for line in log.splitlines() if "outbound|6379||redis.cache-demo.svc.cluster.local" in line]
    assert lines, log
    assert " UF,URX " in lines[0] and "TLS_error" in lines[0]


def test_curl_and_resolv_conf(lab):
    pod = lab.pods("reads", "front")[0]
    stats = lab.exec("reads", pod, "istio-proxy", ["curl", "-s", "http://localhost:15000/stats?filter=server.state"])
    assert stats.exit_code == 0 and stats.stdout.startswith(b"server.state: 0")
    resolv = lab.exec("reads", pod, "front", ["cat", "/etc/resolv.conf"])
    assert b"nameserver 10.96.0.10" in resolv.stdout
