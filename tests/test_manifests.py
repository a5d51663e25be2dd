"""Reading manifests from a repository: what is analysed, what is skipped (and why), where each object starts.

The trees are built in tmp dirs in the shapes Istio's own samples/ has (a Helm chart beside plain
manifests, JSON data files, READMEs, kustomizations); ../shared/istio-data/bookinfo is the real thing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kubectl_meshdoctor import manifests
from kubectl_meshdoctor.errors import BundleError
from kubectl_meshdoctor.findings import Finding, Severity, Subject
from kubectl_meshdoctor.manifests import read_located_documents, read_manifests

SERVICE = "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  ports:\n  - {{name: http, port: 80}}\n"
HELM_TEMPLATE = "{{- if .Values.enabled }}\napiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\n{{- end }}\n"
# Parses as YAML (the braces are quoted), yet is a chart template: never applied as it stands.
QUOTED_HELM_TEMPLATE = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "{{ .Release.Name }}-config"\n'


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line equal to ``needle``: the expected answer, found without the loader."""
    return text.splitlines().index(needle) + 1


@pytest.fixture
def samples_tree(tmp_path) -> Path:
    """A tree shaped like Istio's samples/: manifests, a Helm chart, data files, docs, a hidden dir."""
    root = tmp_path / "samples"
    write(root, "web/service.yaml", SERVICE.format(name="web"))
    write(root, "web/more/api.yml", SERVICE.format(name="api"))
    write(root, "web/list.json", json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        json.loads(json.dumps(yaml.safe_load(SERVICE.format(name="from-list"))))]}, indent="\t"))
    write(root, "chart/Chart.yaml", "apiVersion: v2\nname: tag-chart\nversion: 0.1.0\n")
    write(root, "chart/values.yaml", "base:\n  tags: {}\n")
    write(root, "chart/templates/service.yaml", HELM_TEMPLATE)
    write(root, "chart/templates/config.yaml", QUOTED_HELM_TEMPLATE)
    write(root, "loose-template.yaml", HELM_TEMPLATE)  # a template outside any chart: found by its {{ }}
    write(root, "src/ratings_data.json", "{rating: 5}\n{rating: 4}\n")
    write(root, "src/package.json", '{"name": "ratings", "version": "1.0.0"}\n')
    write(root, "broken.yaml", "kind: [unclosed\n")
    write(root, "kustomize/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
                                                "resources: [../web/service.yaml]\n")
    write(root, "README.md", "# samples\n")
    write(root, "web/run.sh", "#!/bin/sh\n")
    write(root, ".github/workflows/ci.yml", "on: push\njobs: {}\n")
    return root


def test_a_directory_is_analysed_and_what_is_not_a_manifest_becomes_a_gap(samples_tree):
    loaded = read_manifests([samples_tree])
    names = sorted(obj["metadata"]["name"] for obj in loaded.bundle.objects)
    assert names == ["api", "from-list", "web"]  # .yml, .json List items and nested directories are read
    gaps = {gap.what: gap.reason for gap in loaded.bundle.gaps}
    reason = {path.relative_to(samples_tree).as_posix(): gap.reason for gap, path in loaded.gap_files.items()}
    assert set(reason) == {"chart/Chart.yaml", "chart/values.yaml", "chart/templates/service.yaml",
                           "chart/templates/config.yaml", "loose-template.yaml", "src/ratings_data.json",
                           "src/package.json", "broken.yaml", "kustomize/kustomization.yaml"}
    assert "helm template" in reason["chart/templates/config.yaml"]  # parses, but is a chart's template
    assert "Helm/Go template" in reason["loose-template.yaml"]
    assert reason["src/ratings_data.json"].startswith("invalid JSON (line 1)")
    assert reason["src/package.json"].startswith("no Kubernetes objects")
    assert reason["broken.yaml"].startswith("invalid YAML (line ")
    assert "kubectl kustomize" in reason["kustomize/kustomization.yaml"]
    # Files of other types are counted once, not listed one by one; hidden directories are not entered.
    assert gaps[f"directory {samples_tree}"].startswith("2 file(s) not named *.yaml, *.yml or *.json")
    assert not any(".github" in what for what in gaps)
    assert all(gap.pod is None and not gap.affects for gap in loaded.bundle.gaps)


def test_a_named_file_that_cannot_be_parsed_is_an_error(samples_tree):
    for name, expected in (("loose-template.yaml", "Helm/Go template"), ("broken.yaml", "invalid YAML"),
                           ("src/ratings_data.json", "invalid JSON")):
        with pytest.raises(BundleError, match=expected) as caught:
            read_manifests([samples_tree / "web", samples_tree / name])
        assert str(caught.value).startswith(str(samples_tree / name))
        assert "\n" not in str(caught.value)


def test_a_file_named_and_inside_a_named_directory_is_read_once(samples_tree):
    loaded = read_manifests([samples_tree / "web", samples_tree / "web/service.yaml"])
    assert sorted(obj["metadata"]["name"] for obj in loaded.bundle.objects) == ["api", "from-list", "web"]


def test_a_named_file_without_objects_is_a_gap_beside_real_objects(samples_tree):
    loaded = read_manifests([samples_tree / "web/service.yaml", samples_tree / "src/package.json"])
    assert [obj["metadata"]["name"] for obj in loaded.bundle.objects] == ["web"]
    assert [gap.what for gap in loaded.bundle.gaps] == [f"file {samples_tree / 'src/package.json'}"]


