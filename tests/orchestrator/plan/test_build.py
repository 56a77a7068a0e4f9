"""Plan expansion: counts, dependency order, and which changes change a job's identity."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

import golf_core
from golf_core.eval.config import MixerConfig
from orchestrator.plan.estimate import approx_params, estimate_plan
from orchestrator.plan.build import Plan, build_plan, data_identity, load_plan, topological_ok
from orchestrator.spec.sweep import load_sweep, sweep_from_dict
from tests.orchestrator.spec.test_sweep import edit
from workers.contract import TrainJob

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "experiments").rglob("*.yaml"))
SMOKE = ROOT / "experiments" / "smoke.yaml"


def one_of_each() -> dict:
    """A sweep with exactly one train, one eval and one hashed_target mix job."""
    return {
        "name": "ids",
        "data": {"path": "data/ids", "synthetic_train_tokens": 100_000, "synthetic_val_tokens": 20_000},
        "train": {"preset": "tiny", "seeds": [7], "gpus_per_job": 1},
        "eval": {"seq_len": 128, "stride": 64, "chunk_tokens": 16384},
        "mixer": {"modes": ["hashed_target"], "orders": [2, 3], "buckets": 1024,
                  "alpha_base": 0.05, "alpha_range": 0.55},
    }


def ids(mutate=None, code="code-a", workspace=".") -> dict[str, str]:
    d = one_of_each()
    if mutate:
        mutate(d)
    plan = build_plan(sweep_from_dict(d), workspace, code_version=code)
    first = {}
    for j in plan.jobs:  # the first job of each kind = the one descending from seed 7 / e0
        first.setdefault(j.kind, j.identity)
    return first


def put(path, value):
    return edit(**{path: value})  # the spec tests' dotted-path mutator


# marin-style version table: (change, which kinds keep their identity)
SAME_ALL = ("train", "eval", "mix")
VERSION_TABLE = [
    # not results: names, bookkeeping, parallelism of the eval, path spelling, siblings
    ("sweep name", put("name", "other"), SAME_ALL),
    ("description", put("description", "words"), SAME_ALL),
    ("retries", put("retries", 5), SAME_ALL),
    ("job limit", put("limits.max_jobs", 7), SAME_ALL),
    ("eval ranks", put("eval.gpus_per_job", 2), SAME_ALL),
    ("data path spelling", put("data.path", "./data//ids/"), SAME_ALL),
    ("another seed added", put("train.seeds", [7, 8]), SAME_ALL),
    ("another mode added", put("mixer.modes", ["hashed_target", "normalized"]), SAME_ALL),
    ("explicit default", put("mixer.min_count", 2), SAME_ALL),
    # results: everything upstream of a job changes it and everything below it
    ("seed", put("train.seeds", [8]), ()),
    ("model override", put("train.overrides", {"model": {"num_layers": 3}}), ()),
    ("train override", put("train.overrides", {"train": {"iterations": 31}}), ()),
    ("wallclock cap", put("train.max_wallclock_seconds", 30), ()),
    ("training ranks", put("train.gpus_per_job", 2), ()),
    ("synthetic data seed", put("data.synthetic_seed", 1), ()),
    ("synthetic data size", put("data.synthetic_val_tokens", 30_000), ()),
    ("eval stride", put("eval.stride", 32), ("train",)),
    ("eval chunk", put("eval.chunk_tokens", 8192), ("train",)),
    ("ttt lr", put("eval.ttt", {"enabled": True, "lr": 1e-4}), ("train",)),
    ("alpha_base", put("mixer.alpha_base", 0.1), ("train", "eval")),
    ("entropy center", put("mixer.entropy_center", 3.5), ("train", "eval")),
    ("buckets", put("mixer.buckets", 2048), ("train", "eval")),
    ("mixer mode", put("mixer.modes", ["normalized"]), ("train", "eval")),
]


@pytest.mark.parametrize("change,mutate,same", VERSION_TABLE, ids=[r[0] for r in VERSION_TABLE])
def test_identity_version_table(change, mutate, same):
    before, after = ids(), ids(mutate)
    for kind in ("train", "eval", "mix"):
        if kind in same:
            assert before[kind] == after[kind], f"{change} must not change the {kind} identity"
        else:
            assert before[kind] != after[kind], f"{change} must change the {kind} identity"


def test_code_version_changes_every_identity():
    a, b = ids(code="code-a"), ids(code="code-b")
    assert all(a[k] != b[k] for k in a)
    assert build_plan(load_sweep(SMOKE)).jobs[0].identity == build_plan(load_sweep(SMOKE)).jobs[0].identity
    assert len(golf_core.code_version()) == 12


def test_mode_none_ignores_alpha_fields():
    def none_id(alpha):
        d = one_of_each()
        d["mixer"].update(modes=["none"], alpha_base=alpha)
        (mix,) = build_plan(sweep_from_dict(d), code_version="c").by_kind("mix")
        return mix.identity, mix.mixer.mode
    assert none_id(0.05) == none_id(0.3)
    assert none_id(0.05)[1] == "none"


def test_tilt_points_leave_every_other_identity_unchanged():
    """Tilt points get their own eval job: with the code version fixed, the smoke plan's jobs
    without tilt have the identities they have in a spec that never heard of tilt."""
    import yaml

    d = yaml.safe_load(SMOKE.read_text())
    with_tilt = {j.name: j.identity for j in build_plan(sweep_from_dict(d), code_version="c").jobs}
    d["mixer"]["modes"] = [m for m in d["mixer"]["modes"] if m != "tilt"]
    for k in [k for k in d["mixer"] if k.startswith("tilt_")]:
        del d["mixer"][k]
    without = {j.name: j.identity for j in build_plan(sweep_from_dict(d), code_version="c").jobs}
    assert len(without) == 42 and all(with_tilt[n] == i for n, i in without.items())
    new = sorted(set(with_tilt) - set(without))
    assert len(new) == 10 and all("/tilt" in n for n in new)  # 2 tilt evals + 8 tilt mixes
    tilt_eval = build_plan(load_sweep(SMOKE), code_version="c").job(with_tilt["eval/s42/e0/tilt"])
    assert tilt_eval.eval.tilt_tables == ((4, 0),)


def test_smoke_plan_counts_order_and_contents():
    plan = load_plan(SMOKE)
    assert plan.counts() == {"train": 2, "eval": 4, "mix": 46}  # a tilt eval per seed
    assert topological_ok(plan.jobs)
    assert not topological_ok(tuple(reversed(plan.jobs)))
    by_id = {j.identity: j for j in plan.jobs}
    assert len(by_id) == len(plan.jobs) and len({j.name for j in plan.jobs}) == len(plan.jobs)
    for j in plan.jobs:
        dep_kinds = [by_id[d].kind for d in j.deps]
        assert dep_kinds == {"train": [], "eval": ["train"], "mix": ["eval"]}[j.kind]
        assert all(by_id[d].seed == j.seed for d in j.deps)
        json.dumps(j.params)  # resolved and JSON-able
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in j.params.items())
        assert (j.ranks, j.gpus) == (1, 0)  # tiny preset: CPU
    train = plan.by_kind("train")[0]
    assert train.run == load_sweep(SMOKE).run_config(train.seed)
    assert train.params["train.seed"] == str(train.seed) and train.params["model.num_layers"] == "2"
    mix = [j for j in plan.by_kind("mix") if j.mixer.mode == "normalized"][0]
    assert mix.mixer.mode == "normalized" and mix.params["mixer.mode"] == "normalized"
    assert "alpha_base=" in mix.name
    ev = plan.by_kind("eval")[0]
    assert ev.eval.chunk_tokens == 16384
    assert plan.retries == 1 and plan.spec_dump["name"] == "smoke" and plan.data.path == "data/smoke"


def test_record_plan_ranks_and_gpus():
    plan = load_plan(ROOT / "experiments/records/pr779.yaml")
    assert plan.counts() == {"train": 3, "eval": 3, "mix": 6}
    assert {(j.ranks, j.gpus) for j in plan.by_kind("train")} == {(8, 8)}
    assert {(j.ranks, j.gpus) for j in plan.by_kind("eval")} == {(8, 8)}
    assert {j.seed for j in plan.jobs} == {1337, 42, 2024}


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_plans_in_dependency_order(path):
    sweep = load_sweep(path)
    plan = build_plan(sweep)
    assert topological_ok(plan.jobs)
    assert plan.counts() == sweep.counts()
    est = estimate_plan(plan)
    assert all(est.seconds[j.identity] > 0 for j in plan.jobs)


def test_sweep_identity_is_the_job_set():
    a = build_plan(sweep_from_dict(one_of_each()), code_version="c")
    d = one_of_each()
    d["retries"] = 3
    assert build_plan(sweep_from_dict(d), code_version="c").sweep_identity == a.sweep_identity
    d["mixer"]["alpha_base"] = 0.2
    assert build_plan(sweep_from_dict(d), code_version="c").sweep_identity != a.sweep_identity


def _write_shard(path: Path, tokens: np.ndarray) -> None:
    header = np.zeros(256, dtype="<i4")
    header[:3] = (20240520, 1, len(tokens))
    path.write_bytes(header.tobytes() + tokens.astype("<u2").tobytes())


def _real_dir(root: Path, n_val: int = 1000, tok: bytes = b"sp-model-A") -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    _write_shard(root / "fineweb_train_000000.bin", rng.integers(0, 1024, 4000))
    _write_shard(root / "fineweb_val_000000.bin", rng.integers(0, 1024, n_val))
    (root / "fineweb_1024_bpe.model").write_bytes(tok)
    return root


def test_data_identity(tmp_path):
    from golf_core.data.config import DataConfig

    synth = DataConfig(path="nowhere/yet")
    assert data_identity(synth, tmp_path) == data_identity(DataConfig(path="elsewhere"), tmp_path)
    assert data_identity(synth, tmp_path) != data_identity(DataConfig(path="x", synthetic_seed=1), tmp_path)
    a = _real_dir(tmp_path / "a")
    b = _real_dir(tmp_path / "b")
    ida = data_identity(DataConfig(path="a"), tmp_path)
    assert ida == data_identity(DataConfig(path=str(b)), tmp_path)  # content, not location
    assert ida != data_identity(synth, tmp_path)
    _real_dir(tmp_path / "c", n_val=999)
    assert data_identity(DataConfig(path="c"), tmp_path) != ida  # a shard's size
    _real_dir(tmp_path / "d", tok=b"sp-model-B")
    assert data_identity(DataConfig(path="d"), tmp_path) != ida  # the tokenizer's content
    (a / "manifest.json").write_text('{"v": 1}')
    with_manifest = data_identity(DataConfig(path="a"), tmp_path)
    (a / "manifest.json").write_text('{"v": 2}')
    assert data_identity(DataConfig(path="a"), tmp_path) != with_manifest
    # a synthetic-looking dir golf did not make (no golf_synthetic.json) is its content (issue 20)
    s = _real_dir(tmp_path / "s")
    (s / "fineweb_1024_bpe.model").rename(s / "synthetic_1024_bpe.model")
    assert data_identity(DataConfig(path="s"), tmp_path) != data_identity(DataConfig(path="s2"), tmp_path)


def _flip_val_tokens(d: Path, n: int = 20_000) -> None:
    """Change up to `n` validation tokens in place: same size, same name (issue 20, case 6)."""
    f = next(d.glob("fineweb_val_*.bin"))
    data = bytearray(f.read_bytes())
    end = min(len(data), 1024 + 2 * n)
    for i in range(1024, end, 2):
        data[i] = (data[i] + 1) % 256
    st = f.stat()
    f.write_bytes(bytes(data))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # even the same mtime: the inode's bytes differ


def test_data_identity_is_the_shards_bytes_hashed_once(tmp_path, monkeypatch):
    """Issue 20, case 6: 20,000 val tokens changed at the same size, and golf reused the old
    val_bpb; a rerun over unchanged shards must not read them again."""
    import hashlib as hl

    from golf_core.data.config import DataConfig
    from orchestrator.plan import datasets

    _real_dir(tmp_path / "r", n_val=30_000)
    first = data_identity(DataConfig(path="r"), tmp_path)
    reads = []
    real_digest = hl.file_digest
    monkeypatch.setattr(datasets.hashlib, "file_digest", lambda f, a: reads.append(f.name) or real_digest(f, a))
    assert data_identity(DataConfig(path="r"), tmp_path) == first and reads == []  # cached: nothing read
    _flip_val_tokens(tmp_path / "r")
    changed = data_identity(DataConfig(path="r"), tmp_path)
    assert changed != first and [Path(x).name for x in reads] == ["fineweb_val_000000.bin"]
    assert data_identity(DataConfig(path="r"), tmp_path) == changed  # stable again


def test_synthetic_identity_is_its_recipe_while_it_holds_golfs_bytes(tmp_path):
    from golf_core.data.config import DataConfig
    from golf_core.data.synthetic import make_synthetic

    cfg = DataConfig(path="syn", synthetic_train_tokens=20_000, synthetic_val_tokens=5_000)
    before = data_identity(cfg, tmp_path)  # not made yet: the recipe
    make_synthetic(tmp_path / "syn", 20_000, 5_000, cfg.synthetic_seed, vocab_size=cfg.vocab_size)
    assert data_identity(cfg, tmp_path) == before  # made: the same jobs, reused
    _flip_val_tokens(tmp_path / "syn", 1000)
    assert data_identity(cfg, tmp_path) != before  # a changed byte: the jobs rerun


def test_plan_changes_when_data_content_changes(tmp_path):
    _real_dir(tmp_path / "data" / "ids")
    real = ids(workspace=tmp_path)
    assert real["train"] != ids()["train"]
    assert real["train"] == ids(workspace=tmp_path)["train"]


def test_an_optuna_mix_job_drives_the_workers_study():
    """The plan's OptunaMixJob is what workers.worker.run_optuna searches (its one copy of
    the suggestion code); invalid combinations are told FAIL, never scored."""
    from pydantic import ValidationError

    from workers.worker import run_optuna

    d = one_of_each()
    d["search"] = {"kind": "optuna", "n": 8, "seed": 0}
    d["mixer"].update(alpha_base={"low": 0.0, "high": 0.6}, alpha_range={"low": 0.1, "high": 0.9},
                      buckets=[1024, 4096], orders=[[2, 3], [2, 3, 4]])
    plan = build_plan(sweep_from_dict(d), code_version="c")
    (job,) = plan.by_kind("mix")
    assert job.mixer_base and job.optuna.n == 8
    scored = []

    def score(mixer: dict):
        try:
            cfg = MixerConfig(**mixer)
        except ValidationError as e:  # alpha_base + alpha_range > 1
            raise ValueError(str(e)) from None
        assert cfg.mode == "hashed_target" and cfg.buckets in (1024, 4096) and cfg.orders in ((2, 3), (2, 3, 4))
        assert 0.0 <= cfg.alpha_base <= 0.6 and cfg.alpha_base + cfg.alpha_range <= 1.0
        scored.append(cfg.alpha_base)
        return cfg.alpha_base, 0.0  # any objective: the plumbing is under test

    out = run_optuna(job.mixer_base, job.optuna, score)
    assert 0 < len(out["trials"]) <= 8 and len(scored) == len(out["trials"]) + 1  # + the best, rescored
    assert out["val_bpb"] == min(t[1] for t in out["trials"])


def test_job_and_plan_defaults_for_callers():
    run = load_sweep(SMOKE).run_config(1)
    job = TrainJob(identity="abc", name="train/s1", run=run)
    plan = Plan("s", "sid", (job,), load_sweep(SMOKE).data_config())
    assert plan.job("abc") is job and plan.retries == 1 and job.deps == ()
    assert {job: 1}[TrainJob(identity="abc", name="train/s1", run=run)] == 1  # hashable by identity
    with pytest.raises(TypeError):  # keywords only: no positional construction
        TrainJob("abc", "train/s1", run)
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.seed = 2
    import pickle
    assert pickle.loads(pickle.dumps(plan)) == plan  # travels to Ray workers
    with pytest.raises(KeyError):
        plan.job("nope")


def test_estimates_are_sane():
    from golf_core.presets import load_preset

    # the upstream baseline has 17,059,912 params, #779 33.3M: the count model is within 1%
    assert abs(approx_params(load_preset("baseline").model) - 17_059_912) / 17_059_912 < 0.01
    assert abs(approx_params(load_preset("pr779").model) - 33_317_980) / 33_317_980 < 0.01
    plan = load_plan(ROOT / "experiments/records/pr779.yaml")
    est = estimate_plan(plan, tokens=62_021_632)
    train = plan.by_kind("train")[0]
    assert 8 * 600 / 3600 < est.gpu_hours[train.identity] < 8 * 900 / 3600  # 8 GPUs x the 600 s cap
    ev = plan.by_kind("eval")[0]
    assert 200 < est.seconds[ev.identity] < 900  # #779: 371 s with TTT + mixer
    smoke = load_plan(SMOKE)
    assert estimate_plan(smoke).total_gpu_hours() == 0  # CPU
