"""Many clusters in one run, end to end through the real kubectl.

Three lab clusters run at once, each its own API server with its own real Envoy sidecars, behind one
kubeconfig: east and west form a healthy mesh (bookinfo in both), south holds the VirtualService whose
subset is missing in a second copy (the same cause as in west, so one root-cause group spans two
clusters), and north is a context whose server port is closed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import pytest

pytestmark = pytest.mark.lab

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
BIN_DIR = Path(sys.executable).parent


@pytest.fixture(scope="module")
def mesh():
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed")
    if not (BIN_DIR / "kubectl-meshdoctor").exists():
        pytest.skip("the kubectl-meshdoctor script is not installed next to this Python (pip install .)")
    from kubectl_meshdoctor.lab.multicluster import LabCluster, MultiLab

    from kubectl_meshdoctor.lab.crosscluster import CALLER, SERVER

    # east's checkout calls ledger, whose only pods run in west: real cross-cluster mTLS, one shared root
    clusters = [LabCluster("east", ("bookinfo-healthy", CALLER)),
                LabCluster("west", ("bookinfo-healthy", "vs-subset-missing", SERVER)),
                LabCluster("south", ("vs-subset-missing",))]
    with MultiLab(clusters, unreachable=["north"]) as running:
        yield running


def meshdoctor(mesh, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": str(mesh.kubeconfig),
           "PATH": f"{BIN_DIR}{os.pathsep}{os.environ.get('PATH', '')}", "NO_COLOR": "1"}
    return subprocess.run([KUBECTL, "meshdoctor", *args], env=env, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)


def as_json(result: subprocess.CompletedProcess) -> dict:
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


def test_healthy_two_cluster_mesh_has_no_error_findings_and_names_each_cluster(mesh):
    result = meshdoctor(mesh, "namespace", "sweep", "--context", "east,west", "-n", "bookinfo", "-o", "json")
    assert result.returncode == 0, result.stderr
    report = as_json(result)
    assert [c["context"] for c in report["clusters"]] == ["east", "west"]
    assert all(c["read"] for c in report["clusters"])
    # The cluster ID comes from what the injector wrote into the sidecars (ISTIO_META_CLUSTER_ID).
    assert {c["clusterId"] for c in report["clusters"]} == {"east", "west"}
    assert {p["cluster"] for p in report["pods"]} == {"east", "west"}
    assert len(report["pods"]) == 12 and all(p["status"] == "healthy" for p in report["pods"])
    assert all(p["pod"].startswith(p["cluster"] + "/") for p in report["pods"])
    assert not [f for f in report["findings"] if f["severity"] == "error"]
    assert [(c["meshId"], c["trustDomain"]) for c in report["clusters"]] == [("mesh1", "cluster.local")] * 2
    assert not [g for g in report["gaps"] if "EDS" in g["what"]], report["gaps"]  # each sidecar answered
    # one root, one mesh, two names, one network, each istiod reading the other cluster
    assert not {"MD0406", "MD0701", "MD0702", "MD0703"} & {f["code"] for f in report["findings"]}


def test_calls_across_clusters_succeed_over_mtls_with_one_root_and_the_sweep_is_clean(mesh):
    east, west = mesh.labs["east"], mesh.labs["west"]
    checkout = east.pods("payments", app="checkout")[0]
    ledger = next(o for o in west.objects if o["kind"] == "Pod" and o["metadata"]["labels"].get("app") == "ledger")
    address = f"{ledger['status']['podIP']}:8080"
    # east's real Envoy reached west's pod IP; west's real Envoy terminated the mTLS (SNI of east's cluster)
    sent = [line for line in east.logs("payments", checkout).splitlines() if '"GET /entries HTTP/1.1"' in line]
    assert len(sent) == 2 and all(" 200 - via_upstream " in line and f'"{address}"' in line for line in sent), sent
    served = west.logs("payments", ledger["metadata"]["name"])
    assert served.count(" 200 - via_upstream ") == 2 and "outbound_.8080_._.ledger.payments.svc.cluster.local" in served
    assert not ledger["status"]["podIP"].startswith(east.pod_cidr.rsplit(".", 1)[0] + ".")  # its own pod CIDR
    result = meshdoctor(mesh, "namespace", "sweep", "-n", "payments", "--context", "east,west", "-o", "json")
    assert result.returncode == 0, result.stderr
    report = as_json(result)
    assert {p["pod"].split("/")[0] for p in report["pods"]} == {"east", "west"}
    assert not [f for f in report["findings"] if f["severity"] == "error"], report["findings"]


def test_clusters_without_examined_sidecars_are_compared_by_the_root_istiod_publishes(mesh):
    result = meshdoctor(mesh, "namespace", "sweep", "-n", "istio-system", "--context", "east,west", "-o", "json")
    assert result.returncode == 0, result.stderr  # one root (the ConfigMaps agree), no sidecar to examine
    report = as_json(result)
    assert not [p for p in report["pods"] if p["status"] not in ("unmeshed", "healthy")]
    assert not [f for f in report["findings"] if f["code"] == "MD0406"]


def test_bookinfo_namespace_sweep_of_both_clusters_through_kubectl_is_clean(mesh):
    result = meshdoctor(mesh, "namespace", "sweep", "-n", "bookinfo", "--context", "east,west")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["clusters: east, west", "no problems found in 12 pods"]


def test_unreachable_cluster_is_a_gap_and_the_other_clusters_are_reported(mesh):
    result = meshdoctor(mesh, "namespace", "sweep", "-A", "--context", "east,north,west", "-o", "json")
    assert result.returncode == 1, result.stderr  # west's missing subset is an error finding
    report = as_json(result)
    read = {c["context"]: c["read"] for c in report["clusters"]}
    assert read == {"east": True, "north": False, "west": True}
    gap = next(g for g in report["gaps"] if g["what"] == "cluster north")
    assert "connection refused" in gap["reason"]
    assert {p["cluster"] for p in report["pods"]} == {"east", "west"}
    codes = {(f["cluster"], f["code"]) for f in report["findings"]}
    assert ("west", "MD0501") in codes and not any(cluster == "east" for cluster, _ in codes if _ == "MD0501")


def test_no_readable_cluster_exits_3(mesh):
    result = meshdoctor(mesh, "namespace", "sweep", "-A", "--context", "north")
    assert result.returncode == 3
    result = meshdoctor(mesh, "namespace", "sweep", "-A", "--context", "north,north")
    assert result.returncode == 3, result.stderr  # one context, named twice: still a multi-cluster run
    assert result.stderr.startswith("error: no cluster could be read: north: cannot reach the API server")


def test_a_misspelt_context_is_a_usage_error_before_any_cluster_is_read(mesh):
    result = meshdoctor(mesh, "namespace", "sweep", "-A", "--context", "east,wset")
    assert result.returncode == 2
    assert "context 'wset' not found in the kubeconfig" in result.stderr


def test_same_cause_in_two_clusters_is_one_root_cause_group_spanning_them(mesh):
    result = meshdoctor(mesh, "namespace", "sweep", "-n", "storefront", "--all-contexts", "-o", "json")
    assert result.returncode == 1, result.stderr
    report = as_json(result)
    group = next(g for g in report["rootCauseGroups"] if g["code"] == "MD0501")
    assert group["clusters"] == ["west", "south"]
    assert {p.split("/")[0] for p in group["pods"]} == {"west", "south"}
    # storefront exists only in west and south: east says so, north cannot be reached
    reasons = {g["what"]: g["reason"] for g in report["gaps"]}
    assert "namespace storefront not found" in reasons["cluster east"]
    table = meshdoctor(mesh, "namespace", "sweep", "-n", "storefront", "--context", "west,south")
    assert table.returncode == 1
    assert "2 clusters, " in table.stdout and "MD0501" in table.stdout


def test_pod_command_over_two_clusters_diagnoses_the_pod_in_each(mesh):
    name = mesh.labs["east"].pods("bookinfo", app="productpage")[0]
    result = meshdoctor(mesh, "pod", name, "-n", "bookinfo", "--context", "east,west", "-o", "json")
    assert result.returncode == 0, result.stderr
    report = as_json(result)
    assert [p["pod"] for p in report["pods"]] == [f"east/bookinfo/{name}", f"west/bookinfo/{name}"]
    trace = meshdoctor(mesh, "pod", name, "-n", "bookinfo", "--context", "east,west", "--trace", "reviews:9080")
    assert trace.returncode == 2 and "one --context" in trace.stderr


def test_saved_multi_cluster_bundle_replays_the_same_report(mesh, tmp_path):
    saved = tmp_path / "mesh.tgz"
    live = meshdoctor(mesh, "namespace", "sweep", "-A", "--context", "west,north,south", "-o", "json",
                      "--save", str(saved))
    assert live.returncode == 1, live.stderr
    replay = meshdoctor(mesh, "analyze", str(saved), "-o", "json")
    assert replay.returncode == 1, replay.stderr
    live_report, replayed = as_json(live), as_json(replay)
    for key in ("clusters", "findings", "pods", "rootCauseGroups", "gaps"):
        assert replayed[key] == live_report[key], key
    import tarfile

    with tarfile.open(saved) as archive:
        files = {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}
    header = json.loads(next(content for name, content in files.items() if name.endswith("bundle.json")
                             and "/clusters/" not in name and not name.startswith("clusters/")))
    anchors = {c["context"]: c.get("trustAnchor") for c in header["clusters"]}
    assert anchors["west"]["cacerts"] == {"present": True, "created": "2026-11-20T08:30:00Z"}
    assert anchors["west"]["rootCerts"][0]["sha256"] and anchors["north"] is None
    # The cacerts Secret's data (the mesh's CA key, also in its last-applied annotation) is nowhere
    planted = next(o for o in mesh.labs["west"].objects if o["kind"] == "Secret")["data"]["ca-key.pem"][:40]
    for name, content in files.items():
        assert b"ca-key.pem" not in content and b"last-applied" not in content, name
        assert planted.encode() not in content, name
    # istio-system's root is kept as serial, validity and fingerprint in the header, not as its PEM
    assert mesh.root.cert_pem.split(b"\n")[1][:40].decode() not in json.dumps(header)


def test_every_cluster_saw_only_reads(mesh):
    from kubectl_meshdoctor.collect.endpoint_query import is_endpoint_query
    from kubectl_meshdoctor.collect.proxy import ALL_COMMANDS, CLUSTERZ, SYNCZ

    for context, lab in mesh.labs.items():
        requests = list(lab.requests)
        assert requests, f"{context} was never read"
        assert {r.verb for r in requests} <= {"get", "list", "log", "exec", "discovery"}, context
        assert all(r.method == "GET" for r in requests), context
        execs = [parse_qs(r.query) for r in requests if r.verb == "exec"]
        for query in execs:
            command = tuple(query["command"])
            assert command in ALL_COMMANDS | {CLUSTERZ, SYNCZ} or is_endpoint_query(_as_sent(command)), command
            # istiod is asked only which clusters it reads, and only istiod is asked that
            assert query["container"] == (["discovery"] if command in (CLUSTERZ, SYNCZ) else ["istio-proxy"]), query
        assert any(tuple(q["command"]) == CLUSTERZ for q in execs), f"{context}: istiod was not asked"
        # The EDS of the Services shared by clusters: one sidecar per cluster, once per multi-cluster run
        # that found such Services (here east and west share bookinfo's; south shares storefront with west).
        eds = [q for q in execs if is_endpoint_query(_as_sent(tuple(q["command"])))]
        assert eds and all(q["container"] == ["istio-proxy"] for q in eds), context
        # Secrets: only cacerts in istio-system, only whether it exists (metadata-only, so no data is sent)
        secrets = [r for r in requests if "/secrets" in r.path]
        assert secrets and {(r.verb, r.path) for r in secrets} == {
            ("get", "/api/v1/namespaces/istio-system/secrets/cacerts")}, context
        assert all("as=PartialObjectMetadata;g=meta.k8s.io" in r.accept for r in secrets), context


def _as_sent(command: tuple) -> tuple:
    """The lab records the exec query string decoded once (aiohttp), and parse_qs decodes it again: the EDS
    query's own percent-encoding, as the plugin sent it, is put back."""
    from urllib.parse import quote

    from kubectl_meshdoctor.collect.endpoint_query import ENDPOINTS_PREFIX

    if len(command) == 4 and command[3].startswith(ENDPOINTS_PREFIX):
        return command[:3] + (ENDPOINTS_PREFIX + quote(command[3][len(ENDPOINTS_PREFIX):], safe=""),)
    return command


