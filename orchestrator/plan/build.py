"""A Sweep expanded into jobs with identities: seeds → train → eval → mix.

Identity (docs/ARCHITECTURE.md): sha256 over (kind, the config that changes the result, the
inputs' identities, golf_core.code_version(kind)), as sorted JSON. The code version covers only
the golf_core modules the job kind imports, over their normalized AST (golf_core.version): a
comment or docstring edit keeps every identity, a change in code the job runs does not. Marin-style: only result-changing
fields enter. Decisions:
- train: the resolved RunConfig (seed, preset + overrides, wallclock cap, device), the data
  identity, and the number of ranks. Ranks are identity: under a wallclock cap the step count
  depends on them, and even without one the reduction order changes the weights numerically.
- eval: the train identity + EvalConfig + TTTConfig. Eval ranks are NOT identity: the scores
  are a function of artifact and tokens (chunk-synchronous tables are identical on every rank);
  parallelism only changes float summation order and the wall time (recorded, audited).
- mix: the eval identity + the full MixerConfig dump (mode `none` is one job with a default
  MixerConfig, so its identity never depends on unused alpha fields).
- optuna mix job: the eval identity + {"mixer_base", "optuna": {n, seed, space}}.
- Not identity: job/sweep names, data path spelling, retries, limits, description.
The sweep identity hashes the sweep name and the sorted job identities.

Mode `none` is kept as a mix job (not folded into the eval): every score the sweep compares
then comes out of the same mix path and lands in MLflow as a `mix` run with `mixer.mode=none`.

Optuna mix jobs (workers.contract.OptunaMixJob: mixer_base, optuna = {n, seed, space}): the worker
(workers.worker.run_optuna) creates a study with TPESampler(seed) and runs `n` trials by
ask/tell on the eval job's cached passes, minimizing val_bpb (an invalid combination is told FAIL).
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Literal

import golf_core
from golf_core.config import ConfigError
from golf_core.data.config import DataConfig
from orchestrator.kinds import eval as kinds_eval
from orchestrator.kinds import mix as kinds_mix
from orchestrator.kinds import optuna_mix as kinds_optuna_mix
from orchestrator.kinds import train as kinds_train
from orchestrator.kinds.identity import canonical_json, identity_of  # noqa: F401 - re-exported
from orchestrator.spec.mixer_space import eval_groups, mode_axes
from orchestrator.spec.sweep import Sweep, load_sweep, varying_axes
from orchestrator.tracking.params import flatten_params
from workers import contract
from workers.contract import KINDS, EvalJob, MixJob, OptunaMixJob, OptunaSpace, TrainJob

# the typed jobs (workers.contract): one frozen dataclass per kind, built with keywords
Kind = Literal["train", "eval", "mix", "script_train"]
Job = contract.Job


@dataclass(frozen=True)
class Plan:
    sweep_name: str
    sweep_identity: str
    jobs: tuple[Job, ...]  # topologically ordered: every dep precedes its dependents
    data: DataConfig
    retries: int = 1  # the Sweep's (its default decided there, once); the driver takes it as is
    # the typed Sweep this plan was built from: decisions read it (data.external, description,
    # stages), never a dump of it; None for plans tests build by hand
    sweep: Sweep | None = None
    data_identity: str = ""
    # an optuna script sweep: its jobs come from the study at run time (orchestrator.run.trials)
    study: Any = None  # orchestrator.plan.script.EnvStudy
    # how it spends GPU time (orchestrator.spec.spend; orchestrator.run.spend)
    prune: Any = None  # PruneSpec
    budget: Any = None  # BudgetSpec | None
    reference: Any = None  # prune.against's curves: {seed: [(train s, value)]}, read at plan time
    stage: str | None = None  # a staged sweep's stage (orchestrator.plan.stages)
    stage_points: Any = None  # that stage's job identity -> its env point (what promotion ranks)

    @property
    def spec_dump(self) -> dict[str, Any]:
        """The sweep as JSON-able data: what a record folder writes as its spec.yaml (not read back)."""
        return self.sweep.model_dump(mode="json") if self.sweep is not None else {}

    @property
    def external(self) -> bool:
        """`data.external`: the data path may leave the workspace."""
        return bool(self.sweep is not None and self.sweep.data.external)

    @property
    def description(self) -> str:
        return self.sweep.description if self.sweep is not None else ""

    def by_kind(self, kind: str) -> tuple[Job, ...]:
        """The jobs whose `kind` label is `kind` (what counts and displays group by)."""
        groups: dict[str, list[Job]] = {}
        for j in self.jobs:
            groups.setdefault(j.kind, []).append(j)
        return tuple(groups.get(kind, ()))

    def job(self, identity: str) -> Job:
        for j in self.jobs:
            if j.identity == identity:
                return j
        raise KeyError(identity)

    def counts(self) -> dict[str, int]:
        """Jobs per kind: train/eval/mix for a golf_core sweep, script_train for a script sweep
        (an optuna one: the most its trials can run, n x seeds)."""
        if self.study is not None:
            return {"script_train": self.study.n * len(self.study.seeds)}
        n = {k: 0 for k in KINDS} | Counter(j.kind for j in self.jobs)  # a new kind's jobs too
        script = n.pop("script_train")
        return {"script_train": script} if script else n


# ---------------------------------------------------------------------------------------------
# identities


# each kind's identity payload lives in its module (orchestrator.kinds.*); the names here are
# what planning and tests have always called
train_identity = kinds_train.identity
eval_identity = kinds_eval.identity
mix_identity = kinds_mix.identity
_mix_identity_json = kinds_mix.identity_json


_SHARD_PREFIXES = ("fineweb_train_", "fineweb_val_")
_MANIFESTS = ("manifest.json", "MANIFEST.json")


def data_identity(data: DataConfig, workspace: str | Path = ".") -> str:
    """What the data is, not where: a synthetic dir hashes its recipe, a real one its files.

    Synthetic (no shards yet, or the synthetic tokenizer) → (vocab, token counts, seed), so the
    identity is the same before and after `golf run` makes it, while its shards hold the bytes
    golf wrote (their sha256 in golf_synthetic.json); a changed byte adds their content. A real
    dir → its manifest's content if it has one, every shard's name, size and sha256 (cached by
    path, size, mtime, ctime and inode in the user's cache dir:
    orchestrator.plan.datasets.file_digests), and the tokenizer's
    content.
    """
    p = Path(data.path)
    root = p if p.is_absolute() else Path(workspace) / p
    shards = sorted(f for f in root.glob("fineweb_*.bin") if f.name.startswith(_SHARD_PREFIXES)) \
        if root.is_dir() else []
    tokenizers = sorted(root.glob("*.model")) if root.is_dir() else []
    explicit = _tokenizer_file(data, workspace)
    if explicit is not None or (root.is_dir() and not tokenizers):
        from golf_core.data.layout import resolve_tokenizer  # upstream's data/tokenizers pairing

        try:
            tokenizers = [resolve_tokenizer(root, explicit)]
        except ValueError:
            tokenizers = []
    synthetic = not shards or any(t.name.startswith("synthetic_") for t in tokenizers)
    from orchestrator.plan.datasets import file_digests, synthetic_as_made

    if synthetic:
        recipe = {"synthetic": True, "vocab_size": data.vocab_size, "train": data.synthetic_train_tokens,
                  "val": data.synthetic_val_tokens, "seed": data.synthetic_seed}
        ident = hashlib.sha256(canonical_json(recipe).encode()).hexdigest()
        if not shards or synthetic_as_made(root, shards, workspace):
            return ident  # the recipe's data, before and after golf makes it
        # changed since golf made it (or not golf's): the recipe and the bytes
        h = hashlib.sha256(f"{ident}\0".encode())
        for f, d in file_digests(shards, workspace).items():
            h.update(f"{f.name}\0{d}\0".encode())
        return h.hexdigest()
    h = hashlib.sha256(f"vocab={data.vocab_size}\0".encode())
    manifest = next((root / m for m in _MANIFESTS if (root / m).is_file()), None)
    if manifest is not None:
        h.update(b"manifest\0" + manifest.read_bytes())
    for f, d in file_digests(shards, workspace).items():  # each shard's bytes (issue 20), cached
        h.update(f"{f.name}\0{f.stat().st_size}\0{d}\0".encode())
    for t in tokenizers:
        h.update(t.name.encode() + b"\0" + hashlib.sha256(t.read_bytes()).digest())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# params


def train_params(run_dump: dict[str, Any]) -> dict[str, str]:
    """A train run's params: `model.*`, `train.*`, `quant.*`, and its own roundtrip-eval settings
    as `train_eval.*` (never `eval.*`: eval runs of the same sweep log theirs under that name)."""
    return flatten_params({("train_eval" if k == "eval" else k): v for k, v in run_dump.items()})


def mixer_params(m_cfg: dict[str, Any]) -> dict[str, str]:
    """A mix job's mixer params: mode `none` uses no mixer field, so it logs only the mode (no
    alpha values it never used: they would be fake points in MLflow's parallel coordinates)."""
    mixer = m_cfg.get("mixer") or {}
    return {"mixer.mode": "none"} if mixer.get("mode") == "none" else flatten_params(m_cfg)


