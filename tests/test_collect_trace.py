"""The --trace collector against the lab's Kubernetes API server: one exec in the traced pod only, the
objects of the namespaces the request touches, and clear errors for what cannot be traced."""

from __future__ import annotations

import pytest

from kubectl_meshdoctor.collect.proxy import CURL_FALLBACK, TRACE_CONFIG_DUMP
from kubectl_meshdoctor.collect.trace import collect_trace
from kubectl_meshdoctor.errors import ClusterError, UsageError
from kubectl_meshdoctor.lab.apiserver import AccessPolicy, ExecResult
from kubectl_meshdoctor.trace import parse_target
from test_collect_support import FakeProxies, captured, lab_cluster

# A real Envoy's dump with endpoints when ../shared is present; a minimal valid one otherwise.
DUMP = captured("exp2-config_dump-include_eds.json", b'{"configs": []}')


def proxies(**outputs: ExecResult) -> FakeProxies:
    return FakeProxies(per_pod={"shop/web-1": {TRACE_CONFIG_DUMP: ExecResult(0, DUMP), **outputs}})


def names(objects: list[dict]) -> set[str]:
    return {f"{o['kind']} {o['metadata'].get('namespace')}/{o['metadata']['name']}" for o in objects}


def test_one_exec_in_the_traced_pod_and_the_objects_around_the_request(tmp_path):
    with lab_cluster(tmp_path, proxies=proxies()) as lab:
        evidence = collect_trace(lab.options(pod="web-1"), parse_target("other.elsewhere:9080"))
        execs = lab.exec_commands()
        verbs = {r.verb for r in lab.server.requests}
    assert execs == [("/api/v1/namespaces/shop/pods/web-1/exec", "istio-proxy", TRACE_CONFIG_DUMP)]
    assert verbs <= {"get", "list", "exec", "discovery"}
    assert evidence.pod["metadata"]["name"] == "web-1" and evidence.gaps == []
    found = names(evidence.objects)
    # the pod's namespace, the destination's (other.elsewhere) and the mesh root for mesh-wide policies
    assert {"Service shop/web", "Pod shop/web-2", "Pod elsewhere/other-1", "DestinationRule elsewhere/unrelated",
            "PeerAuthentication istio-system/default"} <= found
    assert not [n for n in found if "kube-system/" in n]
    if DUMP != b'{"configs": []}':
        assert "outbound|9080||reviews.default.svc.cluster.local" in evidence.index.clusters


def test_an_image_without_pilot_agent_is_read_with_curl(tmp_path):
    missing = ExecResult(127, b"", b'exec: "pilot-agent": executable file not found in $PATH\n')
    fake = FakeProxies(per_pod={"shop/web-1": {TRACE_CONFIG_DUMP: missing,
                                              CURL_FALLBACK[TRACE_CONFIG_DUMP]: ExecResult(0, DUMP)}})
    with lab_cluster(tmp_path, proxies=fake) as lab:
        collect_trace(lab.options(pod="web-1"), parse_target("web"))
        argvs = [argv for _, _, argv in lab.exec_commands()]
    assert argvs == [TRACE_CONFIG_DUMP, CURL_FALLBACK[TRACE_CONFIG_DUMP]]


@pytest.mark.parametrize("pod, namespace, message", [
    ("db-0", "shop", "has no istio-proxy container"),
    ("nope", "shop", "pod nope not found in namespace shop"),
    ("web-1", "nowhere", "namespace nowhere not found"),
])
def test_what_cannot_be_traced_is_a_usage_error(tmp_path, pod, namespace, message):
    with lab_cluster(tmp_path, proxies=proxies()) as lab:
        with pytest.raises(UsageError, match=message):
            collect_trace(lab.options(pod=pod, namespace=namespace), parse_target("web"))
        assert lab.exec_commands() == []


def test_refused_exec_and_unreadable_output_stop_the_trace_with_a_cluster_error(tmp_path):
    with lab_cluster(tmp_path, policy=AccessPolicy(forbid_exec=True), proxies=proxies()) as lab:
        with pytest.raises(ClusterError, match=r"--trace needs create on pods/exec"):
            collect_trace(lab.options(pod="web-1"), parse_target("web"))
    broken = proxies()
    broken.per_pod["shop/web-1"][TRACE_CONFIG_DUMP] = ExecResult(0, b'{"configs": [')
    with lab_cluster(tmp_path, proxies=broken) as lab:
        with pytest.raises(ClusterError, match="cannot be read: config_dump: not valid JSON"):
            collect_trace(lab.options(pod="web-1"), parse_target("web"))
    failing = proxies()
    failing.per_pod["shop/web-1"][TRACE_CONFIG_DUMP] = ExecResult(255, b"", b"Error: received unsuccessful status code 503\n")
    with lab_cluster(tmp_path, proxies=failing) as lab:
        with pytest.raises(ClusterError, match="pilot-agent exited 255: Error: received unsuccessful status code 503"):
            collect_trace(lab.options(pod="web-1"), parse_target("web"))
