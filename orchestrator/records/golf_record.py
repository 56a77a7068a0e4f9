"""A golf_core record (`golf reproduce SPEC` with a preset spec): the RecordSource of
orchestrator.records.pipeline for train, eval and mix jobs.

A record spec: at least one seed, exactly one evaluation over the whole validation split
(eval.max_tokens 0) with the audit on, and at most one mixing configuration (plus optionally
mode `none`, the model-alone ablation). A grid, random or optuna search picks a best-of, which
C4 forbids for a claim: search with `golf run`, then reproduce the chosen point.

Per seed: the train job, its one eval job and the claimed mix job (full result.json files
fetched from the MLflow artifact store for reused runs); its checks: golf's audit (C1-C4) from
the eval and mix results, artifact size, the time caps, the track's hardware and the data; its
score: the claimed mix's. The folder: orchestrator.records.golf_folder (an exported
self-contained train_gpt.py, each train job's own train.log).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from golf_core import rules
from golf_core.eval.config import EvalSpec, MixerConfig
from orchestrator.records import stats as S
from orchestrator.records.golf_folder import format_train_log, golf_folder_parts
from orchestrator.records.pipeline import (
    JudgedRun, RecordSpecError, ReproduceError, ReproduceResult, data_check, reproduce_record,
)
from orchestrator.records.write import TRACK_DIR, FolderParts
from workers.contract import EvalJob, MixJob, TrainJob

__all__ = ["GolfRecord", "RecordSpecError", "ReproduceError", "SeedRun", "check_record_spec", "collect_seeds",
           "reproduce", "scored_eval", "seed_checks"]


# ---------------------------------------------------------------------------------------------
# the spec


def check_record_spec(sweep) -> MixerConfig:
    """Raise RecordSpecError unless `sweep` is one record claim; return the claimed MixerConfig."""
    problems = []
    if not sweep.train.seeds:
        problems.append("train.seeds: a record needs at least one seed (3 are customary: 1337, 42, 2024)")
    points = sweep.eval_points()
    if len(points) != 1:
        problems.append(f"eval: a record is scored one way; the spec lists {len(points)} eval configs")
    for p in points[:1]:
        if p.max_tokens != 0:
            problems.append(f"eval.max_tokens: a record scores the whole validation split (set 0, got {p.max_tokens})")
        if not p.audit:
            problems.append("eval.audit: a record needs the compliance audit (set true)")
    if sweep.search.kind != "grid":
        problems.append(f"search.kind: {sweep.search.kind} search picks a best-of, which a claim may not (C4); "
                        "search with `golf run`, then reproduce the chosen point")
    points_m = sweep.mixer_points()
    mixing = [m for m in points_m if m.mode != "none"]
    if len(mixing) > 1:
        problems.append(f"mixer: a record claims one mixer setting; the spec expands to {len(mixing)} "
                        "(a grid is a search, not a claim)")
    if problems:
        raise RecordSpecError("; ".join(problems))
    return mixing[0] if mixing else next(m for m in points_m if m.mode == "none")


def eval_spec_of(sweep, claim: MixerConfig) -> EvalSpec:
    """The record's whole evaluation (what train_gpt.py runs after training)."""
    p = sweep.eval_points()[0]
    return EvalSpec(eval=p.eval_config(), ttt=p.ttt, mixer=claim)


# ---------------------------------------------------------------------------------------------
# collecting results


# what each job of a seed is to the claim (an OptunaMixJob searches: never in a record's plan)
_ROLES = ((TrainJob, "train"), (EvalJob, "eval"), (MixJob, "mix"))


def _role(job: Any) -> str | None:
    return next((role for cls, role in _ROLES if isinstance(job, cls)), None)


@dataclass
class SeedRun:
    seed: int
    train: dict
    eval: dict
    mix: dict
    verdicts: dict[str, Any] = field(default_factory=dict)  # role (train, eval, mix) -> Verdict | None
    run_ids: dict[str, str] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)  # role -> finished | reused
    train_log: str | None = None  # the train job's own train.log, verbatim (None: not available)


