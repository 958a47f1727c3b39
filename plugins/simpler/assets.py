"""The ManiSkill asset packs the Bridge tasks need: where they live, whether they are there,
and fetching them through ManiSkill's own downloader.

ManiSkill keeps assets under ``$MS_ASSET_DIR`` (default ``~/.maniskill``), read once when
``mani_skill`` is imported. The Bridge tasks need the packs ``bridge_v2_real2sim`` (scenes,
objects, green-screen photos; from the Hugging Face hub) and ``widowx250s`` (the robot; from
GitHub). ManiSkill itself asks on stdin and calls ``exit()`` when they are missing; this
module checks first and raises :class:`AssetsMissing` with one line naming
``vlabench assets simpler`` instead. Nothing here imports mani_skill except :func:`fetch`.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from vlabench import api

from .tasks import BRIDGE_ASSETS

ENV_VAR = "MS_ASSET_DIR"
COMMAND = "vlabench assets simpler"
PACK_PATHS = {
    "bridge_v2_real2sim": "tasks/bridge_v2_real2sim_dataset",
    "widowx250s": "robots/widowx",
}
"""Where each pack lands under the asset dir (ManiSkill's ``DataSource.target_path``)."""


class AssetsMissing(FileNotFoundError):
    """Asset packs a task needs are not on disk; the message is one line with the fix."""


def asset_dir(location: str | Path | None = None) -> Path:
    """``location``, else ``$MS_ASSET_DIR``, else ``~/.maniskill`` (ManiSkill's own rule)."""
    if location is not None:
        return Path(location).expanduser()
    return Path(os.environ.get(ENV_VAR) or Path.home() / ".maniskill").expanduser()


def missing_packs(
    packs: tuple[str, ...] = BRIDGE_ASSETS, location: str | Path | None = None
) -> list[str]:
    """The packs among ``packs`` whose folder is absent or empty under the asset dir."""
    root = asset_dir(location)
    missing = []
    for pack in packs:
        path = root / PACK_PATHS[pack]
        if not path.is_dir() or not any(path.iterdir()):
            missing.append(pack)
    return missing


def missing_message(task: str, missing: list[str], location: str | Path | None = None) -> str:
    """The one-line error for a task whose packs are missing."""
    return (
        f"simpler task {task!r} needs ManiSkill asset pack(s) {', '.join(missing)}, not found "
        f"under {asset_dir(location)} (${ENV_VAR}); run `{COMMAND}` to fetch them, or "
        f"`{COMMAND} --dir PATH` and set {ENV_VAR}=PATH"
    )


def require(task: str, packs: tuple[str, ...], location: str | Path | None = None) -> None:
    """Raise :class:`AssetsMissing` when any of ``packs`` is missing (no prompt, no exit)."""
    missing = missing_packs(packs, location) if packs else []
    if missing:
        raise AssetsMissing(missing_message(task, missing, location))


def status(location: str | None = None) -> api.AssetStatus:
    """Whether the Bridge packs are present (nothing is imported or downloaded)."""
    root = asset_dir(location)
    missing = missing_packs(BRIDGE_ASSETS, root)
    hint = "" if not missing else f"run `{COMMAND}`"
    if not missing and location is not None and Path(location) != asset_dir():
        hint = f"set {ENV_VAR}={root} so that ManiSkill finds them"
    return api.AssetStatus(ready=not missing, location=str(root), missing=tuple(missing), hint=hint)


def fetch(location: str | None = None) -> api.AssetStatus:
    """Download the missing packs with ManiSkill's downloader into the asset dir.

    Raises :class:`RuntimeError` (one line) when a pack cannot be downloaded, e.g. offline.
    """
    root = asset_dir(location)
    missing = missing_packs(BRIDGE_ASSETS, root)
    if not missing:
        return status(location)
    os.environ.setdefault("MS_SKIP_ASSET_DOWNLOAD_PROMPT", "1")
    from mani_skill.utils import assets as ms_assets
    from mani_skill.utils import download_asset

    for pack in missing:
        source = dataclasses.replace(ms_assets.DATA_SOURCES[pack], output_dir=root)
        where = source.url or source.hf_repo_id or pack
        try:
            download_asset.download(source, verbose=True, non_interactive=True)
        except Exception as exc:  # URLError, HTTP errors, checksum mismatches, hub errors
            leftover = root / PACK_PATHS[pack]
            if leftover.is_dir() and not any(leftover.iterdir()):
                leftover.rmdir()  # the downloader creates it before downloading
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RuntimeError(
                f"could not download ManiSkill asset pack {pack!r} from {where} into "
                f"{root}: {type(exc).__name__}: {reason} (copy the pack there from a machine "
                f"with internet, or point {ENV_VAR} / --dir at an existing copy)"
            ) from None
    return status(location)


SPEC = api.AssetSpec(
    name="simpler",
    description=(
        "ManiSkill3 asset packs bridge_v2_real2sim + widowx250s for the SimplerEnv Bridge "
        f"tasks (under ${ENV_VAR}, default ~/.maniskill)"
    ),
    status=status,
    fetch=fetch,
)
