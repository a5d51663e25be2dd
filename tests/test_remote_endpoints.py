"""MD0701's endpoint evidence without a lab: the query's shape, the EDS reduction, the bundle, the lines.

The real Envoy's answers are exercised in tests/test_multicluster.py (the multi-cluster lab); here the
parts that must hold for any input.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from caseloader import load_case
from kubectl_meshdoctor.collect.endpoint_query import ALL_OUTBOUND, ENDPOINTS_PREFIX, endpoint_query, is_endpoint_query
from kubectl_meshdoctor.collect.proxy import allowed_exec
from kubectl_meshdoctor.envoy.eds import parse_endpoint_configs
from kubectl_meshdoctor.errors import ParseError
from kubectl_meshdoctor.multianalysis import analyze_clusters
from kubectl_meshdoctor.multibundle import load_bundle
from kubectl_meshdoctor.shared_services import shared_ports

CASES = Path(__file__).parent / "cases" / "MD0701"
FIRES = CASES / "fires-east-sidecar-holds-only-local-reviews-endpoints.yaml"


def test_the_query_names_namespaces_and_only_that_shape_is_allowed():
    argv = endpoint_query(["shop", "bookinfo", "shop"])
    assert argv[:3] == ("pilot-agent", "request", "GET")
    assert argv[3] == (ENDPOINTS_PREFIX + "%5Eoutbound%5C%7C%5B0-9%5D%2B%5C%7C%5C%7C%5B-a-z0-9%5D%2B%5C."
                       "%28bookinfo%7Cshop%29%5C.svc%5C.cluster%5C.local%24")
    assert is_endpoint_query(argv) and allowed_exec("istio-proxy", argv)
    assert not allowed_exec("discovery", argv)  # never in istiod
    tampered = [argv[3].replace("shop", "sh%3Bop"), argv[3] + "%7C", argv[3].replace("%28", "("),
                argv[3].replace("include_eds&", ""), argv[3] + "&mask=x"]
    assert not any(is_endpoint_query(argv[:3] + (path,)) for path in tampered)
    assert not is_endpoint_query(("curl",) + argv[1:]) and not is_endpoint_query(argv + ("--debug-port", "1"))
    for bad in ([], ["Shop"], ["a;b"], ["a" * 64], ["x.y"]):
        with pytest.raises(ValueError):
            endpoint_query(bad)


def test_namespaces_beyond_envoys_regex_budget_ask_for_every_outbound_cluster():
    argv = endpoint_query(["a" * 40, "b" * 30])  # 71 letters: Envoy refused 104 program steps here
    assert argv[3] == ENDPOINTS_PREFIX + "%5Eoutbound%5C%7C%5B0-9%5D%2B%5C%7C%5C%7C%5B-a-z0-9.%5D%2B%24"
    assert ALL_OUTBOUND.startswith("^outbound") and is_endpoint_query(argv)


def test_eds_reduction_keeps_address_cluster_id_and_weight():
    answer = {"configs": [{"endpoint_config": {
        "cluster_name": "outbound|9080||reviews.bookinfo.svc.cluster.local",
        "endpoints": [{"locality": {}, "lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "10.244.0.8", "port_value": 9080}}},
             "metadata": {"filter_metadata": {"istio": {"workload": "reviews-v1;bookinfo;reviews;v1;east"}}},
             "load_balancing_weight": 1},
            {"endpoint": {"address": {"socket_address": {"address": "203.0.113.20", "port_value": 15443}}},
             "metadata": {"filter_metadata": {"istio": {"workload": ";;;;west"}}}, "load_balancing_weight": 3},
            {"endpoint": {"address": {"socket_address": {"address": "10.244.0.9", "port_value": 9080}}},
             "metadata": {"filter_metadata": {"istio": {"workload": "reviews;bookinfo"}}}}]}]}}]}
    assert parse_endpoint_configs(json.dumps(answer)) == {"outbound|9080||reviews.bookinfo.svc.cluster.local": [
        {"address": "10.244.0.8:9080", "clusterId": "east", "weight": 1},
        {"address": "203.0.113.20:15443", "clusterId": "west", "weight": 3},
        {"address": "10.244.0.9:9080", "clusterId": None, "weight": 1}]}
    assert parse_endpoint_configs(b"{}\n") == {}  # what Envoy answers when nothing matches
    for bad in (b"no such", b'{"configs": 3}', b'{"configs": [{"endpoint_config": {}}]}'):
        with pytest.raises(ParseError):
            parse_endpoint_configs(bad)


def test_only_services_ready_in_two_clusters_are_shared():
    def objects(*ready: str) -> list[dict]:
        out = []
        for name in ("reviews", "ratings", "istiod"):
            namespace = "istio-system" if name == "istiod" else "bookinfo"
            out.append({"kind": "Service", "metadata": {"name": name, "namespace": namespace},
                        "spec": {"clusterIP": "10.96.0.9", "ports": [{"port": 9080}, {"port": 53, "protocol": "UDP"}]}})
            addresses = [{"ip": "10.244.0.8"}] if name in ready or name == "istiod" else []
            out.append({"kind": "Endpoints", "metadata": {"name": name, "namespace": namespace},
                        "subsets": [{"addresses": addresses}]})
        return out

    shared = shared_ports({"east": objects("reviews", "ratings"), "west": objects("reviews"), "south": []})
    assert {c: [p.label for p in ports] for c, ports in shared.items()} == {
        "east": ["reviews.bookinfo:9080"], "west": ["reviews.bookinfo:9080"]}  # not istio-system, not UDP


def test_md0701_names_services_whose_eds_is_all_local_and_not_those_holding_the_remote_pod():
    multi, _ = load_case(FIRES)
    found = [f for f in analyze_clusters(multi).findings if f.code == "MD0701"]
    assert [f.evidence for f in found] == [(
        "cluster east /debug/clusterz: east (synced)",
        "EDS of reviews.bookinfo:9080 in sidecar bookinfo/productpage-v1-6b7f6d9b7c-x2x5k (cluster east): "
        "2 endpoints, all local; cluster west has 1 ready pod")]  # ratings holds west's pod; details: not held


def test_eds_evidence_is_saved_in_the_v2_bundle_and_older_bundles_load_without_it(tmp_path):
    multi, _ = load_case(FIRES)
    saved = multi.save(tmp_path / "mesh.tgz")
    loaded = load_bundle(saved)
    assert [c.endpoints for c in loaded.clusters] == [c.endpoints for c in multi.clusters]
    assert [f.evidence for f in analyze_clusters(loaded).findings] == \
        [f.evidence for f in analyze_clusters(multi).findings]
    # A v2 bundle saved before the EDS was collected: no "endpoints" in its header; MD0701 still fires.
    directory = tmp_path / "old"
    for name, content in multi.files():
        if name == "bundle.json":
            header = json.loads(content)
            for entry in header["clusters"]:
                entry.pop("endpoints")
            content = json.dumps(header).encode()
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(content)
    old = load_bundle(directory)
    assert [c.endpoints for c in old.clusters] == [None, None]
    found = [f for f in analyze_clusters(old).findings if f.code == "MD0701"]
    assert len(found) == 1 and found[0].evidence == ("cluster east /debug/clusterz: east (synced)",)


def test_an_empty_eds_is_named_as_such_and_a_gateway_of_the_other_cluster_counts_as_remote():
    multi, _ = load_case(FIRES)
    east = multi.clusters[0]
    clusters = east.endpoints["clusters"]
    clusters["outbound|9080||reviews.bookinfo.svc.cluster.local"] = []
    clusters["outbound|9080||ratings.bookinfo.svc.cluster.local"] = [
        {"address": "10.244.0.7:9080", "clusterId": "east", "weight": 1},
        {"address": "203.0.113.20:15443", "clusterId": "west", "weight": 1}]  # west's east-west gateway
    found = next(f for f in analyze_clusters(multi).findings if f.code == "MD0701")
    assert found.evidence[1:] == (
        "EDS of reviews.bookinfo:9080 in sidecar bookinfo/productpage-v1-6b7f6d9b7c-x2x5k (cluster east): "
        "no endpoint; cluster west has 1 ready pod",)