def _fetch_result(fetch: Callable[[str], dict | None] | None, out) -> dict:
    """A job's full result: what the worker returned, or for a reused run its result.json from
    the MLflow artifact store (the run's metrics, should the file be unavailable)."""
    result = dict(out.result or {})
    if out.state == "reused" and fetch is not None and isinstance(out.job, (TrainJob, EvalJob)) and out.run_id:
        full = fetch(out.run_id)
        if full:
            result = {**result, **full}
    return result


def _train_log(out, fetch_log: Callable[[str], bytes | None] | None) -> str | None:
    """The train job's train.log: what the worker sent back, or a reused run's MLflow artifact."""
    blob = getattr(out, "train_log", None)
    if blob is None and out.state == "reused" and fetch_log is not None and out.run_id:
        blob = fetch_log(out.run_id)
    return blob.decode("utf-8", errors="replace") if blob is not None else None


def collect_seeds(report, claim: MixerConfig, fetch: Callable[[str], dict | None] | None = None,
                  fetch_log: Callable[[str], bytes | None] | None = None) -> dict[int, SeedRun]:
    """Per seed: the train job, its one eval job and the claimed mix job. Raises ReproduceError
    naming every needed job that did not finish."""
    by_seed: dict[int, dict[str, Any]] = {}
    for out in report.outcomes.values():
        job = out.job
        role = _role(job)
        if role is None or (role == "mix" and getattr(job, "mixer", None) != claim):
            continue  # not a job the claim needs: the ablation (mode none)
        by_seed.setdefault(job.seed, {})[role] = out
    problems, runs = [], {}
    for seed in sorted(by_seed):
        outs = by_seed[seed]
        for kind in ("train", "eval", "mix"):
            o = outs.get(kind)
            if o is None:
                problems.append(f"seed {seed}: no {kind} job in the plan")
            elif o.state not in ("finished", "reused"):
                problems.append(f"{o.job.name} {o.state}" + (f" ({o.reason})" if o.reason else ""))
        if any(outs.get(k) is None or outs[k].state not in ("finished", "reused") for k in ("train", "eval", "mix")):
            continue
        runs[seed] = SeedRun(
            seed, _fetch_result(fetch, outs["train"]), _fetch_result(fetch, outs["eval"]),
            _fetch_result(fetch, outs["mix"]),
            verdicts={k: outs[k].verdict for k in ("train", "eval", "mix")},
            run_ids={k: outs[k].run_id for k in ("train", "eval", "mix") if outs[k].run_id},
            states={k: outs[k].state for k in ("train", "eval", "mix")},
            train_log=_train_log(outs["train"], fetch_log))
    if problems:
        raise ReproduceError("the claim needs jobs that did not finish: " + "; ".join(problems))
    return runs


# ---------------------------------------------------------------------------------------------
# compliance


