"""The command line: thin typer wrappers around plain functions, with kubectl's conventions.

kubectl runs a plugin with the arguments exactly as typed and refuses its own global flags before the
plugin name, so this module accepts ``--kubeconfig``, ``--context``, ``-n``, ``-o``... anywhere: it
moves them in front of the subcommand (``hoist_global_flags``) before typer parses anything. Every error
the user can cause ends as one ``error: ...`` line on stderr and a documented exit code, never a
traceback (``--debug`` shows one for internal errors).
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Sequence

import typer
from typer.core import TyperGroup

from kubectl_meshdoctor import __version__
from kubectl_meshdoctor.collect import DEFAULT_CONCURRENCY
from kubectl_meshdoctor.errors import EXIT_INTERRUPTED, MeshDoctorError, UsageError
from kubectl_meshdoctor.findings import Severity

PROG_NAME = "kubectl meshdoctor"
# EX_SOFTWARE from sysexits.h: a bug in meshdoctor, distinct from every documented outcome.
EXIT_INTERNAL = 70

# Global flags: name -> takes a value. Accepted before and after the subcommand.
GLOBAL_FLAGS: dict[str, bool] = {
    "--kubeconfig": True,
    "--context": True,
    "-n": True,
    "--namespace": True,
    "-o": True,
    "--output": True,
    "--request-timeout": True,
    "--no-color": False,
    "--debug": False,
    "--verbose": False,
}
_SHORT_WITH_VALUE = tuple(flag for flag, takes in GLOBAL_FLAGS.items() if takes and len(flag) == 2)


def hoist_global_flags(argv: Sequence[str]) -> list[str]:
    """Move the recognised global flags (with their values) in front of the subcommand.

    Handles ``--flag value``, ``--flag=value`` and ``-nVALUE``; stops at ``--``. A value flag with no
    value left is left in place, so the parser reports it as the usage error it is.
    """
    hoisted: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if token == "--":
            rest.extend(argv[index:])
            break
        name = token.split("=", 1)[0] if token.startswith("--") else token
        if name in GLOBAL_FLAGS:
            if GLOBAL_FLAGS[name] and "=" not in token:
                if index + 1 < len(argv):
                    hoisted.extend(argv[index : index + 2])
                    index += 2
                    continue
                rest.append(token)
            else:
                hoisted.append(token)
        elif token.startswith(_SHORT_WITH_VALUE) and not token.startswith("--"):
            hoisted.append(token)  # -ojson, -nistio-system
        else:
            rest.append(token)
        index += 1
    return hoisted + rest


class MeshDoctorGroup(TyperGroup):
    """The root command: hoists global flags and maps every outcome to an exit code.

    Living in ``main`` (not in a wrapper script) means typer's CliRunner exercises the same path as
    the installed ``kubectl-meshdoctor``.
    """

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, **extra: Any) -> Any:
        argv = hoist_global_flags(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv[: argv.index("--")] if "--" in argv else "--debug" in argv
        extra["standalone_mode"] = False
        try:
            result = super().main(args=argv, prog_name=prog_name or PROG_NAME, **extra)
            code = result if isinstance(result, int) else 0
        except MeshDoctorError as exc:
            code = _fail(str(exc), exc.exit_code)
        except typer.TyperException as exc:  # click-style usage errors: bad flag, missing argument
            message = _usage_message(exc)
            # No arguments at all: the help was just printed, an error line would only add noise.
            code = _fail(message, exc.exit_code) if message else exc.exit_code
        except (typer.Abort, KeyboardInterrupt):
            code = _fail("interrupted", EXIT_INTERRUPTED)
        except Exception as exc:  # a bug: one line, the traceback only when asked for
            if debug:
                traceback.print_exc(file=sys.stderr)
            hint = "" if debug else " (re-run with --debug for the traceback)"
            code = _fail(f"internal error: {type(exc).__name__}: {exc}{hint}", EXIT_INTERNAL)
        sys.exit(code)


def _fail(message: str, code: int) -> int:
    print(f"error: {message}", file=sys.stderr)
    return code


def _usage_message(exc: typer.TyperException) -> str:
    message = " ".join(exc.format_message().split()).replace("Value error, ", "").rstrip(".")
    if not message:
        return ""
    ctx = getattr(exc, "ctx", None)
    path = ctx.command_path if ctx is not None else PROG_NAME
    return f"{message[:1].lower()}{message[1:]}; see '{path} --help'"


app = typer.Typer(
    cls=MeshDoctorGroup,
    name="meshdoctor",
    help="Diagnose an Istio mesh from the symptom to the root cause.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
namespace_app = typer.Typer(help="Diagnose every pod of a namespace (or all namespaces).", no_args_is_help=True)
app.add_typer(namespace_app, name="namespace")


class OutputFormat(str, Enum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"
    SARIF = "sarif"  # analyze only: results point at lines of files


class FailOn(str, Enum):
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True)
class GlobalOptions:
    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None
    output: OutputFormat = OutputFormat.TABLE
    request_timeout: float | None = None
    no_color: bool = False
    debug: bool = False
    verbose: bool = False

    @property
    def color(self) -> bool:
        return not self.no_color and not os.environ.get("NO_COLOR")


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def parse_duration(text: str, flag: str) -> float:
    """kubectl-style duration in seconds: ``30s``, ``1m``, ``1h30m``, ``500ms``, or plain seconds."""
    value = text.strip()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise UsageError(f"invalid {flag} {text!r}: use a duration like 30s, 5m, 1h or plain seconds") from None
        scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
        seconds = sum(float(n) * scale[u] for n, u in parts)
    if seconds < 0:
        raise UsageError(f"invalid {flag} {text!r}: must not be negative")
    return seconds


def parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"invalid --now {text!r}: use RFC 3339, e.g. 2025-01-31T12:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _globals(ctx: typer.Context) -> GlobalOptions:
    return ctx.find_root().obj or GlobalOptions()


# --- options shared by several commands ------------------------------------------------------------

FailOnOption = Annotated[FailOn, typer.Option("--fail-on", help="Exit 1 when a finding is at least this severe.")]
CaWarnDaysOption = Annotated[
    int, typer.Option("--ca-warn-days", min=0, help="Warn when a CA certificate expires within this many days.")
]
SaveOption = Annotated[
    str | None, typer.Option("--save", help="Also write the evidence bundle here (a directory, or a .tgz).")
]
SinceOption = Annotated[str, typer.Option("--since", help="istio-proxy log window, e.g. 15m.")]
ConcurrencyOption = Annotated[
    int, typer.Option("--concurrency", min=1, help="Requests to proxies in flight at once (execs, log reads).")
]
PodTimeoutOption = Annotated[str, typer.Option("--pod-timeout", help="Time allowed for all execs into one pod (counted while one of them is in flight).")]
TraceOption = Annotated[str | None, typer.Option(
    "--trace", metavar="HOST[:PORT][/PATH]",
    help="Walk one request from this pod's sidecar: listener, route, cluster, endpoints, TLS, server.")]
MethodOption = Annotated[str, typer.Option("--method", help="HTTP method of the traced request.")]
AllContextsOption = Annotated[bool, typer.Option(
    "--all-contexts", help="Every context of the kubeconfig: one sweep per cluster, one report.")]
HeaderOption = Annotated[list[str] | None, typer.Option(
    "-H", "--header", help="'Name: value' header of the traced request (repeatable).")]


@app.callback()
def root(
    ctx: typer.Context,
    kubeconfig: Annotated[str | None, typer.Option("--kubeconfig", help="Path to the kubeconfig file.")] = None,
    context: Annotated[str | None, typer.Option("--context", help="The kubeconfig context to use (a,b,c: several clusters, for sweep and pod).")] = None,
    namespace: Annotated[
        str | None, typer.Option("-n", "--namespace", help="Namespace (default: the context's, else default).")
    ] = None,
    output: Annotated[OutputFormat, typer.Option("-o", "--output", help="Output format.")] = OutputFormat.TABLE,
    request_timeout: Annotated[
        str | None, typer.Option("--request-timeout", help="Timeout of each API request (30s, 1m, or seconds).")
    ] = None,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colours (NO_COLOR is honoured too).")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="List every skipped check in the table (JSON always lists them).")
    ] = False,
) -> None:
    """Diagnose an Istio mesh from the symptom to the root cause.

    Global flags (--kubeconfig, --context, -n, -o, --request-timeout, --no-color, --debug, --verbose)
    are accepted before or after the subcommand.
    """
    timeout = parse_duration(request_timeout, "--request-timeout") if request_timeout is not None else None
    if output is OutputFormat.SARIF and ctx.invoked_subcommand not in (None, "analyze"):
        # Checked before anything is collected: a live run has no files for SARIF results to point at.
        raise UsageError("-o sarif is for analyze (its results point at lines of manifest files); "
                         "the other commands take -o json or -o yaml")
    ctx.obj = GlobalOptions(kubeconfig, context, namespace, output, timeout, no_color, debug, verbose)


# --- commands ------------------------------------------------------------------------------------------


@app.command("pod")
def pod_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The pod to diagnose (in -n, else the context's namespace).")],
    fail_on: FailOnOption = FailOn.ERROR,
    save: SaveOption = None,
    since: SinceOption = "15m",
    pod_timeout: PodTimeoutOption = "60s",
    ca_warn_days: CaWarnDaysOption = 30,
    trace: TraceOption = None,
    method: MethodOption = "GET",
    header: HeaderOption = None,
    all_contexts: AllContextsOption = False,
) -> None:
    """Diagnose one pod: from its symptom to the root cause (or, with --trace, walk one request)."""
    options = _globals(ctx)
    if trace is not None:
        if all_contexts or "," in (options.context or ""):
            raise UsageError("--trace walks one request inside one cluster: give one --context")
        if save:
            raise UsageError("--save keeps a sweep's evidence; it does not apply to --trace")
        raise typer.Exit(trace_live(options, pod=name, target=trace, method=method, headers=header or [],
                                    fail_on=fail_on, pod_timeout=pod_timeout))
    if method != "GET" or header:
        raise UsageError("--method and --header describe a traced request: use them with --trace")
    code = diagnose_live(options, pod=name, all_namespaces=False, fail_on=fail_on, save=save, since=since,
                         concurrency=DEFAULT_CONCURRENCY, pod_timeout=pod_timeout, ca_warn_days=ca_warn_days,
                         all_contexts=all_contexts)
    raise typer.Exit(code)


@namespace_app.command("sweep")
def sweep_command(
    ctx: typer.Context,
    all_namespaces: Annotated[bool, typer.Option("-A", "--all-namespaces", help="Every namespace.")] = False,
    fail_on: FailOnOption = FailOn.ERROR,
    save: SaveOption = None,
    since: SinceOption = "15m",
    concurrency: ConcurrencyOption = DEFAULT_CONCURRENCY,
    pod_timeout: PodTimeoutOption = "60s",
    ca_warn_days: CaWarnDaysOption = 30,
    all_contexts: AllContextsOption = False,
) -> None:
    """Diagnose every pod of the namespace and group them by root cause (--context a,b: in each cluster)."""
    options = _globals(ctx)
    code = diagnose_live(options, pod=None, all_namespaces=all_namespaces, fail_on=fail_on, save=save,
                         since=since, concurrency=concurrency, pod_timeout=pod_timeout, ca_warn_days=ca_warn_days,
                         all_contexts=all_contexts)
    raise typer.Exit(code)


@app.command("analyze")
def analyze_command(
    ctx: typer.Context,
    paths: Annotated[list[str], typer.Argument(help="A saved bundle (dir or .tgz), or YAML manifest files/dirs.")],
    fail_on: FailOnOption = FailOn.ERROR,
    ca_warn_days: CaWarnDaysOption = 30,
    now: Annotated[
        str | None, typer.Option("--now", help="Evaluate certificates at this RFC 3339 time (default: now).")
    ] = None,
) -> None:
    """Analyse offline: a saved evidence bundle, or Kubernetes/Istio manifests."""
    options = _globals(ctx)
    raise typer.Exit(analyze_paths(options, paths, fail_on=fail_on, ca_warn_days=ca_warn_days, now=parse_now(now)))


@app.command("checks")
def checks_command(ctx: typer.Context) -> None:
    """List the finding catalogue: every code, its severity and title."""
    from kubectl_meshdoctor import report
    from kubectl_meshdoctor.catalogue import CATALOGUE

    options = _globals(ctx)
    entries = [e for e in CATALOGUE if not e.retired]
    if options.output is OutputFormat.TABLE:
        report.print_catalogue(entries, _console(options))
    else:
        _write(report.structured([e.to_dict() for e in entries], options.output.value))


@app.command("explain")
def explain_command(ctx: typer.Context, code: Annotated[str, typer.Argument(help="A finding code, e.g. MD0301.")]) -> None:
    """Explain a finding code: symptom, cause, how it is detected, and the fix."""
    from kubectl_meshdoctor import report
    from kubectl_meshdoctor.catalogue import entry

    options = _globals(ctx)
    item = entry(code)
    if options.output is OutputFormat.TABLE:
        report.print_explanation(item, _console(options))
    else:
        _write(report.structured(item.to_dict(), options.output.value))


@app.command("version")
def version_command(ctx: typer.Context) -> None:
    """Print the plugin version."""
    options = _globals(ctx)
    if options.output is OutputFormat.TABLE:
        _write(f"kubectl-meshdoctor v{__version__}\n")
    else:
        from kubectl_meshdoctor import report  # rich and the analysis: not worth loading for one line

        _write(report.structured({"version": f"v{__version__}"}, options.output.value))


# --- the plain functions behind the commands -----------------------------------------------------------


def diagnose_live(
    options: GlobalOptions,
    *,
    pod: str | None,
    all_namespaces: bool,
    fail_on: FailOn,
    save: str | None,
    since: str,
    concurrency: int,
    pod_timeout: str,
    ca_warn_days: int,
    all_contexts: bool = False,
) -> int:
    """Collect from the cluster (or each cluster of a multi-cluster run), optionally save the bundle,
    analyse and print; returns the exit code."""
    from kubectl_meshdoctor.collect import ClusterOptions, CollectOptions
    from kubectl_meshdoctor.collect.multi import requested_contexts

    collect_options = CollectOptions(
        cluster=ClusterOptions(options.kubeconfig, options.context, options.request_timeout),
        namespace=options.namespace,
        all_namespaces=all_namespaces,
        pod=pod,
        concurrency=concurrency,
        pod_timeout=parse_duration(pod_timeout, "--pod-timeout"),
        log_since_seconds=int(parse_duration(since, "--since")),
        progress=options.output is OutputFormat.TABLE and sys.stderr.isatty(),
    )
    contexts = requested_contexts(options.kubeconfig, options.context, all_contexts)
    bundle = _collect(collect_options, contexts=contexts)
    if save:
        saved = bundle.save(save)
        if options.output is OutputFormat.TABLE:
            print(f"evidence bundle saved to {saved}", file=sys.stderr)
    return _analyze_and_print(options, bundle, fail_on=fail_on, ca_warn_days=ca_warn_days,
                              now=datetime.now(timezone.utc))


def trace_live(options: GlobalOptions, *, pod: str, target: str, method: str, headers: list[str],
               fail_on: FailOn, pod_timeout: str) -> int:
    """``pod NAME --trace``: walk one request from the pod's sidecar and print the hops; returns the exit code."""
    from kubectl_meshdoctor.bundle import EvidenceBundle
    from kubectl_meshdoctor.checks.context import AnalysisContext
    from kubectl_meshdoctor.collect import ClusterOptions, CollectOptions
    from kubectl_meshdoctor.trace import FAIL, WARN, parse_target, trace_request

    parsed = parse_target(target, method, headers)  # bad input fails before the cluster is contacted
    collect_options = CollectOptions(
        cluster=ClusterOptions(options.kubeconfig, options.context, options.request_timeout),
        namespace=options.namespace, pod=pod, pod_timeout=parse_duration(pod_timeout, "--pod-timeout"),
        progress=False)
    evidence = _collect(collect_options, trace=parsed)
    context = AnalysisContext(EvidenceBundle(scope={"kind": "pod"}, objects=evidence.objects))
    result = trace_request(evidence.index, context, evidence.pod, parsed, evidence.gaps)
    if options.output is OutputFormat.TABLE:
        from kubectl_meshdoctor.report.trace import print_trace

        print_trace(result, _console(options))
    else:
        from kubectl_meshdoctor import report as render

        _write(render.structured(result.to_dict(), options.output.value))
    failing = {FAIL} | ({WARN} if fail_on is FailOn.WARNING else set())
    return 1 if result.verdict in failing else 0


