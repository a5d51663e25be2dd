#!/usr/bin/env python3
"""Build the krew archives, one per OS and CPU, and pin their sha256 in the krew manifest.

Each archive (dist/kubectl-meshdoctor-v<version>-<os>-<arch>.tar.gz) holds ``kubectl-meshdoctor``, a
PEX file, and ``LICENSE``. A PEX carries the package and every runtime dependency as wheels, compiled
ones included (pydantic-core, PyYAML's and charset-normalizer's accelerators), for CPython 3.11 to 3.14
on its OS and CPU; at its first run it picks the wheels that match the python3 it finds and lays them
out as a private virtualenv under ~/.cache/pex, which later runs execute directly. So the host needs
python3 and nothing installed into it, which matters where PEP 668 refuses ``pip install --user``.

Reproducible: the same tree gives the same bytes from any checkout, on any machine.
* Every runtime dependency is pinned to one version in scripts/dist-constraints.txt, and the wheels
  come from the package registry (PyPI never replaces a released file). They are fetched with
  ``pip download --no-deps`` per target into a wheelhouse cache, and PEX resolves from that directory
  alone, so nothing about this machine (its own Python, pip configuration) takes part in the choice.
* PEX itself is pinned (PEX_VERSION) and writes zip entries in a fixed order with fixed timestamps.
* The package's sources are copied with normalised modes and timestamps; the tar.gz around the PEX has
  fixed metadata and no gzip time stamp.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "scripts" / "dist-constraints.txt"  # one pinned version per runtime dependency
EXECUTABLE = "kubectl-meshdoctor"
ENTRY_POINT = "kubectl_meshdoctor.cli:main"
PEX_VERSION = "2.105.2"  # also pinned in pyproject's dev extra: another PEX writes other bytes
FIXED_MTIME = 1577836800  # 2020-01-01T00:00:00Z, for reproducible archives
PYTHONS = ("3.11", "3.12", "3.13", "3.14")
# The kubernetes client lists aiohttp for its asyncio flavour only, which the plugin never imports.
EXCLUDED = ("aiohttp", "aiohttp-retry")
# The local test lab (aiohttp, Envoy) is for development only; the plugin never imports it.
EXCLUDED_SOURCES = ("lab",)
HOMEPAGE_DOWNLOADS = "https://github.com/meshdoctor/kubectl-meshdoctor/releases/download"


@dataclass(frozen=True)
class Target:
    """One krew platform: its selector labels and the wheel platform tag its wheels must match."""

    os: str
    arch: str
    wheel_platform: str  # the oldest OS release the archive supports, as a wheel platform tag

    @property
    def name(self) -> str:
        return f"{self.os}-{self.arch}"


# manylinux2014 (glibc >= 2.17) covers every current glibc distribution; macOS 10.15 and 11.0 are
# the oldest releases for which the pinned compiled wheels exist (11.0 is the first on Apple silicon;
# 10.15 on Intel since orjson, whose x86_64 macOS wheels start there).
TARGETS = (
    Target("linux", "amd64", "manylinux2014_x86_64"),
    Target("linux", "arm64", "manylinux2014_aarch64"),
    Target("darwin", "amd64", "macosx_10_15_x86_64"),
    Target("darwin", "arm64", "macosx_11_0_arm64"),
)


class BuildError(Exception):
    pass


def package_version() -> str:
    text = (REPO / "kubectl_meshdoctor" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    if not match:
        raise BuildError("no __version__ in kubectl_meshdoctor/__init__.py")
    return match.group(1)


def archive_name(version: str, target: Target) -> str:
    return f"{EXECUTABLE}-v{version}-{target.name}.tar.gz"


def runtime_requirements() -> list[str]:
    """The package's runtime dependencies, as pyproject.toml declares them."""
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]


def pinned_requirements() -> list[str]:
    """Every ``name==version`` line of the constraints file: the whole runtime dependency closure."""
    pins = []
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[^=<>!~,; ]+", line):
            raise BuildError(f"{CONSTRAINTS.name}: {line!r} is not an exact pin (name==version)")
        pins.append(line)
    return pins


def default_wheelhouse() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "kubectl-meshdoctor" / "dist-wheels"


