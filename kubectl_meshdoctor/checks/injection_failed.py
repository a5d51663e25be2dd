"""MD0103 InjectionFailed: why a pod that should have a sidecar has none, or could not be created at all.

Anti-pattern: labelling a namespace for injection and assuming every pod of it is now meshed; or
labelling it with a revision (``istio.io/rev=1-24``) that no installed control plane serves.

Best practice: after labelling, check which injector would act (``istioctl x check-inject``) and
restart the workloads; watch the ReplicaSets' events when pods do not appear.

Why: the sidecar is added by a mutating webhook when the pod is created, and only then:
- when the webhook call fails and its ``failurePolicy`` is ``Fail`` (Istio's default), the API server
  refuses the pod: the ReplicaSet (or StatefulSet, Job...) records ``FailedCreate`` events saying
  ``failed calling webhook "namespace.sidecar-injector.istio.io": ...`` and the workload stays short
  of pods;
- when no MutatingWebhookConfiguration's namespace and object selectors match the pod, nothing injects
  it (a revision label naming a revision or tag no webhook serves is the usual reason);
- when a webhook selects the pod today yet it has no sidecar, it was created before the namespace (or
  pod template) was labelled, or before the injector was installed.

Decisions: the webhook-failure form is read from the events and reported on the object the events
name (the ReplicaSet), once, error severity (pods are missing), and also on each of its pods that runs
without a sidecar (their MD0101 links here). The two selector forms are per pod, only for pods MD0101
reports (the same rule decides that injection was expected), only on live evidence (in manifests no pod
has been injected yet), and only when the webhook configurations and the namespace labels were read.
"""

from __future__ import annotations

import re
from typing import Iterable

from kubectl_meshdoctor.checks.base import Check, created, finding, moment, shorten
from kubectl_meshdoctor.checks.context import AnalysisContext, key_of, sidecar_container
from kubectl_meshdoctor.checks.sidecar_missing import missing_sidecar_reason
from kubectl_meshdoctor.evidence import Evidence
from kubectl_meshdoctor.findings import Finding, Severity, Subject
from kubectl_meshdoctor.injectors import REVISION_LABEL, injectors, served_revisions, webhook_failure
from kubectl_meshdoctor.workloads import dig, listed, owner_subject, selector_selects

MAX_EVIDENCE_LINE = 300
MAX_WEBHOOKS_SHOWN = 6
WEBHOOK_SERVICE = re.compile(r"https://([a-z0-9-]+)\.([a-z0-9-]+)\.svc[:/]")  # Post "https://istiod.istio-system.svc:443/..."
RESTARTABLE = frozenset({"Deployment", "StatefulSet", "DaemonSet"})  # kinds `kubectl rollout restart` takes


