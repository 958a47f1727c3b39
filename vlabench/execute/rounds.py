"""Sequential evaluation: run episodes in rounds and stop where the answer is known.

``run --precision`` / ``matrix --precision`` (:func:`run_to_precision`): every (policy, task)
run gets ``rule.round`` more episodes per round, and after each round (a *look*) its
anytime-valid interval (:func:`vlabench.sequential.rate_sequence`) is checked; a run stops
when the interval is at most +-precision, or at the suite's episode count (the budget).
Rounds go first to the runs furthest from their target.

``interleave --until-decided`` and ``compare --until-decided`` (:func:`run_until_decided`;
compare extends the stored runs, :func:`paired_configs`): A and B get the same episodes
round by round until the paired interval of their difference decides (A > B, B > A, or no
difference larger than delta) or the budget runs out.

Nothing is kept in memory between rounds: where a run stands is read from the store (its
episodes, in episode order, up to the last complete look), so a command killed at any point
and run again continues the same sequence and stops at the same look. The rule and the looks
are stored with each run (``report_meta["sequential"]``), so boards show the anytime-valid
interval for it, never a fixed-n one. A run's config hash is that of a fixed-n run: asking
for a fixed n later extends the same run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vlabench import sequential
from vlabench.execute.runner import Runner, RunResult
from vlabench.plan.configs import RunConfig
from vlabench.plan.jobs import Pair, stored_hash
from vlabench.sequential import StoppingRule


@dataclass
class Standing:
    """Where one sequential run stands, read from the store."""

    look: int
    """The last complete look (episodes 0..look-1 all stored); 0 before the first."""
    successes: int
    stopped: str | None
    """``precision``, ``budget`` or a decision; None while it goes on."""
    looks: list[int]
    low: float = 0.0
    high: float = 1.0

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def outcomes(store: Any, run_id: int | None) -> list[bool]:
    """The run's successes by episode index, as far as the stored indices run unbroken from
    0 (episodes past a gap wait for it)."""
    if run_id is None:
        return []
    found = {int(e["episode_index"]): bool(e["success"]) for e in store.episodes(run_id)}
    prefix = []
    while len(prefix) in found:
        prefix.append(found[len(prefix)])
    return prefix


def standing(results: Sequence[bool], rule: StoppingRule, budget: int) -> Standing:
    """Replay ``rule`` over the outcomes: the first look where the interval is narrow enough
    stops the run (``precision``), else the budget does (``budget``)."""
    reached = [look for look in rule.looks(budget) if look <= len(results)]
    state = Standing(0, 0, None, [])
    for look in reached:
        k = sum(results[:look])
        low, high = sequential.rate_sequence(k, look, rule.alpha)
        state = Standing(look, k, None, [*state.looks, look], low, high)
        if rule.precision is not None and state.half_width <= rule.precision:
            state.stopped = "precision"
            return state
    if reached and reached[-1] == budget:
        state.stopped = "budget"
    return state


def next_look(rule: StoppingRule, budget: int, look: int) -> int:
    """The look after ``look``."""
    return next(x for x in rule.looks(budget) if x > look)


def _with_episodes(config: RunConfig, episodes: int) -> RunConfig:
    return dataclasses.replace(
        config, protocol=dataclasses.replace(config.protocol, episodes=episodes)
    )


def _record(store: Any, run_id: int, rule: StoppingRule, budget: int, state: Standing) -> None:
    store.update_report_meta(
        run_id,
        sequential={
            **rule.as_dict(),
            "budget": budget,
            "looks": state.looks,
            "stopped": state.stopped,
        },
    )


def _merge(into: dict[int, RunResult], results: Sequence[RunResult]) -> None:
    for r in results:
        kept = into.setdefault(r.run_id, dataclasses.replace(r, new_episodes=0,
                                                             failed_episodes=0))
        kept.new_episodes += r.new_episodes
        kept.failed_episodes += r.failed_episodes
        kept.status, kept.error = r.status, r.error or kept.error


def _pairs_of(configs: Sequence[RunConfig]) -> list[Pair]:
    """One checked pair per config (the caller checked them), in the given order."""
    from vlabench.plan.compat import Compatibility

    return [
        Pair(c.policy, c.suite, [c], compatibility=Compatibility([], [])) for c in configs
    ]


def run_to_precision(
    runner: Runner,
    pairs: list[Pair],
    rule: StoppingRule,
    say: Callable[[str], None] = lambda line: None,
) -> list[RunResult]:
    """Run every pair's runs in rounds until each is at +-``rule.precision`` or has run its
    suite's episode count; one result per run (its episodes added over all rounds).
    ``say`` gets one line per round: how many runs are decided."""
    store = runner.store
    cells: dict[str, RunConfig] = {}
    for pair in pairs:
        if pair.runnable:
            for i, config in enumerate(pair.runs):
                if i not in pair.run_errors:
                    cells[config.config_hash()] = config

    def where(config: RunConfig) -> tuple[int | None, Standing]:
        run_id = store.find_run(stored_hash(store, config))
        return run_id, standing(outcomes(store, run_id), rule, config.protocol.episodes)

    def capped(config: RunConfig) -> RunConfig:
        """The config asking for the episodes up to its next look (a stopped run: up to
        its stopping look, so nothing is left to run)."""
        if config.config_hash() not in cells:
            return config
        _, state = where(config)
        budget = config.protocol.episodes
        return _with_episodes(
            config, state.look if state.stopped else next_look(rule, budget, state.look)
        )

    merged: dict[int, RunResult] = {}
    order: list[int] = []
    batch = [dataclasses.replace(p, runs=[capped(c) for c in p.runs]) for p in pairs]
    round_no = 0
    while True:
        round_no += 1
        results = runner.run_pairs(batch)
        _merge(merged, results)
        order += [r.run_id for r in results if r.run_id not in order]
        failed = {r.run_id for r in results if r.status == "failed"}
        undecided: list[tuple[float, RunConfig]] = []
        for key, config in list(cells.items()):
            run_id, state = where(config)
            if run_id is None or run_id in failed:  # a failed run stops (its result says why)
                cells.pop(key)
                continue
            _record(store, run_id, rule, config.protocol.episodes, state)
            if state.stopped is None:
                undecided.append((state.half_width, config))
        decided = len(cells) - len(undecided)
        say(
            f"round {round_no}: {decided} of {len(cells)} run(s) decided "
            f"(at +-{100 * rule.precision:g} points or at their budget), "  # type: ignore[operator]
            f"{len(undecided)} undecided"
        )
        if not undecided:
            return [merged[i] for i in order]
        undecided.sort(key=lambda item: -item[0])  # furthest from the target first
        batch = _pairs_of([capped(config) for _, config in undecided])


@dataclass
class Decision:
    """Where a sequential A/B comparison stands (pairs pooled over its tasks)."""

    look: int
    table: Any
    """The :class:`vlabench.stats.PairedTable` at the look."""
    low: float
    high: float
    stopped: str | None
    looks: list[int]


def paired_standing(
    prefixes_a: Sequence[Sequence[bool]],
    prefixes_b: Sequence[Sequence[bool]],
    rule: StoppingRule,
    budget: int,
) -> Decision:
    """Replay ``rule`` over A's and B's outcomes per task (same tasks, same order): at each
    look the first ``look`` episodes of every task are paired and pooled; the first look
    whose interval decides stops, else the budget does."""
    from vlabench.stats import PairedTable

    shortest = min(len(p) for p in [*prefixes_a, *prefixes_b])
    state = Decision(0, PairedTable(0, 0, 0, 0), -1.0, 1.0, None, [])
    reached = [look for look in rule.looks(budget) if look <= shortest]
    for look in reached:
        cells = [0, 0, 0, 0]
        for a, b in zip(prefixes_a, prefixes_b, strict=True):
            for x, y in zip(a[:look], b[:look], strict=True):
                cells[(not x) * 2 + (not y)] += 1  # both, only A, only B, neither
        table = PairedTable(cells[0], cells[1], cells[2], cells[3])
        low, high = sequential.paired_sequence(table.only_a, table.only_b, table.n, rule.alpha)
        state = Decision(look, table, low, high, None, [*state.looks, look])
        state.stopped = sequential.decision(low, high, rule.delta)
        if state.stopped:
            return state
    if reached and reached[-1] == budget:
        state.stopped = "budget"
    return state


def run_until_decided(
    runner: Runner,
    configs_a: Sequence[RunConfig],
    configs_b: Sequence[RunConfig],
    rule: StoppingRule,
    run_round: Callable[[list[RunConfig]], Any] | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> Decision:
    """Run A's and B's runs (one per task, paired by position) a round at a time until the
    paired interval of ``rate_A - rate_B`` decides or the budget (A's first config's episode
    count) runs out. ``run_round(configs)`` runs the episodes each config lacks (default:
    the runner, every config as a checked pair); the rule, looks and decision are stored
    with every run."""
    store = runner.store
    budget = configs_a[0].protocol.episodes
    both = [*configs_a, *configs_b]
    run_round = run_round or (lambda configs: runner.run_pairs(_pairs_of(configs)))

    def prefixes(configs: Sequence[RunConfig]) -> list[list[bool]]:
        return [outcomes(store, store.find_run(stored_hash(store, c))) for c in configs]

    last = -1
    while True:
        state = paired_standing(prefixes(configs_a), prefixes(configs_b), rule, budget)
        if state.look == last and not state.stopped:  # a round that stored nothing: failed
            state.stopped = "stalled"
        if state.look:
            say(
                f"look at {state.look} episode(s) per task: A - B in "
                f"[{100 * state.low:+.1f}, {100 * state.high:+.1f}] points, "
                f"{state.stopped or 'undecided'}"
            )
        if state.stopped:
            break
        last, target = state.look, next_look(rule, budget, state.look)
        run_round([_with_episodes(c, target) for c in both])
    meta = {
        **rule.as_dict(), "budget": budget, "looks": state.looks, "stopped": state.stopped,
        "difference": [state.low, state.high],
    }
    for config in both:
        run_id = store.find_run(stored_hash(store, config))
        if run_id is not None:
            store.update_report_meta(run_id, sequential=meta)
    return state


def stored_config(run: Mapping[str, Any]) -> RunConfig:
    """The run config a stored run was made from (``Run.config``), to extend it; ValueError
    when it no longer hashes to the run's key (a run stored by an older vlabench)."""
    from vlabench.plan.configs import EvalProtocol, PolicyChoice

    data = dict(run.get("config") or {})
    try:
        policy = PolicyChoice(**data.pop("policy"))
        protocol = EvalProtocol(**data.pop("protocol"))
        config = RunConfig(policy=policy, protocol=protocol, **data)
    except (KeyError, TypeError) as exc:
        why = f"run {run.get('id')}: its stored config cannot be rerun ({exc})"
        raise ValueError(why) from None
    if config.config_hash() != run.get("config_hash"):
        raise ValueError(
            f"run {run.get('id')}: its stored config no longer hashes to the run "
            "(stored by an older vlabench); extend it with `vlabench run` instead"
        )
    return config


def paired_configs(
    runs_a: Sequence[Mapping[str, Any]], runs_b: Sequence[Mapping[str, Any]], budget: int | None
) -> tuple[list[RunConfig], list[RunConfig]]:
    """A's and B's stored runs paired by suite, protocol and task (those both have), as
    configs asking for ``budget`` episodes each (None: each run's suite count)."""
    key = lambda r: (r["suite"], r["protocol_hash"], r["task"])  # noqa: E731
    by_key = {key(r): r for r in runs_b}
    pairs = sorted(
        ((key(r), r, by_key[key(r)]) for r in runs_a if key(r) in by_key), key=lambda t: t[0]
    )
    if not pairs:
        raise ValueError("no task that both policies were run on (same suite and protocol)")
    a, b = [], []
    for _, run_a, run_b in pairs:
        for run, out in ((run_a, a), (run_b, b)):
            config = stored_config(run)
            out.append(_with_episodes(config, budget or config.protocol.episodes))
    return a, b
