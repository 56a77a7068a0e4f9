"""A token_stats.npz of the wrong shape (issue 7): one StatsError / MixError naming the file,
and `golf mix` / `golf audit` say it in one line with exit 2."""
from __future__ import annotations

import json

import numpy as np
import pytest

from golf_core.cli import main
from golf_core.eval.stats import StatsError, load_stats

N = 200


def _stats(**over):
    pos = np.arange(1, N + 1)
    s = {"target": pos % 64, "prev": (pos - 1) % 64, "bytes": np.ones(N, np.int16), "p_model": np.full(N, 0.1),
         "entropy": np.full(N, 2.0, np.float32), "chunk": np.zeros(N, np.int32), "pos": pos}
    s.update(over)
    return {k: v for k, v in s.items() if v is not None}


CASES = {
    "pos_scalar": _stats(pos=np.array(5)),
    "p_model_2d": _stats(p_model=np.full((N, 2), 0.1)),
    "target_strings": _stats(target=np.array(["a"] * N)),
    "short_bytes": _stats(bytes=np.ones(N - 1, np.int16)),
    "audit_rows": _stats(audit_idx=np.array([1, 2]), audit_p_model=np.full((3, 64), 1 / 64)),
    "audit_out_of_range": _stats(audit_idx=np.array([N + 5]), audit_p_model=np.full((1, 64), 1 / 64)),
}


def _write(d, stats=None, raw: bytes | None = None):
    d.mkdir()
    p = d / "token_stats.npz"
    if raw is not None:
        p.write_bytes(raw)
    else:
        np.savez(p, **stats)
    (d / "result.json").write_text(json.dumps({"val_bpb": 1.0, "spec": {}}))
    return p


@pytest.mark.parametrize("case", sorted(CASES))
def test_wrong_shape_is_one_stats_error_naming_the_file(tmp_path, case):
    p = _write(tmp_path / case, CASES[case])
    with pytest.raises(StatsError) as ei:
        load_stats(p)
    assert str(ei.value).startswith(f"{p}: ") and "\n" not in str(ei.value)


def test_pickled_and_truncated_files_are_refused_without_unpickling(tmp_path):
    obj = _stats(target=np.array([object()] * N, dtype=object))
    p = tmp_path / "obj.npz"
    np.savez(p, **obj)
    with pytest.raises(StatsError, match="obj.npz: not a readable"):
        load_stats(p)
    good = tmp_path / "good.npz"
    np.savez(good, **_stats())
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(StatsError, match="cut.npz: not a readable"):
        load_stats(cut)


@pytest.mark.parametrize("command", ["mix", "audit"])
@pytest.mark.parametrize("case", ["pos_scalar", "p_model_2d", "truncated"])
def test_golf_mix_and_audit_on_bad_stats_say_one_line_exit_2(tmp_path, capsys, command, case):
    d = tmp_path / "run"
    if case == "truncated":
        good = tmp_path / "good.npz"
        np.savez(good, **_stats())
        p = _write(d, raw=good.read_bytes()[:300])
    else:
        p = _write(d, CASES[case])
    grid = tmp_path / "grid.yaml"
    grid.write_text("mixer:\n  mode: normalized\n  buckets: [256]\n")
    args = ["mix", str(d), "--grid", str(grid)] if command == "mix" else ["audit", str(d)]
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and str(p) in err[0], err