def _collect(collect_options, trace=None, contexts=None):
    from kubectl_meshdoctor import collect

    try:
        if contexts is not None:
            from kubectl_meshdoctor.collect.multi import collect_clusters

            return collect_clusters(collect_options, contexts)
        if trace is not None:
            from kubectl_meshdoctor.collect.trace import collect_trace

            return collect_trace(collect_options, trace)
        return collect.collect_evidence(collect_options)
    except ModuleNotFoundError as exc:
        # A broken install (a dependency missing from this environment): say what to install.
        if (exc.name or "").split(".")[0] in {"pydantic", "pydantic_core", "kubernetes"}:
            raise MeshDoctorError(
                f"live collection needs the Python module {exc.name!r}, which is not installed: "
                "python3 -m pip install --user kubernetes"
            ) from None
        raise


def analyze_paths(
    options: GlobalOptions, paths: list[str], *, fail_on: FailOn, ca_warn_days: int, now: datetime
) -> int:
    """``analyze``: a saved bundle (one dir or .tgz), else manifests; returns the exit code."""
    from kubectl_meshdoctor.bundle import is_bundle
    from kubectl_meshdoctor.multibundle import load_bundle

    for raw in paths:
        if not Path(raw).exists():
            raise UsageError(f"{raw}: no such file or directory")
    bundles = [raw for raw in paths if is_bundle(Path(raw))]
    if bundles:
        if len(paths) > 1:
            raise UsageError("analyze takes one evidence bundle, or any number of manifest files and directories")
        bundle = load_bundle(bundles[0])
        locator = None
        if options.output is OutputFormat.SARIF:
            from kubectl_meshdoctor.report.sarif import WholeFile

            saved = Path(bundles[0])
            locator = WholeFile(saved / "bundle.json" if saved.is_dir() else saved)
    else:
        from kubectl_meshdoctor.manifests import read_manifests

        locator = read_manifests(paths)
        bundle = locator.bundle
    return _analyze_and_print(options, bundle, fail_on=fail_on, ca_warn_days=ca_warn_days, now=now,
                              locator=locator)


