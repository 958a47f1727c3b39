"""`vlabench check`, `run`, `matrix` and `interleave`: plan pairs, run them, store episodes."""

import dataclasses
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from vlabench.cli import options as opts
from vlabench.cli.app import Context, app, console, context, fail, load_registry
from vlabench.cli.boards import print_board
from vlabench.cli.progress import EpisodeLines, MatrixProgress
from vlabench.cli.summaries import print_latency, print_plan, print_results

if TYPE_CHECKING:
    from vlabench.execute.settings import ExecutionSettings
    from vlabench.registry import Registry
    from vlabench.runtime.inference import InferenceConfig
    from vlabench.sequential import StoppingRule


PRECISION = typer.Option(
    "--precision",
    help="Sequential: run episodes in rounds and stop each (policy, task) once its "
    "anytime-valid 95% interval is at most +-PRECISION (0.05 = 5 points), or at the "
    "episode count (the budget). In (0, 0.5].",
    callback=opts.in_range("--precision", 0, 0.5, open_low=True),
)
ROUND = typer.Option(
    "--round",
    help="Sequential: episodes per task between two looks, >= 1.",
    callback=opts.in_range("--round", 1),
)


def stopping_rule(precision: float | None, round_: int) -> "StoppingRule | None":
    """The ``--precision`` rule, or None for a fixed number of episodes."""
    if precision is None:
        return None
    from vlabench.sequential import StoppingRule

    return StoppingRule("precision", precision=precision, round=round_)


@app.command("check")
def check_cmd(
    ctx: typer.Context,
    policy: Annotated[str, typer.Argument(help="Policy preset or type.")],
    target: Annotated[str, typer.Argument(help="Suite (uses its env options) or env name.")],
) -> None:
    """Check whether a policy can run on a suite or env, naming every mismatch.

    Exit code 0 when compatible, 1 when not. Example: vlabench check noop pusht
    """
    from vlabench.plan.compat import check_pair
    from vlabench.plan.resolve import resolve_policy, resolve_suite
    from vlabench.registry import RegistryError, SuiteConfig

    c = context(ctx)
    cat, reg = c.catalog(), load_registry(c)
    try:
        choice = resolve_policy(policy, reg, cat)
        if target not in reg.suites and target in cat.envs:  # an env: its bare suite
            reg = reg.with_suite(target, SuiteConfig(env=target))
        config = resolve_suite(target, choice, reg, cat)[0]
        result = check_pair(config, cat)
    except RegistryError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:  # a plugin's describe/interface refused (e.g. an unarmed robot)
        raise fail(f"cannot check the pair: {type(exc).__name__}: {exc}") from None
    from rich.text import Text

    out = console()  # no markup: names and mismatches print as they are
    if result.adapters:
        out.print(f"adapters: {' -> '.join(result.adapters)}")
    if result.ok:
        out.print(Text.assemble(("compatible", "green"), f": {policy} on {target}"))
        return
    out.print(Text.assemble(("incompatible", "red"), f": {policy} on {target}"))
    for mismatch in result.mismatches:
        out.print(f"  - {mismatch}")
    raise typer.Exit(1)


