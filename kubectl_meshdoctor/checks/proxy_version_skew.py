"""MD0205 ProxyVersionSkew: a sidecar's Istio release is outside the skew its istiod revision supports.

Anti-pattern: upgrading istiod in place and leaving the workloads on the old proxies for months, or
rolling a newer proxy image into pods whose istiod is older. Both "work" until istiod generates
configuration the old Envoy does not understand (or the new Envoy expects fields the old istiod never
sends), and then the proxy NACKs its configuration (MD0202) or behaves subtly differently.

Best practice: compare, per pod, the Istio release the proxy really runs with the release of the istiod
revision that serves it. Istio supports a data plane up to one minor release *older* than its control
plane, never newer; revisions (canary upgrades) exist to keep both sides in step.

Decisions:
- The proxy's release is what pilot-agent wrote into Envoy's node metadata (``ISTIO_VERSION``, read
  from ``/server_info``); without live evidence, the tag of the istio-proxy image the injector set.
  istiod's release is the tag of its ``discovery`` container image, else its
  ``app.kubernetes.io/version`` label. A tag that is not a release (``latest``, a digest) says nothing:
  no finding.
- Outside the supported skew (proxy newer minor, or two or more minors older) is a **warning**: it is
  a risk the on-call engineer must fix, not a failure seen; when Envoy does reject its configuration,
  MD0202 is the error and this finding explains it (failure tree). Within one minor older: no finding.
  Same minor, different patch: **info** (supported, worth knowing during an upgrade).
- When the pods of one revision's istiod run different releases (mid-upgrade), the proxy is compared
  with the newest of them, and the evidence lists them all.
"""

from __future__ import annotations

import re
from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, created, finding, pod_subject
from kubectl_meshdoctor.checks.context import AnalysisContext, labels_of
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Severity
from kubectl_meshdoctor.pods import DEFAULT_REVISION, REVISION_KEY, pod_revision, sidecar_container, pod_key

ISTIOD_CONTAINER = "discovery"
ISTIOD_APP = "istiod"
VERSION_LABEL = "app.kubernetes.io/version"
_RELEASE = re.compile(r"v?(\d{1,4})\.(\d{1,4})(?:\.(\d{1,4}))?(?![\d.])")

Release = tuple[int, int, int]


def release_of(text: str) -> Release | None:
    """(major, minor, patch) from ``1.24.2``, ``1.24.2-distroless``, ``1.25.0-beta.1``; None otherwise."""
    matched = _RELEASE.match(text.strip()) if text else None
    if matched is None:
        return None
    return int(matched.group(1)), int(matched.group(2)), int(matched.group(3) or 0)


def image_tag(image: str) -> str:
    """The tag of ``registry:5000/istio/proxyv2:1.24.2`` ("" for an untagged or digest-only image)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[1] if ":" in last else ""


def shown(release: Release) -> str:
    return ".".join(str(n) for n in release)


def istiod_releases(ctx: AnalysisContext) -> dict[str, dict[str, Release]]:
    """revision -> {istiod pod key: its release}, for every istiod pod whose release is known."""
    found: dict[str, dict[str, Release]] = {}
    for pod in ctx.pods:
        labels = labels_of(pod)
        if labels.get("app") != ISTIOD_APP:
            continue
        containers = (pod.get("spec") or {}).get("containers") or []
        discovery = next((c for c in containers if c.get("name") == ISTIOD_CONTAINER), None)
        release = release_of(image_tag(str((discovery or {}).get("image") or ""))) or release_of(
            str(labels.get(VERSION_LABEL) or ""))
        if release is not None:
            found.setdefault(labels.get(REVISION_KEY) or DEFAULT_REVISION, {})[pod_key(pod)] = release
    return found


def proxy_release(ctx: AnalysisContext, key: str, pod: dict) -> tuple[Release | None, str]:
    """The proxy's Istio release and where it was read."""
    proxy = ctx.proxy(key)
    if proxy is not None and proxy.server_info is not None:
        release = release_of(proxy.server_info.istio_version)
        if release is not None:
            return release, f"/server_info node metadata ISTIO_VERSION: {proxy.server_info.istio_version}"
    image = str((sidecar_container(pod) or {}).get("image") or "")
    release = release_of(image_tag(image))
    return release, f"istio-proxy image: {image}"


def workload_of(pod: dict) -> str:
    """``deployment/NAME`` (or statefulset/..., daemonset/...) owning the pod, as rollout restart takes it."""
    meta = pod.get("metadata") or {}
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    if owner is None:  # a Deployment's pod is named <deployment>-<pod-template-hash>-<suffix>
        pod_name = str(meta.get("name") or "")
        if template_hash and f"-{template_hash}-" in pod_name:
            return f"deployment/{pod_name.split(f'-{template_hash}-', 1)[0]}"
        return "deployment/<workload>"
    name, kind = str(owner.get("name") or ""), str(owner.get("kind") or "")
    if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
        return f"deployment/{name[: -len(template_hash) - 1]}"
    return f"{kind.lower()}/{name}" if kind in ("StatefulSet", "DaemonSet") else "deployment/<workload>"


def minor_distance(proxy: Release, istiod: Release) -> int:
    """How many minor releases the proxy is behind istiod (negative: ahead); another major counts as 100."""
    if proxy[0] != istiod[0]:
        return (istiod[0] - proxy[0]) * 100
    return istiod[1] - proxy[1]


class ProxyVersionSkew(Check):
    name = "ProxyVersionSkew"
    codes = ("MD0205",)
    needs = frozenset({Evidence.PODS, Evidence.ISTIOD_PODS})

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        by_revision = istiod_releases(ctx)
        for key, pod, _ in sorted(ctx.meshed_pods(), key=lambda item: item[0]):
            revision = pod_revision(pod)
            istiods = by_revision.get(revision)
            proxy, source = proxy_release(ctx, key, pod)
            if not istiods or proxy is None:
                continue
            istiod = max(istiods.values())
            behind = minor_distance(proxy, istiod)
            if behind == 1 or proxy == istiod:
                continue
            if behind < 0:
                verdict, severity = "newer than its control plane: outside Istio's supported skew", None
            elif behind > 1:
                verdict, severity = (f"{behind} minor releases older than its control plane: outside Istio's "
                                     "supported skew (one minor older at most)"), None
            else:
                verdict, severity = "a different patch release of the same minor: supported", Severity.INFO
            evidence = [source, f"pod revision: {revision}"]
            evidence += [f"istiod pod {name}: {shown(release)}" for name, release in sorted(istiods.items())]
            deployment = "istiod" if revision == DEFAULT_REVISION else f"istiod-{revision}"
            # what changed: the proxy started on its release, istiod's pods (re)started on theirs
            since = [created(pod, f"pod created with istio-proxy {shown(proxy)}", key)]
            since += [created(ctx.pod(name), f"istiod pod {name} created ({shown(release)})")
                      for name, release in sorted(istiods.items())]
            yield finding(
                "MD0205", pod_subject(key),
                f"istio-proxy {shown(proxy)} against istiod {shown(istiod)} (revision {revision}): {verdict}",
                evidence, pod=key, severity=severity, since=since,
                remediation=(
                    f"Restart the workload so the injector of revision {revision} gives it the proxy of istiod "
                    f"{shown(istiod)}: kubectl rollout restart {workload_of(pod)} -n {key.partition('/')[0]}; "
                    f"if the proxy is meant to be newer, move the namespace to a revision of that release "
                    f"(istio.io/rev) or upgrade {deployment} first."
                ),
            )


CHECK = ProxyVersionSkew()
