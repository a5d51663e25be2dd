"""The lab's control plane objects (istiod Deployment, PDB, HPA, injector webhook) and the scenario
details issue 12's checks read (pod owners, securityContext, Service age)."""

from __future__ import annotations

import pytest

from kubectl_meshdoctor.injectors import injectors
from kubectl_meshdoctor.lab.controlplane import Redundancy
from kubectl_meshdoctor.lab.envoy import LabError
from kubectl_meshdoctor.lab.scenario import DEFAULT_DNS_IP, AddressPool, control_plane_objects, expand, load_scenario
from kubectl_meshdoctor.workloads import owner_subject


def _by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def test_default_istiod_is_redundant_and_a_single_replica_revision_is_not():
    objects, _ = control_plane_objects(AddressPool(), DEFAULT_DNS_IP, {"solo": True},
                                       redundancy={"solo": Redundancy(replicas=1, pdb=False, hpa_min=None)})
    deployments = _by_kind(objects, "Deployment")
    assert deployments["istiod"]["spec"]["replicas"] == 2 and deployments["istiod-solo"]["spec"]["replicas"] == 1
    assert set(_by_kind(objects, "PodDisruptionBudget")) == {"istiod"}
    assert _by_kind(objects, "HorizontalPodAutoscaler")["istiod"]["spec"]["minReplicas"] == 2
    istiod_pods = [o for o in objects if o["kind"] == "Pod" and o["metadata"]["labels"].get("app") == "istiod"]
    assert len([p for p in istiod_pods if p["metadata"]["labels"]["istio.io/rev"] == "default"]) == 2
    endpoints = _by_kind(objects, "Endpoints")["istiod"]["subsets"][0]["addresses"]
    assert len(endpoints) == 2


def test_injector_webhooks_select_like_the_chart():
    objects, _ = control_plane_objects(AddressPool(), DEFAULT_DNS_IP, {"green": True})
    found = injectors([o for o in objects if o["kind"] == "MutatingWebhookConfiguration"])
    def selecting(ns_labels, pod_labels=None):
        return {i.configuration for i in found if i.selects(pod_labels or {}, ns_labels)}
    assert selecting({"istio-injection": "enabled"}) == {"istio-sidecar-injector"}
    assert selecting({"istio.io/rev": "green"}) == {"istio-sidecar-injector-green"}
    assert selecting({"istio.io/rev": "green"}, {"sidecar.istio.io/inject": "false"}) == set()
    assert selecting({}) == set()


def test_lab_pods_have_the_owners_a_cluster_gives_them():
    expanded = expand(load_scenario("proxy-uid-1337"), AddressPool(), DEFAULT_DNS_IP)
    builder = [o for o in expanded.objects if o["kind"] == "Pod" and o["metadata"]["labels"]["app"] == "report-builder"]
    assert len(builder) == 2
    assert {str(owner_subject(p)) for p in builder} == {"Deployment reporting/report-builder"}
    assert builder[0]["spec"]["containers"][0]["securityContext"]["runAsUser"] == 1337
    redis = next(o for o in expand(load_scenario("redis-headless-no-sidecar"), AddressPool(), DEFAULT_DNS_IP).objects
                 if o["kind"] == "Pod" and o["metadata"]["name"] == "redis-0")
    assert str(owner_subject(redis)) == "StatefulSet cache-demo/redis"


def test_two_scenarios_defining_one_pod_are_refused(tmp_path):
    from kubectl_meshdoctor.lab.lab import Lab

    data = load_scenario("port-name-invalid")
    lab = Lab([data, dict(data, name="copy-of-port-name-invalid")], workdir=tmp_path)
    lab._xds = type("NoXds", (), {"port": 1, "register": lambda *args: None})()
    with pytest.raises(LabError, match="both define pod media/"):
        lab._build()