class InjectionFailed(Check):
    name = "InjectionFailed"
    codes = ("MD0103",)
    needs: frozenset[str] = frozenset()  # events alone tell of pods never created

    def run(self, ctx: AnalysisContext) -> Iterable[Finding]:
        failures = self._webhook_failures(ctx)
        for subject, (evidence, message, since) in failures.items():
            yield finding("MD0103", subject, message, evidence, remediation=_webhook_fix(message), since=since)
        for pod in ctx.pods:
            key = key_of(pod)
            namespace = str(dig(pod, "metadata").get("namespace") or "")
            namespace_labels = ctx.namespace_labels(namespace)
            if not ctx.live or missing_sidecar_reason(pod, namespace_labels) is None:
                continue
            owner = self._owner_with_failures(pod, failures)
            if owner is not None:
                evidence, message, since = failures[owner]
                yield finding("MD0103", owner, message, evidence, pod=key, remediation=_webhook_fix(message),
                              since=[*since, created(pod, "created without istio-proxy", key)])
                continue
            if Evidence.INJECTION_WEBHOOKS not in ctx.available or namespace_labels is None:
                continue
            failing = [str(f) for f in failures if f.namespace == namespace]
            yield self._selector_finding(ctx, pod, namespace_labels, failing)

    @staticmethod
    def _webhook_failures(ctx: AnalysisContext) -> dict[Subject, tuple[list[str], str, list]]:
        """Objects whose FailedCreate events say an injector webhook failed: evidence, message, times."""
        found: dict[Subject, tuple[list[str], str, list]] = {}
        for event in ctx.objects("Event"):
            if event.get("reason") != "FailedCreate":
                continue
            failure = webhook_failure(str(event.get("message") or ""))
            involved = dig(event, "involvedObject")
            if failure is None or not involved.get("name"):
                continue
            webhook, reason = failure
            namespace = str(involved.get("namespace") or dig(event, "metadata").get("namespace") or "")
            subject = Subject(str(involved.get("kind") or "ReplicaSet"), str(involved["name"]), namespace)
            when = event.get("lastTimestamp") or event.get("eventTime") or dig(event, "metadata").get(
                "creationTimestamp") or "?"
            line = shorten(f"{when} FailedCreate (x{event.get('count') or 1}): {event.get('message')}",
                           MAX_EVIDENCE_LINE)
            first = moment(event.get("firstTimestamp") or event.get("eventTime"),
                           f"first FailedCreate: injector webhook {webhook} failed")
            if subject in found:
                found[subject][0].append(line)
                found[subject][2].append(first)
                continue
            message = (f"{subject} cannot create pods: the sidecar injector webhook {webhook} fails "
                       f"({shorten(reason, 160)})")
            found[subject] = ([line], message, [first, moment(when, f"FailedCreate x{event.get('count') or 1} "
                                                                 "by then")])
        return found

    @staticmethod
    def _owner_with_failures(pod: dict, failures: dict[Subject, tuple[list[str], str, list]]) -> Subject | None:
        meta = dig(pod, "metadata")
        namespace = str(meta.get("namespace") or "")
        for owner in listed(meta.get("ownerReferences")):
            owner = dig(owner)
            subject = Subject(str(owner.get("kind") or ""), str(owner.get("name") or ""), namespace)
            if subject in failures:
                return subject
        return None

    @staticmethod
    def _selector_finding(ctx: AnalysisContext, pod: dict, namespace_labels: dict[str, str],
                          failing: list[str]) -> Finding:
        """Why no injector acted on a pod: one selects it now (it predates that), or none does.

        ``failing``: objects of the pod's namespace whose pods the injector currently refuses; restarting
        this pod before that is fixed would leave it not created at all.
        """
        meta = dig(pod, "metadata")
        namespace = str(meta.get("namespace") or "")
        key = key_of(pod)
        subject = owner_subject(pod)
        pod_labels = {str(k): str(v) for k, v in dig(meta, "labels").items()}
        found = injectors(ctx.objects("MutatingWebhookConfiguration"))
        selecting = [i for i in found if i.selects(pod_labels, namespace_labels)]
        if selecting:
            first = selecting[0]
            evidence = [f"webhook {first.webhook} ({first.configuration}, revision {first.revision}) selects "
                        f"the pod today", f"pod created {meta.get('creationTimestamp') or '?'}"]
            evidence += InjectionFailed._injected_since(ctx, pod)
            restart = (f"kubectl rollout restart {subject.kind.lower()}/{subject.name} -n {namespace}"
                       if subject.kind in RESTARTABLE else f"delete and re-create pod {key}")
            if failing:
                evidence.append(f"the injector refuses new pods in {namespace} now: {', '.join(failing)} (MD0103)")
                restart = f"First make the injector work again (see {failing[0]}); then {restart}"
            return finding(
                "MD0103", subject,
                f"{subject}: its pods were created before injection applied to them (the injector "
                f"{first.configuration} selects them now); restart to inject",
                evidence, pod=key, severity=Severity.WARNING, since=[created(pod, "created without istio-proxy", key)],
                remediation=f"{restart} so the injector adds istio-proxy.")
        revision = pod_labels.get(REVISION_LABEL) or namespace_labels.get(REVISION_LABEL)
        served = served_revisions(found)
        evidence = [f"namespace {namespace} labels: " + (", ".join(
            f"{k}={v}" for k, v in sorted(namespace_labels.items()) if "istio" in k) or "(no Istio label)"),
            f"injector webhooks: {', '.join(sorted({i.configuration for i in found})) or 'none installed'}"]
        for injector in found[:MAX_WEBHOOKS_SHOWN]:
            namespace_ok = selector_selects(injector.namespace_selector, namespace_labels)
            object_ok = selector_selects(injector.object_selector, pod_labels)
            evidence.append(f"webhook {injector.webhook} ({injector.configuration}): namespace selector "
                            f"{'matches' if namespace_ok else 'excludes'} {namespace}, object selector "
                            f"{'matches' if object_ok else 'excludes'} the pod")
        if revision and revision not in served:
            message = (f"{subject}: no injector webhook serves revision {revision!r} (istio.io/rev); "
                       f"installed revisions and tags: {', '.join(served) or 'none'}")
        else:
            message = f"{subject}: no injector webhook's namespace and object selectors match its pods"
        return finding("MD0103", subject, message, evidence, pod=key, severity=Severity.WARNING,
                       since=[created(pod, "created without istio-proxy", key)],
                       remediation="Label the namespace (or pod) with a revision or tag an injector serves "
                       "(kubectl get mutatingwebhookconfigurations -l app=sidecar-injector), or install that "
                       "revision; then kubectl rollout restart the workload.")

    @staticmethod
    def _injected_since(ctx: AnalysisContext, pod: dict) -> list[str]:
        """A newer pod of the namespace that did get a sidecar: injection works, this pod predates it."""
        created = str(dig(pod, "metadata").get("creationTimestamp") or "")
        newer = sorted(
            (str(dig(p, "metadata").get("creationTimestamp") or ""), key_of(p))
            for p in ctx.pods_in(str(dig(pod, "metadata").get("namespace") or ""))
            if sidecar_container(p) is not None and str(dig(p, "metadata").get("creationTimestamp") or "") > created
        )
        return [f"pod {newer[0][1]} created {newer[0][0]} has istio-proxy"] if created and newer else []


def _webhook_fix(message: str) -> str:
    """Name the Service the failing webhook calls (from the URL the API server reported), when it says."""
    called = WEBHOOK_SERVICE.search(message)
    target = f"Service {called.group(2)}/{called.group(1)}" if called else "the Service the webhook calls"
    return (f"Make {target} ready (its istiod pods: kubectl -n {called.group(2) if called else 'istio-system'} get "
            "pods -l app=istiod); the controller retries and the pods are created with their sidecar. Do not "
            "switch the webhook to failurePolicy Ignore: pods would start without a sidecar.")


CHECK = InjectionFailed()
