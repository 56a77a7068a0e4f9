"""The pruners on hand-made curves: rungs in train seconds, seed means on the same seeds,
min_trials and margin, and the reference curve's seed spread."""
from __future__ import annotations

from orchestrator.run.prune import Against, Asha, Board, Median, PruneHook, interpolate
from orchestrator.spec.spend import PruneSpec


def test_interpolate_at_a_rung_between_log_lines():
    pts = [(0.5, 8.0), (1.5, 6.0)]
    assert interpolate(pts, 1.0) == 7.0 and interpolate(pts, 0.2) == 8.0 and interpolate(pts, 2.0) is None


def _board(values: dict[str, dict[int, float]], rung=1.0) -> Board:
    b = Board((rung,))
    for trial, seeds in values.items():
        for seed, v in seeds.items():
            assert b.add(trial, seed, rung, v) == [rung]
    return b


def test_asha_keeps_the_best_1_over_eta_and_waits_for_min_trials():
    asha = Asha(eta=2, min_trials=3, margin=0.0, metric="train_loss")
    b = _board({"a": {1: 1.0}, "b": {1: 2.0}})
    assert asha.judge(b, "b", 1.0) is None  # two trials: below min_trials, everyone goes on
    b.add("c", 1, 1.0, 3.0)
    d = asha.judge(b, "c", 1.0)
    assert d is not None and "best 1 of 3" in d.reason
    assert asha.judge(b, "a", 1.0) is None
    assert Asha(eta=2, min_trials=3, margin=2.5, metric="x").judge(b, "c", 1.0) is None  # within noise


def test_a_trial_is_compared_on_the_same_seeds_only():
    # c's seed 2 is bad luck on a seed the others never ran: its mean over {1, 2} has no peers
    b = _board({"a": {1: 1.0}, "b": {1: 1.1}, "c": {1: 1.05, 2: 9.0}})
    asha = Asha(eta=3, min_trials=2, margin=0.0, metric="train_loss")
    assert b.peers("c", 1.0) == {} and asha.judge(b, "c", 1.0) is None
    assert b.value("c", 1.0, frozenset({1})) == 1.05


def test_median_stops_a_trial_worse_than_the_others_median():
    b = _board({"a": {1: 1.0}, "b": {1: 2.0}, "c": {1: 3.0}, "d": {1: 2.5}})
    med = Median(min_trials=3, margin=0.0, metric="train_loss")
    assert med.judge(b, "d", 1.0) is not None  # median of a, b, c = 2.0
    assert med.judge(b, "b", 1.0) is None


def test_against_a_reference_allows_its_seed_spread_plus_margin():
    ref = {"1": [(0.0, 5.0), (2.0, 3.0)], "2": [(0.0, 5.4), (2.0, 3.4)]}  # at 1 s: 4.0 and 4.4
    a = Against(ref, margin=0.1, metric="train_loss", source="ref")
    mean, spread = a.at(1.0)
    assert abs(mean - 4.2) < 1e-9 and abs(spread - 0.2828) < 1e-3
    assert a.judge(_board({"ok": {1: 4.5}}), "ok", 1.0) is None  # within 4.2 + 0.28 + 0.1
    assert "worse than the reference" in a.judge(_board({"bad": {1: 4.7}}), "bad", 1.0).reason


def test_the_hook_judges_a_trial_once_when_a_seed_passes_a_rung():
    hook = PruneHook(PruneSpec(kind="asha", rungs_s=(1.0, 2.0), eta=2, min_trials=2))
    ev = lambda t, v: {"event": "step", "train_loss": v, "train_time_s": t}  # noqa: E731
    assert hook.report("a", 1, ev(0.5, 5.0)) is None and hook.report("a", 1, ev(1.5, 3.0)) is None
    assert hook.board.at[1.0]["a"][1] == 4.0  # interpolated at the rung
    d = hook.report("b", 1, ev(1.2, 6.0))
    assert d is not None and d.trial == "b" and d.rung_s == 1.0
    assert hook.report("b", 1, ev(2.5, 1.0)) is None  # decided: never judged again
    assert hook.report("a", 1, {"event": "val", "val_bpb": 1.0}) is None  # not the metric


def test_a_reused_trials_curve_is_on_the_board_for_the_trials_still_to_run():
    """A rerun after a partial earlier run: the finished trials' streamed curves (from MLflow)
    join the board, so a new trial is judged against them (issue 17: a rerun resumes)."""
    from types import SimpleNamespace

    from orchestrator.run.spend import Spend

    spec = PruneSpec(kind="asha", rungs_s=(1.0,), eta=2, min_trials=3)
    plan = SimpleNamespace(prune=spec, budget=None, reference=None)
    job = lambda name, lr: SimpleNamespace(identity=name, name=name, seed=1, ranks=1, stage=None,  # noqa: E731
                                           env={"LR": lr, "SEED": "1"})
    reused = {"a": SimpleNamespace(job=job("a", "0.1"), state="reused"),
              "b": SimpleNamespace(job=job("b", "0.2"), state="reused")}
    curves = {"a": {"train_loss": [(10, 3.0), (20, 2.0)], "curve_train_time_s": [(10, 0.5), (20, 1.5)]},
              "b": {"train_loss": [(10, 3.2), (20, 2.2)], "curve_train_time_s": [(10, 0.5), (20, 1.5)]}}
    new = SimpleNamespace(job=job("c", "0.3"), state="running")
    spend = Spend(plan, {**reused, "c": new})
    history = lambda out, key: curves[out.job.identity][key]  # noqa: E731
    assert [spend.known_curve(o, history) for o in reused.values()] == [2, 2]
    assert spend.hook.board.at[1.0][spend.trial(reused["a"].job)] == {1: 2.5}  # interpolated at the rung
    d = spend.report("c", {"event": "step", "train_loss": 9.0, "train_time_s": 1.2})
    assert d is not None and "best 1 of 3" in d.reason  # judged against the reused two
    fresh = Spend(plan, {"c": SimpleNamespace(job=job("c", "0.3"), state="running")})
    assert fresh.report("c", {"event": "step", "train_loss": 9.0, "train_time_s": 1.2}) is None  # alone: min_trials
