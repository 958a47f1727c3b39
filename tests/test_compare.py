"""`vlabench compare A B`: episodes paired by suite, protocol, task, index, seed, init state."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import CLI
from test_report import PUSHT, add_run

from vlabench import stats
from vlabench.report.compare import (
    CompareError,
    compare,
    exact_difference_interval,
    pairs_needed,
)
from vlabench.store import Store, open_store

# outcomes per task, 20 episodes each: A clearly better on t1, equal on t2, slightly on t3
A = {"t1": "s" * 18 + "f" * 2, "t2": "s" * 10 + "f" * 10, "t3": "s" * 12 + "f" * 8}
B = {"t1": "s" * 4 + "f" * 16, "t2": "f" * 10 + "s" * 10, "t3": "s" * 10 + "f" * 10}


def build(store: Store) -> None:
    for task in A:
        add_run(store, "alpha", "s", task, PUSHT, "aaaaaa11", A[task])
        add_run(store, "beta", "s", task, PUSHT, "aaaaaa11", B[task])
    # beta under another protocol: nothing of alpha to pair with
    add_run(store, "beta", "s", "t1", {"name": "long"}, "ffffff99", "s" * 5)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    with open_store(f"sqlite:///{tmp_path / 'cmp.db'}") as s:
        build(s)
        yield s


def test_per_task_tables_tests_and_intervals(store: Store) -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    result = compare(store, "alpha", "beta")
    assert [t.task for t in result.tasks] == ["t1", "t2", "t3"]
    t1, t2, t3 = result.tasks
    assert (t1.table.both, t1.table.only_a, t1.table.only_b, t1.table.neither) == (4, 14, 0, 2)
    assert (t2.table.both, t2.table.only_a, t2.table.only_b, t2.table.neither) == (0, 10, 10, 0)
    assert t1.difference == pytest.approx(0.7) and t2.difference == 0.0
    for t in result.tasks:
        table = [[t.table.both, t.table.only_a], [t.table.only_b, t.table.neither]]
        assert t.p_value == pytest.approx(mcnemar(table, exact=True).pvalue)
        assert (t.low, t.high) == exact_difference_interval(t.table)
        assert t.significant == (t.low > 0 or t.high < 0)  # one rule: test and interval agree
    assert t1.significant and not t2.significant and not t3.significant
    assert result.table.n == 60 and result.unpaired_b == 5 and result.unpaired_a == 0
    assert result.difference == pytest.approx((0.7 + 0.0 + 0.1) / 3)
    assert result.low < result.difference < result.high
    assert result.p_value == pytest.approx(stats.mcnemar_exact(26, 10))


def test_verdict_in_plain_language(store: Store) -> None:
    verdict = compare(store, "alpha", "beta").verdict()
    assert re.fullmatch(
        r"alpha better than beta on 1 of 3 tasks at 95%; overall \+26\.7 pts "
        r"\[\+\d+\.\d, \+\d+\.\d\] \(alpha better\), McNemar p=0\.0\d+ over 60 pairs",
        verdict,
    ), verdict
    reverse = compare(store, "beta", "alpha").verdict()
    assert reverse.startswith("beta better than alpha on 0 of 3 tasks at 95%, worse on 1;")
    assert "overall -26.7 pts" in reverse and "(alpha better)" in reverse


def test_nothing_to_pair_and_unknown_policies(store: Store) -> None:
    add_run(store, "gamma", "other", "t1", PUSHT, "aaaaaa11", "ss")
    with pytest.raises(CompareError, match="no paired episodes"):
        compare(store, "alpha", "gamma")
    with pytest.raises(CompareError, match=r"no runs of policy 'nobody'.*alpha, beta"):
        compare(store, "alpha", "nobody")
    with pytest.raises(CompareError, match="two different policies"):
        compare(store, "alpha", "alpha")
    add_run(store, "alpha", "s", "t1", PUSHT, "aaaaaa11", "ss", checkpoint="c2",
            checkpoint_hash="c2c2c2c2c2")
    with pytest.raises(CompareError, match="choose one of: alpha@"):
        compare(store, "alpha", "beta")


def test_errored_episodes_count_as_failures(store: Store) -> None:
    add_run(store, "delta", "s", "t1", PUSHT, "aaaaaa11", "e" * 20)
    [t1] = compare(store, "alpha", "delta").tasks
    assert t1.table.rate_b == 0.0 and t1.table.n == 20


def test_cli_compare(cli: CLI) -> None:
    with cli.store() as s:
        build(s)
    data = json.loads(cli("compare", "alpha", "beta", "--suite", "s", "--json").stdout)
    assert data["overall"]["pairs"] == 60
    assert data["verdict"].startswith("alpha better than beta on 1 of 3 tasks at 95%")
    assert [t["significant"] for t in data["tasks"]] == [True, False, False]
    failed = cli("compare", "alpha", "zeta", ok=False)
    assert failed.returncode == 2 and "no runs of policy 'zeta'" in failed.stderr


def test_single_task_overall_uses_newcombe(store: Store) -> None:
    assert len(compare(store, "alpha", "beta", suite="s").tasks) == 3
    add_run(store, "solo", "s", "t1", PUSHT, "aaaaaa11", "s" * 20)
    single = compare(store, "solo", "beta")
    [t1] = single.tasks
    assert (single.difference, single.low, single.high) == (t1.difference, t1.low, t1.high)
    assert single.as_dict()["overall"]["interval"].startswith("exact, matching McNemar")


def test_exact_interval_agrees_with_the_test_on_every_table() -> None:
    """The decision (exact McNemar p < alpha) and the interval shown (excluding 0) never
    disagree, on every 2x2 table of up to 12 pairs, at three levels."""
    for confidence in (0.9, 0.95, 0.99):
        for n in range(1, 13):
            for only_a in range(n + 1):
                for only_b in range(n + 1 - only_a):
                    table = stats.PairedTable(0, only_a, only_b, n - only_a - only_b)
                    low, high = exact_difference_interval(table, confidence)
                    decides = stats.mcnemar_exact(only_a, only_b) < 1 - confidence
                    assert decides == (low > 1e-12 or high < -1e-12), (table, confidence)
                    assert low <= table.difference <= high
    assert pairs_needed(0.95) == 6 and stats.mcnemar_exact(5, 0) == 0.0625
    assert stats.mcnemar_exact(6, 0) < 0.05


def five_pairs(store: Store) -> None:
    """metaworld-expert vs random: 10 tasks, 5 paired episodes each, always vs never."""
    for i in range(10):
        add_run(store, "expert", "mt10", f"task-{i}", PUSHT, "aaaaaa11", "s" * 5)
        add_run(store, "random", "mt10", f"task-{i}", PUSHT, "aaaaaa11", "f" * 5)


def test_verdict_agrees_with_intervals_and_marks_too_few_pairs(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'five.db'}") as s:
        five_pairs(s)
        result = compare(s, "expert", "random")
    for t in result.tasks:
        assert t.table.n == 5 and t.p_value == 0.0625 and not t.significant and t.too_few
        assert t.low <= 0 < t.high  # the interval beside it does not exclude 0 either
    verdict = result.verdict()
    assert verdict.startswith("expert better than random on 0 of 10 tasks at 95%;")
    assert "10 of 10 tasks have too few pairs for the test ever to decide" in verdict
    assert "needs >= 6 pairs per task" in verdict
    # pooled over tasks, 50 discordant pairs one way: the test and its interval both decide
    assert result.significant and result.low > 0 and "(expert better)" in verdict


def test_cli_compare_prints_rule_marks_and_verdict_once(cli: CLI) -> None:
    with cli.store() as s:
        five_pairs(s)
    cli.env["COLUMNS"] = "80"  # a non-TTY console: rich takes its width from COLUMNS
    out = cli("compare", "expert", "random").stdout
    assert out.count("better than random on") == 1, out
    words = " ".join(out.split())  # the legend wraps at 80 columns
    assert "rule: a difference counts where exact McNemar p < 0.05" in words
    assert "fewer than 6 pairs, too few for the test ever to decide" in words
    assert out.count("0.0625 †") == 10
    for line in out.splitlines():
        assert len(line) <= 80, line
    assert out.count("+100.0 [-4.4, +100.0]") == 10, out