def test_nothing_to_analyse_is_an_error_that_says_why(tmp_path):
    write(tmp_path, "chart/Chart.yaml", "apiVersion: v2\nname: c\n")
    write(tmp_path, "chart/templates/svc.yaml", HELM_TEMPLATE)
    with pytest.raises(BundleError, match=r"no Kubernetes objects found .*\(2 file\(s\) skipped, e\.g\. .*Chart\.yaml: no"):
        read_manifests([tmp_path])
    (tmp_path / "empty").mkdir()
    write(tmp_path, "empty/notes.txt", "nothing\n")
    with pytest.raises(BundleError, match="no manifests"):
        read_manifests([tmp_path / "empty"])


@pytest.mark.parametrize("loader", ["SafeLoader", "CSafeLoader"])
def test_start_lines_of_multi_document_files_and_list_items(tmp_path, monkeypatch, loader):
    # The krew zipapp drops libyaml (CSafeLoader): the pure-Python loader must give the same lines.
    if not hasattr(yaml, loader):
        pytest.skip(f"PyYAML was built without {loader}")
    monkeypatch.setattr(manifests, "_YAML_LOADER", getattr(yaml, loader))
    text = ("# leading comment\n---\n" + SERVICE.format(name="first") + "---\n---\n# between\n"
            + SERVICE.format(name="second")
            + "---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: third}\n"
            + "-   apiVersion: v1\n    kind: Service\n    metadata:\n      name: fourth\n")
    path = write(tmp_path, "all.yaml", text)
    lines = text.splitlines()
    expected = {
        "first": line_of(text, "apiVersion: v1"),
        "second": lines.index("# between") + 2,
        "third": line_of(text, "- apiVersion: v1"),
        "fourth": line_of(text, "-   apiVersion: v1"),
    }
    got = {doc["metadata"]["name"]: line for doc, line in read_located_documents(path)}
    assert got == expected
    loaded = read_manifests([path])
    assert {key[2]: [(w.path, w.line) for w in where] for key, where in loaded.sources.items()} == {
        name: [(path, line)] for name, line in expected.items()}


def test_json_lines_survive_tab_indentation_and_values_stay_json(tmp_path):
    document = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": n, "namespace": "shop"}, "spec": {"x": 1e5}}
        for n in ("a", "b")]}
    text = json.dumps(document, indent="\t")
    path = write(tmp_path, "list.json", text)
    located = read_located_documents(path)
    starts = [number for number, line in enumerate(text.splitlines(), start=1) if line == "\t\t{"]
    assert [line for _, line in located] == starts and len(starts) == 2
    assert located[0][0]["spec"]["x"] == 100000.0  # YAML 1.1 would have read the string "1e5"


def test_a_file_mixing_objects_and_other_documents_keeps_the_objects_and_says_what_it_skipped(tmp_path):
    text = SERVICE.format(name="web") + "---\nsettings: {debug: true}\n"
    path = write(tmp_path, "mixed.yaml", text)
    loaded = read_manifests([tmp_path])
    assert [obj["metadata"]["name"] for obj in loaded.bundle.objects] == ["web"]
    (gap,) = loaded.bundle.gaps
    assert loaded.gap_files[gap] == path
    assert gap.reason == f"1 document(s) without apiVersion, kind and metadata.name skipped (line {line_of(text, 'settings: {debug: true}')})"


def test_locate_finds_the_subject_with_its_defaulted_namespace_else_the_pod(tmp_path):
    path = write(tmp_path, "a.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n---\n"
                                     "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
    loaded = read_manifests([path])

    def finding(subject: Subject, pod: str | None = None) -> Finding:
        return Finding("MD0101", Severity.WARNING, subject, "m", "r", pod=pod)

    assert [(w.path, w.line) for w in loaded.locate(finding(Subject("Pod", "p", "default")))] == [(path, 1)]
    assert [w.line for w in loaded.locate(finding(Subject("Namespace", "shop")))] == [5]
    assert [w.line for w in loaded.locate(finding(Subject("Certificate", "ca-1"), pod="default/p"))] == [1]
    assert loaded.locate(finding(Subject("Service", "kube-dns", "kube-system"))) == []


def test_the_same_object_in_two_files_is_located_in_both(tmp_path):
    first = write(tmp_path, "a/svc.yaml", SERVICE.format(name="web"))
    second = write(tmp_path, "b/svc.yaml", "# copy\n" + SERVICE.format(name="web"))
    loaded = read_manifests([tmp_path])
    found = loaded.locate(Finding("MD0502", Severity.WARNING, Subject("Service", "web", "shop"), "m", "r"))
    assert [(w.path, w.line) for w in found] == [(first, 1), (second, 2)]


def test_istio_bookinfo_tree_is_analysed_with_its_non_manifests_as_gaps(shared_dir):
    root = shared_dir / "istio-data" / "bookinfo"
    if not root.is_dir():
        pytest.skip("../shared/istio-data/bookinfo is absent")
    loaded = read_manifests([root])
    candidates = sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))
    skipped = sorted(loaded.gap_files.values())
    # What the tree holds that is not a manifest: the OpenAPI document and an IstioOperator install profile.
    assert [p.name for p in skipped] == ["demo-profile-no-gateways.yaml", "swagger.yaml"]
    assert sorted(Path(p) for p in loaded.bundle.scope["paths"]) == [p for p in candidates if p not in skipped]
    kinds = {obj["kind"] for obj in loaded.bundle.objects}
    assert {"Service", "Deployment", "VirtualService", "DestinationRule", "Gateway"} <= kinds
