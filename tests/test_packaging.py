"""The krew archives: built as `make dist` builds them, pinned in the manifest, and runnable the way krew
installs them on a host with only python3.

Building downloads the pinned wheels for every OS, CPU and CPython once into a cache
(~/.cache/kubectl-meshdoctor/dist-wheels), then builds the four PEX files: about a minute of CPU, once
per test session.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from fresh_host import KUBECTL, assert_plugin_works, bare_python, host_env, kubectl
from kubectl_meshdoctor import __version__

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "krew-manifest.yaml"
RBAC_WORDS = ("pods", "services", "endpoints", "endpointslices", "namespaces", "networking.istio.io",
              "security.istio.io", "pods/log", "pods/exec")
CPYTHONS = ("cp311", "cp312", "cp313", "cp314")
# The wheel platform tags each archive may hold besides pure-Python wheels (py3-none-any).
PLATFORM_TAGS = {
    "linux-amd64": r"manylinux\w*_x86_64",
    "linux-arm64": r"manylinux\w*_aarch64",
    "darwin-amd64": r"macosx_\d+_\d+_(x86_64|intel|universal2)",
    "darwin-arm64": r"macosx_\d+_\d+_(arm64|universal2)",
}


def load_build_dist():
    spec = importlib.util.spec_from_file_location("build_dist", REPO / "scripts" / "build_dist.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


build_dist = load_build_dist()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """({"linux-amd64": archive, ...}, manifest copy pinned to them): the real build, repo files untouched."""
    root = tmp_path_factory.mktemp("dist")
    manifest = root / "krew-manifest.yaml"
    shutil.copy(MANIFEST, manifest)
    archives = build_dist.build(root / "dist", manifest)
    return {target.name: path for target, path in archives.items()}, manifest


def platforms(manifest: dict) -> list[dict]:
    return manifest["spec"]["platforms"]


def platform_key(entry: dict) -> str:
    labels = entry["selector"]["matchLabels"]
    return f"{labels['os']}-{labels['arch']}"


def pex_of(archive: Path) -> bytes:
    with tarfile.open(archive) as tar:
        return tar.extractfile("kubectl-meshdoctor").read()


def wheel_tags(filename: str) -> tuple[str, str, str, str]:
    """(project, python tag, abi tag, platform tag) of a wheel file name."""
    parts = filename.removesuffix(".whl").split("-")
    return parts[0], parts[-3], parts[-2], parts[-1]


# --- the manifest -----------------------------------------------------------------------------------------


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
    assert "pip install" not in spec["caveats"]  # nothing to install into the host's python3
    keys = [platform_key(p) for p in platforms(manifest)]
    assert sorted(keys) == sorted(PLATFORM_TAGS), keys  # one entry per OS and CPU, no duplicates
    for entry in platforms(manifest):
        assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
        assert entry["uri"].endswith(f"/v{__version__}/kubectl-meshdoctor-v{__version__}-{platform_key(entry)}.tar.gz")
        assert entry["bin"] == "kubectl-meshdoctor"
        assert {f["from"] for f in entry["files"]} == {"kubectl-meshdoctor", "LICENSE"}
    assert len({p["sha256"] for p in platforms(manifest)}) == len(PLATFORM_TAGS)


def test_repo_manifest_matches_the_archive_make_dist_builds(built):
    # The build is reproducible (pinned wheels and PEX, normalised sources, fixed archive metadata), so
    # the committed manifest must name exactly the archives this tree builds, from any checkout.
    archives, _ = built
    manifest = yaml.safe_load(MANIFEST.read_text())
    assert {platform_key(p): p["sha256"] for p in platforms(manifest)} == {
        name: sha256(path) for name, path in archives.items()
    }, "krew-manifest.yaml does not match this tree's archives: run `make dist` and commit krew-manifest.yaml"


def test_build_pins_each_archive_in_its_platform_entry(built):
    archives, manifest_path = built
    manifest = yaml.safe_load(manifest_path.read_text())
    assert manifest["spec"]["version"] == f"v{__version__}"
    assert manifest["spec"]["caveats"] == yaml.safe_load(MANIFEST.read_text())["spec"]["caveats"]  # kept as is
    for entry in platforms(manifest):
        archive = archives[platform_key(entry)]
        assert archive.name == f"kubectl-meshdoctor-v{__version__}-{platform_key(entry)}.tar.gz"
        assert entry["uri"].endswith("/" + archive.name)
        assert entry["sha256"] == sha256(archive)


def test_pin_manifest_rewrites_version_and_every_platform(tmp_path):
    manifest = tmp_path / "m.yaml"
    shutil.copy(MANIFEST, manifest)
    digests = {target: letter * 64 for letter, target in zip("abcd", build_dist.TARGETS)}
    build_dist.pin_manifest(manifest, "9.8.7", digests)
    data = yaml.safe_load(manifest.read_text())
    assert data["spec"]["version"] == "v9.8.7" and data["apiVersion"].endswith("v1alpha2")
    assert {platform_key(p): p["sha256"] for p in platforms(data)} == {t.name: d for t, d in digests.items()}
    assert all(p["uri"].endswith(f"/v9.8.7/kubectl-meshdoctor-v9.8.7-{platform_key(p)}.tar.gz") for p in platforms(data))
    assert data["spec"]["caveats"] == yaml.safe_load(MANIFEST.read_text())["spec"]["caveats"]


# --- what each archive holds --------------------------------------------------------------------------------


def test_each_archive_holds_the_executable_and_license(built):
    archives, _ = built
    for archive in archives.values():
        with tarfile.open(archive) as tar:
            members = {m.name: m for m in tar.getmembers()}
            assert set(members) == {"kubectl-meshdoctor", "LICENSE"}
            assert members["kubectl-meshdoctor"].mode & 0o111
            assert tar.extractfile("LICENSE").read() == (REPO / "LICENSE").read_bytes()
        assert pex_of(archive).startswith(b"#!/bin/sh\n")  # PEX's sh boot: finds python3.11..3.14 on PATH


@pytest.mark.parametrize("name", sorted(PLATFORM_TAGS))
def test_archive_holds_the_wheels_of_its_platform_for_each_cpython(built, name):
    archives, _ = built
    with zipfile.ZipFile(io.BytesIO(pex_of(archives[name]))) as pex:
        info = json.loads(pex.read("PEX-INFO"))
        sources = set(pex.namelist())
    wheels = sorted(info["distributions"])
    tags = [wheel_tags(w) for w in wheels]
    for wheel, (_, _, abi, plat) in zip(wheels, tags):
        if plat != "any":
            # A compressed tag set (orjson's macOS wheel: x86_64.arm64.universal2) installs where any tag fits.
            assert any(re.fullmatch(PLATFORM_TAGS[name], p) for p in plat.split(".")), wheel
            assert abi in CPYTHONS or abi == "abi3", wheel
    for project in ("pydantic_core", "pyyaml", "orjson"):  # compiled, one wheel per CPython
        assert sorted(python for proj, python, _, _ in tags if proj == project) == list(CPYTHONS), (project, wheels)

    pinned = {re.sub(r"[-_.]+", "_", pin.split("==")[0]).lower() for pin in build_dist.pinned_requirements()}
    assert {proj.lower() for proj, _, _, _ in tags} == pinned  # every pin ships, nothing else (no aiohttp)
    assert info["entry_point"] == "kubectl_meshdoctor.cli:main" and info["venv"] is True
    assert "kubectl_meshdoctor/cli.py" in sources
    assert not any(s.startswith("kubectl_meshdoctor/lab/") for s in sources)  # the test lab stays out


# --- the linux/amd64 archive, installed as krew installs it -------------------------------------------------


def krew_install(manifest: dict, archives: dict[str, Path], os_name: str, arch: str, root: Path) -> Path:
    """What `kubectl krew install` does: pick the platform entry whose selector matches this host, check the
    archive's sha256, unpack it, copy `files` into the plugin's directory and link `bin` from the krew
    bin directory; returns that bin directory, for PATH."""
    host = {"os": os_name, "arch": arch}
    [entry] = [p for p in platforms(manifest) if p["selector"]["matchLabels"].items() <= host.items()]
    archive = archives[platform_key(entry)]
    assert sha256(archive) == entry["sha256"]
    unpacked, store, bin_dir = root / "download", root / "store" / "meshdoctor" / manifest["spec"]["version"], root / "bin"
    for directory in (unpacked, store, bin_dir):
        directory.mkdir(parents=True)
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    for item in entry["files"]:
        shutil.copy2(unpacked / item["from"], store / item["to"])
    (bin_dir / "kubectl-meshdoctor").symlink_to(store / entry["bin"])
    return bin_dir


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed at /usr/bin/kubectl")
@pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64", reason="runs the linux/amd64 archive")
def test_krew_archive_runs_on_a_host_with_only_python3(built, tmp_path):
    archives, manifest_path = built
    manifest = yaml.safe_load(manifest_path.read_text())
    krew_bin = krew_install(manifest, archives, "linux", "amd64", tmp_path / "krew")
    home = tmp_path / "home"
    home.mkdir()
    env = host_env(home, krew_bin, bare_python(tmp_path / "python"))

    first = kubectl(env, "meshdoctor", "version")  # lays the PEX out under ~/.cache/pex, once
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"kubectl-meshdoctor v{__version__}" and "Traceback" not in first.stderr
    [venv] = (home / ".cache" / "pex" / "venvs").rglob("pyvenv.cfg")  # its own virtualenv, in the user's home
    assert "include-system-site-packages = false" in venv.read_text()
    assert_plugin_works(env, tmp_path, __version__)
    # A sweep reduces large answers in helper processes started from the plugin's own interpreter:
    # they must find the package inside the PEX's virtualenv.
    probe = ("import functools, json; from kubectl_meshdoctor.collect.reducers import ReducerProcesses; "
             "from kubectl_meshdoctor.envoy._decode import load_json_object; pool = ReducerProcesses(1); "
             "doc = {'configs': list(range(40000))}; "
             "got = pool.reduce(functools.partial(load_json_object, what='x'), json.dumps(doc).encode()); "
             "print(pool.running, got == doc); pool.close()")
    helper = subprocess.run([str(venv.parent / "bin" / "python"), "-c", probe], env=env, capture_output=True,
                            text=True, timeout=60)
    assert helper.stdout.split() == ["1", "True"], helper.stderr


# --- reproducibility ----------------------------------------------------------------------------------------


def test_pex_build_does_not_depend_on_source_timestamps_or_modes(tmp_path):
    digests = []
    for attempt, mode in enumerate((0o644, 0o664)):
        sources = tmp_path / f"src{attempt}"
        (sources / "app").mkdir(parents=True)
        (sources / "app" / "__init__.py").write_text("def main():\n    print('hello')\n")
        (sources / "app" / "__init__.py").chmod(mode)
        build_dist.normalise_tree(sources)
        target = build_dist.TARGETS[0]
        output = tmp_path / f"app{attempt}.pex"
        build_dist.run_pex(build_dist.pex_command(sources, tmp_path, target, output, [], "app:main"), target)
        archive = tmp_path / f"app{attempt}.tar.gz"
        build_dist.make_archive(output, REPO / "LICENSE", archive)
        digests.append(sha256(archive))
    assert digests[0] == digests[1]


def test_build_tool_and_pins_are_exact():
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert f"pex=={build_dist.PEX_VERSION}" in dev  # the PEX that writes these bytes
    pins = build_dist.pinned_requirements()
    names = {re.sub(r"[-_.]+", "-", pin.split("==")[0]).lower() for pin in pins}
    for requirement in build_dist.runtime_requirements():
        assert re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower() in names, requirement


def test_pinned_requirements_refuse_ranges(tmp_path, monkeypatch):
    loose = tmp_path / "constraints.txt"
    loose.write_text("# comment\nrich==15.0.0\npydantic>=2\n")
    monkeypatch.setattr(build_dist, "CONSTRAINTS", loose)
    with pytest.raises(build_dist.BuildError, match="pydantic>=2"):
        build_dist.pinned_requirements()
