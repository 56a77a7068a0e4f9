"""`golf check RECORD_DIR...`: the checks maintainers apply to a record folder before merging it,
as a checklist (shared/CONTEXT.md, "The challenge"; PRs #1956, #2130, #2146):

- every seed's artifact <= 16,000,000 bytes; train <= 600 s (upstream checks the clock after each
  step: two average steps of slack); eval <= 600 s;
- the data the log states: 80 train shards, the validation token count of its tokenizer;
- a log for every seed submission.json lists, and submission.json's per-seed values agree with
  the logs (val_bpb, artifact bytes) and its mean with the seeds;
- train_gpt.py present, and `bytes_code` (when stated) its size;
- a README command golf can run (orchestrator.records.folder.readme_run);
- the statistics against the previous best: p < 0.25 as the leaderboard practised (PR #1902),
  p < 0.01 as its README writes (reported; not a failure on its own).

Every check is a line PASS / FAIL / WARN (WARN: the folder does not state the number, so it
cannot be judged). Nothing here raises on a bad folder: a failure is a line.
"""
from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from golf_core import rules
from golf_core.logparse import LogParseError, parse_log_file
from orchestrator.records import stats as S
from orchestrator.records.folder import LOG_SUFFIXES, claim_of, readme_run
from orchestrator.records.judge import RULINGS, choose_score, matches_claim

__all__ = ["CheckLine", "FolderCheck", "VAL_TOKENS", "check_folder"]

TRAIN_SHARDS = 80
# validation tokens of the FineWeb val split per tokenizer (the first 50,000 documents); the
# CaseOps count is the #1797 / #1855 / #2130 truncation their READMEs state
VAL_TOKENS = {
    "fineweb_1024_bpe": 62_021_632,
    "fineweb_8192_bpe_lossless_caps_caseops_v1_reserved": 47_851_520,
}
_SEED_IN_NAME = re.compile(r"seed[_-]?(\d+)", re.IGNORECASE)
_SHARDS = re.compile(r"train_shards[:=]\s*(\d+)")
_VAL_TOKENS = re.compile(r"(?:\bval_tokens[:=]\s*|val_loader:shards\b.*?\btokens:)(\d+)")
_TOKENIZER = re.compile(r"tokenizer_path[:=]\s*(\S+)")


@dataclass(frozen=True)
class CheckLine:
    status: str  # PASS | FAIL | WARN
    name: str
    detail: str

    def __str__(self) -> str:
        return f"{self.status}  {self.name}: {self.detail}"


@dataclass
class FolderCheck:
    path: Path
    lines: list[CheckLine] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(c.status == "FAIL" for c in self.lines)

    def add(self, ok: bool | None, name: str, detail: str) -> None:
        self.lines.append(CheckLine("PASS" if ok else "WARN" if ok is None else "FAIL", name, detail))


def _seeds_listed(sub: dict) -> list[int]:
    out: list[int] = []
    seeds = sub.get("seeds")
    if isinstance(seeds, list):
        out += [int(s) for s in seeds if isinstance(s, int) and not isinstance(s, bool)]
    claim = claim_of(sub) or {}
    out += [s for s in (claim.get("val_bpb") or {}) if s not in out]
    return out


def _per_seed_field(sub: dict, seed: int, key: str):
    results = sub.get("results") if isinstance(sub.get("results"), dict) else {}
    for src in (sub.get("seed_results"), results.get("seeds")):
        if isinstance(src, dict) and isinstance(src.get(str(seed)), dict):
            return rules.as_number(src[str(seed)].get(key))
    return None


def _logs(folder: Path) -> tuple[dict[int, Path], list[str]]:
    """seed -> its log (by the seed in the name, else the log's own seed line); notes on the rest."""
    found: dict[int, Path] = {}
    notes = []
    files = sorted(x for x in folder.iterdir() if x.is_file() and x.suffix in LOG_SUFFIXES)
    named = [p for p in files if _SEED_IN_NAME.search(p.stem)]
    for p in named or files:  # a folder that names its seed logs: the others are ablations or notes
        m = _SEED_IN_NAME.search(p.stem)
        seed = int(m.group(1)) if m else None
        if seed is None:
            try:
                seed = parse_log_file(p).seed
            except LogParseError:
                continue
        if seed is not None and seed not in found:
            found[seed] = p
        elif seed is not None:
            notes.append(f"{p.name} is a second log of seed {seed}")
    return found, notes


def _data_facts(text: str) -> tuple[int | None, int | None, str | None]:
    shards = _SHARDS.search(text)
    val = _VAL_TOKENS.search(text)
    tok = _TOKENIZER.search(text)
    name = Path(tok.group(1)).stem if tok else None
    return (int(shards.group(1)) if shards else None, int(val.group(1)) if val else None, name)


