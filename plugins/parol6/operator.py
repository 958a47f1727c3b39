"""The human in the loop: arming confirmation, scene resets, success labels.

An operator answers six questions; :class:`ConsoleOperator` asks them on the terminal,
:class:`ScriptedOperator` takes the answers from a list (tests, ``operator_script`` option) and
:class:`AutoOperator` answers without asking (fake dry runs: labels "failure", labeller
"auto"). Arming through the console needs a real terminal (stdin is a TTY).
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Label:
    """The operator's judgement of one episode."""

    success: bool
    progress: float | None = None
    """0-100, optional."""
    failure_tag: str | None = None
    """One of the suite's ``failure_tags`` (or free text when the suite declares none)."""


class Operator(Protocol):
    labeller: str

    def confirm_arming(self, phrase: str, details: str) -> bool: ...

    def confirm_estop_reset(self, reason: str) -> bool: ...

    def confirm_motion(self, what: str) -> bool: ...

    def reset_scene(self, task: str, instruction: str, seed: int | None) -> None: ...

    def label(self, task: str, failure_tags: Sequence[str]) -> Label: ...

    def notify(self, message: str) -> None: ...


def parse_label(
    success: str, progress: str, tag: str, failure_tags: Sequence[str]
) -> Label:
    """Label from raw answers; ValueError saying what was expected."""
    s = success.strip().lower()
    if s not in ("y", "yes", "n", "no", "1", "0"):
        raise ValueError(f"success must be y or n, got {success!r}")
    ok = s in ("y", "yes", "1")
    value: float | None = None
    if progress.strip():
        value = float(progress)
        if not 0 <= value <= 100:
            raise ValueError(f"progress must be in 0-100, got {progress!r}")
    elif ok:
        value = 100.0
    failure = tag.strip() or None
    if ok:
        failure = None
    elif failure is not None and failure_tags:
        if failure.isdigit() and int(failure) < len(failure_tags):
            failure = failure_tags[int(failure)]
        if failure not in failure_tags:
            raise ValueError(f"failure tag must be one of {list(failure_tags)}, got {tag!r}")
    return Label(ok, value, failure)


class ConsoleOperator:
    """Asks on the terminal; re-asks until an answer parses."""

    def __init__(
        self,
        labeller: str,
        ask: Callable[[str], str] = input,
        say: Callable[[str], None] | None = None,
        is_tty: Callable[[], bool] = lambda: sys.stdin.isatty(),
    ) -> None:
        self.labeller = labeller
        self._ask = ask
        self._say = say or (lambda m: print(m, file=sys.stderr, flush=True))
        self._is_tty = is_tty

    def notify(self, message: str) -> None:
        self._say(message)

    def _typed(self, prompt: str, word: str, what: str) -> bool:
        if not self._is_tty():
            self._say(f"{what} needs an interactive terminal; stdin is not a TTY")
            return False
        return self._ask(prompt).strip() == word

    def confirm_arming(self, phrase: str, details: str) -> bool:
        lines = textwrap.wrap(details, 76, subsequent_indent="  ", break_on_hyphens=False)
        self._say("Arming " + "\n".join(lines))
        return self._typed(
            f"The PAROL6 will MOVE with the limits above. Clear the workspace, keep the "
            f"HARDWARE e-stop within reach, then type {phrase} to arm: ",
            phrase,
            "arming",
        )

    def confirm_estop_reset(self, reason: str) -> bool:
        return self._typed(
            f"E-stop latched ({reason}). Type RESET when it is safe: ", "RESET", "an e-stop reset"
        )

    def confirm_motion(self, what: str) -> bool:
        return self._typed(f"The arm will {what}. Type GO to allow it: ", "GO", "this motion")

    def reset_scene(self, task: str, instruction: str, seed: int | None) -> None:
        self._ask(f"[{task} seed {seed}] reset the scene ({instruction}); press Enter to start: ")

    def label(self, task: str, failure_tags: Sequence[str]) -> Label:
        tags = " ".join(f"{i}={t}" for i, t in enumerate(failure_tags))
        tags = f" {tags}" if tags else ""
        while True:
            success = self._ask(f"[{task}] success? [y/n]: ")
            progress = self._ask("progress 0-100 (Enter to skip): ")
            tag = "" if success.strip().lower() in ("y", "yes", "1") else self._ask(
                f"failure tag{tags} (Enter to skip): "
            )
            try:
                return parse_label(success, progress, tag, failure_tags)
            except ValueError as exc:
                self._say(f"invalid answer: {exc}; again")


class ScriptedOperator:
    """Answers from a script: each ``label`` consumes ``[success, progress, failure_tag]``.

    ``confirm_*`` consume one answer each (compared like the console: ``ARM``, ``RESET``);
    ``reset_scene`` consumes nothing. Every prompt is recorded in :attr:`prompts`.
    """

    def __init__(self, answers: Iterable[Any], labeller: str = "scripted") -> None:
        self._answers = [str(a) if a is not None else "" for a in answers]
        self.labeller = labeller
        self.prompts: list[str] = []
        self.messages: list[str] = []
        self.decline_motion = False

    def _next(self, what: str) -> str:
        if not self._answers:
            raise RuntimeError(f"scripted operator has no answer left for {what}")
        return self._answers.pop(0)

    def notify(self, message: str) -> None:
        self.messages.append(message)

    def confirm_arming(self, phrase: str, details: str) -> bool:
        self.prompts.append(f"arm {details}")
        return self._next("arming") == phrase

    def confirm_estop_reset(self, reason: str) -> bool:
        self.prompts.append("estop_reset")
        return self._next("e-stop reset") == "RESET"

    def confirm_motion(self, what: str) -> bool:
        """Allowed unless ``decline_motion`` (recorded; consumes no answer)."""
        self.prompts.append(f"motion {what}")
        return not self.decline_motion

    def reset_scene(self, task: str, instruction: str, seed: int | None) -> None:
        self.prompts.append(f"reset {task} {seed}")

    def label(self, task: str, failure_tags: Sequence[str]) -> Label:
        self.prompts.append(f"label {task}")
        return parse_label(
            self._next("success"), self._next("progress"), self._next("failure tag"), failure_tags
        )


class AutoOperator:
    """No human (fake dry runs): never arms a real arm, resets e-stops, labels failure."""

    labeller = "auto"

    def __init__(self) -> None:
        self.messages: list[str] = []

    def notify(self, message: str) -> None:
        self.messages.append(message)

    def confirm_arming(self, phrase: str, details: str) -> bool:
        return False

    def confirm_estop_reset(self, reason: str) -> bool:
        return True

    def confirm_motion(self, what: str) -> bool:
        return True

    def reset_scene(self, task: str, instruction: str, seed: int | None) -> None:
        pass

    def label(self, task: str, failure_tags: Sequence[str]) -> Label:
        return Label(False, None, None)
