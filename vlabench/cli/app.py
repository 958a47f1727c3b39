"""The `vlabench` typer app: global options, the shared context and small helpers.

Heavy modules (numpy, SQLAlchemy, simulators) are imported inside the commands so that
``vlabench --help`` stays fast; the commands live in the sibling modules.
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core

if TYPE_CHECKING:
    from vlabench.catalog import Catalog
    from vlabench.registry import Registry

GLOBAL_VALUE_OPTIONS = frozenset({"--db", "--registry", "--plugins", "--disable-plugin", "-p"})
"""Global options that take a value (see :func:`main_options`)."""
GLOBAL_FLAGS = frozenset({"--quiet", "-q", "--init", "--verbose", "-v"})


def hoist_global_options(args: list[str]) -> list[str]:
    """``args`` with the global options found after the command moved before it, so that
    ``vlabench run ... -q --db URL`` means ``vlabench -q --db URL run ...``. Tokens after
    ``--`` are left alone, as is everything before the command; no command defines an
    option of these names (a test checks it)."""
    head: list[str] = []
    i = 0
    while i < len(args):  # the global options before the command, then the command
        arg = args[i]
        head.append(arg)
        i += 1
        if arg in GLOBAL_VALUE_OPTIONS and i < len(args):
            head.append(args[i])
            i += 1
        elif not arg.startswith("-") or arg == "--":
            break
    moved: list[str] = []
    rest: list[str] = []
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            rest += args[i - 1 :]
            break
        name = arg.split("=", 1)[0] if arg.startswith("--") else arg
        if name in GLOBAL_VALUE_OPTIONS and "=" not in arg and i < len(args):
            moved += [arg, args[i]]
            i += 1
        elif (name in GLOBAL_VALUE_OPTIONS and "=" in arg) or arg in GLOBAL_FLAGS:
            moved.append(arg)
        elif arg.startswith("-p") and not arg.startswith("--") and len(arg) > 2:
            moved.append(arg)  # -pNAME
        else:
            rest.append(arg)
    if not moved:
        return args
    return head[:-1] + moved + head[-1:] + rest


class _Group(typer.core.TyperGroup):
    """The top-level group: global options are accepted after the command as well."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(list(args)))


app = typer.Typer(
    cls=_Group,
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


WRITING_COMMANDS = frozenset({"run", "matrix", "interleave", "robustness", "migrate"})
"""The commands that open the store for writes; every other one opens it read-only."""


@dataclass
class Context:
    """Global options, shared by every command."""

    db: str | None = None
    registry_files: list[Path] = field(default_factory=list)
    allow: frozenset[str] | None = None
    block: frozenset[str] = frozenset()
    quiet: bool = False
    init: bool = False
    command: str | None = None
    verbose: bool = False

    def catalog(self) -> "Catalog":
        from vlabench.catalog import catalog
        from vlabench.execute.phases import phase

        with phase("plugins"):
            return catalog(self.allow, self.block)

    def registry(self) -> "Registry":
        from vlabench.execute.phases import phase
        from vlabench.registry import load_registry

        with phase("registry"):
            return load_registry(list(self.registry_files))

    def store(self, write: bool | None = None) -> Any:
        """The store at ``--db``: for writes in a writing command (or ``write=True``):
        created or upgraded, another application's database refused unless ``--init``;
        read-only in every other command: nothing created or changed, a missing store is an
        error. A store that cannot be opened so ends the command with one line (exit 2)."""
        from vlabench.execute.phases import phase
        from vlabench.store import NotAStoreError, StoreError, open_store

        writing = self.command in WRITING_COMMANDS if write is None else write
        try:
            with phase("store open"):
                if writing:
                    return open_store(self.db, init=self.init)
                return open_store(self.db, read_only=True)
        except NotAStoreError as exc:
            hint = "; add them anyway with `vlabench --init ...`" if writing else ""
            raise fail(f"{exc}{hint}") from None
        except StoreError as exc:
            raise fail(str(exc)) from None


def context(ctx: typer.Context) -> Context:
    return ctx.ensure_object(Context)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` (unwrapped, so file:line references stay whole) and exit."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(code)


def console() -> Any:
    """The rich console every command prints through, with markup and emoji codes off: names
    from registries, plugins and stores (``[/oops]``, ``:x:``) print as they are and never
    raise ``MarkupError``. Style with ``rich.text.Text`` (``Text.assemble(("failed", "red"),
    f" {name}")``), never with markup around a user string."""
    from rich.console import Console

    return Console(highlight=False, markup=False, emoji=False)


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
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Print what each start-up phase cost (run, matrix)."
        ),
    ] = False,
    init: Annotated[
        bool,
        typer.Option(
            "--init",
            help="Let a writing command (run, matrix, interleave, migrate) add vlabench's "
            "tables to a database that already holds other tables. Without it such a "
            "database is refused; read commands never change a store.",
        ),
    ] = False,
) -> None:
    """Global options (before or after the command): store, registry files, plugins."""
    if verbose:
        from vlabench.execute.phases import record, since_start

        started = since_start()
        if started is not None:
            record("interpreter and imports", started)
        ctx.call_on_close(print_phases)
    blocked = {p.removeprefix("no:") for p in disable_plugin or []}
    ctx.obj = Context(
        db=db,
        registry_files=list(registry or []),
        allow=frozenset(p.strip() for p in plugins.split(",") if p.strip()) if plugins else None,
        block=frozenset(blocked),
        quiet=quiet,
        init=init,
        command=ctx.invoked_subcommand,
        verbose=verbose,
    )


def print_phases() -> None:
    """``-v``: what each start-up phase of this command cost, in the order they ended."""
    from vlabench.execute.phases import phases, since_start

    rows = phases()
    if not rows:
        return
    print("start-up phases (seconds, first time each ran):")
    for name, seconds in rows:
        print(f"  {name:<28} {seconds:8.3f}")
    if not any(name == "policy load" for name, _ in rows):
        print("  (policy load and env build ran in workers: --executor inline shows them)")
    total = since_start()
    if total is not None:
        print(f"  {'process so far':<28} {total:8.3f}")


def load_registry(c: Context) -> "Registry":
    from vlabench.registry import RegistryError

    try:
        return c.registry()
    except RegistryError as exc:
        raise fail(str(exc)) from None


@app.command("migrate")
def migrate_cmd(ctx: typer.Context) -> None:
    """Create the store, or upgrade its schema to this vlabench's; nothing else changes.

    Read commands (leaderboard, compare, show, sim-real) never change a store, so a store
    written by an older vlabench is upgraded here (or by any run) before they read it.
    """
    from vlabench.store.engine import head_revisions

    with context(ctx).store(write=True) as store:
        print(f"store at {store.location}: schema {', '.join(sorted(head_revisions()))}")