def test_every_multi_cluster_read_is_granted_by_the_documented_rbac(mesh):
    from test_e2e_kubectl import _rbac_grants, _rbac_needed

    grants = _rbac_grants()
    for context, lab in mesh.labs.items():
        assert lab.requests, f"{context} was never read (the tests above sweep every cluster first)"
        needed = {_rbac_needed(request) for request in lab.requests if request.verb != "discovery"}
        assert ("", "secrets", "get") in needed and needed <= grants, (context, sorted(needed - grants))


def test_clusters_that_disagree_on_their_mesh_identity_are_md0703():
    """east and west installed apart: west got its own trust domain, and both kept clusterName unset."""
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed")
    from kubectl_meshdoctor.lab.multicluster import LabCluster, MeshIdentity, MultiLab

    clusters = [LabCluster("east", identity=MeshIdentity("Kubernetes")),
                LabCluster("west", identity=MeshIdentity("Kubernetes", trust_domain="west.example"))]
    with MultiLab(clusters) as split:
        result = meshdoctor(split, "namespace", "sweep", "-n", "bookinfo", "--context", "east,west", "-o", "json")
        table = meshdoctor(split, "namespace", "sweep", "-n", "bookinfo", "--context", "east,west")
    assert result.returncode == 1, result.stderr
    found = {f["message"]: f for f in as_json(result)["findings"] if f["code"] == "MD0703"}
    assert set(found) == {"the clusters disagree on the trust domain: east=cluster.local, west=west.example",
                          "clusters east, west use the same cluster name 'Kubernetes'"}
    assert all(f["rootCause"] and f["cluster"] == "east,west" for f in found.values())
    assert "MD0703 MeshIdentityMismatch" in table.stdout and "(cluster east,west)" in table.stdout