def seed_checks(run: SeedRun, claim: MixerConfig, eval_cap_s: float, tokenizer_name: str | None) -> dict[str, dict]:
    """Every check of one seed: {name: {"passed", "value", "detail"}}.

    The audit's own checks (C1-C4, Σ_v p(v), score-before-update, single pass) come from the
    eval and mix results (`eval.*`, `mix.*`); around them: artifact size, the time caps, finite
    results, the track's hardware and the data. An audit reused from MLflow without its
    result.json is carried by its golf.compliant tag."""
    checks: dict[str, dict] = {}
    tr, ev, mx = run.train, run.eval, run.mix
    # a record must state its size and time: a check that cannot be judged fails it
    size = rules.artifact_size(tr.get("artifact_bytes"), over_limit=bool(tr.get("over_limit")))
    checks["artifact_bytes"] = dict(size.as_dict(), passed=size.passed is True)
    cap = ((tr.get("config") or {}).get("train") or {}).get("max_wallclock_seconds")
    spent = rules.train_time(tr.get("train_time_s"), cap, step_avg_ms=tr.get("step_avg_ms"),
                             track_cap_s=rules.TRAIN_CAP_S)
    checks["train_time"] = dict(spent.as_dict(), passed=spent.passed is True)
    t_eval, t_mix = rules.as_number(ev.get("eval_time_s")) or 0.0, rules.as_number(mx.get("mix_time_s")) or 0.0
    total = t_eval + (t_mix if claim.mode != "none" else 0.0)
    limit = min(eval_cap_s, rules.EVAL_CAP_S)
    checks["eval_time"] = dict(rules.eval_time(round(total, 3), limit).as_dict(),
                               detail=f"neural pass {t_eval:.1f} s + n-gram/mix "
                                      f"{t_mix if claim.mode != 'none' else 0.0:.1f} s <= {limit:g} s "
                                      "(factorized timing; the fused path does both in one pass)")
    bad = [f"{k}: {v.reason}" for k, v in run.verdicts.items() if v is not None and not v.valid]
    checks["valid"] = {"passed": not bad, "value": not bad, "detail": "; ".join(bad) or "finite losses, caps met"}
    for prefix, res, kind in (("eval", ev, "eval"), ("mix", mx, "mix")):
        comp = res.get("compliance")
        if isinstance(comp, dict) and comp.get("checks"):
            for name, c in comp["checks"].items():
                checks[f"{prefix}.{name}"] = {"passed": c.get("passed"), "value": _short(c.get("value")),
                                              "detail": c.get("detail")}
        else:
            v = run.verdicts.get(kind)
            compliant = comp.get("compliant") if isinstance(comp, dict) else (v.compliant if v is not None else None)
            checks[f"{prefix}.audit"] = {"passed": compliant, "value": compliant,
                                         "detail": f"golf.compliant of MLflow run {run.run_ids.get(kind)} "
                                                   "(check details in that run)"}
    mode = rules.mixer_mode(claim.mode)
    if not mode.passed:  # never compliant, whatever a reused run's tags say
        checks["mix.mode"] = mode.as_dict()
    ratio = rules.as_number(ev.get("ratio_scored"))
    if ratio is not None:
        checks["ratio_scored"] = {"passed": abs(ratio - 1.0) < 1e-9, "value": ratio,
                                  "detail": "every validation token scored exactly once"}
    ws, dev = tr.get("world_size"), tr.get("device_name") or tr.get("device")
    checks["hardware"] = rules.hardware(ws, dev).as_dict()
    if tokenizer_name is not None:
        checks["data"] = data_check(tokenizer_name)
    return checks


def _short(v: Any) -> Any:
    s = json.dumps(v, default=str) if not isinstance(v, (str, int, float, bool, type(None))) else v
    return s if not isinstance(s, str) or len(s) <= 200 else s[:197] + "..."


def scored_eval(run: SeedRun, claim: MixerConfig, checks: dict[str, dict]) -> dict[str, Any]:
    """The per-seed evaluation records.py reports: the claimed mix's score plus the neural pass."""
    ev, mx = run.eval, run.mix
    t_eval, t_mix = rules.as_number(ev.get("eval_time_s")) or 0.0, rules.as_number(mx.get("mix_time_s")) or 0.0
    return {
        "val_bpb": rules.as_number(mx.get("val_bpb")), "val_loss": rules.as_number(mx.get("val_loss")),
        "eval_time_s": t_eval + (t_mix if claim.mode != "none" else 0.0),
        "neural_val_bpb": rules.as_number(ev.get("val_bpb")), "neural_val_loss": rules.as_number(ev.get("val_loss")),
        "neural_eval_time_s": t_eval, "mix_time_s": t_mix, "ratio_scored": ev.get("ratio_scored"),
        "tokens_scored": ev.get("tokens_scored"), "mixer_mode": claim.mode,
        "mixer": claim.model_dump(mode="json"),
        "compliance": {"compliant": all(c.get("passed") is not False for c in checks.values()), "checks": checks},
    }


# ---------------------------------------------------------------------------------------------
# the source


