"""Script training jobs of a plan: one `script_train` job per (env point, seed).

Identity (the issue's rule, not golf's code version: golf does not change what the user's
script computes): sha256 over the script's bytes (and those of every file beside it in a record
folder), the resolved env (the user's values plus SEED, VOCAB_SIZE and MAX_WALLCLOCK_SECONDS that
golf sets), the data identity, the ranks and the score tag. Not identity: the paths golf fills
in on the worker (DATA_PATH, TOKENIZER_PATH), RUN_ID (the job's name), the timeout.

An optuna script sweep plans no jobs: its `EnvStudy` (on `Plan.study`) says what a trial is,
and the driver (orchestrator.run.trials) asks the study for env values and turns each trial into
one job per seed (`EnvStudy.jobs`), tagged with the study and the trial's number.

The script's files travel with the job (`script_files`): the driver reads them when the job
starts and checks they still hash as planned, so a worker on another node needs no shared
filesystem and a script edited mid-sweep fails loudly instead of running unplanned code.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.spec.script import (
    check_env_keys,
    ScriptTrainSpec, default_timeout_s, env_axes, env_points, env_str, optuna_env_study,
)
from orchestrator.spec.io import SpecError
from workers.contract import ScriptRef, ScriptTrainJob
from workers.search_space import Domain, FloatRange, contains, decode_space

__all__ = ["ENTRY", "EnvStudy", "ScriptBundle", "env_study", "load_bundle", "script_files", "script_job",
           "script_jobs"]

ENTRY = "train_gpt.py"  # what a record folder runs
MAX_FILES = 256
MAX_BUNDLE_BYTES = 256 * 1024 * 1024  # a record folder is a script, logs, a README: never this big
_SKIP = {"__pycache__", ".git", ".ipynb_checkpoints"}
SCRIPT_CODE_VERSION = "script-v1"  # the job kind's own format version (replaces golf_core's)


@dataclass(frozen=True)
class ScriptBundle:
    root: Path  # the folder (or the script's folder, for a single file)
    entry: str  # the file torchrun runs, relative to the bundle
    files: dict[str, str]  # relative path -> sha256 of its bytes
    is_dir: bool

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for rel in sorted(self.files):
            h.update(rel.encode() + b"\0" + self.files[rel].encode() + b"\0")
        return h.hexdigest()


def _walk(root: Path) -> list[Path]:
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part in _SKIP or part.startswith(".") for part in rel.parts):
            continue
        if p.is_file() and not p.is_symlink():
            out.append(p)
    return out


def load_bundle(spec: ScriptTrainSpec, workspace: str | Path = ".") -> ScriptBundle:
    """The script (or record folder) a spec names, hashed; SpecError (one line) when missing."""
    p = Path(spec.script)
    path = p if p.is_absolute() else Path(workspace) / p
    if path.is_dir():
        if not (path / ENTRY).is_file():
            raise SpecError([f"train.script: folder {spec.script} holds no {ENTRY}"])
        files = _walk(path)
        if len(files) > MAX_FILES:
            raise SpecError([f"train.script: folder {spec.script} holds {len(files)} files (at most {MAX_FILES})"])
        root, entry, is_dir = path, ENTRY, True
    elif path.is_file():
        files, root, entry, is_dir = [path], path.parent, path.name, False
    else:
        raise SpecError([f"train.script: {spec.script}: no such file or folder"])
    total = sum(f.stat().st_size for f in files)
    if total > MAX_BUNDLE_BYTES:
        raise SpecError([f"train.script: {spec.script} holds {total:,} bytes (at most {MAX_BUNDLE_BYTES:,})"])
    hashes = {str(f.relative_to(root).as_posix()): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    # an env key the script never mentions is a typo until said otherwise (issue 19)
    sources = {f.name: f.read_text(encoding="utf-8", errors="replace") for f in files if f.suffix == ".py"}
    errors = check_env_keys(spec, sources, entry)
    if errors:
        raise SpecError(errors)
    return ScriptBundle(root.resolve(), entry, hashes, is_dir)


def resolved_env(point: dict[str, Any], seed: int, vocab_size: int, cap: float | None) -> dict[str, str]:
    """What golf sets, overridden by the user's env point; all strings, sorted."""
    env = {"SEED": str(seed), "VOCAB_SIZE": str(vocab_size)}
    if cap is not None:
        env["MAX_WALLCLOCK_SECONDS"] = env_str(cap)
    env.update({k: env_str(v) for k, v in point.items()})
    return dict(sorted(env.items()))