def test_a_cluster_with_its_own_root_ca_is_md0406_from_the_real_envoys_rootca():
    """west's istiod signs with a root of its own: its real Envoys hold a ROOTCA east's do not."""
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed")
    from kubectl_meshdoctor.lab.multicluster import LabCluster, MultiLab

    from kubectl_meshdoctor.lab.crosscluster import CALLER, SERVER

    clusters = [LabCluster("east", ("bookinfo-healthy", CALLER)),
                LabCluster("west", ("bookinfo-healthy", SERVER), own_root=True), LabCluster("south")]
    with MultiLab(clusters) as split:
        result = meshdoctor(split, "namespace", "sweep", "-n", "bookinfo", "--all-contexts", "-o", "json")
        across = meshdoctor(split, "namespace", "sweep", "-A", "--context", "east,west", "-o", "json")
        table = meshdoctor(split, "namespace", "sweep", "-A", "--context", "east,west")
        by_config_maps = meshdoctor(split, "namespace", "sweep", "-n", "istio-system", "--context", "east,west",
                                    "-o", "json")
        checkout = split.labs["east"].pods("payments", app="checkout")[0]
        ledger = split.labs["west"].pods("payments", app="ledger")[0]
        ledger_ip = next(o["status"]["podIP"] for o in split.labs["west"].objects if o["metadata"]["name"] == ledger)
        log = split.labs["east"].logs("payments", checkout)
    # east's real Envoy called west's ledger at its pod IP and refused west's certificate
    failed = [line for line in log.splitlines() if '"GET /entries HTTP/1.1"' in line]
    assert len(failed) == 2 and all(" 503 UF " in line and "CERTIFICATE_VERIFY_FAILED" in line
                                    and f'"{ledger_ip}:8080"' in line for line in failed), failed
    assert result.returncode == 1, result.stderr
    found = [f for f in as_json(result)["findings"] if f["code"] == "MD0406"]
    assert len(found) == 1 and found[0]["rootCause"], found
    assert found[0]["message"] == ("clusters east and west, west and south trust different root CAs: "
                                   "cross-cluster mTLS fails certificate verification")
    assert found[0]["cluster"] == "east,west,south"
    assert sum("ROOTCA serial" in line for line in found[0]["evidence"]) == 3  # one root per cluster
    # -A east,west: checkout's failing calls (MD0601) are MD0406's, confirmed by the endpoint: west's ledger pod
    assert across.returncode == 1, across.stderr
    report = as_json(across)
    cause = next(f for f in report["findings"] if f["code"] == "MD0406")
    assert cause["cluster"] == "east,west"
    assert (f"cluster east: payments/{checkout} -> outbound|8080||ledger.payments.svc.cluster.local at {ledger_ip}:8080, "
            f"pod payments/{ledger} of cluster west: 2 calls failed CERTIFICATE_VERIFY_FAILED") in cause["evidence"]
    failing = next(f for f in report["findings"] if f["code"] == "MD0601")
    assert failing["pod"] == f"east/payments/{checkout}" and failing["causedBy"] == ["MD0406"]
    assert not failing["rootCause"]
    group = next(g for g in report["rootCauseGroups"] if g["code"] == "MD0406")
    assert group["pods"] == [f"east/payments/{checkout}"]
    assert not [f for f in report["findings"] if f["severity"] == "error" and f["rootCause"] and f["code"] != "MD0406"]
    assert "MD0406 CrossClusterTrustMismatch" in table.stdout and "Traceback" not in table.stderr
    # istio-system has no sidecar: the clusters are compared by the root each istiod publishes, and west
    # has no plugged-in CA
    assert by_config_maps.returncode == 1, by_config_maps.stderr
    found = next(f for f in as_json(by_config_maps)["findings"] if f["code"] == "MD0406")
    assert found["cluster"] == "east,west"
    assert sum("no sidecar examined; istio-ca-root-cert in istio-system publishes root serial" in line
               for line in found["evidence"]) == 2
    assert "cluster east: Secret istio-system/cacerts present (created 2026-11-20T08:30:00Z)" in found["evidence"]
    assert ("cluster west: no Secret istio-system/cacerts: istiod signs with a self-signed root of its own"
            in found["evidence"])


