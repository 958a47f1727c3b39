"""vlabench: evaluate robot policies on simulated and real suites, store every episode."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("vlabench")
"""Decorator for plugin hook implementations: ``@vlabench.hookimpl``."""
