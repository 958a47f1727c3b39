"""`vlabench plugins`, `list` and `assets`: what is installed and available."""

from pathlib import Path
from typing import Annotated

import typer

from vlabench.cli.app import app, console, context, fail, load_registry


@app.command("plugins")
def plugins_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List installed plugins: version, status (loaded / failed / blocked), what they provide.

    A policy or env whose optional stack is missing is shown as unavailable, with the
    command that installs it. Example: vlabench plugins
    """
    import json

    from vlabench.catalog import missing_requirements

    cat = context(ctx).catalog()
    report = []
    for info in cat.plugins:
        entry = {
            "name": info.name,
            "version": info.version,
            "status": info.status,
            "error": info.error,
            "provides": [],
            "unavailable": [],
        }
        for kind, specs in (
            ("policy", cat.policies),
            ("env", cat.envs),
            ("adapter", cat.adapters),
            ("exporter", cat.exporters),
            ("assets", cat.assets),
        ):
            for name, spec in specs.items():
                if cat.plugin_of(kind, name) != info.name:
                    continue
                entry["provides"].append(f"{kind}:{name}")
                missing = missing_requirements(getattr(spec, "requires", ()))
                if missing:
                    entry["unavailable"].append(
                        {
                            "name": name,
                            "missing": missing,
                            "install": getattr(spec, "install_hint", ""),
                        }
                    )
        for kind in ("policy", "env"):  # names answered on request (remote://host:port)
            if f"vlabench_resolve_{kind}" in info.hooks:
                entry["provides"].append(f"{kind}:<resolved names>")
        report.append(entry)
    if as_json:
        print(json.dumps({"plugins": report, "problems": cat.problems}, indent=2))
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title="vlabench plugins")
    for col in ("plugin", "version", "status", "provides", "details"):
        table.add_column(col)
    for entry in report:
        notes = [
            f"{u['name']} unavailable (missing {', '.join(u['missing'])}): {u['install']}"
            for u in entry["unavailable"]
        ]
        details = entry["error"] or "; ".join(notes)
        table.add_row(
            entry["name"],
            entry["version"] or "?",
            entry["status"],
            " ".join(entry["provides"]),
            Text(details),
        )
    out = console()
    out.print(table)
    for problem in cat.problems:
        out.print(f"warning: {problem}", markup=False)


@app.command("list")
def list_cmd(
    ctx: typer.Context,
    what: Annotated[str, typer.Argument(help="policies | envs | suites | matrices")],
) -> None:
    """List policies (presets and types), envs, suites or matrices.

    Example: vlabench list suites
    """
    from rich.table import Table

    c = context(ctx)
    cat, reg = c.catalog(), load_registry(c)
    table = Table()
    if what == "policies":
        for col in ("policy", "type", "checkpoint", "plugin", "description"):
            table.add_column(col)
        for name, preset in sorted(reg.policies.items()):
            plugin = cat.plugin_of("policy", preset.type)
            table.add_row(name, preset.type, preset.checkpoint or "", plugin, preset.description)
        for name, spec in sorted(cat.policies.items()):
            if name not in reg.policies:
                table.add_row(name, name, "", cat.plugin_of("policy", name), spec.description)
    elif what == "envs":
        for col in ("env", "plugin", "max steps", "success", "description"):
            table.add_column(col)
        for name, spec in sorted(cat.envs.items()):
            table.add_row(
                name,
                cat.plugin_of("env", name),
                str(spec.max_episode_steps),
                spec.success,
                spec.description,
            )
    elif what == "suites":
        for col in ("suite", "env", "tasks", "episodes/task", "max steps", "protocol"):
            table.add_column(col)
        for name, s in sorted(reg.suites.items()):
            tasks = ", ".join(s.tasks) if s.tasks else "all"
            table.add_row(
                name, s.env, tasks, str(s.episodes), str(s.max_steps or "env default"), s.protocol
            )
    elif what == "matrices":
        for col in ("matrix", "policies", "suites"):
            table.add_column(col)
        for name, m in sorted(reg.matrices.items()):
            table.add_row(name, ", ".join(m.policies), ", ".join(m.suites))
    else:
        raise fail(f"cannot list {what!r}: choose policies, envs, suites or matrices")
    console().print(table)


@app.command("assets")
def assets_cmd(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(help="Asset set to fetch (see the list without it).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only report whether it is there (exit 1 if not).")
    ] = False,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", metavar="PATH", help="Look/fetch here instead of the default."),
    ] = None,
) -> None:
    """List plugins' data files (simulator assets), or fetch one set.

    Example: vlabench assets; vlabench assets simpler --check
    """
    cat = context(ctx).catalog()
    location = str(directory) if directory is not None else None
    out = console()
    if name is None:
        from rich.table import Table
        from rich.text import Text

        table = Table(title="vlabench assets")
        for col in ("assets", "plugin", "status", "location", "description"):
            table.add_column(col)
        for key, spec in sorted(cat.assets.items()):
            try:
                st = spec.status(location)
                state = "ready" if st.ready else f"missing: {', '.join(st.missing)}"
                where = st.location
            except Exception as exc:
                state, where = f"error: {type(exc).__name__}: {exc}", ""
            table.add_row(
                key, cat.plugin_of("assets", key), Text(state), Text(where), spec.description
            )
        out.print(table)
        return
    spec = cat.assets.get(name)
    if spec is None:
        from vlabench.registry import unknown

        raise fail(unknown("asset set", name, cat.assets))
    try:
        st = spec.status(location) if check else spec.fetch(location)
    except Exception as exc:
        raise fail(f"assets {name}: {exc}", 1) from None
    if st.ready:
        out.print(f"{name}: ready at {st.location}", markup=False)
    else:
        out.print(f"{name}: missing {', '.join(st.missing)} under {st.location}", markup=False)
    if st.hint:
        out.print(f"  {st.hint}", markup=False)
    if not st.ready:
        raise typer.Exit(1)