def test_control_planes_two_minors_apart_are_md0205_across_clusters():
    """east runs Istio 1.24.2, west 1.22.1 and the south 1.23.4 (istiod images, and the proxies their
    injectors gave, so each real Envoy's node metadata says its cluster's release): east and west are two
    minors apart; south is one minor from each. Inside each cluster proxy and istiod agree."""
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed")
    from kubectl_meshdoctor.lab.multicluster import LabCluster, MultiLab

    clusters = [LabCluster("east"), LabCluster("west", istio_version="1.22.1"),
                LabCluster("south", istio_version="1.23.4")]
    with MultiLab(clusters) as split:
        west_envoy = split.labs["west"].exec("bookinfo", split.labs["west"].pods("bookinfo", "ratings")[0],
                                             "istio-proxy", ["pilot-agent", "request", "GET", "server_info"])
        result = meshdoctor(split, "namespace", "sweep", "-n", "bookinfo", "--all-contexts", "-o", "json")
        table = meshdoctor(split, "namespace", "sweep", "-n", "bookinfo", "--all-contexts")
    assert '"ISTIO_VERSION": "1.22.1"' in str(west_envoy), west_envoy  # the real Envoy's own metadata
    assert result.returncode == 0, result.stderr  # a warning: below the default --fail-on error
    found = [f for f in as_json(result)["findings"] if f["code"] == "MD0205"]
    assert len(found) == 1, found  # no proxy is skewed against its own istiod; only east and west are apart
    assert found[0]["message"] == (
        "control planes of one mesh 2 minor releases apart: cluster west runs istiod 1.22.1 (revision default), "
        "cluster east istiod 1.24.2 (revision default); Istio supports one minor at most")
    assert found[0]["cluster"] == "west,east" and found[0]["rootCause"] and found[0]["severity"] == "warning"
    assert found[0]["subject"]["name"] == "istiod"
    assert "MD0205 ProxyVersionSkew" in table.stdout and "(cluster west,east)" in table.stdout


