"""Parse the logs a parameter-golf `train_gpt.py` prints, whichever record family wrote them.

The scripts share a line grammar rather than a format: a progress line is a step prefix
(`step:N/M` or, in the 2026-04 records, a bare `N/M`) followed by `key:value` tokens (`key: value`
in newer scripts); a score line is `<tag> val_loss:X val_bpb:Y [more tokens]`, the tag naming how
the number was obtained (`final_int8_zlib_roundtrip_exact`, `legal_ttt_exact`,
`quantized_ttt_phased`, ...); sizes are `<label>: N bytes`. We parse that grammar, so logs of
records we have never seen parse too, and summarize a log into the fields golf records for a
training job (val_bpb, artifact bytes, steps, times, curves).

Pure Python on purpose: the worker streams a live script's stdout through `parse_line`, and
`golf parse-log` / `golf import` read finished logs with `parse_log_file`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from golf_core.errors import UserError

# Every pattern here is linear in the line: no two adjacent quantifiers can take the same characters
# (`\d+\.?\d*` could, and a 20 KB run of digits then took 37 s to fail; issue 20), and the size line,
# whose label is free text, is split at its first colon instead of matched by a lazy `[^:]*?\s*:`.
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)"
# a step prefix: `step:12/20000 ...` (upstream baseline and most records) or `12/20000 ...` (#1797's
# family, the 2026-04 records)
_STEP_PREFIX = re.compile(r"^\s*(?:step:\s*)?(\d+)/(\d+)(?=\s|$)")
# one `key:value` or `key: value` token; `=` too (`ttt:done val_loss=1.12 elapsed=370.9s`)
_TOKEN = re.compile(r"(?<![\w/.\-])([A-Za-z_][\w/.\-]*)(:|=)[ \t]*(\S+)")
_VALUE_UNIT = re.compile(rf"^({_NUM})(ms|s|m|MiB|GiB|%|x)?,?$")
_STEP_VALUE = re.compile(r"^(\d+)/(\d+),?$")
# score lines use the colon form only: `=`-form lines are progress reports of an eval in flight
# (`ttt_sliding:done val_loss=... val_bpb=...`), printed before the tagged score they precede
_SCORE_LOSS = re.compile(rf"(?<![\w.])val_loss:[ \t]*({_NUM})(?=\s|$)", re.IGNORECASE)
_SCORE_BPB = re.compile(rf"(?<![\w.])val_bpb:[ \t]*({_NUM})(?=\s|$)", re.IGNORECASE)
_SIZE_LABEL = re.compile(r"\s*[A-Za-z]")  # the label before the first colon starts with a letter
_SIZE_VALUE = re.compile(r"\s*(\d+)\s+bytes\b")  # after it: `N bytes`
_PEAK = re.compile(
    r"^\s*peak memory allocated:\s*(\d+(?:\.\d+)?)\s*MiB(?:\s+reserved:\s*(\d+(?:\.\d+)?)\s*MiB)?",
    re.IGNORECASE,
)
# A line is parsed on its first 64 KiB (the log file keeps it whole): upstream's longest lines are a
# few hundred characters, and with linear patterns this bounds one line's cost to milliseconds.
MAX_LINE_CHARS = 64 * 1024
# `golf parse-log` / `golf import` read a regular file of at most this size (upstream's logs are
# under 1 MB); GOLF_MAX_LOG_BYTES raises it.
MAX_LOG_BYTES = 64 * 1024 * 1024
_TIME_TO_MS = {"ms": 1.0, "s": 1000.0, "m": 60000.0}


class LogParseError(UserError):
    """A log that cannot be read or has no score line; the message is one line naming the file."""


@dataclass(frozen=True)
class LogEvent:
    """One parsed line. `values` holds the numeric tokens; times are in `<key>_ms` (milliseconds)."""

    kind: str  # "train" | "val" | "score" | "size" | "info"
    step: int | None = None
    total_steps: int | None = None
    tag: str | None = None
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class LogSummary:
    val_bpb: float | None = None
    val_loss: float | None = None
    final_tag: str | None = None
    scores: dict[str, tuple[float, float]] = field(default_factory=dict)
    artifact_bytes: int | None = None
    steps: int | None = None
    train_time_s: float | None = None
    step_avg_ms: float | None = None
    eval_time_s: float | None = None
    peak_mem_mib: float | None = None
    curve_points: list[tuple[int, float]] = field(default_factory=list)
    val_points: list[tuple[int, float, float]] = field(default_factory=list)
    seed: int | None = None  # the log's own `seed:N` line, when it prints one

    def to_json(self) -> dict:
        out = asdict(self)
        out["scores"] = {tag: [loss, bpb] for tag, (loss, bpb) in self.scores.items()}
        out["curve_points"] = [[s, v] for s, v in self.curve_points]
        out["val_points"] = [[s, loss, b] for s, loss, b in self.val_points]
        # JSON has no NaN: a diverged loss is reported as null
        return _json_safe(out)


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def _tokens(text: str) -> tuple[dict[str, float], int | None, int | None]:
    """Numeric `key:value` tokens of `text`; a `step:N/M` token gives (step, total)."""
    values: dict[str, float] = {}
    step = total = None
    for key, _sep, raw in _TOKEN.findall(text):
        key = key.lower()
        if key == "step" and (m := _STEP_VALUE.match(raw)):
            step, total = int(m.group(1)), int(m.group(2))
            continue
        m = _VALUE_UNIT.match(raw)
        if not m:
            continue
        number, unit = float(m.group(1)), (m.group(2) or "")
        if unit in _TIME_TO_MS:  # upstream's `train_time:600038ms`, #1797's `train_time: 9.0m`
            values[f"{key}_ms"] = number * _TIME_TO_MS[unit]
        elif unit == "MiB":
            values[f"{key}_mib"] = number
        elif unit == "GiB":
            values[f"{key}_mib"] = number * 1024
        else:
            values[key] = number
    return values, step, total


def parse_line(line: str) -> LogEvent | None:
    """Classify one log line; None for a line that carries nothing (blank, prose, tables)."""
    line = line[:MAX_LINE_CHARS].rstrip("\r\n")
    if not line.strip():
        return None
    prefix = _STEP_PREFIX.match(line)
    if prefix:
        step, total = int(prefix.group(1)), int(prefix.group(2))
        values, _, _ = _tokens(line[prefix.end():])
        if "val_loss" in values and "val_bpb" in values:
            return LogEvent("val", step, total, None, values)
        if "train_loss" in values:
            return LogEvent("train", step, total, None, values)
        return LogEvent("info", step, total, None, values)
    loss, bpb = _SCORE_LOSS.search(line), _SCORE_BPB.search(line)
    if loss and bpb:
        tag = line[: min(loss.start(), bpb.start())].strip().rstrip(":").strip() or None
        values, step, total = _tokens(line)
        values["val_loss"], values["val_bpb"] = float(loss.group(1)), float(bpb.group(1))
        return LogEvent("score", step, total, tag, values)
    label, colon, rest = line.partition(":")
    if colon and _SIZE_LABEL.match(label) and (size := _SIZE_VALUE.match(rest)):
        return LogEvent("size", None, None, label.strip(), {"bytes": float(size.group(1))})
    peak = _PEAK.match(line)
    if peak:
        values = {"peak_mem_allocated_mib": float(peak.group(1))}
        if peak.group(2):
            values["peak_mem_reserved_mib"] = float(peak.group(2))
        return LogEvent("info", None, None, "peak memory", values)
    values, step, total = _tokens(line)
    if not values and step is None:
        return None
    tag = line.split(":", 1)[0].strip() if ":" in line else None
    return LogEvent("info", step, total, tag, values)


def _is_diagnostic(tag: str | None) -> bool:
    # `DIAGNOSTIC post_ema`, `diagnostic quantized`: scores the scripts print before the real one,
    # explicitly not the submission's number
    return bool(tag) and tag.split()[0].lower() == "diagnostic"


def summarize(lines: Iterable[str], score_tag: str | None = None,
              on_event: Callable[[LogEvent], None] | None = None) -> LogSummary:
    """Fold a log into one summary. The score is the last score line (diagnostics excepted), or the
    last line tagged `score_tag`; with a `score_tag` that never appears, val_bpb is None.
    `on_event` sees each parsed line as it is folded (a live job's progress: each line parsed once)."""
    scores: dict[str, tuple[float, float]] = {}
    eval_ms_by_tag: dict[str | None, float] = {}
    final: LogEvent | None = None
    curve: list[tuple[int, float]] = []
    val_points: list[tuple[int, float, float]] = []
    artifact = steps = seed = None
    train_time_ms = step_avg = peak = total_eval_ms = None
    for line in lines:
        ev = parse_line(line)
        if ev is None:
            continue
        if on_event is not None:
            on_event(ev)
        v = ev.values
        if ev.kind == "score":
            if ev.tag is not None:
                scores[ev.tag] = (v["val_loss"], v["val_bpb"])
            if "eval_time_ms" in v:
                eval_ms_by_tag[ev.tag] = v["eval_time_ms"]
            if (ev.tag == score_tag) if score_tag is not None else not _is_diagnostic(ev.tag):
                final = ev
            continue
        if ev.kind == "size":
            if ev.tag and ev.tag.lower().startswith("total submission size"):
                artifact = int(v["bytes"])
            continue
        if ev.kind == "train":
            curve.append((ev.step, v["train_loss"]))
        elif ev.kind == "val":
            val_points.append((ev.step, v["val_loss"], v["val_bpb"]))
        if ev.step is not None and ev.total_steps is not None:
            steps = ev.step
        if "train_time_ms" in v:
            train_time_ms = v["train_time_ms"]
        if "step_avg_ms" in v:
            step_avg = v["step_avg_ms"]
        if "peak_mem_allocated_mib" in v:
            peak = v["peak_mem_allocated_mib"]
        if "total_eval_time_ms" in v:
            total_eval_ms = v["total_eval_time_ms"]
        if seed is None and "seed" in v and v["seed"].is_integer():
            seed = int(v["seed"])
    eval_ms = None
    if final is not None:
        # `X_exact` repeats the score of the `X` line just before it at full precision, without
        # its eval_time (upstream's final_int8_zlib_roundtrip / _exact pair)
        base = final.tag.removesuffix("_exact") if final.tag else None
        eval_ms = final.values.get("eval_time_ms", eval_ms_by_tag.get(base, total_eval_ms))
    return LogSummary(
        val_bpb=final.values["val_bpb"] if final else None,
        val_loss=final.values["val_loss"] if final else None,
        final_tag=final.tag if final else None,
        scores=scores,
        artifact_bytes=artifact,
        steps=steps,
        train_time_s=train_time_ms / 1000 if train_time_ms is not None else None,
        step_avg_ms=step_avg,
        eval_time_s=eval_ms / 1000 if eval_ms is not None else None,
        peak_mem_mib=peak,
        curve_points=curve,
        val_points=val_points,
        seed=seed,
    )


def _max_log_bytes() -> int:
    import os

    try:
        return int(os.environ.get("GOLF_MAX_LOG_BYTES", MAX_LOG_BYTES))
    except ValueError:
        return MAX_LOG_BYTES


def _lines(path: Path):
    """The lines of the regular file at `path`, decoded as UTF-8, read as a stream (one line of at most
    MAX_LINE_CHARS + 1 bytes at a time, so a file without newlines is not read whole)."""
    import os
    import stat

    limit = _max_log_bytes()
    try:
        st = os.stat(path)  # follows a symlink: a link to /dev/zero is a character device
        if not stat.S_ISREG(st.st_mode):
            raise LogParseError(f"{path}: not a regular file (a log is read only from a plain file)")
        if st.st_size > limit:
            raise LogParseError(f"{path}: {st.st_size:,} bytes, over the {limit:,} a log may have "
                                "(GOLF_MAX_LOG_BYTES raises it)")
        f = open(path, "rb")
    except OSError as e:
        raise LogParseError(f"{path}: cannot read: {e.strerror or e}") from None
    with f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # swapped between the stat and the open
            raise LogParseError(f"{path}: not a regular file (a log is read only from a plain file)")
        offset, skipping = 0, False
        while True:
            try:
                raw = f.readline(MAX_LINE_CHARS + 1)
            except OSError as e:
                raise LogParseError(f"{path}: cannot read: {e.strerror or e}") from None
            if not raw:
                return
            start, offset = offset, offset + len(raw)
            if offset > limit:  # the file grew while read
                raise LogParseError(f"{path}: over the {limit:,} bytes a log may have (GOLF_MAX_LOG_BYTES raises it)")
            continuing, skipping = skipping, not raw.endswith(b"\n") and len(raw) > MAX_LINE_CHARS
            if continuing:  # the rest of an overlong line: not parsed
                continue
            if skipping:  # an overlong line's head, maybe cut inside a character
                yield raw.decode("utf-8", errors="replace")
                continue
            try:
                yield from raw.decode("utf-8").splitlines()
            except UnicodeDecodeError as e:
                raise LogParseError(f"{path}: not UTF-8 text (byte {start + e.start})") from None


def parse_log_file(path: str | Path, score_tag: str | None = None) -> LogSummary:
    """Summarize the log at `path`; LogParseError (one line, naming the file) when it is not a
    regular file, is over MAX_LOG_BYTES, cannot be read, is not UTF-8 text, or has no score line."""
    path = Path(path)
    summary = summarize(_lines(path), score_tag=score_tag)
    if summary.val_bpb is None:
        if score_tag is not None:
            seen = ", ".join(summary.scores) or "none"
            raise LogParseError(f"{path}: no score line tagged {score_tag!r} (tags seen: {seen})")
        raise LogParseError(f"{path}: no score line ('<tag> val_loss:X val_bpb:Y')")
    return summary
