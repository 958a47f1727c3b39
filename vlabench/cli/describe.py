"""`vlabench describe env NAME` / `describe policy NAME`: features, shapes, dtypes, bounds and
space tags, so that a plugin author sees what an env offers and what a policy reads/writes."""

from typing import TYPE_CHECKING, Annotated, Any

import typer

from vlabench.cli.app import app, context, fail, load_registry

if TYPE_CHECKING:
    from vlabench.api import Feature

DEFAULT_ENV = "pusht"
SHOWN_TASKS = 5


@app.command("describe")
def describe_cmd(
    ctx: typer.Context,
    what: Annotated[str, typer.Argument(help="env | policy")],
    name: Annotated[str, typer.Argument(help="Env name, or policy preset or type.")],
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help=f"For a policy: the env it is described against (default {DEFAULT_ENV}, or "
            "the first env).",
        ),
    ] = None,
) -> None:
    """Print an env's or a policy's features: shapes, dtypes, bounds and space tags.

    For an env also its fps, noop action, tasks and options. Examples:
    vlabench describe env pusht; vlabench describe policy act --env pusht
    """
    from vlabench.registry import RegistryError

    c = context(ctx)
    cat = c.catalog()
    try:
        if what == "env":
            _describe_env(cat, name)
        elif what == "policy":
            _describe_policy(cat, load_registry(c), name, env)
        else:
            raise fail(f"cannot describe {what!r}: choose env or policy")
    except RegistryError as exc:
        raise fail(str(exc)) from None
    except typer.Exit:
        raise
    except Exception as exc:  # a plugin's interface/describe raised
        raise fail(f"cannot describe {what} {name!r}: {type(exc).__name__}: {exc}") from None


def _features_lines(features: "list[Feature]") -> list[str]:
    """One aligned line per feature: name, kind, shape, dtype, [space], bounds, description
    (plain text: long names and bounds are never cut to the terminal's width)."""
    rows = []
    for f in features:
        shape = "any shape" if f.shape is None else str(tuple(f.shape))
        space = f"[{f.space}]" if f.space else "[]"
        bounds = "" if f.low is None else f"{list(f.low)} .. {list(f.high or ())}"
        rows.append((f.name, f.kind, shape, f.dtype, space, bounds, f.description))
    widths = [max(len(r[i]) for r in rows) for i in range(6)] if rows else []
    return [
        "  " + "  ".join(r[i].ljust(widths[i]) for i in range(6)) + (f"  {r[6]}" if r[6] else "")
        for r in rows
    ]


def _type_name(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def _describe_env(cat: Any, name: str) -> None:
    from vlabench.plan.options import complete_options

    spec = cat.env(name)
    options = complete_options(spec.options, {})
    interface = spec.interface(options)
    out = _Printer()
    out.print(f"env {spec.name} (plugin {cat.plugin_of('env', name)}): {spec.description}")
    noop = "none" if interface.noop_action is None else str(list(interface.noop_action))
    out.print(
        f"fps {interface.fps}, max episode steps {spec.max_episode_steps}, "
        f"success: {spec.success}, noop action: {noop}"
    )
    out.print("observation:")
    out.lines(_features_lines(list(interface.observation)))
    out.print("action:")
    out.lines(_features_lines([interface.action]))
    try:
        tasks = list(spec.tasks(options))
    except Exception as exc:  # e.g. a missing simulator stack: still show the features
        out.print(f"tasks: unavailable ({type(exc).__name__}: {exc})")
    else:
        out.print(f"tasks ({len(tasks)}):")
        for task in tasks[:SHOWN_TASKS]:
            init = f" [{task.n_init_states} init states]" if task.n_init_states else ""
            out.print(f"  {task.name}: {task.instruction}{init}")
        if len(tasks) > SHOWN_TASKS:
            out.print(f"  ... and {len(tasks) - SHOWN_TASKS} more")
    if spec.options is None:
        out.print("options: none declared")
    else:
        out.print(f"options ({spec.options.__name__}; set with -E KEY=VALUE or env_options):")
        for field, info in spec.options.model_fields.items():
            default = "required" if info.is_required() else repr(info.default)
            out.print(f"  {field}: {_type_name(info.annotation)} = {default}")
    if spec.requires:
        from vlabench.catalog import missing_requirements

        missing = missing_requirements(spec.requires)
        if missing:
            out.print(f"unavailable: missing {', '.join(missing)}; {spec.install_hint}")


def _describe_policy(cat: Any, reg: Any, name: str, env: str | None) -> None:
    from vlabench import api
    from vlabench.plan.options import complete_options
    from vlabench.plan.resolve import resolve_policy

    choice = resolve_policy(name, reg, cat)
    spec = cat.policy(choice.type)
    env_name = env or (DEFAULT_ENV if DEFAULT_ENV in cat.envs else min(cat.envs, default=None))
    if env_name is None:
        raise api.RegistryError("no env is loaded to describe the policy against (--env)")
    env_spec = cat.env(env_name)
    env_interface = env_spec.interface(complete_options(env_spec.options, {}))
    request = api.PolicyRequest(
        type=choice.type,
        checkpoint=choice.checkpoint,
        options=choice.options,
        env=env_interface,
        device=choice.device,
    )
    interface = spec.describe(request)
    plugin = cat.plugin_of("policy", choice.type)
    if not isinstance(interface, api.PolicyInterface):
        raise api.RegistryError(
            f"plugin {plugin}: policy {choice.type!r} describe returned a "
            f"{type(interface).__name__}, expected api.PolicyInterface"
        )
    out = _Printer()
    out.print(f"policy {name} (type {choice.type}, plugin {plugin}): {spec.description}")
    if choice.checkpoint:
        out.print(f"checkpoint: {choice.checkpoint}")
    if choice.options:
        out.print(f"options: {dict(choice.options)}")
    out.print(f"described against env {env_name}" + ("" if env else " (choose with --env)"))
    out.print(
        f"n_obs_steps {interface.n_obs_steps}, chunk_size {interface.chunk_size}, "
        f"n_action_steps {interface.n_action_steps}"
    )
    out.print("inputs:" if interface.inputs else "inputs: none")
    if interface.inputs:
        out.lines(_features_lines(list(interface.inputs)))
    out.print("action:")
    out.lines(_features_lines([interface.action]))
    anys = [f.name for f in (*interface.inputs, interface.action) if f.space == api.ANY_SPACE]
    if anys:
        out.print(
            f"space 'any': {', '.join(anys)} take whatever the env declares "
            "(the policy adapts to any env)"
        )
    out.print(f"compatibility with a suite: vlabench check {name} SUITE_OR_ENV")


class _Printer:
    """Plain ``print``: names from plugins print as they are, never wrapped or cut."""

    def print(self, line: str) -> None:
        print(line)

    def lines(self, lines: list[str]) -> None:
        for line in lines:
            print(line)
