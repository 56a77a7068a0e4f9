"""The train_gpt.py log parser: the line grammar on synthetic lines, then every published log in the
reference record folders against its submission.json."""
from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from pathlib import Path

import pytest

from golf_core.logparse import LogEvent, LogParseError, parse_line, parse_log_file, summarize


# ---- the line grammar -------------------------------------------------------------------------

def test_train_line_upstream_form():
    ev = parse_line("step:12/20000 train_loss:3.4567 train_time:1234ms step_avg:102.83ms\n")
    assert ev == LogEvent("train", 12, 20000, None,
                          {"train_loss": 3.4567, "train_time_ms": 1234.0, "step_avg_ms": 102.83})


def test_train_line_bare_step_and_minutes():
    # the 2026-04 records: `N/M train_loss: X train_time: 9.0m tok/s: ...`
    ev = parse_line("4500/20000 train_loss: 2.2795 train_time: 9.0m tok/s: 6589531")
    assert (ev.kind, ev.step, ev.total_steps) == ("train", 4500, 20000)
    assert ev.values["train_loss"] == 2.2795
    assert ev.values["train_time_ms"] == pytest.approx(540000.0)
    assert ev.values["tok/s"] == 6589531


def test_val_lines_both_forms():
    ev = parse_line("step:0/20000 val_loss:6.9370 val_bpb:4.0978 train_time:0ms step_avg:0.01ms")
    assert (ev.kind, ev.step, ev.values["val_loss"], ev.values["val_bpb"]) == ("val", 0, 6.937, 4.0978)
    ev = parse_line("4932/20000 val_loss: 2.3570 val_bpb: 1.0770")
    assert (ev.kind, ev.step, ev.total_steps, ev.values["val_bpb"]) == ("val", 4932, 20000, 1.077)


@pytest.mark.parametrize("line, tag, loss, bpb, eval_ms", [
    ("final_int8_zlib_roundtrip val_loss:2.0727 val_bpb:1.2244 eval_time:1401ms",
     "final_int8_zlib_roundtrip", 2.0727, 1.2244, 1401.0),
    ("final_int8_zlib_roundtrip_exact val_loss:2.07269931 val_bpb:1.22436570",
     "final_int8_zlib_roundtrip_exact", 2.07269931, 1.2243657, None),
    ("final_int6_sliding_window val_loss:1.8939 val_bpb:1.1217 stride:64 eval_time:74066ms",
     "final_int6_sliding_window", 1.8939, 1.1217, 74066.0),
    ("legal_ttt_exact val_loss:1.88976776 val_bpb:1.11922988", "legal_ttt_exact", 1.88976776, 1.11922988, None),
    ("quantized_ttt_phased val_loss:2.32239991 val_bpb:1.06124613 eval_time:455128ms",
     "quantized_ttt_phased", 2.32239991, 1.06124613, 455128.0),
    ("quantized_sliding_window val_loss: 2.5 val_bpb: 1.25 eval_time: 12.5s",
     "quantized_sliding_window", 2.5, 1.25, 12500.0),
    ("DIAGNOSTIC post_ema val_loss:1.9196 val_bpb:1.1369 eval_time:1971ms", "DIAGNOSTIC post_ema", 1.9196, 1.1369, 1971.0),
    ("some_new_eval: val_bpb:0.9 val_loss:1.5", "some_new_eval", 1.5, 0.9, None),
])
def test_score_lines(line, tag, loss, bpb, eval_ms):
    ev = parse_line(line)
    assert (ev.kind, ev.tag, ev.values["val_loss"], ev.values["val_bpb"]) == ("score", tag, loss, bpb)
    assert ev.values.get("eval_time_ms") == eval_ms


def test_progress_lines_with_equals_are_not_scores():
    # an eval in flight reports `val_loss=` ; the tagged score line follows it
    ev = parse_line("ttt_sliding:done val_loss=1.889768 val_bpb=1.119230 elapsed=409.8s")
    assert ev.kind == "info"
    assert ev.values["elapsed_ms"] == pytest.approx(409800.0)


def test_size_info_and_nothing_lines():
    assert parse_line("Total submission size int8+zlib: 15863489 bytes") == LogEvent(
        "size", None, None, "Total submission size int8+zlib", {"bytes": 15863489.0})
    ev = parse_line("Serialized model int8+zlib: 15815847 bytes (payload:17178912 raw_torch:17224025)")
    assert (ev.kind, ev.tag, ev.values) == ("size", "Serialized model int8+zlib", {"bytes": 15815847.0})
    ev = parse_line("peak memory allocated: 10184 MiB reserved: 10200 MiB")
    assert ev.kind == "info" and ev.values == {"peak_mem_allocated_mib": 10184.0, "peak_mem_reserved_mib": 10200.0}
    ev = parse_line("stopping_early: wallclock_cap train_time: 599433ms step: 4932/20000")
    assert (ev.kind, ev.step, ev.total_steps, ev.values["train_time_ms"]) == ("info", 4932, 20000, 599433.0)
    assert parse_line("seed:1337").values == {"seed": 1337.0}
    # warmup counters are not training steps
    ev = parse_line("warmup_step: 3/20")
    assert ev is None or ev.step is None
    for nothing in ["", "   \n", "Hyperparameters:", "=====", "beginning TTT eval timer"]:
        assert parse_line(nothing) is None


