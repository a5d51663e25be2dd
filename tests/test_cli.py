"""The command line through typer's CliRunner: exit codes, global flags anywhere, output shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from kubectl_meshdoctor import __version__, analysis, collect
from kubectl_meshdoctor.bundle import EvidenceBundle
from kubectl_meshdoctor.catalogue import CATALOGUE
from kubectl_meshdoctor.checks import all_checks
from kubectl_meshdoctor.checks.base import Check, finding
from kubectl_meshdoctor.checks.context import key_of
from kubectl_meshdoctor.cli import EXIT_INTERNAL, app, hoist_global_flags, parse_duration
from kubectl_meshdoctor.errors import ClusterError, UsageError
from kubectl_meshdoctor.findings import Subject

REPO = Path(__file__).resolve().parents[1]
EMIT = "test.meshdoctor/emit"
FINDING_KEYS = {"code", "severity", "pod", "subject", "rootCause", "causedBy", "confidence", "unchecked", "wouldConfirm",
                "affects", "upstreams", "message", "remediation", "evidence", "since"}


class EmitAnnotated(Check):
    """Test check: every object annotated ``test.meshdoctor/emit: CODE,CODE`` yields those findings."""

    name = "test-emit-annotated"
    codes = ("MD0102", "MD0201", "MD0301", "MD0502")
    needs = frozenset()

    def run(self, ctx):
        for obj in ctx.bundle.objects:
            codes = ((obj.get("metadata") or {}).get("annotations") or {}).get(EMIT)
            if not codes:
                continue
            meta = obj["metadata"]
            subject = Subject(obj["kind"], meta["name"], meta.get("namespace"))
            pod = key_of(obj) if obj["kind"] == "Pod" else None
            for code in codes.split(","):
                yield finding(code, subject, f"{code} seen on {meta['name']} [v1]", [f"evidence for {code}"], pod=pod)


runner = CliRunner()


def invoke(args, env=None):
    return runner.invoke(app, args, env=env)


@pytest.fixture
def fake_checks(monkeypatch):
    monkeypatch.setattr(analysis, "all_checks", lambda: (EmitAnnotated(),))


def write_manifest(tmp_path: Path, *emits: tuple[str, str, str]) -> Path:
    """A manifest with one object per (kind, name, codes) triple."""
    docs = []
    for kind, name, codes in emits:
        doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "shop"}}
        if codes:
            doc["metadata"]["annotations"] = {EMIT: codes}
        docs.append(doc)
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return path


def assert_one_line_error(result, code: int) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


# --- version, checks, explain -------------------------------------------------------------------------


def test_version():
    result = invoke(["version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"kubectl-meshdoctor v{__version__}"
    assert json.loads(invoke(["version", "-o", "json"]).stdout) == {"version": f"v{__version__}"}


def test_checks_lists_the_catalogue_in_every_format():
    table = invoke(["checks"])
    assert table.exit_code == 0
    live = [e for e in CATALOGUE if not e.retired]
    for item in live:
        assert item.code in table.stdout and item.name in table.stdout
    listed = json.loads(invoke(["checks", "-o", "json"]).stdout)
    assert [e["code"] for e in listed] == [e.code for e in live]
    assert set(listed[0]) >= {"code", "name", "severity", "title", "symptom", "cause", "detection", "fix"}
    assert yaml.safe_load(invoke(["-o", "yaml", "checks"]).stdout) == listed


def test_explain_prints_the_four_texts():
    result = invoke(["explain", "md0301"])  # codes are case-insensitive
    assert result.exit_code == 0
    item = next(e for e in CATALOGUE if e.code == "MD0301")
    for heading in ("SYMPTOM", "CAUSE", "DETECTION", "FIX"):
        assert heading in result.stdout
    assert item.fix in result.stdout and item.symptom in result.stdout
    assert json.loads(invoke(["explain", "MD0301", "-o", "json"]).stdout)["cause"] == item.cause


def test_explain_unknown_code_is_a_usage_error():
    result = invoke(["explain", "MD9999"])
    assert_one_line_error(result, 2)
    assert "MD9999" in result.stderr


# --- analyze: exit codes and output -------------------------------------------------------------------


def test_analyze_without_findings_exits_0(tmp_path, fake_checks):
    path = write_manifest(tmp_path, ("Service", "quiet", ""))
    result = invoke(["analyze", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "no problems found" in result.stdout


def test_analyze_with_an_error_finding_exits_1(tmp_path, fake_checks):
    path = write_manifest(tmp_path, ("Service", "dns", "MD0301"))
    result = invoke(["analyze", str(path)])
    assert result.exit_code == 1, result.stderr
    assert "MD0301" in result.stdout and "dns" in result.stdout


def test_fail_on_sets_the_threshold(tmp_path, fake_checks):
    path = write_manifest(tmp_path, ("Service", "ports", "MD0502"))  # a warning
    assert invoke(["analyze", str(path)]).exit_code == 0
    assert invoke(["analyze", str(path), "--fail-on", "warning"]).exit_code == 1
    assert invoke(["analyze", str(path), "--fail-on", "fatal"]).exit_code == 2


def test_global_flags_before_and_after_the_subcommand_agree(tmp_path, fake_checks):
    path = str(write_manifest(tmp_path, ("Service", "dns", "MD0301")))
    outputs = [
        invoke(args).stdout
        for args in (
            ["-o", "json", "analyze", path],
            ["analyze", path, "-o", "json"],
            ["analyze", "--output=json", path],
            ["-ojson", "analyze", path, "--no-color"],
            ["--debug", "analyze", path, "--namespace", "ignored", "--output", "json"],
        )
    ]
    documents = [json.loads(text) for text in outputs]
    assert all(doc == documents[0] for doc in documents)
    assert documents[0]["findings"][0]["code"] == "MD0301"


def test_json_report_shape(tmp_path, fake_checks):
    path = write_manifest(tmp_path, ("Pod", "web-1", "MD0102,MD0201,MD0301"))
    result = invoke(["analyze", str(path), "-o", "json"])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["apiVersion"] == "meshdoctor/v1" and document["kind"] == "Report"
    assert list(document) == ["apiVersion", "kind", "scope", "findings", "pods", "rootCauseGroups", "gaps", "skipped"]
    for item in document["findings"]:
        assert set(item) == FINDING_KEYS
        assert set(item["subject"]) == {"kind", "namespace", "name"}
    by_code = {f["code"]: f for f in document["findings"]}
    assert by_code["MD0102"]["causedBy"] == ["MD0201"] and by_code["MD0102"]["rootCause"] is False
    assert by_code["MD0301"]["rootCause"] is True
    assert document["rootCauseGroups"] == [
        {"code": "MD0301", "subject": {"kind": "Pod", "namespace": "shop", "name": "web-1"},
         "message": "MD0301 seen on web-1 [v1]", "pods": ["shop/web-1"], "probablePods": []}
    ]
    assert by_code["MD0102"]["confidence"] == "confirmed" and by_code["MD0301"]["confidence"] is None
    assert by_code["MD0102"]["unchecked"] == [] and by_code["MD0102"]["wouldConfirm"] is None


def test_yaml_is_the_same_document_as_json(tmp_path, fake_checks):
    path = str(write_manifest(tmp_path, ("Pod", "web-1", "MD0102,MD0201"), ("Service", "p", "MD0502")))
    as_json = json.loads(invoke(["analyze", path, "-o", "json"]).stdout)
    as_yaml = yaml.safe_load(invoke(["analyze", path, "-o", "yaml"]).stdout)
    assert as_yaml == as_json


def test_table_shows_the_chain_from_symptom_to_cause(tmp_path, fake_checks):
    path = write_manifest(tmp_path, ("Pod", "web-1", "MD0102,MD0201,MD0301"), ("Pod", "web-2", ""))
    out = invoke(["analyze", str(path)]).stdout
    assert out.index("ROOT CAUSES") < out.index("DIAGNOSIS")
    assert "1 pod: MD0301 seen on web-1 [v1]" in out  # "[v1]" is data, not rich markup
    chain = [out.index(f"{code} ", out.index("DIAGNOSIS")) for code in ("MD0102", "MD0201", "MD0301")]
    assert chain == sorted(chain)
    assert "fix: " in out and "1 healthy pod" in out and "shop/web-1  failing" in out


@pytest.mark.parametrize("how", ["flag", "env"])
def test_no_color_leaves_no_ansi_escapes(tmp_path, fake_checks, how):
    path = str(write_manifest(tmp_path, ("Service", "dns", "MD0301")))
    forced = {"FORCE_COLOR": "1", "TERM": "xterm-256color", "NO_COLOR": None}
    coloured = invoke(["analyze", path], env=forced)
    assert "\x1b[" in coloured.stdout  # the test can fail: colour does appear when forced
    args, env = (["analyze", path, "--no-color"], forced) if how == "flag" else (["analyze", path], {**forced, "NO_COLOR": "1"})
    plain = invoke(args, env=env)
    assert plain.exit_code == 1
    assert "MD0301" in plain.stdout and "\x1b[" not in plain.stdout + plain.stderr


def test_analyze_a_saved_bundle(tmp_path, fake_checks):
    bundle = EvidenceBundle(
        scope={"kind": "namespace", "namespace": "shop"},
        objects=[{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "shop",
                                                                 "annotations": {EMIT: "MD0301"}}}],
    )
    for target in (tmp_path / "dir", tmp_path / "b.tgz"):
        bundle.save(target)
        document = json.loads(invoke(["analyze", str(target), "-o", "json"]).stdout)
        assert [f["code"] for f in document["findings"]] == ["MD0301"]
        assert document["scope"] == {"kind": "namespace", "namespace": "shop"}


def test_analyze_refuses_a_bundle_mixed_with_manifests(tmp_path):
    EvidenceBundle(scope={"kind": "namespace"}).save(tmp_path / "b")
    manifest = write_manifest(tmp_path, ("Service", "s", ""))
    assert_one_line_error(invoke(["analyze", str(tmp_path / "b"), str(manifest)]), 2)


@pytest.mark.parametrize(
    "args",
    [
        ["analyze", "/nonexistent/path.yaml"],
        ["analyze", "--bogus", "x"],
        ["analyze"],
        ["-o", "xml", "checks"],
        ["analyze", ".", "--now", "yesterday"],
        ["nosuchcommand"],
        ["--request-timeout", "soon", "version"],
    ],
)
def test_usage_errors_exit_2_with_one_line(args):
    assert_one_line_error(invoke(args), 2)


def test_unreadable_manifest_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: [unclosed\n")
    assert_one_line_error(invoke(["analyze", str(bad)]), 2)


def test_corrupt_bundle_is_a_usage_error(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bundle.json").write_text("{not json")
    assert_one_line_error(invoke(["analyze", str(tmp_path / "b")]), 2)


@pytest.mark.skipif(not any("MD0501" in c.codes for c in all_checks()), reason="the MD0501 check has not landed yet")
def test_example_manifests_show_the_undefined_subset():
    result = invoke(["analyze", str(REPO / "examples" / "bookinfo-broken"), "-o", "json"])
    assert result.exit_code == 1, result.stderr
    found = [f for f in json.loads(result.stdout)["findings"] if f["code"] == "MD0501"]
    assert len(found) == 1 and "v3" in found[0]["message"]
    assert found[0]["subject"]["name"] == "reviews"


# --- live commands, with the collector replaced -------------------------------------------------------


@pytest.fixture
def collector(monkeypatch):
    """Replace collect_evidence; records the options and returns (or raises) what the test sets."""

    class Fake:
        calls: list = []
        outcome: object = EvidenceBundle(scope={"kind": "namespace", "namespace": "default"})

        def __call__(self, options):
            self.calls.append(options)
            if isinstance(self.outcome, BaseException):
                raise self.outcome
            return self.outcome

    fake = Fake()
    monkeypatch.setattr(collect, "collect_evidence", fake)
    return fake


def test_cluster_errors_exit_3(collector):
    collector.outcome = ClusterError("cannot reach https://127.0.0.1:6443: connection refused")
    for args in (["pod", "web"], ["namespace", "sweep"], ["namespace", "sweep", "-A"]):
        result = invoke(args)
        assert_one_line_error(result, 3)
        assert "connection refused" in result.stderr


def test_unknown_pod_exits_2(collector):
    collector.outcome = UsageError('pod "nope" not found in namespace "default"')
    assert_one_line_error(invoke(["pod", "nope"]), 2)


def test_ctrl_c_exits_130(collector):
    collector.outcome = KeyboardInterrupt()
    result = invoke(["namespace", "sweep"])
    assert result.exit_code == 130 and "Traceback" not in result.stderr


def test_internal_error_is_one_line_unless_debug(collector):
    collector.outcome = RuntimeError("boom")
    result = invoke(["namespace", "sweep"])
    assert_one_line_error(result, EXIT_INTERNAL)
    assert "internal error: RuntimeError: boom" in result.stderr and "--debug" in result.stderr
    debug = invoke(["namespace", "sweep", "--debug"])
    assert debug.exit_code == EXIT_INTERNAL and "Traceback" in debug.stderr


def test_global_and_command_flags_reach_the_collector(collector):
    args = ["pod", "web-1", "-n", "shop", "--context", "lab", "--kubeconfig", "/tmp/kc",
            "--request-timeout", "1m", "--since", "5m", "--pod-timeout", "90s", "-o", "json"]
    assert invoke(args).exit_code == 0
    options = collector.calls[-1]
    assert (options.pod, options.namespace, options.all_namespaces) == ("web-1", "shop", False)
    assert options.cluster.context == "lab" and options.cluster.kubeconfig == "/tmp/kc"
    assert options.cluster.request_timeout == 60.0
    assert options.log_since_seconds == 300 and options.pod_timeout == 90.0
    assert options.progress is False  # -o json, and stderr is not a terminal

    assert invoke(["--context=lab", "namespace", "sweep", "-A", "--concurrency", "3"]).exit_code == 0
    options = collector.calls[-1]
    assert options.all_namespaces and options.pod is None and options.concurrency == 3
    assert options.namespace is None  # the collector resolves the context's namespace
    assert invoke(["namespace", "sweep", "--concurrency", "0"]).exit_code == 2


def test_live_findings_set_the_exit_code_and_save_writes_the_bundle(collector, fake_checks, tmp_path):
    collector.outcome = EvidenceBundle(
        scope={"kind": "namespace", "namespace": "shop"},
        objects=[{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "shop",
                                                                 "annotations": {EMIT: "MD0301"}}}],
    )
    saved = tmp_path / "evidence.tgz"
    live = invoke(["namespace", "sweep", "-n", "shop", "--save", str(saved), "-o", "json"])
    assert live.exit_code == 1
    offline = invoke(["analyze", str(saved), "-o", "json"])
    assert offline.exit_code == 1
    assert json.loads(offline.stdout)["findings"] == json.loads(live.stdout)["findings"]


# --- the pieces ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["analyze", "x", "-o", "json"], ["-o", "json", "analyze", "x"]),
        (["analyze", "--output=yaml", "x"], ["--output=yaml", "analyze", "x"]),
        (["pod", "p", "-nshop", "--debug"], ["-nshop", "--debug", "pod", "p"]),
        (["namespace", "sweep", "-A", "--context", "c"], ["--context", "c", "namespace", "sweep", "-A"]),
        (["analyze", "--", "-o"], ["analyze", "--", "-o"]),  # after "--" everything is an argument
        (["analyze", "x", "-o"], ["analyze", "x", "-o"]),  # a missing value stays for the parser to report
    ],
)
def test_hoist_global_flags(argv, expected):
    assert hoist_global_flags(argv) == expected


@pytest.mark.parametrize("text, seconds", [("30", 30), ("30s", 30), ("1m", 60), ("1h30m", 5400), ("500ms", 0.5)])
def test_parse_duration(text, seconds):
    assert parse_duration(text, "--x") == seconds


@pytest.mark.parametrize("text", ["", "soon", "1d", "-5", "5m 3s"])
def test_parse_duration_rejects(text):
    with pytest.raises(UsageError):
        parse_duration(text, "--x")


def test_python_dash_m_runs_the_same_cli():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "kubectl_meshdoctor", "version"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0 and done.stdout.strip() == f"kubectl-meshdoctor v{__version__}"


def test_help_lists_the_commands():
    result = invoke(["--help"])
    assert result.exit_code == 0
    for command in ("pod", "namespace", "analyze", "checks", "explain", "version"):
        assert command in result.stdout
    assert "sweep" in invoke(["namespace", "--help"]).stdout