def _analyze_and_print(options: GlobalOptions, bundle, *, fail_on: FailOn, ca_warn_days: int, now: datetime,
                       locator=None) -> int:
    from kubectl_meshdoctor import report as render
    from kubectl_meshdoctor.analysis import analyze
    from kubectl_meshdoctor.multibundle import MultiClusterBundle

    if isinstance(bundle, MultiClusterBundle):
        from kubectl_meshdoctor.multianalysis import analyze_clusters

        result = analyze_clusters(bundle, now=now, ca_warn_days=ca_warn_days)
    else:
        result = analyze(bundle, now=now, ca_warn_days=ca_warn_days)
    if options.output is OutputFormat.TABLE:
        render.print_report(result, _console(options), verbose=options.verbose)
    elif options.output is OutputFormat.SARIF:
        from kubectl_meshdoctor.report.sarif import sarif_log

        _write(render.structured(sarif_log(result, locator, Path.cwd()), "json"))
    else:
        _write(render.structured(result.to_dict(), options.output.value))
    if options.debug:
        for text in result.check_errors:
            print(text, file=sys.stderr)
    return result.exit_code(Severity(fail_on.value))


def _console(options: GlobalOptions):
    from kubectl_meshdoctor.report import make_console

    return make_console(sys.stdout, color=options.color)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def main() -> None:
    """Console-script entry point (``kubectl-meshdoctor``)."""
    app(prog_name=PROG_NAME)
