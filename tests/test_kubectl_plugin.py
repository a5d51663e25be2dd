"""Through the real kubectl: plugin discovery and dispatch, with the console script `pip install` made."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kubectl_meshdoctor import __version__

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


def kubectl(env, *args):
    return subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)


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


def test_analyze_finds_uid_and_protocol_conflicts_in_manifests_through_kubectl(plugin_env):
    example = Path(__file__).parents[1] / "examples" / "workload-conflicts"
    done = kubectl(plugin_env, "meshdoctor", "analyze", str(example), "-o", "json", "--fail-on", "warning")
    assert done.returncode == 1, done.stderr
    found = {(f["code"], f["subject"]["kind"], f["subject"]["name"], f["severity"])
             for f in json.loads(done.stdout)["findings"]}
    assert found == {("MD0104", "Deployment", "report-builder", "warning"),
                     ("MD0511", "Deployment", "report-builder", "warning")}