SYNTHETIC = """\
seed:7
step:0/10 val_loss:7.0 val_bpb:4.0 train_time:0ms step_avg:0.01ms
step:1/10 train_loss:6.5 train_time:100ms step_avg:100.00ms
step:2/10 train_loss:nan train_time:200ms step_avg:100.00ms
step:10/10 train_loss:3.0 train_time:1000ms step_avg:100.00ms
step:10/10 val_loss:3.2 val_bpb:1.9 train_time:1000ms step_avg:100.00ms
peak memory allocated: 512 MiB reserved: 600 MiB
DIAGNOSTIC post_ema val_loss:3.1 val_bpb:1.8 eval_time:20ms
Serialized model: 4000 bytes
Total submission size: 5000 bytes
Total submission size int8+zlib: 3000 bytes
final_int8_zlib_roundtrip val_loss:3.3 val_bpb:1.95 eval_time:40ms
final_int8_zlib_roundtrip_exact val_loss:3.30001 val_bpb:1.95001
legal_ttt val_loss:3.0 val_bpb:1.7 eval_time:2500ms
legal_ttt_exact val_loss:3.00002 val_bpb:1.70002
DIAGNOSTIC after val_loss:9 val_bpb:9
"""


def test_summarize_synthetic_log():
    s = summarize(SYNTHETIC.splitlines())
    assert (s.val_bpb, s.val_loss, s.final_tag) == (1.70002, 3.00002, "legal_ttt_exact")  # diagnostics never final
    assert s.scores["final_int8_zlib_roundtrip_exact"] == (3.30001, 1.95001)
    assert s.scores["DIAGNOSTIC after"] == (9.0, 9.0)
    assert s.artifact_bytes == 3000  # the last `Total submission size`, not `Serialized model`
    assert (s.steps, s.train_time_s, s.step_avg_ms, s.peak_mem_mib, s.seed) == (10, 1.0, 100.0, 512.0, 7)
    assert s.eval_time_s == 2.5  # from `legal_ttt`, the line its `_exact` twin repeats
    assert [p[0] for p in s.curve_points] == [1, 2, 10] and math.isnan(s.curve_points[1][1])
    assert s.val_points == [(0, 7.0, 4.0), (10, 3.2, 1.9)]
    js = s.to_json()
    assert js["curve_points"][1] == [2, None]  # NaN is not JSON
    json.dumps(js, allow_nan=False)


def test_summarize_score_tag():
    s = summarize(SYNTHETIC.splitlines(), score_tag="final_int8_zlib_roundtrip_exact")
    assert (s.val_bpb, s.final_tag, s.eval_time_s) == (1.95001, "final_int8_zlib_roundtrip_exact", 0.04)
    s = summarize(SYNTHETIC.splitlines(), score_tag="no_such_tag")
    assert s.val_bpb is None and s.final_tag is None


def test_parse_log_file_errors(tmp_path):
    no_score = tmp_path / "train.log"
    no_score.write_text("step:1/10 train_loss:6.5 train_time:100ms step_avg:100.00ms\n")
    with pytest.raises(LogParseError, match=r"train\.log: no score line") as e:
        parse_log_file(no_score)
    assert "\n" not in str(e.value)
    binary = tmp_path / "model.ptz"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(LogParseError, match=r"model\.ptz: not UTF-8"):
        parse_log_file(binary)
    with pytest.raises(LogParseError, match=r"missing\.log: cannot read"):
        parse_log_file(tmp_path / "missing.log")
    good = tmp_path / "good.log"
    good.write_text(SYNTHETIC)
    with pytest.raises(LogParseError, match=r"good\.log: no score line tagged 'x' \(tags seen: DIAGNOSTIC"):
        parse_log_file(good, score_tag="x")
    assert parse_log_file(good).val_bpb == 1.70002


PATHOLOGICAL = {  # issue 20, case 3: each took seconds to minutes (quadratic backtracking) before
    "letter and spaces": "a" + " " * 2**20,
    "size label of spaces": "a" + " " * 2**20 + ": 12 bytesx",
    "score of digits": "x val_loss:" + "1" * 2**20 + "x val_bpb:1",
    "token of digits": "a:" + "1" * 2**20 + "q",
    "colon and spaces": "a:" + " " * 2**20,
    "step of digits": "step:" + "1" * 2**20,
}


def test_every_pattern_is_linear_on_megabyte_lines(monkeypatch):
    import time

    from golf_core import logparse

    monkeypatch.setattr(logparse, "MAX_LINE_CHARS", 2**21)  # the patterns themselves, whole 1 MB lines
    for name, line in PATHOLOGICAL.items():
        t0 = time.perf_counter()
        parse_line(line)
        took = time.perf_counter() - t0
        assert took < 5.0, f"{name}: {took:.1f} s"  # linear: ~0.3 s here; quadratic: hours