def check_folder(path: str | Path, best_bpb: float | None = None) -> FolderCheck:
    """The checklist of one record folder. `best_bpb`: the previous best to beat (default: the
    folder's comparison_baseline_bpb, else orchestrator.records.stats.DEFAULT_BEST_BPB).
    Never raises on a folder's content: what cannot be read is a FAIL line."""
    try:
        return _check_folder(Path(path), best_bpb)
    except (OSError, ValueError, TypeError, KeyError, ZeroDivisionError) as e:
        fc = FolderCheck(Path(path))
        fc.add(False, "folder", f"cannot be checked: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return fc


def _check_folder(folder: Path, best_bpb: float | None) -> FolderCheck:
    fc = FolderCheck(folder)
    if not folder.is_dir():
        fc.add(False, "folder", "no such directory")
        return fc
    sub: dict = {}
    sub_path = folder / "submission.json"
    try:
        sub = json.loads(sub_path.read_text(encoding="utf-8"))
        if not isinstance(sub, dict):
            raise ValueError("not a JSON object")
        fc.add(True, "submission.json", "readable")
    except FileNotFoundError:
        fc.add(False, "submission.json", "missing")
    except (ValueError, UnicodeDecodeError) as e:
        fc.add(False, "submission.json", f"not valid JSON ({str(e).splitlines()[0]})")
        sub = {}

    # ---- logs for every seed ------------------------------------------------------------------
    logs, notes = _logs(folder)
    listed = _seeds_listed(sub)
    seeds = listed or sorted(logs)
    missing = [s for s in listed if s not in logs]
    if not seeds:
        fc.add(False, "seed logs", "no seed listed in submission.json and no log with a seed")
        return fc
    detail = ", ".join(f"{s}: {logs[s].name}" for s in seeds if s in logs)
    if missing:
        detail = f"no log for seed(s) {', '.join(map(str, missing))}" + (f"; found {detail}" if detail else "")
    elif not listed:
        detail += " (submission.json lists no seeds)"
    fc.add(not missing if listed else None, "seed logs", detail + "".join(f"; {n}" for n in notes))

    claimed = (claim_of(sub) or {}).get("val_bpb") or {}
    chosen: dict[int, tuple[float, float]] = {}  # seed -> (bpb, loss) of the line the claim names
    sizes, trains, evals, data, agree = [], [], [], [], []
    for s in seeds:
        if s not in logs:
            continue
        try:
            summary = parse_log_file(logs[s])
        except LogParseError as e:
            fc.add(False, f"seed {s} log", str(e))
            continue
        choice = choose_score(logs[s], summary, claimed.get(s))
        sm = choice.summary
        chosen[s] = (sm.val_bpb, sm.val_loss)
        # values that agree with the logs
        if s in claimed:
            ok = choice.mismatch is None
            agree.append((ok, f"{s}: {claimed[s]:g} = {choice.tag}" if ok else f"{s}: {choice.mismatch}"))
        claimed_bytes = _per_seed_field(sub, s, "artifact_bytes")
        if claimed_bytes is not None and sm.artifact_bytes is not None and int(claimed_bytes) != sm.artifact_bytes:
            agree.append((False, f"{s}: artifact_bytes {int(claimed_bytes):,} in submission.json, "
                                 f"{sm.artifact_bytes:,} in the log"))
        size = rules.artifact_size(sm.artifact_bytes if sm.artifact_bytes is not None else claimed_bytes)
        sizes.append((size.passed, f"{s}: {size.value:,}" if size.value is not None else f"{s}: not stated"))
        t = rules.train_time(sm.train_time_s, rules.TRAIN_CAP_S, step_avg_ms=sm.step_avg_ms)
        slack = f" + {sm.step_avg_ms / 1000:.3f} s slack" if sm.step_avg_ms else ""
        trains.append((t.passed, f"{s}: {sm.train_time_s:.3f} s{slack}" if sm.train_time_s is not None
                       else f"{s}: not stated"))
        eval_s = sm.eval_time_s if sm.eval_time_s is not None else _per_seed_field(sub, s, "eval_time_s")
        e = rules.eval_time(eval_s, rules.EVAL_CAP_S)
        evals.append((e.passed, f"{s}: {eval_s:.1f} s" if eval_s is not None else f"{s}: not stated"))
        shards, val_tokens, tok = _data_facts(logs[s].read_text(encoding="utf-8", errors="replace"))
        want = VAL_TOKENS.get(tok or "")
        ok_shards = None if shards is None else shards == TRAIN_SHARDS
        ok_val = None if val_tokens is None or want is None else val_tokens == want
        ok = False if False in (ok_shards, ok_val) else (None if None in (ok_shards, ok_val) else True)
        data.append((ok, f"{s}: train_shards {shards if shards is not None else '?'}, val tokens "
                         f"{val_tokens:,}" if val_tokens is not None else "?"))
        if want is not None and val_tokens is not None and val_tokens != want:
            data.append((False, f"{s}: {tok} gives {want:,} val tokens"))
        elif tok is not None and want is None:
            data.append((None, f"{s}: val token count of tokenizer {tok} unknown to golf"))

    def line(items, name):
        if not items:
            return
        worst = False if any(p is False for p, _ in items) else (None if any(p is None for p, _ in items) else True)
        # seeds that say the same thing share one entry: `42, 0, 1234: train_shards 80, ...`
        by: dict[str, list[str]] = {}
        for _, d in items:
            seed, _, what = d.partition(": ")
            by.setdefault(what, []).append(seed)
        fc.add(worst, name, "; ".join(f"{', '.join(seeds)}: {what}" for what, seeds in by.items()))

    line(sizes, f"bytes <= {rules.ARTIFACT_LIMIT_BYTES:,}")
    line(trains, f"train <= {rules.TRAIN_CAP_S:g} s (two average steps of slack: the clock is read after each step)")
    line(evals, f"eval <= {rules.EVAL_CAP_S:g} s")
    line(data, f"data: {TRAIN_SHARDS} train shards, the tokenizer's val tokens")
    line(agree, "submission.json agrees with the logs")
    mean = rules.as_number(sub.get("val_bpb"))
    per = [claimed[s] for s in seeds if s in claimed]
    if mean is not None and len(per) >= 2:
        m = statistics.fmean(per)
        fc.add(matches_claim(m, mean) or abs(m - mean) < 1e-6, "submission.json mean",
               f"val_bpb {mean:g}, mean of the per-seed values {m:.8f}")
    if folder.name in RULINGS:
        fc.add(False, "ruling", RULINGS[folder.name])

    # ---- the script and the command -------------------------------------------------------------
    script = folder / "train_gpt.py"
    code = rules.as_number(sub.get("bytes_code"))
    if not script.is_file():
        fc.add(False, "train_gpt.py", "missing (a record folder holds the script it ran)")
    elif code is not None:
        size = script.stat().st_size
        fc.add(size == int(code), "train_gpt.py", f"{size:,} bytes; bytes_code {int(code):,}")
    else:
        fc.add(True, "train_gpt.py", f"{script.stat().st_size:,} bytes (submission.json states no bytes_code)")
    readme = folder / "README.md"
    run = readme_run(readme.read_text(encoding="utf-8", errors="replace")) if readme.is_file() else None
    if run is None:
        fc.add(False, "README command", "no torchrun command in a code block" if readme.is_file() else "no README.md")
    else:
        loop = f" in a `for {run.loop[0]} in {' '.join(run.loop[1])}` loop" if run.loop else ""
        fc.add(True, "README command", f"{run.how} --nproc_per_node={run.launcher.get('nproc_per_node', '1')} "
                                       f"{run.launcher.get('script', '?')}, {len(run.env)} env values{loop}")

    # ---- statistics against the previous best ---------------------------------------------------
    if best_bpb is None:
        best_bpb = rules.as_number(sub.get("comparison_baseline_bpb"))
        source = "submission.json comparison_baseline_bpb" if best_bpb is not None else S.DEFAULT_BEST_SOURCE
        best_bpb = best_bpb if best_bpb is not None else S.DEFAULT_BEST_BPB
    else:
        source = "--best-bpb"
    bpb = {s: v[0] for s, v in chosen.items() if v[0] is not None and v[1] is not None}
    loss = {s: chosen[s][1] for s in bpb}
    name = f"statistics vs previous best {best_bpb:g} ({source})"
    if not bpb:
        fc.add(False, name, "no seed scored")
        return fc
    try:
        st = S.record_statistics(bpb, loss, best_bpb=best_bpb, best_source=source)
    except S.RecordError as e:
        fc.add(False, name, str(e))
        return fc
    p = "n/a" if st["p_value"] is None else f"{st['p_value']:.3g}"
    practice, written = st["verdict_at"].get("p<0.25"), st["verdict_at"].get("p<0.01")
    fc.add(practice == "record", name,
           f"mean {st['val_bpb_mean']:.5f}" + (f" ± {st['val_bpb_std']:.5f}" if st["val_bpb_std"] else "")
           + f" over {st['n_seeds']} seeds, {st['delta_loss']:+.5f} nats, p = {p}: "
           f"{practice} at p < 0.25 (as practised), {written} at p < 0.01 (as written)")
    return fc
