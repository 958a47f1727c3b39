"""registry.yaml (and user files) -> one validated, merged :class:`~vlabench.registry.Registry`.

Files are merged in order, later wins per name; adapters accumulate. Every error names the
file, line and key.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from vlabench.registry.lines import line_of
from vlabench.registry.schema import Registry, RegistryError, RegistryFile

ENV_VAR = "VLABENCH_REGISTRY"


def default_registry_path() -> Path:
    """registry.yaml at the root of the vlabench checkout."""
    return Path(__file__).resolve().parents[2] / "registry.yaml"


def registry_paths(extra: list[str | Path] | None = None) -> list[Path]:
    """The default file, then ``VLABENCH_REGISTRY`` (``:``-separated), then ``extra``."""
    paths = [default_registry_path()]
    paths += [Path(p) for p in os.environ.get(ENV_VAR, "").split(os.pathsep) if p]
    paths += [Path(p) for p in extra or []]
    return paths


def _format_errors(path: Path, node: yaml.Node | None, exc: ValidationError) -> str:
    lines = [f"{path}: invalid registry ({exc.error_count()} problem(s))"]
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        where = line_of(node, loc)
        prefix = f"{path}:{where}" if where else str(path)
        if err["type"] == "extra_forbidden":
            message = "unknown key (not one of the allowed keys; check the spelling)"
        else:
            message = f"{err['msg']}, got {err.get('input')!r}"
        lines.append(f"  {prefix}: {key}: {message}")
    return "\n".join(lines)


def load_file(path: Path) -> RegistryFile:
    """Parse and validate one registry file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read registry file: {exc.strerror}") from exc
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~5x faster
    try:
        data = yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise RegistryError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RegistryError(
            f"{path}: expected a mapping at the top level, got {type(data).__name__}"
        )
    try:
        return RegistryFile.model_validate(data)
    except ValidationError as exc:  # line numbers only when they are needed
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raise RegistryError(_format_errors(path, node, exc)) from None


def load_registry(extra: list[str | Path] | None = None) -> Registry:
    """Load and merge the default registry, ``VLABENCH_REGISTRY`` files and ``extra`` files."""
    reg = Registry()
    for i, path in enumerate(registry_paths(extra)):
        if i == 0 and not path.exists():
            continue  # installed without the checkout: user files only
        parsed = load_file(path)
        reg.suites.update(parsed.suites)
        reg.policies.update(parsed.policies)
        reg.adapters.extend(parsed.adapters)
        reg.matrices.update(parsed.matrices)
        reg.perturbations.update(parsed.perturbations)
        reg.files.append(path)
        for kind in ("suites", "policies", "matrices", "perturbations"):
            reg.origins.update({(kind, name): path for name in getattr(parsed, kind)})
    reg.check_groups()
    return reg
