"""The lab's Kubernetes API server, driven by the clients the plugin meets in real life: the official
Python client and the real kubectl (skipped when absent), plus the selector grammar on its own."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from kubectl_meshdoctor.lab.apiserver import (
    AccessPolicy, ExecResult, KubeApiServer, KubeApiServerThread, ObjectStore, RecordedRequest,
)
from kubectl_meshdoctor.lab.selectors import (
    SelectorError, fields_match, labels_match, parse_field_selector, parse_label_selector,
)
from kubectl_meshdoctor.lab.tables import human_age, table

from .apiserver_fixtures import (
    DESTINATION_RULE, KUBECTL, SHOP_PODS, VIRTUAL_SERVICE, big_output, echo_exec, lab_store, numbered_log,
    pod, run_kubectl,
)

needs_kubectl = pytest.mark.skipif(not os.access(KUBECTL, os.X_OK), reason="kubectl is not installed")


@dataclass
class Lab:
    thread: KubeApiServerThread
    kubeconfig: Path
    cache_dir: Path

    @property
    def server(self) -> KubeApiServer:
        return self.thread.server

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def kubectl(self, *args: str):
        return run_kubectl(self.kubeconfig, self.cache_dir, *args)

    def requests_since(self, mark: int) -> list[RecordedRequest]:
        return self.server.requests[mark:]


@contextlib.contextmanager
def serve(tmp_path: Path, *, store: ObjectStore | None = None, policy: AccessPolicy | None = None) -> Iterator[Lab]:
    store = store if store is not None else lab_store()
    with KubeApiServerThread(lambda: KubeApiServer(store, echo_exec, numbered_log, policy)) as thread:
        kubeconfig = thread.server.write_kubeconfig(tmp_path / "kubeconfig", namespace="shop")
        yield Lab(thread, kubeconfig, tmp_path / "kubectl-cache")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with serve(tmp_path_factory.mktemp("lab")) as running:
        yield running


@pytest.fixture
def core(lab: Lab) -> Iterator[client.CoreV1Api]:
    api_client = lab.api_client()
    yield client.CoreV1Api(api_client)
    api_client.close()


def exec_in(api: client.CoreV1Api, namespace: str, name: str, container: str, command: list[str]):
    response = stream(api.connect_get_namespaced_pod_exec, name, namespace, command=command, container=container,
                      stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
    response.run_forever(timeout=60)
    return response.read_stdout(), response.read_stderr(), response.returncode


def raw_get(lab: Lab, path: str, *, token: str | None = None, accept: str = "application/json"):
    """A GET with the standard library, to see status codes and headers as they are on the wire."""
    context = ssl.create_default_context(cadata=lab.server.ca_pem.decode())
    headers = {"Accept": accept}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(lab.server.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return response.status, response.headers.get("Content-Type"), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type"), json.loads(error.read())


def names(pod_list) -> list[str]:
    return [item.metadata.name for item in pod_list.items]


# -- the official Python client ------------------------------------------------------------------------


def test_client_lists_pods_everywhere_and_in_one_namespace(core: client.CoreV1Api):
    everywhere = core.list_pod_for_all_namespaces()
    assert [(p.metadata.namespace, p.metadata.name) for p in everywhere.items] == [
        ("shop", "db-1"), ("shop", "web-1"), ("shop", "web-2"), ("tools", "finished-job"), ("tools", "toolbox")]
    assert everywhere.kind == "PodList" and everywhere.api_version == "v1"
    assert int(everywhere.metadata.resource_version) > 0
    assert names(core.list_namespaced_pod("shop")) == list(SHOP_PODS)
    assert names(core.list_namespaced_pod("nowhere")) == []
    assert names(core.list_namespace()) == ["shop", "tools"]


@pytest.mark.parametrize(("selector", "expected"), [
    ("app=web", ["web-1", "web-2"]),
    ("app==web,version=v2", ["web-2"]),
    ("app!=web", ["db-1"]),
    ("version in (v1, v3)", ["web-1"]),
    ("version notin (v1)", ["db-1", "web-2"]),
    ("tier", ["db-1"]),
    ("!tier", ["web-1", "web-2"]),
    ("app in (web,db),!version", ["db-1"]),
])
def test_client_label_selectors(core: client.CoreV1Api, selector: str, expected: list[str]):
    assert names(core.list_namespaced_pod("shop", label_selector=selector)) == expected


@pytest.mark.parametrize(("selector", "expected"), [
    ("metadata.name=web-2", ["web-2"]),
    ("status.phase=Running", ["web-1", "web-2", "toolbox"]),
    ("status.phase!=Running,metadata.namespace=shop", ["db-1"]),
    ("spec.nodeName=node-2", ["web-2"]),
    ("metadata.namespace==tools", ["finished-job", "toolbox"]),
])
def test_client_field_selectors(core: client.CoreV1Api, selector: str, expected: list[str]):
    assert names(core.list_pod_for_all_namespaces(field_selector=selector)) == expected


def test_bad_selectors_answer_400_like_the_real_server(core: client.CoreV1Api):
    with pytest.raises(ApiException) as unsupported:
        core.list_namespaced_pod("shop", field_selector="spec.hostname=x")
    assert unsupported.value.status == 400
    assert json.loads(unsupported.value.body)["message"] == "field label not supported: spec.hostname"
    with pytest.raises(ApiException) as malformed:
        core.list_namespaced_pod("shop", label_selector="app in web")
    assert malformed.value.status == 400


def test_client_paginates_with_limit_and_continue(core: client.CoreV1Api):
    seen: list[str] = []
    remaining_counts: list[int | None] = []
    token = None
    while True:
        page = core.list_pod_for_all_namespaces(limit=2, _continue=token)
        assert len(page.items) <= 2
        seen += names(page)
        remaining_counts.append(page.metadata.remaining_item_count)
        token = page.metadata._continue
        if not token:
            break
    assert seen == ["db-1", "web-1", "web-2", "finished-job", "toolbox"]
    assert remaining_counts == [3, 1, None]
    one = core.list_namespaced_pod("shop", limit=1, label_selector="app=web")
    assert names(one) == ["web-1"] and one.metadata._continue
    assert one.metadata.remaining_item_count is None  # the real server gives no count with a selector
    rest = core.list_namespaced_pod("shop", limit=1, label_selector="app=web", _continue=one.metadata._continue)
    assert names(rest) == ["web-2"]


def test_invalid_continue_token_is_a_400(core: client.CoreV1Api):
    with pytest.raises(ApiException) as error:
        core.list_namespaced_pod("shop", limit=1, _continue="not-a-token")
    assert error.value.status == 400


def test_client_reads_objects_and_gets_404_status_for_missing_ones(core: client.CoreV1Api):
    web = core.read_namespaced_pod("web-1", "shop")
    assert web.metadata.uid and web.metadata.creation_timestamp and web.spec.node_name == "node-1"
    assert core.read_namespaced_service("web", "shop").spec.selector == {"app": "web"}
    with pytest.raises(ApiException) as missing_pod:
        core.read_namespaced_pod("ghost", "shop")
    assert missing_pod.value.status == 404
    status = json.loads(missing_pod.value.body)
    assert (status["kind"], status["reason"], status["message"]) == ("Status", "NotFound", 'pods "ghost" not found')
    with pytest.raises(ApiException) as missing_namespace:
        core.read_namespace("nowhere")
    assert json.loads(missing_namespace.value.body)["message"] == 'namespaces "nowhere" not found'


def test_custom_objects_serve_istio_objects_in_every_version(lab: Lab):
    api_client = lab.api_client()
    try:
        custom = client.CustomObjectsApi(api_client)
        for version in ("v1", "v1beta1", "v1alpha3"):
            listed = custom.list_cluster_custom_object("networking.istio.io", version, "virtualservices")
            assert listed["kind"] == "VirtualServiceList"
            assert [item["metadata"]["name"] for item in listed["items"]] == ["web-routes"]
            assert {listed["apiVersion"], listed["items"][0]["apiVersion"]} == {f"networking.istio.io/{version}"}
            assert listed["items"][0]["spec"] == VIRTUAL_SERVICE["spec"]
        in_shop = custom.list_namespaced_custom_object("networking.istio.io", "v1alpha3", "shop", "virtualservices")
        assert len(in_shop["items"]) == 1
        rule = custom.get_namespaced_custom_object("networking.istio.io", "v1", "shop", "destinationrules", "web")
        assert rule["apiVersion"] == "networking.istio.io/v1" and rule["spec"] == DESTINATION_RULE["spec"]
        with pytest.raises(ApiException) as wrong_version:
            custom.list_cluster_custom_object("security.istio.io", "v1alpha3", "authorizationpolicies")
        assert wrong_version.value.status == 404
    finally:
        api_client.close()


def test_client_exec_returns_stdout_stderr_and_success(lab: Lab):
    api_client = lab.api_client()  # exec gets its own ApiClient: stream() swaps its request method
    try:
        stdout, stderr, code = exec_in(client.CoreV1Api(api_client), "shop", "web-1", "istio-proxy",
                                       ["cat", "/etc/resolv.conf"])
    finally:
        api_client.close()
    assert (stdout, stderr, code) == ("shop/web-1/istio-proxy: cat /etc/resolv.conf\n", "to stderr\n", 0)


def test_client_exec_reports_a_non_zero_exit_code(lab: Lab):
    api_client = lab.api_client()
    try:
        stdout, stderr, code = exec_in(client.CoreV1Api(api_client), "shop", "web-1", "istio-proxy", ["exit", "7"])
    finally:
        api_client.close()
    assert (stdout, stderr, code) == ("", "exiting as asked\n", 7)


def test_client_exec_into_unknown_container_or_pod_is_refused_before_the_upgrade(lab: Lab):
    api_client = lab.api_client()
    try:
        api = client.CoreV1Api(api_client)
        with pytest.raises(ApiException) as bad_container:
            exec_in(api, "shop", "web-1", "sidecar", ["true"])
        assert "container sidecar is not valid for pod web-1" in str(bad_container.value)
        with pytest.raises(ApiException) as bad_pod:
            exec_in(api, "shop", "ghost", "istio-proxy", ["true"])
        assert "404" in str(bad_pod.value)
    finally:
        api_client.close()


def test_client_reads_pod_logs_through_the_log_handler(core: client.CoreV1Api):
    text = core.read_namespaced_pod_log("web-2", "shop", container="istio-proxy", tail_lines=2, since_seconds=60)
    assert text == "shop/web-2/istio-proxy line 9\nshop/web-2/istio-proxy line 10\nsince=60\n"
    # A single-container pod needs no container name, as in the real API.
    assert core.read_namespaced_pod_log("toolbox", "tools", tail_lines=1) == "tools/toolbox/toolbox line 10\n"


def test_logs_of_unknown_pod_or_container_are_refused(core: client.CoreV1Api):
    with pytest.raises(ApiException) as missing_pod:
        core.read_namespaced_pod_log("ghost", "shop", container="istio-proxy")
    assert missing_pod.value.status == 404
    with pytest.raises(ApiException) as missing_container:
        core.read_namespaced_pod_log("web-1", "shop", container="sidecar")
    assert missing_container.value.status == 400
    assert json.loads(missing_container.value.body)["message"] == "container sidecar is not valid for pod web-1"
    with pytest.raises(ApiException) as ambiguous:
        core.read_namespaced_pod_log("web-1", "shop")
    assert "choose one of: [app istio-proxy]" in json.loads(ambiguous.value.body)["message"]


def test_mutations_are_refused_with_405_and_recorded(lab: Lab, core: client.CoreV1Api):
    mark = len(lab.server.requests)
    with pytest.raises(ApiException) as deleted:
        core.delete_namespaced_pod("web-1", "shop")
    assert deleted.value.status == 405
    with pytest.raises(ApiException) as created:
        core.create_namespaced_config_map("shop", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    assert created.value.status == 405
    with pytest.raises(ApiException) as patched:
        core.patch_namespaced_pod("web-1", "shop", {"metadata": {"labels": {"a": "b"}}})
    assert patched.value.status == 405
    with pytest.raises(ApiException) as replaced:
        core.replace_namespace("shop", client.V1Namespace(metadata=client.V1ObjectMeta(name="shop")))
    assert replaced.value.status == 405
    assert [(r.method, r.verb) for r in lab.requests_since(mark)] == [
        ("DELETE", "delete"), ("POST", "create"), ("PATCH", "patch"), ("PUT", "update")]
    assert core.read_namespaced_pod("web-1", "shop").metadata.name == "web-1"


def test_watch_is_refused_with_405(core: client.CoreV1Api):
    with pytest.raises(ApiException) as watched:
        core.list_namespaced_pod("shop", watch=True, _preload_content=False)
    assert watched.value.status == 405


def test_discovery_documents(lab: Lab):
    token = lab.server.token
    status, _, core_v1 = raw_get(lab, "/api/v1", token=token)
    assert status == 200 and core_v1["groupVersion"] == "v1"
    by_name = {resource["name"]: resource for resource in core_v1["resources"]}
    assert {"pods", "services", "endpoints", "namespaces", "secrets", "configmaps", "nodes", "pods/exec",
            "pods/log"} <= set(by_name)
    assert by_name["namespaces"]["namespaced"] is False and by_name["pods"]["shortNames"] == ["po"]
    _, _, groups = raw_get(lab, "/apis", token=token)
    versions = {g["name"]: [v["version"] for v in g["versions"]] for g in groups["groups"]}
    assert versions["networking.istio.io"] == ["v1", "v1beta1", "v1alpha3"]
    assert versions["security.istio.io"] == ["v1", "v1beta1"]
    assert {"apps", "discovery.k8s.io"} <= set(versions)
    _, _, networking = raw_get(lab, "/apis/networking.istio.io/v1alpha3", token=token)
    assert {r["name"] for r in networking["resources"]} >= {"virtualservices", "destinationrules", "envoyfilters"}
    # kubectl asks for aggregated discovery first; a plain JSON answer makes it fall back to this format.
    aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    _, content_type, body = raw_get(lab, "/apis", token=token, accept=aggregated)
    assert content_type == "application/json" and body["kind"] == "APIGroupList"


def test_requests_without_the_token_get_401(lab: Lab):
    status, _, body = raw_get(lab, "/api/v1/pods")
    assert (status, body["kind"], body["reason"]) == (401, "Status", "Unauthorized")
    status, _, _ = raw_get(lab, "/api/v1/pods", token="wrong")
    assert status == 401


def test_unauthorized_policy_refuses_every_client_request(tmp_path: Path):
    with serve(tmp_path, policy=AccessPolicy(unauthorized=True)) as lab:
        api_client = lab.api_client()
        try:
            with pytest.raises(ApiException) as refused:
                client.CoreV1Api(api_client).list_namespaced_pod("shop")
        finally:
            api_client.close()
        assert refused.value.status == 401
        if os.access(KUBECTL, os.X_OK):
            result = lab.kubectl("get", "pods")
            assert result.returncode == 1
            assert "You must be logged in to the server" in result.stderr


def test_forbidden_resources_answer_403_with_the_rbac_message(tmp_path: Path):
    policy = AccessPolicy(forbidden_resources={"secrets", "destinationrules", "pods/log"})
    with serve(tmp_path, policy=policy) as lab:
        api_client = lab.api_client()
        try:
            core = client.CoreV1Api(api_client)
            with pytest.raises(ApiException) as namespaced:
                core.list_namespaced_secret("shop")
            assert namespaced.value.status == 403
            assert json.loads(namespaced.value.body)["message"] == (
                'secrets is forbidden: User "meshdoctor-lab" cannot list resource "secrets" in API group "" '
                'in the namespace "shop"')
            with pytest.raises(ApiException) as cluster_wide:
                client.CustomObjectsApi(api_client).list_cluster_custom_object(
                    "networking.istio.io", "v1", "destinationrules")
            assert json.loads(cluster_wide.value.body)["message"] == (
                'destinationrules.networking.istio.io is forbidden: User "meshdoctor-lab" cannot list resource '
                '"destinationrules" in API group "networking.istio.io" at the cluster scope')
            with pytest.raises(ApiException) as logs:
                core.read_namespaced_pod_log("web-1", "shop", container="istio-proxy")
            assert logs.value.status == 403
            assert names(core.list_namespaced_pod("shop")) == list(SHOP_PODS)  # the rest stays readable
        finally:
            api_client.close()


def test_forbidden_exec_is_refused_to_the_client_and_to_kubectl(tmp_path: Path):
    with serve(tmp_path, policy=AccessPolicy(forbid_exec=True)) as lab:
        api_client = lab.api_client()
        try:
            with pytest.raises(ApiException) as refused:
                exec_in(client.CoreV1Api(api_client), "shop", "web-1", "istio-proxy", ["true"])
        finally:
            api_client.close()
        # The client puts the handshake's JSON Status (quotes escaped) into the exception's reason.
        assert "Handshake status 403" in str(refused.value) and "cannot create resource" in str(refused.value)
        assert "pods/exec" in str(refused.value)
        assert [r.verb for r in lab.server.requests if r.path.endswith("/exec")] == ["exec"]
        if os.access(KUBECTL, os.X_OK):
            result = lab.kubectl("exec", "web-1", "-c", "istio-proxy", "--", "true")
            assert result.returncode == 1
            assert 'pods "web-1" is forbidden' in result.stderr


def test_exec_latency_still_delivers_the_output(tmp_path: Path):
    with serve(tmp_path, policy=AccessPolicy(exec_latency=0.05)) as lab:
        api_client = lab.api_client()
        try:
            stdout, _, code = exec_in(client.CoreV1Api(api_client), "shop", "db-1", "app", ["hostname"])
        finally:
            api_client.close()
    assert (stdout, code) == ("shop/db-1/app: hostname\n", 0)


def test_hanging_exec_never_answers_and_the_server_still_stops(tmp_path: Path):
    with serve(tmp_path, policy=AccessPolicy(hang_exec={("shop", "web-2")})) as lab:
        api_client = lab.api_client()
        try:
            response = stream(client.CoreV1Api(api_client).connect_get_namespaced_pod_exec, "web-2", "shop",
                              command=["hostname"], container="istio-proxy", stderr=True, stdin=False,
                              stdout=True, tty=False, _preload_content=False)
            response.run_forever(timeout=0.5)
            assert response.is_open() and response.returncode is None and response.peek_stdout() == ""
            # Other pods are unaffected while one exec hangs.
            assert exec_in(client.CoreV1Api(lab.api_client()), "shop", "web-1", "app", ["id"])[2] == 0
        finally:
            api_client.close()
    # Leaving `serve` stopped the server although the hanging stream was still open.
    with pytest.raises(RuntimeError):
        lab.thread.server


def test_exec_without_a_handler_exits_127(tmp_path: Path):
    with KubeApiServerThread(lambda: KubeApiServer(lab_store())) as thread:
        kubeconfig = thread.server.write_kubeconfig(tmp_path / "config")
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        try:
            _, stderr, code = exec_in(client.CoreV1Api(api_client), "shop", "web-1", "app", ["envoy"])
        finally:
            api_client.close()
    assert code == 127 and "executable file not found" in stderr


def test_many_concurrent_execs_all_get_their_full_output(lab: Lab):
    size = 1024 * 1024
    expected = big_output(size).decode()

    def one_exec(index: int) -> tuple[int, bool, int]:
        api_client = lab.api_client()
        try:
            stdout, _, code = exec_in(client.CoreV1Api(api_client), "shop", SHOP_PODS[index % 3], "istio-proxy",
                                      ["big", str(size)])
        finally:
            api_client.close()
        return len(stdout), stdout == expected, code

    with ThreadPoolExecutor(max_workers=40) as pool:
        results = list(pool.map(one_exec, range(40)))
    assert results == [(size, True, 0)] * 40


# -- the real kubectl ------------------------------------------------------------------------------------


@needs_kubectl
def test_kubectl_get_pods_everywhere_and_by_label(lab: Lab):
    everywhere = lab.kubectl("get", "pods", "-A")
    assert everywhere.returncode == 0, everywhere.stderr
    rows = [line.split()[:2] for line in everywhere.stdout.splitlines()[1:]]
    assert rows == [["shop", "db-1"], ["shop", "web-1"], ["shop", "web-2"], ["tools", "finished-job"],
                    ["tools", "toolbox"]]
    header = everywhere.stdout.splitlines()[0].split()
    assert header == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]  # the server-side Table
    assert everywhere.stdout.splitlines()[1].split()[2:5] == ["0/2", "Pending", "0"]
    selected = lab.kubectl("get", "pods", "-n", "shop", "-l", "app=web", "-o", "name")
    assert (selected.returncode, selected.stdout) == (0, "pod/web-1\npod/web-2\n")
    as_json = lab.kubectl("get", "pod", "web-1", "-o", "json")
    assert json.loads(as_json.stdout)["spec"]["nodeName"] == "node-1"


@needs_kubectl
def test_kubectl_gets_istio_objects(lab: Lab):
    result = lab.kubectl("get", "virtualservices.networking.istio.io", "-A", "-o", "name")
    assert (result.returncode, result.stdout) == (0, "virtualservice.networking.istio.io/web-routes\n")
    short = lab.kubectl("get", "dr", "-n", "shop", "-o", "jsonpath={.items[*].spec.host}")
    assert (short.returncode, short.stdout) == (0, "web")


@needs_kubectl
def test_kubectl_exec_streams_output_and_propagates_the_exit_code(lab: Lab):
    mark = len(lab.server.requests)
    result = lab.kubectl("exec", "web-1", "-c", "istio-proxy", "--", "cat", "/etc/resolv.conf")
    assert (result.returncode, result.stdout) == (0, "shop/web-1/istio-proxy: cat /etc/resolv.conf\n")
    assert "to stderr" in result.stderr
    failed = lab.kubectl("exec", "web-1", "-c", "istio-proxy", "--", "exit", "3")
    assert failed.returncode == 3 and "exiting as asked" in failed.stderr
    exec_requests = [r for r in lab.requests_since(mark) if r.verb == "exec"]
    # WebSocket (GET) only: kubectl never had to fall back to SPDY.
    assert [r.method for r in exec_requests] == ["GET", "GET"]
    assert "command=cat&command=/etc/resolv.conf" in exec_requests[0].query


@needs_kubectl
def test_kubectl_exec_refusals_are_clear(lab: Lab):
    bad_container = lab.kubectl("exec", "web-1", "-c", "sidecar", "--", "true")
    assert bad_container.returncode == 1
    assert "container sidecar is not valid for pod web-1" in bad_container.stderr
    completed = lab.kubectl("exec", "-n", "tools", "finished-job", "--", "true")
    assert completed.returncode == 1 and "cannot exec into a container in a completed pod" in completed.stderr


@needs_kubectl
def test_kubectl_logs(lab: Lab):
    result = lab.kubectl("logs", "web-1", "-c", "istio-proxy", "--tail", "1")
    assert (result.returncode, result.stdout) == (0, "shop/web-1/istio-proxy line 10\n")


@needs_kubectl
def test_kubectl_delete_is_refused_and_recorded(lab: Lab):
    mark = len(lab.server.requests)
    result = lab.kubectl("delete", "pod", "web-2")
    assert result.returncode != 0 and "MethodNotAllowed" in result.stderr
    assert [(r.method, r.path, r.verb) for r in lab.requests_since(mark) if r.verb == "delete"] == [
        ("DELETE", "/api/v1/namespaces/shop/pods/web-2", "delete")]
    assert lab.kubectl("get", "pod", "web-2", "-o", "name").stdout == "pod/web-2\n"


@needs_kubectl
def test_without_istio_crds_kubectl_and_the_client_fail_cleanly(tmp_path: Path):
    with serve(tmp_path, store=lab_store(istio_installed=False)) as lab:
        result = lab.kubectl("get", "virtualservices", "-A")
        assert result.returncode == 1
        assert 'the server doesn\'t have a resource type "virtualservices"' in result.stderr
        assert "Traceback" not in result.stderr
        status, _, body = raw_get(lab, "/apis/networking.istio.io/v1/virtualservices", token=lab.server.token)
        assert (status, body["reason"]) == (404, "NotFound")
        _, _, groups = raw_get(lab, "/apis", token=lab.server.token)
        assert not {"networking.istio.io", "security.istio.io"} & {g["name"] for g in groups["groups"]}
        assert lab.kubectl("get", "pods", "-o", "name").returncode == 0


# -- the object store and the selector grammar -------------------------------------------------------------


def test_store_fills_server_metadata_and_keeps_a_copy():
    original = pod("shop", "p", {"app": "x"})
    store = ObjectStore([original])
    stored = store.find("Pod", "p", "shop")
    assert stored is not None and stored is not original and "uid" not in original["metadata"]
    assert stored["metadata"]["uid"] and stored["metadata"]["resourceVersion"]
    assert stored["metadata"]["creationTimestamp"].endswith("Z")
    namespace = store.find("Namespace", "shop")
    assert namespace is not None and namespace["status"]["phase"] == "Active"
    assert store.remove("Pod", "p", "shop") and store.find("Pod", "p", "shop") is None


def test_store_refuses_what_the_cluster_would_not_hold():
    with pytest.raises(ValueError, match="no Istio CRDs"):
        ObjectStore([VIRTUAL_SERVICE], istio_installed=False)
    with pytest.raises(ValueError, match="not served in version"):
        ObjectStore([{**VIRTUAL_SERVICE, "apiVersion": "networking.istio.io/v2"}])
    with pytest.raises(ValueError, match="does not serve kind"):
        ObjectStore([{"apiVersion": "v1", "kind": "Widget", "metadata": {"name": "w"}}])


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ("", {}, True),
    ("a=b", {"a": "b"}, True),
    ("a=b", {"a": "c"}, False),
    ("a!=b", {}, True),
    ("a in (b, c),d", {"a": "c", "d": ""}, True),
    ("a notin (b,c)", {"a": "c"}, False),
    ("!a", {"a": "x"}, False),
    ("example.com/tier=web", {"example.com/tier": "web"}, True),
    ("n>3", {"n": "4"}, True),
    ("n<3", {"n": "x"}, False),
])
def test_label_selector_grammar(selector: str, labels: dict[str, str], matches: bool):
    assert labels_match(parse_label_selector(selector), labels) is matches


@pytest.mark.parametrize("selector", ["a in b", "a=b=c", "=b", "a,", "a in (b c)", "n>x"])
def test_label_selector_rejects_malformed_input(selector: str):
    with pytest.raises(SelectorError):
        parse_label_selector(selector)


def test_field_selectors_read_nested_fields_and_refuse_unknown_ones():
    obj = {"metadata": {"name": "p", "namespace": "n"}, "spec": {"hostNetwork": True}, "status": {}}
    assert fields_match(parse_field_selector("spec.hostNetwork=true,status.phase=", "Pod"), obj)
    assert not fields_match(parse_field_selector("metadata.name!=p", "Pod"), obj)
    with pytest.raises(SelectorError, match="field label not supported: status.phase"):
        parse_field_selector("status.phase=Running", "Service")


def test_exec_result_defaults():
    assert ExecResult(0) == ExecResult(0, b"", b"")


def test_pod_table_rows_show_readiness_waiting_reason_and_restarts():
    crashing = pod("shop", "c", {})
    crashing["status"]["containerStatuses"] = [
        {"name": "app", "ready": False, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}},
        {"name": "istio-proxy", "ready": True, "restartCount": 1, "state": {"running": {}}},
    ]
    row = table("Pod", [crashing])["rows"][0]
    assert row["cells"][:4] == ["c", "1/2", "CrashLoopBackOff", "5"] and row["object"] is crashing


@pytest.mark.parametrize(("seconds", "shown"), [(5, "5s"), (119, "119s"), (600, "10m"), (3 * 3600, "3h"),
                                                 (5 * 86400, "5d")])
def test_human_age(seconds: int, shown: str):
    now = datetime(2025, 6, 1, tzinfo=timezone.utc)
    created = (now - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert human_age(created, now) == shown


def test_exec_without_a_websocket_upgrade_names_what_is_missing(lab: Lab):
    """What kubectl's SPDY fallback gets: a Status it prints as `unable to upgrade connection: ...`."""
    context = ssl.create_default_context(cadata=lab.server.ca_pem.decode())
    request = urllib.request.Request(
        lab.server.url + "/api/v1/namespaces/shop/pods/web-1/exec?command=true&container=app&stdout=true",
        method="POST", headers={"Authorization": f"Bearer {lab.server.token}", "Connection": "Upgrade",
                                "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": "v4.channel.k8s.io"})
    mark = len(lab.server.requests)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, context=context, timeout=30)
    status = json.loads(refused.value.read())
    assert (refused.value.code, status["reason"]) == (400, "BadRequest")
    assert "WebSocket only" in status["message"] and "SPDY is not supported" in status["message"]
    assert [(r.method, r.verb) for r in lab.requests_since(mark)] == [("POST", "exec")]


def test_a_failing_exec_handler_becomes_an_internal_error_status(tmp_path: Path):
    async def broken_exec(namespace: str, pod_name: str, container: str, command: list[str]) -> ExecResult:
        raise OSError("envoy admin port closed")

    with KubeApiServerThread(lambda: KubeApiServer(lab_store(), broken_exec)) as thread:
        kubeconfig = thread.server.write_kubeconfig(tmp_path / "config", namespace="shop")
        api_client = config.new_client_from_config(config_file=str(kubeconfig))
        try:
            response = stream(client.CoreV1Api(api_client).connect_get_namespaced_pod_exec, "web-1", "shop",
                              command=["pilot-agent", "request", "GET", "stats"], container="istio-proxy",
                              stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
            response.run_forever(timeout=60)
            status = json.loads(response.read_channel(3))
        finally:
            api_client.close()
    assert (status["status"], status["reason"]) == ("Failure", "InternalError")
    assert "envoy admin port closed" in status["message"]
