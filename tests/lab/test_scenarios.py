"""The packaged scenarios expand into objects with the real schema and say what they should produce."""

from __future__ import annotations

import json

import pytest

from kubectl_meshdoctor.catalogue import CATALOGUE
from kubectl_meshdoctor.lab import xds
from kubectl_meshdoctor.lab.scenario import (
    DEFAULT_DNS_IP,
    AddressPool,
    control_plane_objects,
    expand,
    load_scenario,
    scenario_names,
)

REQUIRED = {"bookinfo-healthy", "dns-clusterip-changed", "istiod-no-endpoints", "redis-headless-no-sidecar",
            "vs-subset-missing", "dr-disable-vs-strict", "cert-expiring", "port-name-invalid",
            "proxy-version-skew", "istiod-gone-after-config", "root-ca-mismatch"}
CODES = {entry.code for entry in CATALOGUE}


def _expand(name: str, dns_ip: str = DEFAULT_DNS_IP):
    return expand(load_scenario(name), AddressPool(), dns_ip)


def test_required_scenarios_are_packaged():
    assert REQUIRED <= set(scenario_names())


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_expectations_use_catalogue_codes(name):
    for item in load_scenario(name).get("expect") or ():
        assert item["code"] in CODES


def test_bookinfo_expects_nothing_and_everything_is_ready():
    expanded = _expand("bookinfo-healthy")
    assert expanded.expect == []
    pods = [o for o in expanded.objects if o["kind"] == "Pod"]
    assert len(pods) == 6
    for pod in pods:
        assert pod["metadata"]["labels"]["security.istio.io/tlsMode"] == "istio"
        assert json.loads(pod["metadata"]["annotations"]["sidecar.istio.io/status"])["containers"] == ["istio-proxy"]
        assert all(s["ready"] for s in pod["status"]["containerStatuses"])


def test_dns_scenario_pods_are_1_of_2_ready_with_the_old_nameserver():
    expanded = _expand("dns-clusterip-changed", dns_ip="172.19.9.54")
    pods = [o for o in expanded.objects if o["kind"] == "Pod" and o["metadata"]["namespace"] == "shop"]
    assert len(pods) >= 6
    for pod in pods:
        ready = {s["name"]: s["ready"] for s in pod["status"]["containerStatuses"]}
        assert ready["istio-proxy"] is False and list(ready.values()).count(True) == 1
        assert "nameserver 172.19.0.10" in expanded.resolv[("shop", pod["metadata"]["name"])]
    assert {s.state for s in expanded.sidecars} == {"no-xds"}


def test_endpoints_and_slices_follow_the_real_schema():
    expanded = _expand("redis-headless-no-sidecar")
    endpoints = next(o for o in expanded.objects if o["kind"] == "Endpoints" and o["metadata"]["name"] == "redis")
    address = endpoints["subsets"][0]["addresses"][0]
    assert address["ip"].startswith("10.244.") and address["targetRef"] == {
        "kind": "Pod", "namespace": "cache-demo", "name": "redis-0", "uid": address["targetRef"]["uid"]}
    eps = next(o for o in expanded.objects if o["kind"] == "EndpointSlice"
               and o["metadata"]["labels"]["kubernetes.io/service-name"] == "redis")
    assert eps["addressType"] == "IPv4" and eps["endpoints"][0]["targetRef"]["name"] == "redis-0"
    redis = next(o for o in expanded.objects if o["kind"] == "Pod" and o["metadata"]["name"] == "redis-0")
    assert "security.istio.io/tlsMode" not in redis["metadata"]["labels"]
    assert [c["name"] for c in redis["spec"]["containers"]] == ["redis"]


def test_istiod_without_ready_endpoints_and_kube_dns_labelled():
    objects, _ = control_plane_objects(AddressPool(), "172.19.9.54", {"default": False})
    istiod_eps = next(o for o in objects if o["kind"] == "Endpoints" and o["metadata"]["name"] == "istiod")
    assert "addresses" not in istiod_eps["subsets"][0] and istiod_eps["subsets"][0]["notReadyAddresses"]
    dns = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "kube-dns")
    assert dns["metadata"]["labels"]["k8s-app"] == "kube-dns" and dns["spec"]["clusterIP"] == "172.19.9.54"