def _short(v: Any) -> str:
    if type(v) is float or type(v) is int:  # what json.dumps writes for them (a finite float's repr)
        return repr(v) if v == v and v not in (float("inf"), float("-inf")) else json.dumps(v)
    return json.dumps(v, separators=(",", ":")) if not isinstance(v, str) else v


# ---------------------------------------------------------------------------------------------
# expansion


class _PointDumps:
    """A mixer point's identity dump and MLflow params, made from its mode's first point (issue 21:
    pydantic's dump and the params' flattening were ~0.8 s + ~1 s of a 50,000-point plan): the
    points of one mode differ only in that mode's axes (orchestrator.spec.mixer_space builds
    them from one template), so a point's dump is the first one's with the differing axis
    fields' JSON values put in, each value's JSON made once. A dict-valued field (entropy
    centers: its params are flattened per key) takes the full path. The result is the same
    dict as `identity_dump()` and `mixer_params` (tests/orchestrator/plan/test_build_speed.py)."""

    def __init__(self):
        self._modes: dict[str, tuple] = {}  # mode -> (first point, its dump, its params, its axis fields)
        self._values: dict[tuple[str, str], tuple | None] = {}  # (field, repr) -> (JSON value, params) | None
        self._json: dict[tuple, str] = {}  # (field, type, repr) -> '"field":<canonical JSON of the value>'

    def _text(self, k: str, v: Any) -> str:
        """'"k":<canonical JSON of v>', made once per (field, type, repr) of the value."""
        key = (k, type(v), repr(v))
        text = self._json.get(key)
        if text is None:
            text = self._json[key] = f"{canonical_json(k)}:{canonical_json(v)}"
        return text

    def canonical(self, dump: dict) -> str:
        """canonical_json({"mixer": dump}) from per-field texts (json.dumps per point was a third of
        a 50,000-point plan's build): sort_keys sorts the items and encodes each on its own, so
        joining the sorted items' texts is the same string (tests/orchestrator/plan/test_build_speed.py)."""
        return '{"mixer":{' + ",".join(self._text(k, dump[k]) for k in sorted(dump)) + "}}"

    @staticmethod
    def _full(mixer: Any) -> tuple[dict, dict]:
        dump = mixer.identity_dump()
        return dump, mixer_params({"mixer": dump})

    def __call__(self, mixer: Any) -> tuple[dict, dict]:
        return self.point(mixer)[:2]

    def point(self, mixer: Any) -> tuple[dict, dict, str]:
        """(identity dump, MLflow params, canonical JSON of {"mixer": dump}) of one point."""
        t = self._modes.get(mixer.mode)
        if t is None:
            dump, params = self._full(mixer)
            fields = [f for f in mode_axes(mixer.mode) if f in dump and not isinstance(dump[f], dict)] \
                if mixer.mode != "none" else []
            texts0 = {k: self._text(k, dump[k]) for k in dump}
            self._modes[mixer.mode] = (mixer, dump, params, fields, sorted(dump), texts0)
            return dump, params, self.canonical(dump)
        first, dump0, params0, fields, keys, texts0 = t
        dump, params, texts = dict(dump0), dict(params0), None
        for f in fields:
            v, v0 = getattr(mixer, f), getattr(first, f)
            if type(v) is type(v0) and (v is v0 or repr(v) == repr(v0)):  # repr: -0.0 is not 0.0 in JSON
                continue
            key = (f, repr(v))
            hit = self._values.get(key, False)
            if hit is False:
                jv = mixer.model_dump(mode="json", include={f}).get(f)
                hit = self._values[key] = None if isinstance(jv, dict) else \
                    (jv, flatten_params({"mixer": {f: jv}}), self._text(f, jv))
            if hit is None:
                dump, params = self._full(mixer)
                return dump, params, self.canonical(dump)
            dump[f] = hit[0]
            params.update(hit[1])
            texts = texts or dict(texts0)
            texts[f] = hit[2]
        texts = texts or texts0
        return dump, params, '{"mixer":{' + ",".join(texts[k] for k in keys) + "}}"


