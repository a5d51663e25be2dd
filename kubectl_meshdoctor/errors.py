"""The project's exception family.

Each layer raises only these, so no library exception (ApiException, urllib3, JSONDecodeError) leaks
past the layer that called the library. The CLI maps each to its documented exit code and one line.
"""

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_CLUSTER = 3
EXIT_INTERRUPTED = 130


class MeshDoctorError(Exception):
    """Base of every error the user may see; ``exit_code`` is the documented exit status."""

    exit_code = EXIT_USAGE


class UsageError(MeshDoctorError):
    """Bad flag, unknown pod or namespace, unreadable input: exit 2."""

    exit_code = EXIT_USAGE


class BundleError(UsageError):
    """An evidence bundle or manifest that cannot be read: exit 2."""


class ParseError(MeshDoctorError):
    """Envoy or pod output that could not be parsed (truncated, empty, not JSON, wrong shape)."""

    exit_code = EXIT_USAGE


class ClusterError(MeshDoctorError):
    """The cluster cannot be reached, or access was refused: exit 3."""

    exit_code = EXIT_CLUSTER


class ExecError(MeshDoctorError):
    """One exec into a container failed; the collector turns it into a gap for that pod."""

    def __init__(self, message: str, *, forbidden: bool = False, timed_out: bool = False):
        super().__init__(message)
        self.forbidden = forbidden
        self.timed_out = timed_out
