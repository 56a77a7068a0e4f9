"""The Markdown leaderboard of a sweep's parent run and experiment: legal configurations only,
best first, mean ± std and seed count, the gap to the best imported record."""
from __future__ import annotations

from types import SimpleNamespace

from orchestrator.tracking.leaderboard import leaderboard_markdown


def _g(column, label, mean, std, n, compliant=True):
    return SimpleNamespace(column=column, label=label, mean=mean, std=std, n=n, compliant=compliant)


def test_leaderboard_is_legal_only_best_first_with_the_gap_to_the_record():
    groups = [_g("normalized", "alpha_base=0.3,alpha_range=0.4", 1.06, 0.001, 3),
              _g("hashed_target", "alpha_base=0.1", 0.5, 0.01, 3, compliant=False),
              _g("normalized", "alpha_base=0.1,alpha_range=0.4", 1.05512, 0.00036, 3),
              _g("model", "", 1.07, None, 1), _g("none", "", None, None, 0)]
    md = leaderboard_markdown(groups, {"source": "2026-05-01_X", "mean": 1.05651, "std": 0.00036, "n": 3}, top_n=2)
    lines = md.splitlines()
    assert lines[2] == "| # | what | configuration | val_bpb | seeds |"
    assert lines[4] == "| 1 | normalized | alpha_base=0.1,alpha_range=0.4 | 1.05512 ± 0.00036 | 3 |"
    assert lines[5] == "| 2 | normalized | alpha_base=0.3,alpha_range=0.4 | 1.06000 ± 0.00100 | 3 |"
    assert "hashed_target" not in md and "1 more legal configuration(s)" in md
    assert md.endswith("Best imported record: 2026-05-01_X 1.05651 ± 0.00036 (3 seeds); "
                       "the winner is 0.00139 bpb below it.")
    assert leaderboard_markdown([groups[1]]) == "**Leaderboard:** no legal score yet."