def build_plan(sweep: Sweep, workspace: str | Path = ".", code_version: str | None = None) -> Plan:
    """Expand a validated Sweep into topologically ordered jobs (train, then eval, then mix)."""
    # per job kind: the code that kind runs (golf_core.version); one override string for all in tests
    codes = {k: code_version or golf_core.code_version(k) for k in ("train", "eval", "mix")}
    data = sweep.data_config()
    data_id = data_identity(data, workspace)
    if sweep.is_script:  # the user's own train_gpt.py: its identity ignores golf's code version
        from orchestrator.plan.script import env_study, script_jobs

        study = env_study(sweep, data_id, workspace)
        return _with_reference(_finish_plan(sweep, tuple(script_jobs(sweep, data_id, workspace)), data, data_id,
                                            study), sweep, workspace)
    ranks = sweep.train.gpus_per_job
    base_params = {"preset": sweep.train.preset, "data.path": data.path}
    trains, evals, mixes = [], [], []
    axes = varying_axes(sweep.mixer)
    # per mixer point, once (not per seed x eval): its canonical JSON, name and params (issue 21)
    # (a tilt point's dump leaves out the tilt fields of other modes, so their identities stay)
    points = {}
    mixers = list(sweep.mixer_points())
    dumps = _PointDumps()
    for mixer in mixers:
        dump, m_params, m_json = dumps.point(mixer)
        m_cfg = {"mixer": dump}
        shown_axes = [a for a in axes if a in m_cfg["mixer"]]
        shown = "" if mixer.mode == "none" or not shown_axes else \
            "/" + ",".join(f"{a}={_short(m_cfg['mixer'][a])}" for a in shown_axes)
        points[id(mixer)] = (m_json, f"{mixer.mode}{shown}", m_params)
    # tilt points need a neural pass that also prices their hints (q = p_model(h)): their own
    # eval job, so the evals and mixes of the other modes keep their identities
    groups = eval_groups(mixers, sweep.optuna_studies())
    for seed in sweep.train.seeds:
        run = sweep.run_config(seed)
        on_gpu = run.train.device != "cpu"  # "auto" asks for GPUs; the driver may fall back
        t_id = train_identity(run, ranks, data_id, codes["train"])
        t_params = {**base_params, "ranks": str(ranks), **train_params(run.model_dump(mode="json"))}
        trains.append(TrainJob(identity=t_id, name=f"train/s{seed}", run=run, seed=seed,
                               gpus=ranks if on_gpu else 0, ranks=ranks, params=t_params))
        for e_idx, point in enumerate(sweep.eval_points()):
            ev, ttt = point.eval_config(), point.ttt
            e_ranks = point.gpus_per_job or ranks
            for tables, g_mixers, studies in groups:
                ev_g = ev.model_copy(update={"tilt_tables": tables}) if tables else ev
                e_id = eval_identity(t_id, ev_g, ttt, codes["eval"])
                e_cfg = {"eval": ev_g.identity_dump(), "ttt": ttt.model_dump(mode="json")}
                e_params = {**base_params, "train.seed": str(seed), "ranks": str(e_ranks), **flatten_params(e_cfg)}
                e_name = f"eval/s{seed}/e{e_idx}" + ("/tilt" if tables else "")
                evals.append(EvalJob(identity=e_id, name=e_name, eval=ev_g, ttt=ttt, deps=(t_id,), seed=seed,
                                     gpus=e_ranks if on_gpu else 0, ranks=e_ranks, params=e_params))
                short_eval = {k: e_params[k] for k in ("eval.seq_len", "eval.stride", "eval.chunk_tokens",
                                                       "ttt.enabled")}
                for mixer in g_mixers:
                    m_json, m_name, m_params = points[id(mixer)]
                    mixes.append(MixJob(
                        identity=_mix_identity_json(e_id, m_json, codes["mix"]),
                        name=f"mix/s{seed}/e{e_idx}/{m_name}", mixer=mixer, deps=(e_id,), seed=seed,
                        gpus=1 if on_gpu else 0, ranks=1,
                        params={**base_params, "train.seed": str(seed), **short_eval, **m_params}))
                for study in studies:
                    mode = study["mixer_base"]["mode"]
                    mixes.append(OptunaMixJob(identity=kinds_optuna_mix.identity(e_id, study, codes["mix"]),
                                              name=f"mix/s{seed}/e{e_idx}/{mode}/optuna",
                                              mixer_base=study["mixer_base"],
                                              optuna=OptunaSpace(**study["optuna"]), deps=(e_id,), seed=seed,
                                              gpus=1 if on_gpu else 0, ranks=1,
                                              params={**base_params, "train.seed": str(seed), **short_eval,
                                                      **flatten_params(study)}))
    return _with_reference(_finish_plan(sweep, tuple(trains + evals + mixes), data, data_id), sweep, workspace)