def test_multi_network_mesh_needs_a_working_east_west_gateway_in_each_cluster():
    """east (network1) has a working east-west gateway; west (network2) has one whose LoadBalancer
    never got an address; south (network3) has none. east's own gateway passes in every run."""
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed")
    from kubectl_meshdoctor.lab.multicluster import LabCluster, MeshIdentity, MultiLab

    clusters = [LabCluster("east", identity=MeshIdentity("east", network="network1"), east_west_gateway="ready"),
                LabCluster("west", identity=MeshIdentity("west", network="network2"), east_west_gateway="pending"),
                LabCluster("south", identity=MeshIdentity("south", network="network3"))]
    with MultiLab(clusters) as split:
        saved = split.workdir / "networks.tgz"
        broken = meshdoctor(split, "namespace", "sweep", "-n", "bookinfo", "--all-contexts", "-o", "json",
                            "--save", str(saved))
        working = meshdoctor(split, "namespace", "sweep", "-n", "bookinfo", "--context", "east,south", "-o", "json")
        requests = [r for lab in split.labs.values() for r in lab.requests]
        from kubectl_meshdoctor.multibundle import load_bundle

        eds = {c.context: c.endpoints["clusters"]["outbound|9080||reviews.bookinfo.svc.cluster.local"]
               for c in load_bundle(saved).clusters}
    assert broken.returncode == 1, broken.stderr
    # The real Envoys' EDS, as istiod builds it across networks: east's ready gateway stands in for east's
    # three reviews pods (15443, weight 3) in west and south; west's gateway has no address and south has
    # none, so their pods are listed as they are (istiod knows no gateway to send them through).
    def origins(endpoints):
        return sorted((e["clusterId"], e["address"].rpartition(":")[2], e["weight"]) for e in endpoints)

    assert origins(eds["west"]) == origins(eds["south"]) == sorted(
        [("east", "15443", 3)] + [("south", "9080", 1)] * 3 + [("west", "9080", 1)] * 3)
    assert origins(eds["east"]) == sorted([(c, "9080", 1) for c in ("east", "west", "south") for _ in range(3)])
    assert {e["address"] for e in eds["west"] if e["clusterId"] == "east"} == {"203.0.113.20:15443"}
    found = {f["cluster"]: f for f in as_json(broken)["findings"] if f["code"] == "MD0702"}
    assert set(found) == {"west", "south"}
    assert found["west"]["message"] == ("cluster west (network network2): the east-west gateway istio-eastwestgateway "
                                        "has no external address, so clusters on network network1, network3 cannot "
                                        "reach its workloads")
    assert found["south"]["subject"] == {"kind": "Service", "namespace": "istio-system", "name": "istio-eastwestgateway"}
    report = as_json(working)
    assert {c["network"] for c in report["clusters"]} == {"network1", "network3"}
    assert [f["cluster"] for f in report["findings"] if f["code"] == "MD0702"] == ["south"]
    assert any(r.path.endswith("/namespaces/istio-system/gateways") for r in requests)  # the new read
    assert {r.method for r in requests} == {"GET"}


