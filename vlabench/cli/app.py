"""The `vlabench` typer app: global options, the shared context and small helpers.

Heavy modules (numpy, SQLAlchemy, simulators) are imported inside the commands so that
``vlabench --help`` stays fast; the commands live in the sibling modules.
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from vlabench.catalog import Catalog
    from vlabench.registry import Registry

app = typer.Typer(
    name="vlabench",
    help=(
        "Evaluate robot policies on simulated and real suites; every episode is stored.\n\n"
        "Example: vlabench run --policy noop --suite pusht --episodes 2 && "
        "vlabench leaderboard"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class Context:
    """Global options, shared by every command."""

    db: str | None = None
    registry_files: list[Path] = field(default_factory=list)
    allow: frozenset[str] | None = None
    block: frozenset[str] = frozenset()
    quiet: bool = False

    def catalog(self) -> "Catalog":
        from vlabench.catalog import catalog

        return catalog(self.allow, self.block)

    def registry(self) -> "Registry":
        from vlabench.registry import load_registry

        return load_registry(list(self.registry_files))

    def store(self) -> Any:
        from vlabench.store import open_store

        return open_store(self.db)


def context(ctx: typer.Context) -> Context:
    return ctx.ensure_object(Context)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` (unwrapped, so file:line references stay whole) and exit."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


@app.callback()
def main_options(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Store URL (SQLAlchemy). Default: $VLABENCH_DB or sqlite:///benchmarks.db",
        ),
    ] = None,
    registry: Annotated[
        list[Path] | None,
        typer.Option(
            "--registry",
            metavar="FILE",
            help="Extra registry YAML merged over registry.yaml (repeatable).",
        ),
    ] = None,
    plugins: Annotated[
        str | None,
        typer.Option(
            metavar="NAMES",
            help="Only load these plugins (comma-separated). Env: VLABENCH_PLUGINS.",
        ),
    ] = None,
    disable_plugin: Annotated[
        list[str] | None,
        typer.Option(
            "--disable-plugin",
            "-p",
            metavar="NAME",
            help="Do not load this plugin (repeatable; 'no:NAME' works too). "
            "Env: VLABENCH_DISABLE_PLUGINS.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Global options (before the command): store, registry files, plugin selection."""
    blocked = {p.removeprefix("no:") for p in disable_plugin or []}
    ctx.obj = Context(
        db=db,
        registry_files=list(registry or []),
        allow=frozenset(p.strip() for p in plugins.split(",") if p.strip()) if plugins else None,
        block=frozenset(blocked),
        quiet=quiet,
    )


def load_registry(c: Context) -> "Registry":
    from vlabench.registry import RegistryError

    try:
        return c.registry()
    except RegistryError as exc:
        raise fail(str(exc)) from None
