"""vlabench: evaluate robot policies on simulated and real suites, store every episode."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("vlabench")
"""Decorator for plugin hook implementations: ``@vlabench.hookimpl``."""


def __getattr__(name: str) -> object:
    """``vlabench.evaluate`` (see :mod:`vlabench.evaluation`), imported on first use."""
    if name == "evaluate":  # by name: the core's plugin contract must not reach the top layer
        import importlib

        return importlib.import_module("vlabench.evaluation").evaluate
    raise AttributeError(f"module 'vlabench' has no attribute {name!r}")