def test_pods_injected_onto_a_network_of_their_own_need_its_gateway():
    """east and west share network1 and each runs its gateway, but west's payments pods were injected onto
    network2 (ISTIO_META_NETWORK and the pod label): west needs a network2 gateway too. Then the same with
    that gateway: clean."""
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed")
    from kubectl_meshdoctor.lab.crosscluster import SERVER
    from kubectl_meshdoctor.lab.multicluster import LabCluster, MultiLab

    def clusters(*gateways: str) -> list:
        return [LabCluster("east", east_west_gateway="ready"),
                LabCluster("west", ("bookinfo-healthy", SERVER), east_west_gateway="ready",
                           namespace_networks={"payments": "network2"}, network_gateways=gateways)]

    with MultiLab(clusters()) as split:
        missing = meshdoctor(split, "namespace", "sweep", "-A", "--context", "east,west", "-o", "json")
        ledger = split.labs["west"].pods("payments", app="ledger")[0]
    assert missing.returncode == 1, missing.stderr
    found = [(f["cluster"], f["message"]) for f in as_json(missing)["findings"] if f["code"] == "MD0702"]
    assert found == [("west", f"cluster west (pod payments/{ledger} on network network2): no east-west gateway for "
                               "network network2, so clusters on network network1 cannot reach them")]
    with MultiLab(clusters("network2")) as split:
        served = meshdoctor(split, "namespace", "sweep", "-A", "--context", "east,west", "-o", "json")
    assert served.returncode == 0, served.stderr
    assert not [f for f in as_json(served)["findings"] if f["code"] == "MD0702"]


