"""The evidence bundle: everything the checks may read, as plain data that saves and loads back.

Layout (a directory, or the same files under ``meshdoctor-bundle/`` in a .tgz)::

    bundle.json              format, scope, collection time, evidence kinds available, gaps
    objects.json             Kubernetes and Istio objects as the API returns them (Secrets never)
    proxies/<ns>/<pod>.json  the reduced istio-proxy evidence of one pod

The format is versioned; a bundle of another format version is refused with a clear error.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from kubectl_meshdoctor.errors import BundleError
from kubectl_meshdoctor.evidence import Gap, ProxyEvidence, from_plain, to_plain
from kubectl_meshdoctor.redact import sanitize_object, scrub

BUNDLE_FORMAT = "meshdoctor.bundle/v1"
_TOP = "meshdoctor-bundle"
_MAX_MEMBER_BYTES = 256 * 1024 * 1024
_MAX_FILE_STEM = 200  # bytes of a proxies/ file name before ".json"; file systems allow 255


@dataclass
class EvidenceBundle:
    scope: dict[str, Any]
    objects: list[dict] = field(default_factory=list)
    proxies: dict[str, ProxyEvidence] = field(default_factory=dict)
    available: set[str] = field(default_factory=set)
    gaps: list[Gap] = field(default_factory=list)
    collected_at: str | None = None

    def add_gap(self, what: str, reason: str, pod: str | None = None, affects: Iterable[str] = ()) -> None:
        self.gaps.append(Gap(what=what, reason=reason, pod=pod, affects=tuple(affects)))

    # --- save ---------------------------------------------------------------------------------------

    def files(self) -> Iterable[tuple[str, bytes]]:
        """(relative path, content) of every file of the bundle, secrets scrubbed."""
        header = {
            "format": BUNDLE_FORMAT,
            "scope": self.scope,
            "collectedAt": self.collected_at,
            "available": sorted(self.available),
            "gaps": [g.to_dict() for g in self.gaps],
        }
        yield "bundle.json", _dump(scrub(header))
        objects = [o for o in (sanitize_object(obj) for obj in self.objects) if o is not None]
        yield "objects.json", _dump(objects)
        for key, proxy in sorted(self.proxies.items()):
            namespace, _, name = key.partition("/")
            yield f"proxies/{_safe(namespace)}/{_safe(name)}.json", _dump(scrub(to_plain(proxy)))

    def save(self, path: str | Path) -> Path:
        """Write to a directory, or to a .tgz when the path ends in .tgz or .tar.gz."""
        return write_files(path, self.files())

    # --- load ---------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> "EvidenceBundle":
        path = Path(path)
        return cls.from_files(_read_files(path), str(path))

    @classmethod
    def from_files(cls, files: dict[str, bytes], path: str) -> "EvidenceBundle":
        """The bundle held by ``files`` (relative path -> content); ``path`` names it in errors."""
        try:
            header = json.loads(files["bundle.json"])
        except KeyError:
            raise BundleError(f"{path} is not a meshdoctor bundle (no bundle.json)") from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleError(f"{path}: bundle.json is not valid JSON ({exc})") from None
        if not isinstance(header, dict) or header.get("format") != BUNDLE_FORMAT:
            found = header.get("format") if isinstance(header, dict) else None
            raise BundleError(f"{path}: bundle format {found!r} is not supported (expected {BUNDLE_FORMAT})")
        try:
            objects = json.loads(files.get("objects.json", b"[]"))
            if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
                raise ValueError("objects.json must be a list of objects")
            proxies: dict[str, ProxyEvidence] = {}
            for name, content in files.items():
                if name.startswith("proxies/") and name.endswith(".json"):
                    proxy = from_plain(ProxyEvidence, json.loads(content))
                    proxies[proxy.pod] = proxy
            gaps = [Gap.from_dict(g) for g in header.get("gaps", [])]
            return cls(
                scope=dict(header.get("scope") or {}),
                objects=objects,
                proxies=proxies,
                available=set(header.get("available") or []),
                gaps=gaps,
                collected_at=header.get("collectedAt"),
            )
        except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{path}: corrupt bundle ({type(exc).__name__}: {exc})") from None


def write_files(path: str | Path, files: Iterable[tuple[str, bytes]]) -> Path:
    """Write (relative path, content) pairs to a directory, or to a .tgz when the path ends in .tgz or .tar.gz."""
    path = Path(path)
    try:
        if path.name.endswith((".tgz", ".tar.gz")):
            path.parent.mkdir(parents=True, exist_ok=True)
            with tarfile.open(path, "w:gz") as tar:
                for name, content in files:
                    info = tarfile.TarInfo(f"{_TOP}/{name}")
                    info.size = len(content)
                    tar.addfile(info, io.BytesIO(content))
        else:
            for name, content in files:
                target = path / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
    except OSError as exc:
        raise BundleError(f"cannot write bundle to {path}: {exc.strerror or exc}") from None
    return path


def is_bundle(path: Path) -> bool:
    """True when ``path`` looks like a bundle (a directory with bundle.json, or a tar archive)."""
    if path.is_dir():
        return (path / "bundle.json").is_file()
    return path.is_file() and path.name.endswith((".tgz", ".tar.gz"))


def _dump(data: Any) -> bytes:
    return json.dumps(data, indent=1, sort_keys=False).encode()


def _safe(part: str) -> str:
    # Kubernetes names cannot hold "/", but a hand-edited bundle could; never let it escape the dir.
    safe = part.replace("/", "_").replace("..", "_") or "_"
    if len(safe.encode()) > _MAX_FILE_STEM:
        # A pod name may be 253 characters, more than a file name may hold (255 bytes with ".json").
        # Loading reads the pod from the file's content, so a shortened, still unique name is enough.
        head = safe.encode()[: _MAX_FILE_STEM - 17].decode("utf-8", "ignore")
        safe = f"{head}-{hashlib.sha256(part.encode()).hexdigest()[:16]}"
    return safe


def _read_files(path: Path) -> dict[str, bytes]:
    if not path.exists():
        raise BundleError(f"{path}: no such file or directory")
    try:
        if path.is_dir():
            return {
                p.relative_to(path).as_posix(): p.read_bytes()
                for p in path.rglob("*.json")
                if p.is_file()
            }
        files: dict[str, bytes] = {}
        # Members are read into memory, never extracted, so no archive path can escape.
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if not member.isfile() or member.size > _MAX_MEMBER_BYTES:
                    continue
                parts = PurePosixPath(member.name).parts
                name = "/".join(parts[1:] if parts and parts[0] == _TOP else parts)
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[name] = extracted.read()
        return files
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise BundleError(f"{path}: cannot read bundle ({exc})") from None