@dataclass
class GolfRecord:
    """A record spec as a RecordSource (orchestrator.records.pipeline)."""

    sweep: Any
    mixer: MixerConfig  # the claimed mixing configuration (check_record_spec)
    claim: dict | None = None  # a golf record is tested against the best known score only
    source_dir: Path | None = None

    @classmethod
    def load(cls, spec_path: str | Path) -> GolfRecord:
        """The spec at `spec_path`; RecordSpecError unless it is one record claim."""
        from orchestrator.spec.sweep import load_sweep

        sweep = load_sweep(spec_path)
        return cls(sweep, check_record_spec(sweep))

    def default_name(self) -> str:
        return self.sweep.name

    def intro(self) -> list[str]:
        return []

    def started(self, plan: Any, tracking: str) -> str:
        return (f"reproduce {self.sweep.name}: seeds {list(self.sweep.train.seeds)}, claim mixer {self.mixer.mode}; "
                f"{len(plan.jobs)} jobs; tracking {tracking}")

    def collect(self, report: Any, fetch: Callable[[str], dict | None],
                fetch_log: Callable[[str], bytes | None]) -> dict[int, SeedRun]:
        return collect_seeds(report, self.mixer, fetch, fetch_log)

    def seed_checks(self, run: SeedRun, tokenizer_name: str | None) -> dict[str, dict]:
        return seed_checks(run, self.mixer, self.sweep.eval_points()[0].max_eval_seconds, tokenizer_name)

    def seed_eval(self, run: SeedRun, checks: dict[str, dict]) -> dict[str, Any]:
        return scored_eval(run, self.mixer, checks)

    def folder_parts(self, j: JudgedRun) -> FolderParts:
        """An exported train_gpt.py with the spec's config baked in; each seed's own train.log
        verbatim (rebuilt from MLflow only for a run that has none)."""
        from golf_core.export import export_script

        sweep, seeds = self.sweep, j.seeds
        first = seeds[min(seeds)]
        code = export_script(sweep.run_config(first.seed), eval_spec_of(sweep, self.mixer),
                             title=f"{j.name}: golf record script")
        header = f"spec {sweep.name}, sweep {j.plan.sweep_identity[:16]}, reproduced by golf {time.strftime('%Y-%m-%d')}"
        logs = {s: r.train_log if r.train_log is not None else format_train_log(s, r.train, j.evals[s], r.run_ids, header)
                for s, r in seeds.items()}
        extra = {"spec": sweep.name, "sweep_identity": j.plan.sweep_identity,
                 "code_version": first.train.get("code_version"), "mixer_mode": self.mixer.mode,
                 "runs": {str(s): r.run_ids for s, r in seeds.items()},
                 "reused": {str(s): r.states for s, r in seeds.items()}}
        return golf_folder_parts(j.name, j.date, {s: r.train for s, r in seeds.items()}, j.evals, j.stats,
                                 j.compliance, j.plan.spec_dump, logs, code, extra=extra)


def reproduce(spec_path: str | Path, *, name: str | None = None, out: str | Path = TRACK_DIR,
              date: str | None = None, best_bpb: float | None = None, best_loss: float | None = None,
              author: str = "", github_id: str = "", tracking_uri: str | None = None, work_dir: str | Path = ".golf",
              workspace: str | Path = ".", run_fn: Callable | None = None, ray: dict | None = None,
              say: Callable[[str], None] = print, alpha: float = S.ALPHA) -> ReproduceResult:
    """`golf reproduce SPEC`: the record claim of the spec at `spec_path` through the pipeline
    (orchestrator.records.pipeline.reproduce_record, which documents the arguments)."""
    return reproduce_record(GolfRecord.load(spec_path), name=name, out=out, date=date, best_bpb=best_bpb,
                            best_loss=best_loss, alpha=alpha, author=author, github_id=github_id,
                            tracking_uri=tracking_uri, work_dir=work_dir, workspace=workspace, run_fn=run_fn,
                            ray=ray, say=say)
