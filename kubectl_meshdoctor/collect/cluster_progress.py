"""The progress display of a multi-cluster run: one bar per cluster, on stderr.

A single-cluster sweep draws one bar of the pods whose istio-proxy it examined (``sweep._progress``).
Several clusters are swept at once, each in its own thread, so each gets its own line: the context, what
it is doing (reading the API, examining istio-proxy, done, not read) and its pods. Each sweep reports
through a sink (``CollectOptions.progress_sink``) instead of drawing a bar of its own; rich's Progress
is thread-safe and refreshes from its own thread. Only interactive table runs show it (``progress``
is off for -o json/yaml and when stderr is not a terminal), and it is transient: the report follows a
clean screen.
"""

from __future__ import annotations

from typing import Callable


class ClusterProgress:
    """One line per context; ``sink(context)`` is what that cluster's sweep reports its pods through."""

    def __init__(self, contexts: list[str], console=None):
        # Imported here: only interactive runs pay for rich.
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        width = max(len(c) for c in contexts)
        self.progress = Progress(TextColumn("{task.fields[context]}"), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=console or Console(stderr=True), transient=True)
        self.tasks = {context: self.progress.add_task("reading the API", total=None,
                                                      context=context.ljust(width)) for context in contexts}

    def start(self) -> None:
        self.progress.start()

    def stop(self) -> None:
        self.progress.stop()

    def sink(self, context: str) -> Callable[[int], Callable[[], None]]:
        """For the sweep of ``context``: called with the number of pods to examine, returns ``advance``."""
        task = self.tasks[context]

        def start(total: int) -> Callable[[], None]:
            self.progress.update(task, description="examining istio-proxy", total=total, completed=0)
            return lambda: self.progress.advance(task)

        return start

    def state(self, context: str):
        """rich's Task of ``context``: description, total, completed."""
        return next(t for t in self.progress.tasks if t.id == self.tasks[context])

    def when_done(self, context: str) -> Callable:
        """A done-callback for the future of ``context``'s collection (ClusterEvidence, error)."""
        def done(future) -> None:
            read = not future.cancelled() and future.exception() is None and future.result()[0].bundle is not None
            self.finished(context, read)

        return done

    def finished(self, context: str, read: bool) -> None:
        task = self.tasks[context]
        total = self.state(context).total  # None when the sweep never got to its pods
        self.progress.update(task, description="done" if read else "not read",
                             total=total or 1, completed=total or (1 if read else 0))
