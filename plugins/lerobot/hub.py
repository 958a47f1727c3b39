"""Checkpoint locations: a local directory or a hub id, resolved to a local directory.

A hub checkpoint is fetched into the Hugging Face cache with ``huggingface_hub`` (the cache
works offline once filled); when the hub cannot be reached and the files are not cached, the
error is one line: ``cannot reach the hub for X; pass a local directory``.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from vlabench.api import RegistryError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SMALL_FILES = ("*.json", "policy_*processor*.safetensors")
"""What ``describe`` needs: the config, the processor pipelines and their stats."""
ALL_FILES = ("*.json", "*.safetensors")

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class PresetError(RegistryError):
    """A LeRobot preset (its options or checkpoint) cannot be used; the message says why.

    A :class:`~vlabench.registry.RegistryError` so that the CLI prints it as one line.
    """


class CheckpointError(PresetError):
    """A preset's checkpoint cannot be found, fetched or used; the message says which and why."""


class HubUnreachable(CheckpointError):
    """The hub is offline or unreachable and the checkpoint is not in the local cache."""


def is_hub_id(checkpoint: str) -> bool:
    """``org/name`` that is not an existing local path."""
    return bool(_REPO_ID.match(checkpoint)) and not Path(checkpoint).expanduser().exists()


def split_revision(checkpoint: str) -> tuple[str, str | None]:
    """``org/name@rev`` -> (``org/name``, ``rev``)."""
    if "@" in checkpoint and not Path(checkpoint).exists():
        repo, rev = checkpoint.rsplit("@", 1)
        return repo, rev or None
    return checkpoint, None


@cache
def resolve(checkpoint: str, *, weights: bool = True, revision: str | None = None) -> Path:
    """A local directory holding the checkpoint's files (fetched from the hub if needed).

    ``weights=False`` fetches only the small files (config, processors, stats).
    """
    if not checkpoint:
        raise CheckpointError("no checkpoint given: set `checkpoint:` (a directory or hub id)")
    local = Path(checkpoint).expanduser()
    if local.is_dir():
        if not (local / CONFIG_FILE).is_file():
            raise CheckpointError(f"checkpoint {checkpoint}: no {CONFIG_FILE} in the directory")
        return local.resolve()
    repo, rev = split_revision(checkpoint)
    if not _REPO_ID.match(repo):
        raise CheckpointError(
            f"checkpoint {checkpoint!r} is neither a directory nor a hub id (org/name)"
        )
    return _fetch(repo, revision or rev, ALL_FILES if weights else SMALL_FILES)


def _fetch(repo: str, revision: str | None, patterns: tuple[str, ...]) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        path = Path(snapshot_download(repo, revision=revision, allow_patterns=list(patterns)))
    except (RepositoryNotFoundError, GatedRepoError, RevisionNotFoundError) as exc:
        raise CheckpointError(
            f"hub checkpoint {repo}: {type(exc).__name__} (wrong id, revision or access)"
        ) from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, OSError) as exc:
        raise HubUnreachable(f"cannot reach the hub for {repo}; pass a local directory") from exc
    except Exception as exc:  # httpx / requests connection errors differ between versions
        if "connect" in type(exc).__name__.lower() or "timeout" in type(exc).__name__.lower():
            raise HubUnreachable(
                f"cannot reach the hub for {repo}; pass a local directory"
            ) from exc
        raise
    if not (path / CONFIG_FILE).is_file():
        raise CheckpointError(f"hub checkpoint {repo}: no {CONFIG_FILE} in the repository")
    return path


def snapshot_revision(path: Path) -> str | None:
    """The commit hash of a hub-cache snapshot directory (``.../snapshots/<sha>``), else None."""
    if path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.name
    return None