def script_identity(bundle: ScriptBundle, env: dict[str, str], data_id: str, ranks: int,
                    score_tag: str | None) -> str:
    from orchestrator.plan.build import identity_of

    return identity_of("script_train", {"script": bundle.files, "entry": bundle.entry, "env": env,
                                        "data": data_id, "ranks": ranks, "score_tag": score_tag},
                       SCRIPT_CODE_VERSION)


def script_job(train: ScriptTrainSpec, bundle: ScriptBundle, point: dict[str, Any], seed: int, *,
               vocab_size: int, data_id: str, data_path: str, shown: list[str], trial: int | None = None,
               study: str | None = None):
    """One ScriptTrainJob (workers.contract) for an env point and a seed."""
    ranks = train.gpus_per_job
    env = resolved_env(point, seed, vocab_size, train.max_wallclock_seconds)
    cap = train.cap_s(env)
    ident = script_identity(bundle, env, data_id, ranks, train.score_tag)
    # a trial's float is the sampler's full precision (in env and params); its name shows 4 digits
    shown_v = (lambda v: f"{v:.4g}" if isinstance(v, float) else env_str(v)) if trial is not None else env_str
    name = f"script/s{seed}" + (f"/trial{trial}" if trial is not None else "") + \
        ("/" + ",".join(f"{k}={shown_v(point[k])}" for k in shown) if shown else "")
    # what defines the run: the script (and its hash), every env value it saw, ranks, the cap
    params = {"train.script": train.script, "script.sha256": bundle.digest, "data.path": data_path,
              "ranks": str(ranks), **{f"env.{k}": env_str(v) for k, v in env.items()}}
    if train.score_tag:
        params["train.score_tag"] = train.score_tag
    script = ScriptRef(path=str(bundle.root), entry=bundle.entry, sha256=bundle.digest, files=len(bundle.files),
                       folder=bundle.is_dir)
    return ScriptTrainJob(identity=ident, name=name, script=script, env=env, nproc=ranks, score_tag=train.score_tag,
                          max_wallclock_seconds=cap, timeout_s=float(train.timeout_s or default_timeout_s(cap)),
                          trial=trial, study=study, seed=seed, gpus=ranks, ranks=ranks, params=params,
                          pass_env=tuple(train.pass_env))


def script_jobs(sweep: Any, data_id: str, workspace: str | Path = ".") -> list:
    """Every script_train job of a grid / random sweep (optuna trials are made by the driver)."""
    train: ScriptTrainSpec = sweep.train
    bundle = load_bundle(train, workspace)
    shown = list(env_axes(train))
    data = sweep.data_config()
    jobs = []
    for point in env_points(train, sweep.search):
        for seed in train.seeds:
            jobs.append(script_job(train, bundle, point, seed, vocab_size=data.vocab_size, data_id=data_id,
                                   data_path=data.path, shown=shown))
    return jobs