def test_a_broken_canary_revision_leaves_the_default_istiod_ready():
    objects, _ = control_plane_objects(AddressPool(), DEFAULT_DNS_IP, {"canary": False})
    endpoints = {o["metadata"]["name"]: o["subsets"][0] for o in objects if o["kind"] == "Endpoints"}
    assert endpoints["istiod"].get("addresses") and not endpoints["istiod"].get("notReadyAddresses")
    assert not endpoints["istiod-canary"].get("addresses") and endpoints["istiod-canary"]["notReadyAddresses"]
    canary = _expand("istiod-no-endpoints")
    namespace = next(o for o in canary.objects if o["kind"] == "Namespace")
    assert namespace["metadata"]["labels"].get("istio.io/rev") == "canary"
    pod = next(o for o in canary.objects if o["kind"] == "Pod")
    assert pod["metadata"]["labels"]["istio.io/rev"] == "canary"


def _resources(name: str, client_app: str):
    expanded = _expand(name)
    objects = expanded.objects + control_plane_objects(AddressPool("10.245.0.0/16", "10.97.0.0/16"),
                                                       DEFAULT_DNS_IP, {})[0]
    pod = next(o for o in objects if o["kind"] == "Pod" and o["metadata"]["labels"].get("app") == client_app)
    return xds.sidecar_resources(xds.MeshModel(objects), pod, xds.SidecarWiring(access_log_path="/dev/null"))


def test_headless_redis_cluster_is_original_dst_with_forced_mtls():
    clusters = {c["name"]: c for c in _resources("redis-headless-no-sidecar", "session-api").clusters}
    redis = clusters["outbound|6379||redis.cache-demo.svc.cluster.local"]
    assert (redis["type"], redis["lb_policy"]) == ("ORIGINAL_DST", "CLUSTER_PROVIDED")
    assert redis["transport_socket"]["name"] == "envoy.transport_sockets.tls"
    assert "transport_socket_matches" not in redis


def test_missing_subsets_give_routes_to_clusters_envoy_lacks():
    resources = _resources("vs-subset-missing", "web")
    names = {c["name"] for c in resources.clusters}
    route = next(vh for vh in resources.routes["8080"]["virtual_hosts"]
                 if vh["name"] == "catalog.storefront.svc.cluster.local:8080")["routes"][0]
    targets = {c["name"] for c in route["route"]["weighted_clusters"]["clusters"]}
    assert targets == {"outbound|8080|v1|catalog.storefront.svc.cluster.local",
                       "outbound|8080|v2|catalog.storefront.svc.cluster.local"}
    assert not targets & names


def test_dr_disable_yields_a_plain_text_cluster_and_auto_mtls_elsewhere():
    clusters = {c["name"]: c for c in _resources("dr-disable-vs-strict", "invoicer").clusters}
    accounts = clusters["outbound|8000||accounts.billing.svc.cluster.local"]
    assert "transport_socket" not in accounts and "transport_socket_matches" not in accounts
    invoicer = clusters["outbound|8000||invoicer.billing.svc.cluster.local"]
    assert [m["name"] for m in invoicer["transport_socket_matches"]] == ["tlsMode-istio", "tlsMode-disabled"]


@pytest.mark.parametrize("port,protocol", [({"name": "http2foo", "port": 1}, "tcp"),
                                           ({"name": "web", "port": 1}, "tcp"),
                                           ({"name": "http2-foo", "port": 1}, "http2"),
                                           ({"name": "grpc-web", "port": 1}, "grpc-web"),
                                           ({"name": "web", "appProtocol": "http", "port": 1}, "http")])
def test_port_protocol(port, protocol):
    assert xds.port_protocol(port) == protocol


def test_access_log_format_is_istios(shared_dir):
    data = json.loads((shared_dir / "istio-data" / "envoy-response-flags.json").read_text())
    assert data["istio_default_text_log_format"].startswith(xds.ISTIO_TEXT_LOG_FORMAT.rstrip("\n"))


