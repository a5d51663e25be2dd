"""Asking Envoy for the masked config_dump parts finds exactly what the whole dump finds.

On every lab scenario (real Envoy 1.40 behind the lab API server), each namespace is collected twice:
with the masked parts the plugin asks for by default, and with the whole config_dump
(MESHDOCTOR_CONFIG_DUMP=full). The findings must be identical, and so must everything the checks read
from the reduced config (the service clusters, the route targets, the rejections, the access-log
answer). Also here: proxies that refuse or ignore the parameters get the whole dump, once per version.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from urllib.parse import unquote

import pytest

from kubectl_meshdoctor.analysis import analyze
from kubectl_meshdoctor.collect import ClusterOptions, CollectOptions, collect_evidence
from kubectl_meshdoctor.collect.admin_requests import CONFIG_DUMP_FULL, CONFIG_PARTS, STATS_READ, stats_filter
from kubectl_meshdoctor.collect.proxy import CONFIG_DUMP, CONFIG_PART_COMMANDS, CURL_FALLBACK
from kubectl_meshdoctor.collect.sweep import FULL_DUMP_VARIABLE
from kubectl_meshdoctor.envoy.config_dump import summarize_config_dump
from kubectl_meshdoctor.lab.apiserver import ExecResult
from tests.test_collect_support import FakeProxies, healthy_outputs, lab_cluster, mask_config_dump

# The lab, its scenarios and the "no Envoy binary" skip, as the end-to-end lab test uses them.
from tests.test_collect_lab import lab_module, needs_envoy, scenario_module  # noqa: E402


def _findings(bundle) -> list[dict]:
    """Findings as plain data. Both collections send the same stats request, but live counters move
    between them (an Envoy without istiod makes its first CDS attempt some time after start, and
    certificates age): numbers are blanked and lines quoting a stat left out."""
    found = []
    for finding in analyze(bundle).findings:
        data = finding.to_dict()
        data["evidence"] = [re.sub(r"\d+", "N", line) for line in data["evidence"]
                            if not line.startswith(STATS_READ)]
        data["message"] = re.sub(r"\d+[hms]", "N", data["message"])
        found.append(data)
    return found


def _what_checks_read(bundle) -> dict[str, tuple]:
    """The parts of each pod's reduced config the checks read (service clusters: the outbound ones), and
    its certificates."""
    read = {}
    for pod, proxy in sorted(bundle.proxies.items()):
        config = proxy.config
        assert config is not None, pod
        read[pod] = (sorted((c.name, c.discovery, c.tls) for c in config.clusters if c.name.startswith("outbound|")),
                     sorted((t.route_config, t.virtual_host, t.cluster) for t in config.route_targets
                            if t.cluster.startswith("outbound|")),
                     sorted(config.rejected, key=repr), config.access_log_configured,
                     proxy.certs)  # from the SDS secrets one way, /certs the other
    return read


@needs_envoy
@pytest.mark.parametrize("scenario", scenario_module.scenario_names())
def test_masked_parts_find_what_the_whole_dump_finds(scenario, monkeypatch):
    with lab_module.Lab([scenario]) as lab:
        namespaces = sorted({o["metadata"]["name"] for e in lab.expanded for o in e.objects
                             if o.get("kind") == "Namespace"})

        def collect_all(full: bool) -> list:
            if full:
                monkeypatch.setenv(FULL_DUMP_VARIABLE, "full")
            else:
                monkeypatch.delenv(FULL_DUMP_VARIABLE, raising=False)
            first = len(lab.requests)
            bundles = [collect_evidence(CollectOptions(
                cluster=ClusterOptions(kubeconfig=str(lab.kubeconfig), request_timeout=15.0),
                namespace=ns, progress=False, pod_timeout=30.0)) for ns in namespaces]
            commands = {unquote(r.query) for r in lab.requests[first:] if r.verb == "exec"}
            return bundles, commands

        masked, masked_commands = collect_all(full=False)
        whole, whole_commands = collect_all(full=True)

    # A scenario of pods without sidecars (e.g. injection-webhook-failing) execs into none: its findings
    # are still compared below.
    if any(b.proxies for b in masked):
        assert any("resource=dynamic_active_clusters" in q for q in masked_commands)
        assert not any("command=config_dump&" in q for q in masked_commands), "no fallback to the whole dump"
        if scenario == "bookinfo-healthy":  # sidecars whose secrets came by SDS: /certs is never asked
            assert any("resource=dynamic_active_secrets" in q for q in masked_commands)
            assert not any("command=certs&" in q for q in masked_commands)
        # no masked part in the whole-dump sweep (the NR/UT follow-up reads the routes unmasked, both ways)
        assert not any("mask=" in q for q in whole_commands)
    else:
        assert not masked_commands and not whole_commands
    for parts, dump in zip(masked, whole):
        assert parts.gaps == dump.gaps
        assert _findings(parts) == _findings(dump)
        assert _what_checks_read(parts) == _what_checks_read(dump)


# --- proxies that refuse or ignore the parameters (fake exec answers) ------------------------------------


def _refusing(status: int) -> dict:
    outputs = healthy_outputs()
    body = b"dynamic_active_clusters not found in config dump" if status == 404 else b"FieldMask ... could not be used."
    for command in CONFIG_PART_COMMANDS:
        if status == 404:  # pilot-agent passes a 404 body on with exit 0
            outputs[command] = ExecResult(0, body)
        else:
            outputs[command] = ExecResult(255, b"", b"Error: received unsuccessful status code 400: " + body + b"\n")
    return outputs


@pytest.mark.parametrize("status", [400, 404])
def test_a_proxy_refusing_the_parameters_gets_the_whole_dump_once_per_version(tmp_path, status):
    outputs = _refusing(status)
    proxies = FakeProxies(per_pod={"shop/web-1": outputs, "shop/web-2": outputs})
    with lab_cluster(tmp_path, proxies=proxies) as lab:
        bundle = collect_evidence(lab.options(concurrency=1))

    for pod in ("shop/web-1", "shop/web-2"):
        assert bundle.proxies[pod].config is not None, bundle.gaps
    assert not [g for g in bundle.gaps if g.what == "config_dump"]
    by_pod = {pod: [argv for _, name, _, argv in proxies.calls if name == pod and "config_dump" in " ".join(argv)]
              for pod in ("web-1", "web-2")}
    # The first pod finds out (its first part is refused) and reads the whole dump; the second pod, of
    # the same Envoy version, asks for the whole dump straight away.
    assert CONFIG_DUMP in by_pod["web-1"] and by_pod["web-1"][0] in CONFIG_PART_COMMANDS
    assert by_pod["web-2"] == [CONFIG_DUMP]


def test_a_proxy_ignoring_the_parameters_is_read_correctly_then_asked_once(tmp_path):
    outputs = healthy_outputs()
    for command in CONFIG_PART_COMMANDS:  # an old Envoy answers every query with its whole dump
        outputs[command] = outputs[CONFIG_DUMP]
    proxies = FakeProxies(per_pod={"shop/web-1": outputs, "shop/web-2": outputs})
    with lab_cluster(tmp_path, proxies=proxies) as lab:
        ignored = collect_evidence(lab.options(concurrency=1))

    assert ignored.proxies["shop/web-1"].config == summarize_config_dump(outputs[CONFIG_DUMP].stdout)
    web2 = [argv for _, name, _, argv in proxies.calls if name == "web-2" and "config_dump" in " ".join(argv)]
    assert web2 == [CONFIG_DUMP]


def test_curl_images_fall_back_too(tmp_path):
    outputs = {command: result for command, result in healthy_outputs().items()}
    for command, result in list(outputs.items()):
        outputs[command] = ExecResult(127, b"", b'exec: "pilot-agent": executable file not found\n')
        curl = CURL_FALLBACK.get(command)
        if curl is not None:
            outputs[curl] = ExecResult(0, b"\n200") if command[3] == "healthz/ready" else result
    for command in CONFIG_PART_COMMANDS:
        outputs[CURL_FALLBACK[command]] = ExecResult(22, b"", b"curl: (22) The requested URL returned error: 400\n")
    outputs[CURL_FALLBACK[CONFIG_DUMP]] = healthy_outputs()[CONFIG_DUMP]
    outputs[("cat", "/etc/resolv.conf")] = healthy_outputs()[("cat", "/etc/resolv.conf")]
    proxies = FakeProxies(per_pod={"shop/web-1": outputs})
    with lab_cluster(tmp_path, proxies=proxies) as lab:
        bundle = collect_evidence(lab.options(pod="web-1"))

    assert bundle.proxies["shop/web-1"].config is not None, bundle.gaps
    assert ("curl", "-sSfg", "http://localhost:15000/config_dump") in {argv for *_, argv in proxies.calls}


# --- the real Envoy's answers, and the table -------------------------------------------------------------


@needs_envoy
def test_real_envoy_accepts_every_part_and_the_fake_masks_as_it_does():
    """Each config_dump part of the table is answered by Envoy 1.40 (no 400/404), and the tests' fake
    (mask_config_dump, from a whole dump) reduces to the same evidence as Envoy's own masked answer."""
    with lab_module.Lab(["redis-headless-no-sidecar"]) as lab:
        admin = lab.proxies[0].envoy.admin_url

        def get(path: str) -> tuple[int, bytes]:
            try:
                with urllib.request.urlopen(f"{admin}/{path}", timeout=30) as response:
                    return response.status, response.read()
            except urllib.error.HTTPError as exc:
                return exc.code, exc.read()

        whole = get(CONFIG_DUMP_FULL)[1]
        answers = {part: get(part.path) for part in CONFIG_PARTS}
        nested_mask = get("config_dump?resource=dynamic_listeners&mask=active_state.listener.filter_chains")
        unknown = get("config_dump?resource=no_such_field")

    for part, (status, body) in answers.items():
        assert status == 200, (part.path, body[:200])
        assert part.reduce(body).config() == part.reduce(mask_config_dump(whole, part.path)).config()
    # What the table's comments say about Envoy: no mask inside a nested Any, 404 for an unknown field.
    assert nested_mask[0] == 400 and b"could not be successfully used" in nested_mask[1]
    assert unknown == (404, b"no_such_field not found in config dump")


def test_stats_filter_matches_exactly_the_stats_the_checks_read():
    pattern = re.compile(stats_filter())
    for name in STATS_READ:
        assert pattern.search(name), name
    for other in ("cluster_manager.cds.update_success_extra", "x.server.state", "server.state_total",
                  "cluster.outbound|80||a.b.svc.cluster.local.upstream_cx_total"):
        assert not pattern.search(other), other
    family = re.compile(stats_filter(("server.state",), (r"cluster\.outbound\|.*\.upstream_rq_pending_overflow",)))
    assert family.search("cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_pending_overflow")
    assert not family.search("cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_total")