def _execute(
    c: Context,
    policies: list[str],
    suites: list[str],
    *,
    episodes: int | None,
    max_steps: int | None,
    tasks: list[str] | None,
    batch_size: int,
    dry_run: bool = False,
    executor: str = "processes",
    workers: int | None = None,
    address: str | None = None,
    retries: int = 2,
    inference: "InferenceConfig | None" = None,
    settings: "ExecutionSettings",
    registry: "Registry | None" = None,
    env_overrides: dict[str, Any] | None = None,
    rule: "StoppingRule | None" = None,
) -> list[Any]:
    from vlabench.execute.choose import make_executor
    from vlabench.execute.phases import record
    from vlabench.execute.runner import Runner
    from vlabench.plan.jobs import plan
    from vlabench.registry import RegistryError

    cat, reg = c.catalog(), registry if registry is not None else load_registry(c)
    planning = time.perf_counter()
    try:
        pairs = plan(
            policies,
            suites,
            reg,
            cat,
            episodes=episodes,
            max_steps=max_steps,
            tasks=tasks,
            inference=inference,
            runner_options=settings.env_options(),
            env_overrides=env_overrides,
        )
        record("plan (pair checks)", time.perf_counter() - planning)
        chosen = make_executor(
            executor,
            cat,
            workers=workers,
            retries=retries,
            batch_size=batch_size,
            address=address,
            allow=c.allow,
            block=c.block,
            settings=settings,
        )
    except (RegistryError, ValueError) as exc:
        raise fail(str(exc)) from None
    from rich.text import Text

    out = console()
    for pair in pairs:  # a failed pair's reason: in the results; a dry run's: in the plan
        if not dry_run and pair.status == "incompatible":
            head = f"{pair.policy.name} × {pair.suite}: {pair.status}:"
            out.print(Text.assemble((head, "yellow"), f" {pair.reason}"))
    if dry_run:
        print_plan(c, pairs, chosen)
        return []
    store = c.store()
    with MatrixProgress(c.quiet) as progress:
        runner = Runner(
            store, cat, progress, batch_size=batch_size, executor=chosen,
            task_groups=task_groups(reg),
        )
        try:
            if rule is not None:
                from vlabench.execute.rounds import run_to_precision

                return run_to_precision(
                    runner, pairs, rule, say=lambda line: progress.job_note("sequential", line)
                )
            return runner.run_pairs(pairs)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (exit_code 143/129)
            if getattr(exc, "fatal", False):  # the executor lost its cluster: why, one line
                raise fail(str(exc), getattr(exc, "exit_code", 2)) from None
            out.print(
                Text.assemble(
                    ("interrupted", "yellow"),
                    ": finished episodes are stored; run the same command again to resume",
                )
            )
            raise typer.Exit(getattr(exc, "exit_code", 130)) from None


def task_groups(reg: "Registry") -> dict[str, list[tuple[str, list[str]]]]:
    """Each suite's declared groups (``groups:`` in the registry), ``suite -> [(group,
    tasks)]`` in order: stored with the runs they contain, for ``leaderboard --by group``."""
    return {name: reg.task_groups(name) for name, s in reg.suites.items() if s.groups}


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    policy: Annotated[str, typer.Option("--policy", help="Policy preset or type.")],
    suite: Annotated[str | None, typer.Option("--suite", help="Suite from the registry.")] = None,
    episodes: Annotated[int | None, opts.EPISODES] = None,
    max_steps: Annotated[int | None, opts.MAX_STEPS] = None,
    task: Annotated[
        list[str] | None, opts.TASKS
    ] = None,
    batch_size: Annotated[int, opts.BATCH] = 1,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            help="Instead of --suite: the env's suite (ENV_fake with --fake, else ENV), "
            "or a bare suite of that env.",
        ),
    ] = None,
    env_option: Annotated[
        list[str] | None,
        typer.Option(
            "--env-option",
            "-E",
            metavar="KEY=VALUE",
            help="Env option (a YAML value) over the suite's env_options; part of the run "
            "config (repeatable).",
        ),
    ] = None,
    fake: Annotated[
        bool, typer.Option("--fake", help="Dry run on the env's fake hardware (fake=true).")
    ] = False,
    armed: Annotated[
        bool,
        typer.Option(
            "--armed",
            help="Let a hardware env move (it still asks for confirmation at the terminal).",
        ),
    ] = False,
    record_video: Annotated[int, opts.RECORD_VIDEO] = 0,
    video_dir: Annotated[Path | None, opts.VIDEO_DIR] = None,
    torch_threads: Annotated[int | None, opts.TORCH_THREADS] = None,
    call_timeout: Annotated[float | None, opts.CALL_TIMEOUT] = None,
    executor: Annotated[str | None, opts.EXECUTOR] = None,
    workers: Annotated[int | None, opts.WORKERS] = None,
    address: Annotated[str | None, opts.ADDRESS] = None,
    retries: Annotated[int, opts.RETRIES] = 2,
    inference: Annotated[str, opts.INFERENCE] = "sync",
    latency_ms: Annotated[str, opts.LATENCY] = "measured",
    chunk_threshold: Annotated[float, opts.THRESHOLD] = 0.5,
    aggregate: Annotated[str, opts.AGGREGATE] = "weighted",
    hold: Annotated[str, opts.HOLD] = "last",
    precision: Annotated[float | None, PRECISION] = None,
    round_: Annotated[int, ROUND] = 10,
) -> None:
    """Evaluate one policy on one suite; re-running the same command resumes it.

    Example: vlabench run --policy noop --suite pusht --episodes 2;
    vlabench run --policy noop --env parol6 --fake -n 1;
    vlabench run --policy smolvla_libero --suite libero_spatial --inference async
    --latency-ms 120 (what 120 ms of latency costs; the sync run is the reference);
    vlabench run --policy metaworld-expert --suite metaworld_mt10 -n 200 --precision 0.05
    (each task stops once its anytime-valid interval is within 5 points).
    """
    c = context(ctx)
    mode = opts.inference_config(inference, latency_ms, chunk_threshold, aggregate, hold)
    if (suite is None) == (env is None):
        raise fail("give exactly one of --suite and --env")
    options = opts.parse_env_options(env_option or [])
    if fake:
        options["fake"] = True
    suite, reg = opts.choose_suite(c, suite, env, fake)
    # arming reaches hardware envs as the runner's env option, never stored: it is not part
    # of a run's identity (nor are videos or threads)
    settings = opts.execution_settings(
        c,
        record_video=record_video,
        video_dir=video_dir,
        armed=armed,
        torch_threads=torch_threads,
        call_timeout_s=call_timeout,
    )
    results = _execute(
        c,
        [policy],
        [suite],
        episodes=episodes,
        max_steps=max_steps,
        tasks=task,
        batch_size=batch_size,
        executor=executor or ("inline" if armed else "processes"),  # an armed robot: inline
        workers=workers,
        address=address,
        retries=retries,
        inference=mode,
        settings=settings,
        registry=reg,
        env_overrides=options,
        rule=stopping_rule(precision, round_),
    )
    print_results(results)
    if mode.mode != "sync":  # a sync run is its own reference
        print_latency(c, results)
    if any(r.status == "failed" for r in results):
        raise typer.Exit(1)


