"""`vlabench serve policy|env`: serve a policy or env over WebSocket (vlabench.isolation.serve)."""

from typing import Annotated, Any

import typer

from vlabench.cli.app import app, context, fail, load_registry
from vlabench.cli.options import in_range

serve_app = typer.Typer(
    help="Serve a policy or env over WebSocket for `--policy remote://host:port` / suites "
    "with `env: remote://host:port`.",
    no_args_is_help=True,
)
app.add_typer(serve_app, name="serve")
_HOST = typer.Option("--host", help="Address to bind (loopback unless --allow-remote).")
_PORT = typer.Option(
    "--port", help="Port, 0 to 65535 (0 picks a free one).", callback=in_range("--port", 0, 65535)
)
_ALLOW = typer.Option("--allow-remote", help="Allow a non-loopback --host (needs --token).")
_TOKEN = typer.Option(
    "--token", envvar="VLABENCH_TOKEN", help="Shared token clients must send (VLABENCH_TOKEN)."
)


def _serve(target: Any, host: str, port: int, allow_remote: bool, token: str | None) -> None:
    from vlabench.isolation.serve import Server

    try:
        server = Server(target, host=host, port=port, token=token, allow_remote=allow_remote)
    except PermissionError as exc:
        raise fail(str(exc)) from None

    def started(s: Any) -> None:
        print(f"serving {s.kind} on {s.url} (health: http://{s.host}:{s.port}/health)", flush=True)

    try:
        server.serve_forever(started)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise fail(f"cannot serve on {host}:{port}: {exc}") from None


_PROTOCOLS = ("vlabench", "openpi", "vlaeval")


@serve_app.command("policy")
def serve_policy_cmd(
    ctx: typer.Context,
    preset: Annotated[str, typer.Argument(help="Policy preset or type to serve.")],
    host: Annotated[str, _HOST] = "127.0.0.1",
    port: Annotated[int, _PORT] = 8765,
    allow_remote: Annotated[bool, _ALLOW] = False,
    token: Annotated[str | None, _TOKEN] = None,
    batch_wait_ms: Annotated[
        float,
        typer.Option(
            help="Gather concurrent requests for up to this long, >= 0 ms.",
            callback=in_range("--batch-wait-ms", 0),
        ),
    ] = 2.0,
    protocol: Annotated[
        str,
        typer.Option(
            help="Wire protocol: vlabench (remote://), openpi (openpi clients, "
            "/healthz) or vlaeval (vla-eval benchmarks, /health).",
        ),
    ] = "vlabench",
    suite: Annotated[
        str | None,
        typer.Option(help="openpi/vlaeval: the suite whose env the policy is loaded for."),
    ] = None,
    convention: Annotated[
        str | None,
        typer.Option(
            help="openpi/vlaeval: the clients' keys, a built-in (openpi_libero, "
            "openpi_droid, vlaeval_libero) or an openpi/vlaeval preset; default: every "
            "feature under its own name.",
        ),
    ] = None,
    record: Annotated[
        bool,
        typer.Option(help="vlaeval: store the clients' episodes as runs (--db)."),
    ] = True,
) -> None:
    """Serve a policy: clients run `vlabench run --policy remote://HOST:PORT ...`.

    Concurrent requests from several clients are batched into one policy call; the policy is
    loaded per env interface on first use. Example: vlabench serve policy random --port 8765

    With --protocol openpi or vlaeval an openpi client or a vla-eval benchmark drives it
    (one request per observation, no batching), e.g.
    vlabench serve policy smolvla_libero --protocol vlaeval --suite libero_spatial
    --convention vlaeval_libero
    """
    from vlabench.isolation.proxies import policy_spec_for
    from vlabench.isolation.serve import PolicyService
    from vlabench.plan.resolve import resolve_policy
    from vlabench.registry import RegistryError

    if protocol not in _PROTOCOLS:
        raise fail(f"--protocol must be one of {', '.join(_PROTOCOLS)}, got {protocol!r}")
    c = context(ctx)
    cat, reg = c.catalog(), load_registry(c)
    if protocol != "vlabench":
        _serve_foreign(c, cat, reg, preset, protocol, suite, convention, record,
                       host, port, allow_remote, token)
        return
    if suite or convention:
        raise fail("--suite and --convention are for --protocol openpi or vlaeval")
    try:
        choice = resolve_policy(preset, reg, cat)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    spec = policy_spec_for(choice, cat.policy(choice.type))
    service = PolicyService(
        spec, choice.checkpoint, choice.options, choice.device, batch_wait_ms, choice.type,
        choice.name,
    )
    _serve(service, host, port, allow_remote, token)


def _serve_foreign(c: Any, cat: Any, reg: Any, preset: str, protocol: str, suite: str | None,
                   convention: str | None, record: bool, host: str, port: int,
                   allow_remote: bool, token: str | None) -> None:
    """Serve ``preset`` over openpi's or vla-eval's protocol (vlabench.isolation.foreign)."""
    from vlabench.isolation.foreign.loading import load_served
    from vlabench.isolation.foreign.servers import ForeignServer
    from vlabench.registry import RegistryError

    if not suite:
        raise fail(f"--protocol {protocol} needs --suite (the env the policy is loaded for)")
    try:
        model = load_served(preset, suite, convention, reg, cat)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    recorder = None
    if protocol == "vlaeval" and record:
        from vlabench.execute.served_runs import StoreRecorder

        recorder = StoreRecorder(c.store(write=True), model.served)
    try:
        server = ForeignServer(model, protocol, host=host, port=port, token=token,
                               allow_remote=allow_remote, recorder=recorder)
    except PermissionError as exc:
        raise fail(str(exc)) from None

    def started(s: Any) -> None:
        print(f"serving {preset} ({protocol} protocol) on {s.url} "
              f"(health: http://{s.host}:{s.port}{s.health_path})", flush=True)

    from vlabench.execute.runner import signals_as_interrupts

    try:
        with signals_as_interrupts():  # SIGTERM/SIGHUP stop it as Ctrl-C does
            server.serve_forever(started)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise fail(f"cannot serve on {host}:{port}: {exc}") from None
    finally:
        if recorder is not None:
            recorder.close()


@serve_app.command("env")
def serve_env_cmd(
    ctx: typer.Context,
    env: Annotated[str, typer.Argument(help="Env name (see `vlabench list envs`).")],
    host: Annotated[str, _HOST] = "127.0.0.1",
    port: Annotated[int, _PORT] = 8766,
    allow_remote: Annotated[bool, _ALLOW] = False,
    token: Annotated[str | None, _TOKEN] = None,
) -> None:
    """Serve an env (one instance per client): suites use `env: remote://HOST:PORT`.

    Example: vlabench serve env pusht --port 8766
    """
    cat = context(ctx).catalog()
    if env not in cat.envs:
        raise fail(f"unknown env {env!r} (envs: {', '.join(sorted(cat.envs)) or 'none'})")
    _serve(cat.envs[env], host, port, allow_remote, token)
