"""Progress rendering: the live matrix view and one line per interleaved episode."""

from typing import Any

from vlabench.cli.app import console


class MatrixProgress:
    """One live view of the whole matrix: jobs done / running / failed, episodes, ETA.

    On a terminal it is one live line. Elsewhere (CI logs) it stays quiet: a line per failed
    or retried job, a summary at most every ``every_s`` seconds, and a final one.
    """

    def __init__(self, quiet: bool, every_s: float = 30.0) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.console = console()
        self.live = not quiet and self.console.is_terminal
        self.plain = not quiet and not self.console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]matrix[/]"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("episodes · {task.fields[jobs]} · {task.fields[successes]} ok · ETA"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.live,
        )
        self.task: Any = None
        self.jobs = self.done = self.running = self.failed = 0
        self.episodes = self.total = self.successes = 0
        self.every_s = every_s
        self.started = self.last_line = 0.0

    def __enter__(self) -> "MatrixProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)
        if self.plain and self.task is not None:
            print(self.summary(), flush=True)

    def summary(self) -> str:
        import time

        line = (
            f"matrix: {self.done}/{self.jobs} jobs done, {self.running} running, "
            f"{self.failed} failed; {self.episodes}/{self.total} episodes, "
            f"{self.successes} successes"
        )
        elapsed = time.monotonic() - self.started
        if 0 < self.episodes < self.total:
            eta = elapsed / self.episodes * (self.total - self.episodes)
            line += f"; ETA {eta:.0f} s"
        return line

    def _jobs_field(self) -> str:
        failed = f", [red]{self.failed} failed[/]" if self.failed else ""
        return f"jobs {self.done}/{self.jobs}, {self.running} running{failed}"

    def _refresh(self) -> None:
        import time

        if self.task is not None:
            self.progress.update(
                self.task,
                completed=self.episodes,
                jobs=self._jobs_field(),
                successes=self.successes,
            )
        if self.plain and time.monotonic() - self.last_line >= self.every_s:
            self.last_line = time.monotonic()
            print(self.summary(), flush=True)

    def matrix_started(self, jobs: int, episodes: int) -> None:
        import time

        self.jobs += jobs  # a sequential matrix (--precision) starts once per round
        self.total += episodes
        if not self.started:
            self.started = self.last_line = time.monotonic()
        if jobs and self.task is not None:
            self.progress.update(self.task, total=self.total)
        elif jobs:
            self.task = self.progress.add_task(
                "matrix", total=episodes, jobs=self._jobs_field(), successes=0
            )

    def job_started(self, label: str, total: int, done: int) -> None:
        self.running += 1
        self._refresh()

    def episode_finished(self, record: Any) -> None:
        self.episodes += 1
        self.successes += bool(record.success)
        self._refresh()

    def job_retried(self, label: str, error: str) -> None:
        self._say(f"{label}: retrying: {error}")

    def job_note(self, label: str, text: str) -> None:
        """A slow call (which job, which call, for how long), a worker replaced, a run whose
        process died settled: one line."""
        self._say(f"{label}: {text}")

    def job_finished(self, label: str, status: str) -> None:
        if self.task is None:  # a run decided at planning time (incompatible, nothing left)
            if self.plain:
                print(f"{label}: {status}", flush=True)
            return
        self.running -= 1
        self.done += 1
        if not status.startswith("finished"):
            self.failed += 1
            self._say(f"{label}: {status}")
        self._refresh()

    def _say(self, line: str) -> None:
        if self.live:
            self.console.print(line, markup=False)
        elif self.plain:
            print(line, flush=True)


class EpisodeLines:
    """Progress for interleaved runs: one plain line per episode."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.label = ""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None  # the other ProgressSink events: nothing to show

    def job_started(self, label: str, total: int, done: int) -> None:
        self.label = label

    def episode_finished(self, record: Any) -> None:
        if not self.quiet:
            outcome = record.failure_reason or ("success" if record.success else "failure")
            print(f"{self.label} episode {record.episode_index}: {outcome}", flush=True)
