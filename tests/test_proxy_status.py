"""proxyStatus per pod (Envoy's and istiod's side of proxy-status), and its evidence saved and replayed."""

from __future__ import annotations

from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.evidence import Evidence, IstiodSync, ProxyConfig, ProxyEvidence, XdsLog, XdsVersion, evidence_in
from kubectl_meshdoctor.proxy_status import proxy_status, sync_state

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "shop"},
       "spec": {"containers": [{"name": "web", "image": "web:1"}, {"name": "istio-proxy", "image": "proxyv2:1.24.2"}]}}


def lost_proxy() -> ProxyEvidence:
    return ProxyEvidence(
        pod="shop/web-1",
        stats={"cluster_manager.cds.update_success": 1, "cluster_manager.cds.update_failure": 7,
               "cluster_manager.cds.update_time": 1796060690384, "listener_manager.lds.update_success": 1,
               "listener_manager.lds.update_failure": 7, "listener_manager.lds.update_time": 1796060690390,
               "cluster.xds-grpc.upstream_cx_active": 0, "cluster.xds-grpc.upstream_cx_total": 7,
               "cluster.xds-grpc.upstream_cx_connect_fail": 6},
        config=ProxyConfig(xds_versions=(XdsVersion("CDS", "v1", "2026-11-30T17:44:50.384Z", 2),
                                         XdsVersion("LDS", "v1", "2026-11-30T17:44:50.390Z", 2),
                                         XdsVersion("RDS", "v1", "2026-11-30T17:44:50.384Z", 3))),
        xds_log=XdsLog(last_connected="2026-11-30T17:44:50.000000Z", upstream_errors=1,
                       last_error="... xds-grpc closed: 13", last_error_time="2026-11-30T17:44:53.247000Z"),
        istiod_sync=IstiodSync(connected=False),
    )


def test_sync_states_follow_istioctl():
    assert [sync_state("", ""), sync_state("a", "a"), sync_state("b", "a"), sync_state("b", "")] == [
        "NOT SENT", "SYNCED", "STALE", "STALE"]


def test_proxy_status_of_a_lost_proxy_and_of_a_pod_without_that_evidence():
    status = proxy_status(lost_proxy())
    assert status["istiod"] == {"connected": False, "istiod": None}
    assert status["envoy"]["CDS"] == {"version": "v1", "lastUpdated": "2026-11-30T17:44:50Z", "updateSuccess": 1,
                                      "updateFailure": 7, "updateRejected": 0}
    assert status["envoy"]["RDS"]["routeConfigs"] == 3 and status["envoy"]["istiodConnections"] == 0
    assert proxy_status(ProxyEvidence(pod="shop/web-1")) is None and proxy_status(None) is None


def test_the_new_evidence_is_saved_and_replayed_unchanged(tmp_path):
    bundle = EvidenceBundle(scope={"kind": "namespace", "namespace": "shop", "pod": None, "pods": ["shop/web-1"]},
                            objects=[POD], proxies={"shop/web-1": lost_proxy()},
                            available={Evidence.PODS} | evidence_in(lost_proxy()),
                            collected_at="2026-11-30T17:45:13Z")
    loaded = EvidenceBundle.load(bundle.save(tmp_path / "b.tgz"))
    assert loaded.proxies == bundle.proxies
    live, replayed = analyze(bundle), analyze(loaded)
    assert [f.to_dict() for f in live.findings] == [f.to_dict() for f in replayed.findings]
    assert [p.to_dict() for p in replayed.pods] == [p.to_dict() for p in live.pods]
    (finding,) = [f for f in replayed.findings if f.code == "MD0204"]
    assert "(last accepted update 23s ago)" in finding.message