@app.command("interleave")
def interleave_cmd(
    ctx: typer.Context,
    policy: Annotated[
        list[str], typer.Option("--policy", help="Policies to compare (repeat, >= 2).")
    ],
    suite: Annotated[str | None, typer.Option("--suite", help="Suite from the registry.")] = None,
    env: Annotated[str | None, typer.Option("--env", help="As for `run`.")] = None,
    env_option: Annotated[
        list[str] | None,
        typer.Option("--env-option", "-E", metavar="KEY=VALUE", help="As for `run`."),
    ] = None,
    fake: Annotated[bool, typer.Option("--fake", help="As for `run`.")] = False,
    armed: Annotated[bool, typer.Option("--armed", help="As for `run`.")] = False,
    episodes: Annotated[int | None, opts.EPISODES] = None,
    max_steps: Annotated[int | None, opts.MAX_STEPS] = None,
    task: Annotated[
        list[str] | None, opts.TASKS
    ] = None,
    order: Annotated[str, typer.Option(help="abba | alternate | random")] = "abba",
    seed: Annotated[
        int,
        typer.Option(help="Seed of the random order, >= 0.", callback=opts.in_range("--seed", 0)),
    ] = 0,
    until_decided: Annotated[
        bool,
        typer.Option(
            "--until-decided",
            help="Sequential, two policies: run rounds of paired episodes until the anytime-"
            "valid 95% interval of A - B (pairs pooled over tasks) says A > B, B > A or no "
            "difference larger than --delta, or the episode count runs out.",
        ),
    ] = False,
    delta: Annotated[
        float,
        typer.Option(
            help="With --until-decided: the smallest difference that matters, in (0, 1) "
            "(0.1 = 10 points).",
            callback=opts.in_range("--delta", 0, 1, open_low=True, open_high=True),
        ),
    ] = 0.1,
    round_: Annotated[int, ROUND] = 10,
) -> None:
    """Compare policies episode by episode in interleaved order (fair on a real robot).

    Episode i of every policy runs before episode i+1 of any; each policy keeps its own run.
    Example: vlabench interleave --policy noop --policy random --env parol6 --fake -n 2
    """
    from vlabench.execute.choose import make_executor
    from vlabench.execute.interleave import ORDERS, run_interleaved
    from vlabench.execute.runner import Runner
    from vlabench.plan.jobs import plan
    from vlabench.registry import RegistryError

    c = context(ctx)
    if len(policy) < 2 or (suite is None) == (env is None) or order not in ORDERS:
        raise fail(
            f"give >= 2 --policy, exactly one of --suite and --env, --order in {ORDERS}"
        )
    if until_decided and len(policy) != 2:
        raise fail(f"--until-decided compares two policies, got {len(policy)} --policy")
    options = opts.parse_env_options(env_option or [])
    if fake:
        options["fake"] = True
    suite, reg = opts.choose_suite(c, suite, env, fake)
    settings = opts.execution_settings(c, armed=armed)
    cat = c.catalog()
    try:
        pairs = plan(
            policy, [suite], reg, cat, episodes=episodes, max_steps=max_steps, tasks=task,
            runner_options=settings.env_options(), env_overrides=options,
        )
    except RegistryError as exc:
        raise fail(str(exc)) from None
    blocked = [p for p in pairs if not p.runnable]
    for pair in blocked:
        print(f"{pair.policy.name} × {pair.suite}: {pair.status}: {pair.reason}", file=sys.stderr)
    if blocked:
        raise typer.Exit(1)
    runner = Runner(
        c.store(), cat, EpisodeLines(c.quiet), task_groups=task_groups(reg),
        executor=make_executor("inline", cat, settings=settings),  # one episode at a time
    )
    results: list[Any] = []
    if until_decided:
        _interleave_until_decided(runner, pairs, order, seed, delta, round_, results)
        return
    try:
        for i in range(len(pairs[0].runs)):  # one task at a time, the same for every policy
            configs = [pair.runs[i] for pair in pairs]
            results += run_interleaved(configs, runner.run_config, order, seed)  # type: ignore[arg-type]
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP (exit_code 143/129)
        print("interrupted: finished episodes are stored; run it again to resume", file=sys.stderr)
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    runs = {r.run_id: r for r in results}  # the latest result of each run
    new = sum(r.new_episodes for r in results)
    failed = [r for r in runs.values() if r.status == "failed"]
    print(f"{len(runs)} run(s), {new} new episode(s) stored, {len(failed)} failed")
    for r in failed:
        print(f"failed {r.label}: {r.error}")
    if failed:
        raise typer.Exit(1)


