"""The `vlabench` command line: parses, calls the core modules, prints (one module per group)."""

from vlabench.cli import boards, describe, evaluate, listing, serve, sim_real  # noqa: F401  (registration)
from vlabench.cli.app import app

# --help lists commands in registration order; keep the order they had in one module.
_ORDER = [
    "plugins", "list", "check", "describe", "run", "interleave", "matrix", "leaderboard",
    "compare", "show", "assets", "sim-real",
]
app.registered_commands.sort(key=lambda c: _ORDER.index(c.name) if c.name in _ORDER else 99)


def main() -> None:
    """Console-script entry point."""
    app()