@dataclass(frozen=True)
class EnvStudy:
    """An optuna search over a script's env: what a trial is and how it becomes jobs.

    `identity` names the study in MLflow (tag `golf.study` on every trial job): sha256 over
    what a trial's result depends on (the script's files, entry, fixed env and search space,
    seeds, data identity, ranks, score tag, cap) and the sampler's seed, but not `n`: a sweep
    rerun with a larger `n` resumes the same study and only asks for the new trials."""

    identity: str
    n: int
    seed: int
    space: dict[str, dict[str, Any]]  # env name -> {low, high, log} | {choices: [env strings]}
    fixed: dict[str, Any]
    seeds: tuple[int, ...]
    train: ScriptTrainSpec
    bundle: ScriptBundle
    vocab_size: int
    data_id: str
    data_path: str

    def jobs(self, number: int, values: dict[str, Any]) -> list[ScriptTrainJob]:
        """Trial `number`'s jobs, one per seed: the fixed env plus the trial's values."""
        point = {**self.fixed, **values}
        return [script_job(self.train, self.bundle, point, seed, vocab_size=self.vocab_size, data_id=self.data_id,
                           data_path=self.data_path, shown=list(self.space), trial=number, study=self.identity)
                for seed in self.seeds]

    @property
    def sample_job(self) -> ScriptTrainJob:
        """One trial's job at the low end of the space: its shape (ranks, GPUs) and cap, for
        capacity checks and estimates."""
        return self.jobs(0, {k: (d["choices"][0] if "choices" in d else float(d["low"]))
                             for k, d in self.space.items()})[0]

    def values_of(self, env: dict[str, str]) -> dict[str, Any] | None:
        """A trial's values back from a job's env strings (MLflow's `env.*` params), or None when
        one is missing or outside the space (the run was not of this study)."""
        out: dict[str, Any] = {}
        for name, dom in self.domains.items():
            raw = env.get(name)
            if raw is None:
                return None
            if isinstance(dom, FloatRange):
                try:
                    raw = float(raw)  # env_str wrote repr(float): the sampler's value exactly
                except ValueError:
                    return None
            if not contains(dom, raw):
                return None
            out[name] = raw
        return out

    @property
    def domains(self) -> dict[str, Domain]:
        """The space read by the one decoder (workers.search_space)."""
        return decode_space(self.space)


def env_study(sweep: Any, data_id: str, workspace: str | Path = ".") -> EnvStudy | None:
    """The EnvStudy of an optuna script sweep (None for grid / random)."""
    from orchestrator.plan.build import canonical_json

    study = optuna_env_study(sweep.train, sweep.search)
    if study is None:
        return None
    train: ScriptTrainSpec = sweep.train
    bundle = load_bundle(train, workspace)
    data = sweep.data_config()
    key = {"script": bundle.files, "entry": bundle.entry, "fixed": {k: env_str(v) for k, v in study["fixed"].items()},
           "space": study["space"], "seeds": list(train.seeds), "data": data_id, "ranks": train.gpus_per_job,
           "score_tag": train.score_tag, "cap": train.max_wallclock_seconds, "sampler": "tpe",
           "seed": study["seed"], "format": SCRIPT_CODE_VERSION}
    ident = hashlib.sha256(canonical_json(key).encode()).hexdigest()
    return EnvStudy(identity=ident, n=study["n"], seed=study["seed"], space=study["space"], fixed=study["fixed"],
                    seeds=tuple(train.seeds), train=train, bundle=bundle, vocab_size=data.vocab_size,
                    data_id=data_id, data_path=data.path)


def stage_script(sweep: Any, workspace: str | Path, stage: str | Path) -> str | None:
    """`golf submit`: copy a script spec's script (or record folder) into the job's working dir
    at the path the spec names, so `golf run` on the cluster finds it. Returns what was staged
    (None for a preset spec; an external script must already be on the cluster at its path)."""
    if not getattr(sweep, "is_script", False) or sweep.train.external:
        return None
    bundle = load_bundle(sweep.train, workspace)
    rel = Path(sweep.train.script)
    for name in bundle.files:
        src = bundle.root / name
        dst = Path(stage) / (rel / name if bundle.is_dir else rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(src.read_bytes())
    return str(rel)


def script_files(job: Any) -> dict[str, bytes] | None:
    """A script job's files as bytes (checked against the plan's hash); None for other kinds."""
    if not isinstance(job, ScriptTrainJob):
        return None
    s = job.script
    root = Path(s.path)
    files = {}
    if s.folder:
        for p in _walk(root):
            files[p.relative_to(root).as_posix()] = p.read_bytes()
    else:
        files[s.entry] = (root / s.entry).read_bytes()
    digest = hashlib.sha256()
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).hexdigest().encode() + b"\0")
    if digest.hexdigest() != s.sha256:
        raise SpecError([f"train.script: {root / s.entry} changed since the plan was made; "
                         "run again to plan the new version"])
    return files
