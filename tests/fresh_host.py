"""A host as a new user has it: python3 with nothing installed into it, and the real kubectl.

Used by the install tests (krew archive, pipx, uv): each installs the plugin its own way into a
temporary home and runs it through /usr/bin/kubectl with this python3 first on PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

KUBECTL = Path("/usr/bin/kubectl")
SERVICE_MANIFEST = ("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
                    "spec: {ports: [{name: http, port: 80}]}\n")


def bare_python(root: Path) -> Path:
    """A ``python3 -m venv --without-pip`` interpreter: the standard library only, no site packages.

    Made from the base interpreter (not this test run's virtualenv), so nothing the tests import is
    visible to it; returns its bin directory, which holds python3 and python3.X."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(root)], check=True, capture_output=True)
    bin_dir = root / "bin"
    probe = subprocess.run([str(bin_dir / "python3"), "-c", "import pydantic"], capture_output=True, text=True,
                           check=False)
    assert probe.returncode != 0, "the fresh python3 must not see pydantic"
    return bin_dir


# How this machine reaches the package registry (a proxy, its certificate authority): a user's machine
# has its own, and an install tool needs them to download anything.
NETWORK_SETTINGS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "PIP_CERT", "PIP_FIND_LINKS", "PIP_DEFAULT_TIMEOUT",
                    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def host_env(home: Path, *path: Path) -> dict[str, str]:
    """An environment with ``path`` first on PATH, then the system's (kubectl, sh), a private home."""
    env = {"PATH": ":".join([*map(str, path), "/usr/bin", "/bin"]), "HOME": str(home),
           "KUBECONFIG": str(home / "no-kubeconfig"), "NO_COLOR": "1", "LANG": "C.UTF-8"}
    env.update({name: os.environ[name] for name in NETWORK_SETTINGS if name in os.environ})
    return env


def kubectl(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(KUBECTL), *args], env=env, cwd=cwd, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL, timeout=600)


def assert_plugin_works(env: dict[str, str], workdir: Path, version: str) -> None:
    """What a new user tries first, through the real kubectl: version, the catalogue, analyze, a bad code."""
    listed = kubectl(env, "plugin", "list")
    assert listed.returncode == 0 and "kubectl-meshdoctor" in listed.stdout, listed.stderr

    shown = kubectl(env, "meshdoctor", "version")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"kubectl-meshdoctor v{version}"
    assert "Traceback" not in shown.stderr

    checks = kubectl(env, "meshdoctor", "checks", "-o", "json")
    assert checks.returncode == 0, checks.stderr
    assert "MD0301" in {entry["code"] for entry in json.loads(checks.stdout)}

    manifest = workdir / "svc.yaml"
    manifest.write_text(SERVICE_MANIFEST)
    analyzed = kubectl(env, "meshdoctor", "analyze", str(manifest), "-o", "json")
    report = json.loads(analyzed.stdout)
    assert report["kind"] == "Report", analyzed.stderr
    assert analyzed.returncode == int(any(f["severity"] == "error" for f in report["findings"])), analyzed.stderr

    unknown = kubectl(env, "meshdoctor", "explain", "MD9999")
    assert unknown.returncode == 2 and unknown.stderr.startswith("error: ") and "Traceback" not in unknown.stderr
