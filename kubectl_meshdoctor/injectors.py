"""Istio's sidecar injector webhooks as the API server sees them: which one would inject a pod, and which
revisions they serve.

The API server calls a mutating webhook for a new pod when the webhook's ``namespaceSelector`` matches
the namespace's labels and its ``objectSelector`` the pod's. Istio installs one
MutatingWebhookConfiguration per revision (``istio-sidecar-injector[-<rev>]``, label ``istio.io/rev``)
and one per revision tag (``istio-revision-tag-<tag>``, label ``istio.io/tag``), whose webhooks are
named ``...sidecar-injector.istio.io``. This is the question ``istioctl x check-inject`` answers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubectl_meshdoctor.workloads import dig, listed, selector_selects

INJECTOR_SUFFIX = "sidecar-injector.istio.io"
REVISION_LABEL = "istio.io/rev"
TAG_LABEL = "istio.io/tag"
# The API server's message when a webhook call fails, e.g. FailedCreate events of a ReplicaSet:
# Error creating: Internal error occurred: failed calling webhook "namespace.sidecar-injector.istio.io":
# failed to call webhook: Post "https://istiod.istio-system.svc:443/inject?timeout=10s": ...
# (Before Istio 1.5 and Kubernetes 1.18: `failed calling admission webhook "sidecar-injector.istio.io"`.)
WEBHOOK_FAILURE = re.compile(r'failed calling (?:admission )?webhook "(?P<webhook>[^"]*' + re.escape(INJECTOR_SUFFIX)
                             + r')":\s*(?P<reason>.*)', re.S)


@dataclass(frozen=True)
class Injector:
    """One injector webhook of one MutatingWebhookConfiguration."""

    configuration: str
    revision: str  # the revision or tag it serves ("default" when unlabelled)
    webhook: str
    namespace_selector: dict | None
    object_selector: dict | None

    def selects(self, pod_labels: dict[str, str], namespace_labels: dict[str, str]) -> bool:
        return (selector_selects(self.namespace_selector, namespace_labels)
                and selector_selects(self.object_selector, pod_labels))


def injectors(configurations: list[dict]) -> list[Injector]:
    """The Istio injector webhooks among MutatingWebhookConfigurations."""
    found = []
    for configuration in configurations:
        meta = dig(configuration, "metadata")
        labels = dig(meta, "labels")
        revision = str(labels.get(TAG_LABEL) or labels.get(REVISION_LABEL) or "default")
        for webhook in listed(configuration.get("webhooks")):
            webhook = dig(webhook)
            name = str(webhook.get("name") or "")
            if name.endswith(INJECTOR_SUFFIX):
                found.append(Injector(str(meta.get("name") or ""), revision, name,
                                      webhook.get("namespaceSelector"), webhook.get("objectSelector")))
    return found


def served_revisions(found: list[Injector]) -> list[str]:
    return sorted({i.revision for i in found})


def webhook_failure(message: str) -> tuple[str, str] | None:
    """(webhook, reason) when an event message says an Istio injector webhook call failed."""
    match = WEBHOOK_FAILURE.search(message if isinstance(message, str) else "")
    if match is None:
        return None
    return match.group("webhook"), " ".join(match.group("reason").split())
