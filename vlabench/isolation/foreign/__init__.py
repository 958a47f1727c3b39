"""Models served elsewhere: openpi and vla-eval model servers as vlabench policies, and back.

This package is a default plugin (:data:`vlabench.catalog.DEFAULT_PLUGINS`): it answers
``openpi://host:port[/convention]`` and ``vlaeval://host:port[/convention]`` (and the bare
types ``openpi`` / ``vlaeval`` that registry presets name) through
``vlabench_resolve_policy``. The server side (``vlabench serve policy --protocol``) is
:mod:`vlabench.isolation.foreign.servers`.
"""

from __future__ import annotations

from typing import Any

from vlabench import api, hookimpl


@hookimpl
def vlabench_resolve_policy(name: str) -> tuple[api.PolicySpec, dict[str, Any]] | None:
    """``openpi://`` / ``vlaeval://`` addresses: the server is asked what it serves now."""
    from vlabench.isolation.foreign import openpi, vlaeval

    for module in (openpi, vlaeval):
        if name == module.TYPE:
            return module.SPEC, {"type": module.TYPE}
        if name.startswith(module.SCHEME):
            try:
                return module.SPEC, module.resolve(name)
            except (ValueError, ConnectionError, PermissionError) as exc:
                raise api.RegistryError(f"policy {name!r}: {exc}") from None
    return None