def _interleave_until_decided(
    runner: Any, pairs: list[Any], order: Any, seed: int, delta: float, round_: int,
    results: list[Any],
) -> None:
    """``interleave --until-decided``: rounds of interleaved episodes of A and B on every task
    until the paired sequential interval decides; prints each look and the verdict."""
    from vlabench.execute.interleave import run_interleaved
    from vlabench.execute.rounds import run_until_decided
    from vlabench.sequential import StoppingRule

    rule = StoppingRule("until-decided", delta=delta, round=round_)
    configs_a, configs_b = pairs[0].runs, pairs[1].runs

    def run_round(configs: list[Any]) -> None:
        half = len(configs) // 2
        for a, b in zip(configs[:half], configs[half:], strict=True):
            results.extend(run_interleaved([a, b], runner.run_config, order, seed))

    try:
        state = run_until_decided(runner, configs_a, configs_b, rule, run_round, say=print)
    except KeyboardInterrupt as exc:
        print("interrupted: finished episodes are stored; run it again to resume", file=sys.stderr)
        raise typer.Exit(getattr(exc, "exit_code", 130)) from None
    a, b = pairs[0].policy.name, pairs[1].policy.name
    verdict = {
        "A > B": f"{a} is better than {b}",
        "B > A": f"{b} is better than {a}",
        "no difference": f"no difference larger than {100 * delta:g} points",
        "budget": "undecided: the episode count ran out",
        "stalled": "undecided: a round stored no episodes (see the failures above)",
    }[state.stopped or "budget"]
    print(
        f"{verdict} (anytime-valid at 95%: {a} - {b} in [{100 * state.low:+.1f}, "
        f"{100 * state.high:+.1f}] points after {state.look} episode(s) per task, "
        f"{state.table.n} pairs)"
    )
    failed = [r for r in {r.run_id: r for r in results}.values() if r.status == "failed"]
    for r in failed:
        print(f"failed {r.label}: {r.error}")
    if failed or state.stopped == "stalled":
        raise typer.Exit(1)