def fill_wheelhouse(wheelhouse: Path, pins: list[str], targets: tuple[Target, ...]) -> None:
    """Download, once per pin set, the wheel of every pin for every target and Python version.

    ``--no-deps``: the pins are the whole closure already (PEX checks that when it resolves). A
    marker file per target and Python version, named after the pins, makes later builds skip the
    registry entirely. Downloads land in a temporary directory first, so that two builds sharing
    the cache never see half a wheel."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256("\n".join(pins).encode()).hexdigest()[:16]
    jobs = [(target, python) for target in targets for python in PYTHONS
            if not (wheelhouse / f".done-{target.wheel_platform}-cp{python}-{digest}").is_file()]

    def download(job: tuple[Target, str]) -> None:
        target, python = job
        with tempfile.TemporaryDirectory(dir=wheelhouse, prefix=".download-") as tmp:
            command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                       "--no-deps", "--only-binary=:all:", "--implementation", "cp",
                       "--platform", target.wheel_platform, "--python-version", python, "--dest", tmp, *pins]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise BuildError(f"pip download for {target.name} CPython {python} failed:\n{done.stderr[-2000:]}")
            for wheel in Path(tmp).glob("*.whl"):
                os.replace(wheel, wheelhouse / wheel.name)
        (wheelhouse / f".done-{target.wheel_platform}-cp{python}-{digest}").write_text("\n".join(pins) + "\n")

    # Mostly waiting on the registry: a few at a time.
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(download, jobs))


def stage_sources(stage: Path) -> Path:
    """The package's sources, without caches or the test lab, with modes and times normalised."""
    sources = stage / "src"
    shutil.copytree(REPO / "kubectl_meshdoctor", sources / "kubectl_meshdoctor",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", *EXCLUDED_SOURCES))
    normalise_tree(sources)
    return sources


def normalise_tree(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.utime(path, (FIXED_MTIME, FIXED_MTIME))


def check_pex_version() -> None:
    try:
        found = importlib.metadata.version("pex")
    except importlib.metadata.PackageNotFoundError:
        found = None
    if found != PEX_VERSION:
        raise BuildError(f"the build needs pex=={PEX_VERSION} (found {found or 'none'}): "
                         f"pip install 'pex=={PEX_VERSION}', or install the dev extra")


def pex_command(sources: Path, wheelhouse: Path, target: Target, output: Path,
                requirements: list[str], entry_point: str = ENTRY_POINT) -> list[str]:
    command = [sys.executable, "-m", "pex", *requirements, "--constraints", str(CONSTRAINTS),
               "--no-pypi", "--find-links", str(wheelhouse)]
    for name in EXCLUDED:
        command += ["--exclude", name]
    for python in PYTHONS:
        tag = "cp" + python.replace(".", "")
        command += ["--platform", f"{target.wheel_platform}-cp-{python.replace('.', '')}-{tag}"]
    return [*command,
            "--sources-directory", str(sources), "--entry-point", entry_point,
            # --venv: the first run lays out a virtualenv under ~/.cache/pex; --sh-boot: later runs
            # go from /bin/sh straight into that virtualenv's python, without PEX's bootstrap.
            "--venv", "--sh-boot",
            "--no-emit-warnings",  # stderr is for meshdoctor's own one-line errors
            "--output-file", str(output)]


def run_pex(command: list[str], target: Target) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"pex failed for {target.name}:\n{done.stderr[-3000:]}")


def make_archive(executable: Path, license_path: Path, target: Path) -> None:
    """A gzip'd tar with the executable and LICENSE at its root, byte-for-byte reproducible."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, arcname, mode in ((executable, EXECUTABLE, 0o755), (license_path, "LICENSE", 0o644)):
            info = tarfile.TarInfo(arcname)
            content = path.read_bytes()
            info.size, info.mode, info.mtime = len(content), mode, FIXED_MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    with open(target, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buffer.getvalue())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def platform_entry(version: str, target: Target, digest: str) -> str:
    return (
        "    - selector:\n"
        "        matchLabels:\n"
        f"          os: {target.os}\n"
        f"          arch: {target.arch}\n"
        f"      uri: {HOMEPAGE_DOWNLOADS}/v{version}/{archive_name(version, target)}\n"
        f"      sha256: {digest}\n"
        "      files:\n"
        f"        - from: {EXECUTABLE}\n"
        "          to: .\n"
        "        - from: LICENSE\n"
        "          to: .\n"
        f"      bin: {EXECUTABLE}\n"
    )


def pin_manifest(manifest: Path, version: str, digests: dict[Target, str]) -> None:
    """Rewrite the version and the whole ``platforms`` list (one entry per archive), keeping the rest."""
    text = manifest.read_text()
    text = re.sub(r"^(\s*version:\s*).*$", rf"\g<1>v{version}", text, count=1, flags=re.MULTILINE)
    head, found, _ = text.partition("\n  platforms:\n")
    if not found:
        raise BuildError(f"{manifest}: no 'platforms:' list under spec")
    entries = "".join(platform_entry(version, target, digests[target]) for target in TARGETS if target in digests)
    manifest.write_text(f"{head}\n  platforms:\n{entries}")


def build(out_dir: Path, manifest: Path | None, *, wheelhouse: Path | None = None,
          targets: tuple[Target, ...] = TARGETS) -> dict[Target, Path]:
    """Build one archive per target into ``out_dir``; returns them by target."""
    check_pex_version()
    version = package_version()
    pins = pinned_requirements()
    wheelhouse = wheelhouse or default_wheelhouse()
    fill_wheelhouse(wheelhouse, pins, targets)
    out_dir.mkdir(parents=True, exist_ok=True)
    archives: dict[Target, Path] = {}
    with tempfile.TemporaryDirectory(prefix="meshdoctor-dist-") as tmp:
        sources = stage_sources(Path(tmp))
        license_path = Path(tmp) / "LICENSE"
        shutil.copy(REPO / "LICENSE", license_path)

        def one(target: Target) -> None:
            executable = Path(tmp) / target.name / EXECUTABLE
            run_pex(pex_command(sources, wheelhouse, target, executable, runtime_requirements()), target)
            archives[target] = out_dir / archive_name(version, target)
            make_archive(executable, license_path, archives[target])

        # PEX spends most of its time in zlib on one core: two at a time on a small machine.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(one, targets))
    digests = {target: sha256_of(archives[target]) for target in targets}
    if manifest is not None:
        pin_manifest(manifest, version, digests)
    for target in targets:
        print(f"{archives[target]}  sha256 {digests[target]}")
    return {target: archives[target] for target in targets}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output directory (default: dist/)")
    parser.add_argument("--manifest", type=Path, default=REPO / "krew-manifest.yaml",
                        help="krew manifest whose version and platforms are rewritten")
    parser.add_argument("--no-manifest", action="store_true", help="do not touch any krew manifest")
    parser.add_argument("--wheelhouse", type=Path, default=None,
                        help=f"cache of downloaded wheels (default: {default_wheelhouse()})")
    args = parser.parse_args(argv)
    try:
        build(args.out, None if args.no_manifest else args.manifest, wheelhouse=args.wheelhouse)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