def test_a_log_of_megabyte_lines_parses_within_a_second(tmp_path):
    import time

    log = tmp_path / "train.log"
    log.write_text("\n".join([*PATHOLOGICAL.values(), "final val_loss:2.0 val_bpb:1.2", ""]))
    t0 = time.perf_counter()
    s = parse_log_file(log)
    took = time.perf_counter() - t0
    assert s.val_bpb == 1.2 and s.final_tag == "final"
    assert took < 1.0, f"{took:.2f} s"  # each line is parsed on its first MAX_LINE_CHARS


def test_parse_log_file_reads_regular_files_only_and_refuses_past_its_size(tmp_path, monkeypatch):
    """Issue 20, case 9: a symlink to /dev/zero read without bound (22 GB and a host OOM kill)."""
    import os
    import time

    from golf_core import logparse

    zero = tmp_path / "zero.log"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)  # opening it would block forever
    for p in (zero, fifo, tmp_path):
        t0 = time.perf_counter()
        with pytest.raises(LogParseError, match="not a regular file") as e:
            parse_log_file(p)
        assert time.perf_counter() - t0 < 1.0 and "\n" not in str(e.value)
    big = tmp_path / "big.log"
    big.write_text(SYNTHETIC)
    monkeypatch.setattr(logparse, "MAX_LOG_BYTES", 100)
    with pytest.raises(LogParseError, match=r"big\.log: [\d,]+ bytes, over the 100 a log may have"):
        parse_log_file(big)
    monkeypatch.setenv("GOLF_MAX_LOG_BYTES", str(10**6))
    assert parse_log_file(big).val_bpb == 1.70002


def test_golf_parse_log_refuses_a_link_to_dev_zero_at_once(tmp_path):
    import subprocess
    import sys
    import time

    zero = tmp_path / "zero.log"
    zero.symlink_to("/dev/zero")
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "parse-log", str(zero)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "not a regular file" in p.stderr and time.monotonic() - t0 < 30
    assert len(p.stderr.strip().splitlines()) == 1


# ---- the published logs ----------------------------------------------------------------------

_SEED_IN_NAME = re.compile(r"seed[_-]?(\d+)", re.IGNORECASE)


def _logs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix in (".log", ".txt") and p.is_file())


def _per_seed(sub: dict) -> dict[str, dict]:
    """seed -> {field: Decimal} from the shapes submission.json takes: `seed_results` (newest
    records) or `results.seeds` (#779)."""
    return sub.get("seed_results") or (sub.get("results") or {}).get("seeds") or {}


def _close(parsed: float, claimed: Decimal) -> bool:
    # a claim rounded to d decimals holds if the parsed value rounds to it
    half_ulp = Decimal(5) * Decimal(10) ** (claimed.as_tuple().exponent - 1)
    return abs(Decimal(repr(parsed)) - claimed) <= half_ulp


def test_every_reference_log_matches_its_submission(reference_dir):
    checked = parsed = 0
    for folder in reference_dir.record_dirs():
        sub = json.loads((folder / "submission.json").read_text(), parse_float=Decimal)
        per_seed = _per_seed(sub)
        logs = _logs(folder)
        assert logs, folder.name
        summaries = {}
        for log in logs:
            s = parse_log_file(log)
            parsed += 1
            assert s.curve_points and s.steps and s.artifact_bytes and s.train_time_s, log.name
            m = _SEED_IN_NAME.search(log.stem)
            seed = m.group(1) if m else (str(s.seed) if len(logs) == 1 else None)  # else an ablation log
            if seed is None:
                continue
            assert s.seed is None or str(s.seed) == seed, log.name  # the log's own seed line agrees
            summaries[seed] = s
            claim = per_seed.get(seed)
            if claim is None and len(logs) == 1 and "val_bpb" in sub:
                claim = {"val_bpb": sub["val_bpb"], "val_loss": sub.get("val_loss")}
            if claim is None:
                continue
            assert _close(s.val_bpb, claim["val_bpb"]), (log.name, s.val_bpb, claim["val_bpb"])
            if claim.get("val_loss") is not None:
                assert _close(s.val_loss, claim["val_loss"]), log.name
            for field, got in [("artifact_bytes", s.artifact_bytes), ("steps", s.steps),
                               ("step_avg_ms", s.step_avg_ms), ("eval_time_s", s.eval_time_s)]:
                # step_avg_ms is not printed by every family (#1797's): compare where the log states it
                if field in claim and (got is not None or field in ("artifact_bytes", "steps")):
                    assert got is not None and _close(float(got), Decimal(claim[field])), (log.name, field, got)
            checked += 1
        if not per_seed and len(summaries) > 1 and "val_bpb" in sub:
            # only a mean is published (2026-03-23): the seeds' mean rounds to it
            mean = sum(s.val_bpb for s in summaries.values()) / len(summaries)
            assert _close(mean, sub["val_bpb"]), (folder.name, mean)
            checked += 1
    assert checked >= 1 and parsed >= checked