@app.command("matrix")
def matrix_cmd(
    ctx: typer.Context,
    policy: Annotated[
        list[str] | None, typer.Option("--policy", help="Policies (repeatable).")
    ] = None,
    suite: Annotated[list[str] | None, typer.Option("--suite", help="Suites (repeatable).")] = None,
    name: Annotated[
        str, typer.Option("--name", help="Matrix from the registry when no --policy/--suite.")
    ] = "default",
    episodes: Annotated[int | None, opts.EPISODES] = None,
    max_steps: Annotated[int | None, opts.MAX_STEPS] = None,
    batch_size: Annotated[int, opts.BATCH] = 1,
    dry_run: Annotated[
        bool, typer.Option(help="Print the plan (jobs, episodes, incompatible pairs) only.")
    ] = False,
    leaderboard: Annotated[bool, typer.Option(help="Print the leaderboard at the end.")] = True,
    record_video: Annotated[int, opts.RECORD_VIDEO] = 0,
    video_dir: Annotated[Path | None, opts.VIDEO_DIR] = None,
    torch_threads: Annotated[int | None, opts.TORCH_THREADS] = None,
    call_timeout: Annotated[float | None, opts.CALL_TIMEOUT] = None,
    executor: Annotated[str, opts.EXECUTOR] = "processes",
    workers: Annotated[int | None, opts.WORKERS] = None,
    address: Annotated[str | None, opts.ADDRESS] = None,
    retries: Annotated[int, opts.RETRIES] = 2,
    inference: Annotated[str, opts.INFERENCE] = "sync",
    latency_ms: Annotated[str, opts.LATENCY] = "measured",
    chunk_threshold: Annotated[float, opts.THRESHOLD] = 0.5,
    aggregate: Annotated[str, opts.AGGREGATE] = "weighted",
    hold: Annotated[str, opts.HOLD] = "last",
    policy_service: Annotated[
        bool,
        typer.Option(
            "--policy-service",
            help="Load each policy once, in its own process, and batch every worker's calls "
            "to it (processes executor): one model in memory, bigger batches.",
        ),
    ] = False,
    precision: Annotated[float | None, PRECISION] = None,
    round_: Annotated[int, ROUND] = 10,
) -> None:
    """Cross-evaluate every policy on every suite, checking each pair first.

    Incompatible pairs are stored and shown as "incompatible: reason", never run. Jobs run
    on local worker processes (--workers N), in this process (--executor inline) or on Ray
    (--executor ray --address auto); re-running the same command runs only what is missing.
    Example: vlabench matrix --policy noop --policy random --suite pusht_quick --workers 2
    """
    c = context(ctx)
    mode = opts.inference_config(inference, latency_ms, chunk_threshold, aggregate, hold)
    policies, suites = policy or [], suite or []
    if not policies or not suites:
        from vlabench.registry import RegistryError

        try:
            preset = load_registry(c).matrix(name)
        except RegistryError as exc:
            raise fail(str(exc)) from None
        policies, suites = policies or preset.policies, suites or preset.suites
        episodes = episodes or preset.episodes
    settings = opts.execution_settings(
        c, record_video=record_video, video_dir=video_dir, torch_threads=torch_threads,
        call_timeout_s=call_timeout,
    )
    if policy_service:
        if executor != "processes":
            raise fail(f"--policy-service needs --executor processes, got {executor}")
        settings = dataclasses.replace(settings, policy_service=True)
    results = _execute(
        c,
        policies,
        suites,
        episodes=episodes,
        max_steps=max_steps,
        tasks=None,
        batch_size=batch_size,
        dry_run=dry_run,
        executor=executor,
        workers=workers,
        address=address,
        retries=retries,
        inference=mode,
        settings=settings,
        rule=stopping_rule(precision, round_),
    )
    if dry_run:
        return
    print_results(results)
    if mode.mode != "sync":  # a sync run is its own reference
        print_latency(c, results)
    if leaderboard:
        print_board(c, suite=suites, policy=policies)
        # The same board as a self-contained HTML report beside the store (drill-down per
        # task and episode), then what to try next.
        from sqlalchemy.engine import make_url

        from vlabench.report.board import board_from_store
        from vlabench.report.exporters import exporters

        store = c.store()
        url = make_url(store.url)
        database = url.database if url.get_backend_name() == "sqlite" else None
        folder = Path(database).parent if database and database != ":memory:" else Path.cwd()
        html_path = folder.resolve() / "leaderboard.html"
        html = exporters(c.catalog())["html"]
        board = board_from_store(store, suite=suites, policy=policies, episodes=html.episodes)
        html_path.write_text(str(html.export(board)), encoding="utf-8")
        print(f"HTML report: {html_path}")
        if not c.quiet:
            db = "" if c.db is None else f" --db {c.db}"
            first = policies[0]
            other = policies[1] if len(policies) > 1 else policies[0]
            only = " ".join(f"--suite {s}" for s in suites)
            print("Next:")
            print(f"  vlabench{db} leaderboard --by task {only}   # one column per task")
            print(f"  vlabench{db} compare {first} {other} {only}   # paired test, verdict")
            print(f"  vlabench{db} show {first}   # its runs: protocol, rate, n")
