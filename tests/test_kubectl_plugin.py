"""Through the real kubectl: plugin discovery and dispatch, with the console script `pip install` made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_meshdoctor import __version__
from manifest_trees import write_app_tree

KUBECTL = Path("/usr/bin/kubectl")
pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed at /usr/bin/kubectl")


@pytest.fixture
def plugin_env(tmp_path):
    """A PATH holding only kubectl and kubectl-meshdoctor: `kubectl plugin list` fails on stray kubectl-* files."""
    script = Path(sys.executable).parent / "kubectl-meshdoctor"
    assert script.exists(), "the console script is missing: is the package installed (pip install -e .)?"
    plugins, tools = tmp_path / "plugins", tmp_path / "tools"
    plugins.mkdir()
    tools.mkdir()
    (plugins / "kubectl-meshdoctor").symlink_to(script)
    (tools / "kubectl").symlink_to(KUBECTL)
    return {"PATH": f"{plugins}:{tools}", "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "no-kubeconfig"),
            "NO_COLOR": "1"}


def kubectl(env, *args, cwd=None):
    return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, cwd=cwd)


def test_plugin_list_finds_meshdoctor(plugin_env):
    done = kubectl(plugin_env, "plugin", "list")
    assert done.returncode == 0, done.stderr
    assert "kubectl-meshdoctor" in done.stdout


def test_help_and_version(plugin_env):
    helped = kubectl(plugin_env, "meshdoctor", "--help")
    assert helped.returncode == 0 and "analyze" in helped.stdout and "namespace" in helped.stdout
    version = kubectl(plugin_env, "meshdoctor", "version", "-n", "shop", "--context", "any")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"kubectl-meshdoctor v{__version__}"


def test_analyze_json_and_exit_codes_pass_through(plugin_env, tmp_path):
    manifest = tmp_path / "svc.yaml"
    manifest.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
                        "spec: {ports: [{name: http, port: 80}]}\n")
    done = kubectl(plugin_env, "meshdoctor", "analyze", str(manifest), "-o", "json")
    report = json.loads(done.stdout)
    assert report["apiVersion"] == "meshdoctor/v1" and report["kind"] == "Report"
    assert done.returncode == int(any(f["severity"] == "error" for f in report["findings"])), done.stderr

    unknown = kubectl(plugin_env, "meshdoctor", "explain", "MD9999")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: ")


def test_analyze_a_repository_tree_skips_what_is_no_manifest(plugin_env, tmp_path):
    tree = write_app_tree(tmp_path / "repo" / "k8s")
    done = kubectl(plugin_env, "meshdoctor", "analyze", "k8s", "-o", "json", cwd=tmp_path / "repo")
    assert done.returncode == 1, done.stderr  # MD0501 is an error; the skipped files do not change that
    report = json.loads(done.stdout)
    assert {f["code"] for f in report["findings"]} == {"MD0501", "MD0502"}
    skipped = {g["what"].removeprefix("file k8s/") for g in report["gaps"] if g["what"].startswith("file ")}
    assert skipped == set(tree.skipped)
    assert report["scope"]["paths"] == ["k8s/app.yaml"]

    template = kubectl(plugin_env, "meshdoctor", "analyze", "k8s/chart/templates/service.yaml", cwd=tmp_path / "repo")
    assert template.returncode == 2 and "Traceback" not in template.stderr
    assert template.stderr.strip().splitlines() == [
        "error: k8s/chart/templates/service.yaml: a Helm/Go template ({{ ... }}), not a manifest: "
        "analyse what it renders (helm template, ...)"]


def test_analyze_sarif_through_kubectl(plugin_env, tmp_path):
    tree = write_app_tree(tmp_path / "repo" / "k8s")
    done = kubectl(plugin_env, "meshdoctor", "analyze", "k8s", "-o", "sarif", cwd=tmp_path / "repo")
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert document["version"] == "2.1.0"
    located = {r["ruleId"]: r["locations"][0]["physicalLocation"] for r in document["runs"][0]["results"]}
    assert located == {
        "MD0501": {"artifactLocation": {"uri": "k8s/app.yaml", "uriBaseId": "SRCROOT"},
                   "region": {"startLine": tree.virtual_service_line}},
        "MD0502": {"artifactLocation": {"uri": "k8s/app.yaml", "uriBaseId": "SRCROOT"},
                   "region": {"startLine": tree.legacy_line}},
    }

    sweep = kubectl(plugin_env, "meshdoctor", "namespace", "sweep", "-o", "sarif")
    assert sweep.returncode == 2 and sweep.stdout == ""
    assert sweep.stderr.strip().splitlines() == [
        "error: -o sarif is for analyze (its results point at lines of manifest files); "
        "the other commands take -o json or -o yaml"]


def test_analyze_finds_uid_and_protocol_conflicts_in_manifests_through_kubectl(plugin_env):
    example = Path(__file__).parents[1] / "examples" / "workload-conflicts"
    done = kubectl(plugin_env, "meshdoctor", "analyze", str(example), "-o", "json", "--fail-on", "warning")
    assert done.returncode == 1, done.stderr
    found = {(f["code"], f["subject"]["kind"], f["subject"]["name"], f["severity"])
             for f in json.loads(done.stdout)["findings"]}
    assert found == {("MD0104", "Deployment", "report-builder", "warning"),
                     ("MD0511", "Deployment", "report-builder", "warning")}
