"""The krew archive: built as `make dist` builds it, pinned in the manifest, and runnable on its own.

Building installs the runtime dependencies with pip (from the package registry) into a temporary
directory: about 20 seconds, once per test session.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from kubectl_meshdoctor import __version__

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "krew-manifest.yaml"
RBAC_WORDS = ("pods", "services", "endpoints", "endpointslices", "namespaces", "networking.istio.io",
              "security.istio.io", "pods/log", "pods/exec")


def load_build_dist():
    spec = importlib.util.spec_from_file_location("build_dist", REPO / "scripts" / "build_dist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build_dist = load_build_dist()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """(archive, manifest copy pinned to it): the real build, without touching the repo's files."""
    root = tmp_path_factory.mktemp("dist")
    manifest = root / "krew-manifest.yaml"
    shutil.copy(MANIFEST, manifest)
    archive = build_dist.build(root / "dist", manifest)
    return archive, manifest


@pytest.fixture(scope="session")
def zipapp_path(built, tmp_path_factory):
    archive, _ = built
    target = tmp_path_factory.mktemp("unpacked")
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    return target / "kubectl-meshdoctor"


@pytest.fixture(scope="session")
def host_with_pydantic_only(tmp_path_factory) -> Path:
    """A directory holding just pydantic and pydantic-core: what the krew caveats ask the host to have."""
    host = tmp_path_factory.mktemp("host-site")
    for name in ("pydantic", "pydantic_core"):
        spec = importlib.util.find_spec(name)
        (host / name).symlink_to(Path(spec.submodule_search_locations[0]))
    return host


def run_zipapp(zipapp: Path, *args: str, host: Path | None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    # -S: no site-packages at all, so typer, rich, yaml and the package must come from the zipapp itself.
    env = {"PATH": os.environ.get("PATH", ""), "NO_COLOR": "1"}
    flags = ["-S"]
    if host is not None:
        env["PYTHONPATH"] = str(host)
    else:
        flags.append("-E")
    return subprocess.run([sys.executable, *flags, str(zipapp), *args], capture_output=True, text=True,
                          env=env, cwd=cwd, check=False)


def platforms(manifest: dict) -> list[dict]:
    return manifest["spec"]["platforms"]


def test_repo_manifest_follows_the_krew_schema():
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2"
    assert manifest["kind"] == "Plugin" and manifest["metadata"]["name"] == "meshdoctor"
    spec = manifest["spec"]
    assert spec["version"] == f"v{__version__}"
    assert spec["homepage"].startswith("https://")
    assert 0 < len(spec["shortDescription"]) <= 50 and "\n" not in spec["shortDescription"]
    assert spec["description"].strip()
    for word in RBAC_WORDS:
        assert word in spec["caveats"], word
    oses = set()
    for platform in platforms(manifest):
        oses.update(platform["selector"]["matchLabels"].values())
        assert re.fullmatch(r"[0-9a-f]{64}", platform["sha256"])
        assert platform["uri"].endswith(f"/v{__version__}/kubectl-meshdoctor-v{__version__}.tar.gz")
        assert platform["bin"] == "kubectl-meshdoctor"
        assert {f["from"] for f in platform["files"]} == {"kubectl-meshdoctor", "LICENSE"}
    assert oses == {"linux", "darwin"}


def test_repo_manifest_matches_the_archive_make_dist_builds(built):
    # The build is reproducible (pinned versions, fixed timestamps, no checkout path recorded), so the
    # committed manifest must name exactly the archive this tree builds.
    archive, _ = built
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert {p["sha256"] for p in platforms(manifest)} == {sha256(archive)}, (
        "krew-manifest.yaml does not match this tree's archive: run `make dist` and commit krew-manifest.yaml")


def test_build_pins_the_archive_sha256_and_version(built):
    archive, manifest_path = built
    assert archive.name == f"kubectl-meshdoctor-v{__version__}.tar.gz"
    manifest = yaml.safe_load(manifest_path.read_text())
    assert manifest["spec"]["version"] == f"v{__version__}"
    assert {p["sha256"] for p in platforms(manifest)} == {sha256(archive)}
    assert all(p["uri"].endswith("/" + archive.name) for p in platforms(manifest))


def test_archive_holds_the_executable_and_license(built):
    archive, _ = built
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"kubectl-meshdoctor", "LICENSE"}
        assert members["kubectl-meshdoctor"].mode & 0o111
        head = tar.extractfile("kubectl-meshdoctor").read(64)
    assert head.startswith(b"#!/usr/bin/env python3\n")


