"""Which Istio injector webhook selects a pod: checked against istioctl check-inject's own test table.

The webhook configurations are read from ../shared (istioctl's testdata, never copied here); the
expected outcome of each case (which configuration injects) is istioctl's, transcribed as facts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from caseloader import load_case
from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.injectors import injectors, webhook_failure
from kubectl_meshdoctor.manifests import read_documents

CHECK_INJECT = "istio-data/istioctl-testdata/istioctl/pkg/checkinject/testdata/check-inject"

# (namespace labels, pod labels, configurations that inject), from istioctl's Test_analyzeRunningWebhooks
CASES = [
    ({}, {}, set()),
    ({"istio-injection": "enabled"}, {}, {"istio-sidecar-injector"}),
    ({"istio.io/rev": "1-16"}, {}, {"istio-sidecar-injector-1-16"}),
    ({}, {"istio.io/rev": "1-16"}, {"istio-sidecar-injector-1-16"}),
    ({}, {"sidecar.istio.io/inject": "true"}, {"istio-sidecar-injector"}),
    ({"istio-injection": "enabled"}, {"sidecar.istio.io/inject": "true"}, {"istio-sidecar-injector"}),
    ({"istio.io/rev": "1-16"}, {"istio.io/rev": "1-16"}, {"istio-sidecar-injector-1-16"}),
]


@pytest.fixture
def istioctl_injectors(shared_dir):
    folder = shared_dir / CHECK_INJECT
    configurations = [doc for path in sorted(folder.glob("*.yaml")) for doc in read_documents(path)]
    return injectors(configurations)


@pytest.mark.parametrize("namespace_labels, pod_labels, injecting", CASES)
def test_selection_matches_istioctl_check_inject(istioctl_injectors, namespace_labels, pod_labels, injecting):
    selecting = {i.configuration for i in istioctl_injectors if i.selects(pod_labels, namespace_labels)}
    assert selecting == injecting


def test_the_deactivated_injector_never_selects(istioctl_injectors):
    deactivated = [i for i in istioctl_injectors if i.configuration == "istio-sidecar-injector-deactivated"]
    assert deactivated
    for namespace_labels, pod_labels, _ in CASES:
        assert not any(i.selects(pod_labels, namespace_labels) for i in deactivated)


def test_webhook_failure_messages_old_and_new():
    new = ('Error creating: Internal error occurred: failed calling webhook "namespace.sidecar-injector.istio.io": '
           'failed to call webhook: Post "https://istiod.istio-system.svc:443/inject?timeout=10s": context deadline exceeded')
    assert webhook_failure(new) == ("namespace.sidecar-injector.istio.io", 'failed to call webhook: Post '
                                    '"https://istiod.istio-system.svc:443/inject?timeout=10s": context deadline exceeded')
    old = ('Error creating: Internal error occurred: failed calling admission webhook "sidecar-injector.istio.io": '
           'Post https://istio-sidecar-injector.istio-system.svc:443/inject: dial tcp 10.254.156.130:443: connect: '
           'connection refused')
    assert webhook_failure(old)[0] == "sidecar-injector.istio.io"
    assert webhook_failure('failed calling webhook "validate.kyverno.svc-fail": timeout') is None


def test_an_injection_failure_explains_the_missing_sidecar():
    bundle, case = load_case(Path(__file__).parent / "cases/MD0103/fires-no-webhook-serves-the-revision.yaml")
    report = analyze(bundle, now=case.now)
    missing = next(f for f in report.findings if f.code == "MD0101")
    assert missing.caused_by == ("MD0103",) and not missing.root_cause
    cause = next(f for f in report.findings if f.code == "MD0103")
    assert cause.root_cause and "revision '1-25'" in cause.message and "1-16, default" in cause.message
    assert report.pods[0].root_causes == ("MD0103",)


def test_a_failing_webhook_is_reported_on_its_replicaset_with_the_service_to_fix():
    bundle, case = load_case(Path(__file__).parent / "cases/MD0103/fires-webhook-fails-replicaset-failedcreate.yaml")
    (refused,) = [f for f in analyze(bundle, now=case.now).findings if f.code == "MD0103"]
    assert refused.pod is None and refused.root_cause and str(refused.subject) == \
        "ReplicaSet checkout-prod/payment-gateway-59d8c7b6f4"
    assert refused.remediation.startswith("Make Service istio-system/istiod-green ready")
    assert refused.evidence[0].startswith("2026-11-23T11:52:10Z FailedCreate (x14): Error creating:")