def test_sidecar_egress_scopes_clusters_to_the_namespace_and_control_plane():
    objects = (_expand("redis-headless-no-sidecar").objects + _expand("vs-subset-missing").objects
               + control_plane_objects(AddressPool("10.245.0.0/16", "10.97.0.0/16"), DEFAULT_DNS_IP, {})[0])
    client = next(o for o in objects if o["kind"] == "Pod" and o["metadata"]["labels"].get("app") == "session-api")
    wiring = xds.SidecarWiring(access_log_path="/dev/null")
    scoped = {c["name"] for c in xds.sidecar_resources(xds.MeshModel(objects), client, wiring).clusters}
    assert "outbound|6379||redis.cache-demo.svc.cluster.local" in scoped
    assert "outbound|15012||istiod.istio-system.svc.cluster.local" in scoped
    assert not any("storefront" in name for name in scoped)
    # without any Sidecar resource, Istio sends every Service of the mesh
    unscoped_objects = [o for o in objects if o["kind"] != "Sidecar"]
    unscoped = {c["name"] for c in xds.sidecar_resources(xds.MeshModel(unscoped_objects), client, wiring).clusters}
    assert any("storefront" in name for name in unscoped)


def test_skewed_workloads_run_the_proxy_image_and_node_release_of_their_version():
    expanded = _expand("proxy-version-skew")
    pods = {o["metadata"]["labels"]["app"]: o for o in expanded.objects if o["kind"] == "Pod"}
    proxy = next(c for c in pods["report-gen"]["spec"]["containers"] if c["name"] == "istio-proxy")
    assert proxy["image"] == "docker.io/istio/proxyv2:1.22.1"
    ports = xds.BootstrapPorts(admin=1, health=2, agent_status=3, xds=4)
    boot = xds.bootstrap(pods["report-gen"], ports, mode="ads", sds_port=6)
    assert boot["node"]["metadata"]["ISTIO_VERSION"] == "1.22.1"
    objects, _ = control_plane_objects(AddressPool(), DEFAULT_DNS_IP, {})
    istiod = next(o for o in objects if o["kind"] == "Pod" and o["metadata"]["labels"].get("app") == "istiod")
    assert [c["name"] for c in istiod["spec"]["containers"]] == ["discovery"]


def test_lab_envoys_keep_only_the_stats_istios_bootstrap_keeps(shared_dir):
    golden = json.loads((shared_dir / "istio-data" / "bootstrap" / "default_golden.json").read_text())
    assert xds.ISTIO_STATS_INCLUSION == golden["stats_config"]["stats_matcher"]["inclusion_list"]["patterns"]
    pod = next(o for o in _expand("bookinfo-healthy").objects if o["kind"] == "Pod")
    ports = xds.BootstrapPorts(admin=1, health=2, agent_status=3, xds=4)
    boot = xds.bootstrap(pod, ports, mode="rest", xds_rest_port=5, sds_port=6)
    assert boot["stats_config"]["stats_matcher"]["inclusion_list"]["patterns"] == xds.ISTIO_STATS_INCLUSION


def test_a_lost_sidecar_asks_its_server_through_xds_grpc_and_keeps_retrying():
    expanded = _expand("istiod-gone-after-config")
    assert {s.state for s in expanded.sidecars} == {"disconnected"}
    pod = next(o for o in expanded.objects if o["kind"] == "Pod")
    assert all(s["ready"] for s in pod["status"]["containerStatuses"])  # READY: the point of the story
    ports = xds.BootstrapPorts(admin=1, health=2, agent_status=3, xds=4)
    boot = xds.bootstrap(pod, ports, mode="lost", xds_rest_port=5, sds_port=6)
    cds = boot["dynamic_resources"]["cds_config"]["api_config_source"]
    assert cds["cluster_names"] == ["xds-grpc"] and cds["refresh_delay"] == xds.LOST_RETRY
    grpc = next(c for c in boot["static_resources"]["clusters"] if c["name"] == "xds-grpc")
    assert grpc["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"][
        "port_value"] == 5


def test_root_rotation_scenario_names_a_second_root_for_the_server_and_the_namespace():
    expanded = _expand("root-ca-mismatch")
    specs = {s.pod.split("-")[0]: s for s in expanded.sidecars}
    assert specs["vault"].ca == "new-root" and specs["teller"].ca == ""
    assert expanded.namespace_roots == {"treasury": "new-root"}
    (stand_in,) = expanded.stand_ins
    assert stand_in.kind == "mtls" and stand_in.server_pod[0] == "treasury"
    assert stand_in.server_pod[1].startswith("vault-ledger-")
