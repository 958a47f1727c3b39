"""The `vlabench` command line: parses, calls the core modules, prints (one module per group)."""

from vlabench.cli import (  # noqa: F401  (registration)
    boards,
    describe,
    evaluate,
    listing,
    record,
    robustness,
    serve,
    sim_real,
    sweep,
)
from vlabench.cli.app import app

# --help lists commands in registration order; keep the order they had in one module.
_ORDER = [
    "plugins", "list", "check", "describe", "run", "interleave", "matrix", "leaderboard",
    "compare", "robustness", "show", "assets", "sim-real", "record", "sweep",
]
app.registered_commands.sort(key=lambda c: _ORDER.index(c.name) if c.name in _ORDER else 99)


def main() -> None:
    """Console-script entry point."""
    app()