def sweep_identity(name: str, job_ids: Iterable[str], study: Any = None) -> str:
    """The sweep's name and its sorted job identities (an optuna env study: the study and how
    many trials, since it has no jobs before it runs)."""
    key: dict[str, Any] = {"name": name, "jobs": sorted(job_ids)}
    if study is not None:
        key["study"] = {"identity": study.identity, "n": study.n}
    return hashlib.sha256(canonical_json(key).encode()).hexdigest()


def _finish_plan(sweep: Sweep, jobs: tuple[Job, ...], data: DataConfig, data_id: str, study: Any = None) -> Plan:
    ids = [j.identity for j in jobs]
    if len(set(ids)) != len(ids):  # spec validation makes this impossible; guard the invariant
        raise ConfigError("plan: two jobs share an identity")
    sweep_id = sweep_identity(sweep.name, ids, study)
    return Plan(sweep.name, sweep_id, jobs, data, sweep.retries, sweep, data_id, study,
                prune=sweep.prune, budget=sweep.budget)


def load_plan(spec_path: str | Path, workspace: str | Path = ".", code_version: str | None = None) -> Plan:
    return build_plan(load_sweep(spec_path), workspace, code_version)


def _with_reference(plan: Plan, sweep: Sweep, workspace: str | Path) -> Plan:
    """`prune.against`'s curves, read now: a missing reference is one line before any job."""
    if sweep.prune.against is None:
        return plan
    from dataclasses import replace

    from orchestrator.plan.reference import load_reference

    return replace(plan, reference=load_reference(sweep.prune.against, sweep.prune.metric, workspace))


def topological_ok(jobs: Iterable[Job]) -> bool:
    """True when every job's deps appear before it."""
    seen: set[str] = set()
    for j in jobs:
        if any(d not in seen for d in j.deps):
            return False
        seen.add(j.identity)
    return True


def data_dir(plan: Plan, workspace: str | Path = ".") -> Path:
    """The data directory a plan's jobs read (relative paths resolve against the workspace)."""
    p = PurePosixPath(plan.data.path)
    return Path(p) if p.is_absolute() else Path(workspace) / p


def tokenizer_file(plan: Plan, workspace: str | Path = ".") -> Path | None:
    """`data.tokenizer_path` resolved like data.path, or None (found from the data dir)."""
    return _tokenizer_file(plan.data, workspace)


def _tokenizer_file(data: DataConfig, workspace: str | Path) -> Path | None:
    if not data.tokenizer_path:
        return None
    p = PurePosixPath(data.tokenizer_path)
    return Path(p) if p.is_absolute() else Path(workspace) / p
