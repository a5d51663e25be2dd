"""``analyze -o sarif``: valid SARIF 2.1.0 (the official schema, from ../shared/sarif), rules from the
catalogue, results at the line of the document that defines the finding's subject.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest
import yaml
from typer.testing import CliRunner

from kubectl_meshdoctor import analysis, collect
from kubectl_meshdoctor.analysis import Report
from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.catalogue import CATALOGUE
from kubectl_meshdoctor.checks.base import Check
from kubectl_meshdoctor.cli import app
from kubectl_meshdoctor.evidence import Gap, Skipped
from kubectl_meshdoctor.findings import Finding, Severity, Subject
from kubectl_meshdoctor.manifests import read_manifests
from kubectl_meshdoctor.report.sarif import WholeFile, sarif_log
from manifest_trees import APP, write_app_tree

runner = CliRunner()
SCHEMA = Path(__file__).resolve().parents[1].parent / "shared" / "sarif" / "sarif-schema-2.1.0.json"


@pytest.fixture
def validate():
    """Validate a document against the official SARIF 2.1.0 schema (Draft-04, as it declares)."""
    if not SCHEMA.is_file():
        pytest.skip(f"{SCHEMA} is absent (the schema is read from ../shared, never committed)")
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)

    def check(document: dict) -> dict:
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
        assert not errors, errors
        return document

    return check


def sarif_of(args: list[str]) -> tuple[int, dict]:
    result = runner.invoke(app, ["analyze", *args, "-o", "sarif"])
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result.exit_code, json.loads(result.stdout)


def resolve(run: dict, location: dict) -> Path:
    """The file an artifactLocation names, resolved as a SARIF consumer would (uriBaseId, then the URI)."""
    artifact = location["physicalLocation"]["artifactLocation"]
    base = run["originalUriBaseIds"][artifact["uriBaseId"]]["uri"] if "uriBaseId" in artifact else ""
    return Path(unquote(urlparse(urljoin(base, artifact["uri"])).path))


def by_rule(run: dict) -> dict[str, dict]:
    return {result["ruleId"]: result for result in run["results"]}


def test_analyze_a_tree_gives_valid_sarif_at_the_offending_lines(tmp_path, monkeypatch, validate):
    tree = write_app_tree(tmp_path / "k8s")
    monkeypatch.chdir(tmp_path)
    code, document = sarif_of(["k8s"])
    validate(document)
    assert code == 1  # the exit code follows the findings: MD0501 is an error
    (run,) = document["runs"]
    results = by_rule(run)
    assert set(results) == {"MD0501", "MD0502"}
    for rule, line, level in (("MD0501", tree.virtual_service_line, "error"), ("MD0502", tree.legacy_line, "warning")):
        (location,) = results[rule]["locations"]
        assert location["physicalLocation"]["artifactLocation"]["uri"] == "k8s/app.yaml"  # relative: the repo root
        assert location["physicalLocation"]["region"] == {"startLine": line}
        assert resolve(run, location) == tree.app
        assert results[rule]["level"] == level
    assert APP.splitlines()[tree.virtual_service_line - 1] == "apiVersion: networking.istio.io/v1"
    assert results["MD0501"]["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "VirtualService/shop/reviews"
    assert "subset v3" in results["MD0501"]["message"]["text"] and "Fix: " in results["MD0501"]["message"]["text"]

    # The files that are no manifests are the invocation's notifications, each pointing at its file.
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is True
    pointed = {resolve(run, n["locations"][0]) for n in invocation["toolExecutionNotifications"] if "locations" in n}
    assert pointed == {tree.root / name for name in tree.skipped}
    texts = [n["message"]["text"] for n in invocation["toolExecutionNotifications"]]
    assert any("helm template" in text for text in texts)
    assert any(text.startswith("check SidecarMissing (MD0101) did not run") for text in texts)


def test_rules_are_the_catalogue_with_its_texts_as_help(tmp_path, monkeypatch, validate):
    write_app_tree(tmp_path / "k8s")
    monkeypatch.chdir(tmp_path)
    _, document = sarif_of(["k8s"])
    (run,) = validate(document)["runs"]
    rules = run["tool"]["driver"]["rules"]
    live = [entry for entry in CATALOGUE if not entry.retired]
    assert [rule["id"] for rule in rules] == [entry.code for entry in live]
    levels = {"error": "error", "warning": "warning", "info": "note"}
    for rule, entry in zip(rules, live):
        assert rule["name"] == entry.name and rule["shortDescription"]["text"] == entry.title
        for text in (entry.symptom, entry.cause, entry.detection, entry.fix):
            assert text in rule["help"]["text"] and text in rule["help"]["markdown"]
        assert rule["defaultConfiguration"]["level"] == levels[entry.severity.value]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]


def test_fail_on_warning_applies_to_sarif_too(tmp_path, monkeypatch):
    tree = write_app_tree(tmp_path / "k8s")
    tree.app.write_text(APP.split("---\n# the canary")[0])  # drop the VirtualService: only the warning is left
    monkeypatch.chdir(tmp_path)
    assert sarif_of(["k8s"])[0] == 0
    code, document = sarif_of(["k8s", "--fail-on", "warning"])
    assert code == 1 and set(by_rule(document["runs"][0])) == {"MD0502"}


def test_files_outside_the_working_directory_get_absolute_file_uris(tmp_path, monkeypatch, validate):
    tree = write_app_tree(tmp_path / "k8s")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _, document = sarif_of([str(tree.root)])
    (run,) = validate(document)["runs"]
    artifact = by_rule(run)["MD0502"]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": tree.app.as_uri()}


def test_levels_logical_locations_and_gaps_without_a_file(tmp_path, validate):
    path = tmp_path / "svc.yaml"
    path.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n")
    loaded = read_manifests([path])
    on_file = Subject("Service", "web", "shop")
    elsewhere = Subject("Service", "kube-dns", "kube-system")
    findings = [
        Finding("MD0301", Severity.ERROR, elsewhere, "cluster DNS changed", "restart"),
        Finding("MD0502", Severity.WARNING, on_file, "unknown protocol", "rename"),
        Finding("MD0502", Severity.INFO, on_file, "no port name", "name it"),
    ]
    report = Report({"kind": "manifests"}, findings, [], [], [Gap("pod logs", "forbidden", pod="shop/web-1")],
                    [Skipped("ClusterDnsChanged", ("MD0301",), "evidence not available: resolv-conf")])
    (run,) = validate(sarif_log(report, loaded, tmp_path))["runs"]
    assert [r["level"] for r in run["results"]] == ["error", "warning", "note"]
    # kube-dns is in no file: the result stays, named by a logical location alone (SARIF allows it).
    (unplaced,) = run["results"][0]["locations"]
    assert "physicalLocation" not in unplaced
    assert unplaced["logicalLocations"] == [{"name": "kube-dns", "fullyQualifiedName": "Service/kube-system/kube-dns",
                                             "kind": "resource"}]
    assert run["results"][1]["locations"][0]["physicalLocation"]["region"] == {"startLine": 1}
    notifications = run["invocations"][0]["toolExecutionNotifications"]
    assert notifications[0] == {"level": "warning", "message": {"text": "shop/web-1: pod logs: forbidden"}}
    assert notifications[1]["level"] == "note" and "resolv-conf" in notifications[1]["message"]["text"]


def test_an_object_defined_twice_has_the_other_definition_as_related_location(tmp_path, monkeypatch, validate):
    tree = write_app_tree(tmp_path / "k8s")
    copy = tree.root / "copy" / "app.yaml"
    copy.parent.mkdir()
    copy.write_text("# a copy, one line lower\n" + APP)
    monkeypatch.chdir(tmp_path)
    _, document = sarif_of(["k8s"])
    (run,) = validate(document)["runs"]
    result = by_rule(run)["MD0502"]
    assert resolve(run, result["locations"][0]) == tree.app
    (related,) = result["relatedLocations"]
    assert resolve(run, related) == copy and related["physicalLocation"]["region"]["startLine"] == tree.legacy_line + 1


def test_a_saved_bundle_puts_results_at_the_bundle_file(tmp_path, monkeypatch, validate):
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "legacy", "namespace": "shop"},
               "spec": {"ports": [{"name": "custom-port", "port": 7000}]}}
    EvidenceBundle(scope={"kind": "namespace", "namespace": "shop"}, objects=[service],
                   available={"services"}).save(tmp_path / "evidence.tgz")
    monkeypatch.chdir(tmp_path)
    code, document = sarif_of(["evidence.tgz"])
    (run,) = validate(document)["runs"]
    (location,) = by_rule(run)["MD0502"]["locations"]
    assert location["physicalLocation"] == {"artifactLocation": {"uri": "evidence.tgz", "uriBaseId": "SRCROOT"}}
    assert code == 0
    locator = WholeFile(tmp_path / "dir-bundle" / "bundle.json")
    assert [w.line for w in locator.locate(Finding("MD0502", Severity.WARNING, Subject("Service", "x"), "m", "r"))] == [None]


def test_a_check_that_raised_marks_the_run_unsuccessful(tmp_path, monkeypatch, validate):
    class Broken(Check):
        name = "Broken"
        codes = ("MD0502",)
        needs = frozenset()

        def run(self, ctx):
            raise RuntimeError("boom")

    monkeypatch.setattr(analysis, "all_checks", lambda: (Broken(),))
    tree = write_app_tree(tmp_path / "k8s")
    code, document = sarif_of([str(tree.app)])
    (invocation,) = validate(document)["runs"][0]["invocations"]
    assert code == 0 and invocation["executionSuccessful"] is False
    assert any("internal error: RuntimeError: boom" in n["message"]["text"] for n in invocation["toolExecutionNotifications"])


@pytest.mark.parametrize("args", [["pod", "web"], ["namespace", "sweep"], ["namespace", "sweep", "-A"],
                                  ["checks"], ["explain", "MD0501"], ["version"]])
def test_sarif_outside_analyze_is_a_usage_error_before_any_collection(args, monkeypatch):
    def must_not_collect(options):
        raise AssertionError("collected evidence for a command that cannot print it")

    monkeypatch.setattr(collect, "collect_evidence", must_not_collect)
    result = runner.invoke(app, [*args, "-o", "sarif"])
    assert result.exit_code == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: -o sarif is for analyze") and "take -o json or -o yaml" in line


def test_istio_bookinfo_multi_document_file_lines(shared_dir, monkeypatch, validate):
    """Real Istio manifests: every VirtualService of virtual-service-all-v1.yaml routes to subset v1, and
    with only the reviews DestinationRule beside it, the other three name a subset nothing defines."""
    root = shared_dir / "istio-data" / "bookinfo"
    if not root.is_dir():
        pytest.skip("../shared/istio-data/bookinfo is absent")
    routes = root / "networking" / "virtual-service-all-v1.yaml"
    lines = routes.read_text().splitlines()
    starts = [1] + [n + 1 for n, line in enumerate(lines, start=1) if line == "---" and n < len(lines)]
    names = [next(l.split(":", 1)[1].strip() for l in lines[s - 1:] if l.startswith("  name:")) for s in starts]
    expected = {f"VirtualService/default/{name}": start for name, start in zip(names, starts) if name != "reviews"}
    assert len(expected) == 3
    monkeypatch.chdir(root)
    code, document = sarif_of(["networking/virtual-service-all-v1.yaml", "networking/destination-rule-reviews.yaml"])
    (run,) = validate(document)["runs"]
    got = {r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]: r["locations"][0]["physicalLocation"]
           for r in run["results"] if r["ruleId"] == "MD0501"}
    assert {name: where["region"]["startLine"] for name, where in got.items()} == expected
    assert {where["artifactLocation"]["uri"] for where in got.values()} == {"networking/virtual-service-all-v1.yaml"}
    assert code == 1


def test_the_schema_check_rejects_what_sarif_forbids(tmp_path, monkeypatch, validate):
    """The validation above can fail: severities are not SARIF levels, and a result needs a message."""
    write_app_tree(tmp_path / "k8s")
    monkeypatch.chdir(tmp_path)
    _, document = sarif_of(["k8s"])
    document["runs"][0]["results"][0]["level"] = "info"
    with pytest.raises(AssertionError, match="'info' is not one of"):
        validate(document)
    del document["runs"][0]["results"][0]["message"]
    with pytest.raises(AssertionError, match="'message' is a required property"):
        validate(document)


def test_the_readme_ci_step_uploads_on_findings_and_stops_on_bad_input(tmp_path):
    """Run the README's GitHub Actions step as written, with bash, the way the runner would."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    workflow = yaml.safe_load(readme.split("A GitHub Actions job")[1].split("```yaml\n", 1)[1].split("```", 1)[0])
    (step,) = [s for s in workflow["jobs"]["meshdoctor"]["steps"] if s.get("id") == "meshdoctor"]
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(tmp_path)}

    def run_step(repo: Path) -> tuple[int, str]:
        output = repo / "github-output"
        done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=repo, capture_output=True, text=True,
                              env={**env, "GITHUB_OUTPUT": str(output)}, check=False)
        return done.returncode, output.read_text()

    write_app_tree(tmp_path / "ok" / "k8s")
    code, output = run_step(tmp_path / "ok")
    assert (code, output) == (0, "status=1\n")  # findings: the step passes, the upload runs, the last step fails
    assert json.loads((tmp_path / "ok" / "meshdoctor.sarif").read_text())["runs"][0]["results"]

    charts_only = tmp_path / "charts" / "k8s" / "chart"
    (charts_only / "templates").mkdir(parents=True)
    (charts_only / "Chart.yaml").write_text("apiVersion: v2\nname: c\n")
    (charts_only / "templates" / "svc.yaml").write_text("{{- if .Values.x }}\nkind: Service\n{{- end }}\n")
    code, output = run_step(tmp_path / "charts")
    assert code != 0 and output == "status=2\n"  # nothing analysable: the job stops before the upload
    assert os.path.getsize(tmp_path / "charts" / "meshdoctor.sarif") == 0