def test_istiod_that_does_not_read_the_other_cluster_is_md0701():
    """Multi-primary, but east's istiod has no remote secret for west, and west's sync with east timed out."""
    if not Path(KUBECTL).exists():
        pytest.skip("kubectl is not installed")
    from kubectl_meshdoctor.lab.multicluster import LabCluster, MultiLab

    with MultiLab([LabCluster("east", reads={}), LabCluster("west", reads={"east": "timeout"})]) as split:
        result = meshdoctor(split, "namespace", "sweep", "-n", "bookinfo", "--context", "east,west", "-o", "json")
        saved = split.workdir / "split.tgz"
        live = meshdoctor(split, "namespace", "sweep", "-n", "bookinfo", "--context", "east,west", "-o", "json",
                          "--save", str(saved))
        replay = meshdoctor(split, "analyze", str(saved), "-o", "json")
        eds_execs = [r for lab in split.labs.values() for r in lab.requests
                     if r.verb == "exec" and "dynamic_endpoint_configs" in r.query]
    assert result.returncode == 1, result.stderr
    found = {f["cluster"]: f["message"] for f in as_json(result)["findings"] if f["code"] == "MD0701"}
    evidence = {f["cluster"]: f["evidence"] for f in as_json(result)["findings"] if f["code"] == "MD0701"}
    # The real Envoys' EDS: each sidecar holds its own cluster's bookinfo pods only (one bookinfo sidecar
    # is asked; details, productpage, ratings, reviews run in both clusters).
    sidecar = {c: next(line.split(" in sidecar ")[1].split(" ")[0] for line in lines if " in sidecar " in line)
               for c, lines in evidence.items()}
    assert all(s.startswith("bookinfo/") for s in sidecar.values()), sidecar
    assert evidence["east"][1:] == [
        f"EDS of {svc} in sidecar {sidecar['east']} (cluster east): {n}, all local; cluster west has {pods}"
        for svc, n, pods in (("details.bookinfo:9080", "1 endpoint", "1 ready pod"),
                             ("productpage.bookinfo:9080", "1 endpoint", "1 ready pod"),
                             ("ratings.bookinfo:9080", "1 endpoint", "1 ready pod"),
                             ("reviews.bookinfo:9080", "3 endpoints", "3 ready pods"))]
    assert len(evidence["west"]) == 5 and "cluster east has 3 ready pods" in evidence["west"][-1]
    assert len(eds_execs) == 4  # one sidecar per cluster, per run: two runs
    # The saved bundle holds the EDS evidence and analyze replays the same findings.
    assert replay.returncode == 1, replay.stderr
    assert as_json(replay)["findings"] == as_json(live)["findings"]
    assert found == {
        "east": "istiod of cluster east does not read cluster west (cluster ID west): no remote secret for it: "
                "its sidecars get only local endpoints of services that also run in west",
        "west": "istiod of cluster west reads cluster east but has not synced it (sync status timeout, secret "
                "istio-system/istio-remote-secret-east): its sidecars get only local endpoints of services that "
                "also run in east"}