def test_zipapp_runs_with_only_pydantic_from_the_host(zipapp_path, host_with_pydantic_only, tmp_path):
    version = run_zipapp(zipapp_path, "version", host=host_with_pydantic_only)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"kubectl-meshdoctor v{__version__}"

    checks = run_zipapp(zipapp_path, "checks", "-o", "json", host=host_with_pydantic_only)
    assert checks.returncode == 0, checks.stderr
    assert "MD0301" in {entry["code"] for entry in json.loads(checks.stdout)}

    manifest = tmp_path / "svc.yaml"
    manifest.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
                        "spec: {ports: [{name: http, port: 80}]}\n")
    analyzed = run_zipapp(zipapp_path, "analyze", str(manifest), "-o", "json", host=host_with_pydantic_only)
    assert analyzed.returncode in (0, 1), analyzed.stderr
    report = json.loads(analyzed.stdout)
    assert report["kind"] == "Report"
    assert analyzed.returncode == int(any(f["severity"] == "error" for f in report["findings"]))


def test_zipapp_without_pydantic_says_what_to_install(zipapp_path):
    done = run_zipapp(zipapp_path, "version", host=None)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "pip install --user 'pydantic>=" in done.stderr
    assert "Traceback" not in done.stderr


def test_archive_build_is_reproducible(tmp_path):
    stage = tmp_path / "stage"
    (stage / "pkg").mkdir(parents=True)
    (stage / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    license_file = tmp_path / "LICENSE"
    license_file.write_text("license text\n")
    digests = []
    for attempt in range(2):
        zipped, archive = tmp_path / f"app{attempt}", tmp_path / f"a{attempt}.tar.gz"
        os.utime(stage / "pkg" / "__init__.py", (1000 + attempt, 1000 + attempt))  # mtimes must not matter
        build_dist.make_zipapp(stage, zipped)
        build_dist.make_archive(zipped, license_file, archive)
        digests.append(sha256(archive))
    assert digests[0] == digests[1]


def test_prune_refuses_compiled_modules_without_a_fallback(tmp_path):
    (tmp_path / "fast").mkdir()
    (tmp_path / "fast" / "__init__.py").write_text("")
    (tmp_path / "fast" / "core.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    (tmp_path / "twin").mkdir()
    (tmp_path / "twin" / "md.py").write_text("")
    (tmp_path / "twin" / "md.cpython-311-x86_64-linux-gnu.so").write_bytes(b"\x7fELF")
    with pytest.raises(build_dist.BuildError, match="fast/core"):
        build_dist.prune(tmp_path)
    assert not (tmp_path / "twin" / "md.cpython-311-x86_64-linux-gnu.so").exists()  # the twin makes it droppable


def test_pin_manifest_rewrites_version_uri_and_every_sha(tmp_path):
    manifest = tmp_path / "m.yaml"
    shutil.copy(MANIFEST, manifest)
    build_dist.pin_manifest(manifest, "9.8.7", "ab" * 32)
    data = yaml.safe_load(manifest.read_text())
    assert data["spec"]["version"] == "v9.8.7" and data["apiVersion"].endswith("v1alpha2")
    assert {p["sha256"] for p in platforms(data)} == {"ab" * 32}
    assert all(p["uri"].endswith("/v9.8.7/kubectl-meshdoctor-v9.8.7.tar.gz") for p in platforms(data))
