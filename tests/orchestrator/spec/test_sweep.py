"""Spec files: valid ones load, every invalid one fails with exactly one line naming its field."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from orchestrator.spec.sweep import Range, SpecError, Sweep, load_sweep, parse_sweep, sweep_from_dict, sweep_schema

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "experiments").rglob("*.yaml"))
SMOKE = ROOT / "experiments" / "smoke.yaml"


def base() -> dict:
    return yaml.safe_load(SMOKE.read_text())


def edit(**paths):
    """A mutator setting dotted paths on a copy of smoke.yaml: edit(**{"mixer.buckets": 1000})."""
    def apply(d):
        for path, value in paths.items():
            keys = path.split(".")
            node = d
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            node[keys[-1]] = value
    return apply


def to_yaml(mutate) -> str:
    d = base()
    mutate(d)
    return yaml.safe_dump(d, sort_keys=False)


# (id, spec text or a mutator of smoke.yaml, the line's field path, a phrase in the message)
INVALID = [
    ("unknown-top", edit(foo=1), "foo", "unknown key"),
    ("unknown-depth2", edit(**{"mixer.bucketz": 1024}), "mixer.bucketz", "unknown key"),
    ("unknown-depth3", edit(**{"eval.ttt.lrr": 0.1}), "eval.ttt.lrr", "unknown key"),
    ("unknown-override", edit(**{"train.overrides.model.num_layerz": 3}), "train.overrides.model.num_layerz",
     "unknown key"),
    ("unknown-override-section", edit(**{"train.overrides.mdel": {"num_layers": 3}}), "train.overrides.mdel",
     "unknown key"),
    ("unknown-search-key", edit(search={"kind": "grid", "n": 3}), "search.n", "unknown key"),
    ("wrong-type-int", edit(**{"eval.stride": "wide"}), "eval.stride", "must be an integer"),
    ("wrong-type-list", edit(**{"train.seeds": "1337"}), "train.seeds", "must be a list"),
    ("wrong-type-axis-item", edit(**{"mixer.alpha_base": [0.1, "x"]}), "mixer.alpha_base[1]", "must be a number"),
    ("wrong-type-override", edit(**{"train.overrides.train.iterations": "many"}),
     "train.overrides.train.iterations", "must be an integer"),
    ("buckets-not-pow2", edit(**{"mixer.buckets": 1000}), "mixer.buckets", "must be a power of two (got 1000)"),
    ("buckets-not-pow2-item", edit(**{"mixer.buckets": [1024, 1000]}), "mixer.buckets[1]",
     "must be a power of two (got 1000)"),
    ("negative-alpha", edit(**{"mixer.alpha_base": -0.1}), "mixer.alpha_base", "must be >= 0"),
    ("negative-alpha-item", edit(**{"mixer.alpha_range": [0.2, -0.4]}), "mixer.alpha_range[1]", "must be >= 0"),
    ("alpha-sum", edit(**{"mixer.alpha_base": 0.5, "mixer.alpha_range": [0.4, 0.6]}), "mixer",
     "alpha_base + alpha_range must be <= 1"),
    ("orders-above-16", edit(**{"mixer.orders": [2, 17]}), "mixer.orders", "1..16"),
    ("orders-zero-in-axis", edit(**{"mixer.orders": [[2, 3], [0, 2]]}), "mixer.orders[1]", "1..16"),
    ("orders-beyond-primes", edit(**{"mixer.orders": [2, 9]}), "mixer", "primes"),
    ("centers-miss-orders", edit(**{"mixer.entropy_centers": {2: 4.5}}), "mixer", "entropy_centers lacks orders"),
    ("unknown-mode", edit(**{"mixer.modes": ["legal"]}), "mixer.modes[0]", "must be"),
    ("empty-modes", edit(**{"mixer.modes": []}), "mixer.modes", "must not be empty"),
    ("empty-seeds", edit(**{"train.seeds": []}), "train.seeds", "must not be empty"),
    ("duplicate-seed", edit(**{"train.seeds": [7, 7]}), "train.seeds[1]", "duplicate seed 7"),
    ("seed-in-overrides", edit(**{"train.overrides.train.seed": 3}), "train.overrides.train.seed", "train.seeds"),
    ("bad-override-value", edit(**{"train.overrides.model.model_dim": 65}), "train.overrides.model",
     "not divisible"),
    ("unknown-preset", edit(**{"train.preset": "huge"}), "train.preset", "must be"),
    ("ranks-not-dividing", edit(**{"train.gpus_per_job": 3}), "train.gpus_per_job", "do not divide"),
    ("grid-above-limit", edit(**{"limits.max_jobs": 20}), "limits.max_jobs",
     "grid has 46 mix jobs (52 jobs in all), above the limit 20"),
    ("range-in-grid", edit(**{"mixer.alpha_base": {"low": 0.0, "high": 0.2}}), "mixer.alpha_base",
     "needs search.kind random or optuna"),
    ("range-reversed", lambda d: (edit(search={"kind": "random", "n": 4})(d),
                                  edit(**{"mixer.alpha_base": {"low": 0.3, "high": 0.1}})(d)),
     "mixer.alpha_base", "must be below high"),
    ("optuna-nothing-searched", lambda d: (edit(search={"kind": "optuna", "n": 5})(d),
                                           edit(**{"mixer.alpha_base": 0.1, "mixer.alpha_range": 0.5})(d)),
     "search", "needs a searched mixer field"),
    ("search-kind", edit(search={"kind": "bayes"}), "search", "kind must be one of grid, random, optuna"),
    ("random-without-n", edit(search={"kind": "random"}), "search.n", "required"),
    ("optuna-infeasible", lambda d: (edit(search={"kind": "optuna", "n": 5})(d),
                                     edit(**{"mixer.alpha_base": {"low": 0.6, "high": 0.9},
                                             "mixer.alpha_range": {"low": 0.5, "high": 0.9}})(d)),
     "mixer", "no valid point"),
    ("name-dotdot", edit(name="../evil"), "name", "must be a slug"),
    ("name-slash", edit(name="a/b"), "name", "must be a slug"),
    ("name-upper", edit(name="Smoke"), "name", "must be a slug"),
    ("data-dotdot", edit(**{"data.path": "data/../../etc"}), "data.path", "leaves the workspace"),
    ("data-absolute", edit(**{"data.path": "/srv/fineweb"}), "data.path", "data.external: true"),
    ("data-env", edit(**{"data.path": "$HOME/data"}), "data.path", "no ~ or $ expansion"),
    ("duplicate-eval", lambda d: d.update(eval=[d["eval"], {**d["eval"], "gpus_per_job": 2}]), "eval[1]",
     "same evaluation as eval[0]"),
    ("vocab-mismatch", edit(**{"data.vocab_size": 2048}), "data.vocab_size", "differs from the model's vocab_size 1024"),
    ("missing-train", lambda d: d.pop("train"), "train", "required"),
    ("python-tag", "name: smoke\ntrain: !!python/object/apply:os.system ['echo pwned']\n", "line 2",
     "tags are not allowed"),
    ("python-name-tag", "!!python/name:os.system\n", "line 1", "tags are not allowed"),
    ("duplicate-key", SMOKE.read_text() + "name: other\n", "line", "duplicate key 'name'"),
    ("not-a-mapping", "- 1\n- 2\n", "<spec>", "expected a mapping"),
    ("bad-yaml", "name: [smoke\n", "line", ""),
]


def _text(case) -> str:
    return case if isinstance(case, str) else to_yaml(case)


@pytest.mark.parametrize("case,path,phrase", [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_spec_gives_one_line_naming_the_field(case, path, phrase):
    with pytest.raises(SpecError) as exc:
        parse_sweep(_text(case))
    lines = exc.value.lines
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"{path}:") if path != "line" else lines[0].startswith("line "), lines[0]
    assert phrase in lines[0], lines[0]
    assert "\n" not in lines[0]


def test_several_problems_give_several_lines():
    with pytest.raises(SpecError) as exc:
        sweep_from_dict({**base(), "foo": 1, "bar": 2})
    assert exc.value.lines == ["foo: unknown key", "bar: unknown key"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_spec_validates(path):
    sweep = load_sweep(path)
    counts = sweep.counts()
    if sweep.is_script:  # a user's train_gpt.py: env points x seeds
        assert counts["script_train"] % len(sweep.train.seeds) == 0 and counts["script_train"] > 0
    else:
        assert counts["train"] == len(sweep.train.seeds) and counts["mix"] >= counts["eval"] >= counts["train"]
    assert sweep.counts() == counts  # expansion is deterministic
    text = path.read_text()
    assert text.startswith("#"), "each example starts with a comment saying what it reproduces"


def test_smoke_counts_and_points():
    sweep = load_sweep(SMOKE)
    assert sweep.counts() == {"train": 2, "eval": 4, "mix": 46}
    pts = sweep.mixer_points()
    assert [p.mode for p in pts].count("none") == 1
    assert {p.mode for p in pts} == {"none", "hashed_target", "normalized", "tilt"}
    grid = {(p.alpha_base, p.alpha_range) for p in pts if p.mode == "normalized"}
    assert len(grid) == 9
    # tilt points vary only their own fields: 2 thresholds x 2 boosts, not x 9 alpha points
    tilt = [p for p in pts if p.mode == "tilt"]
    assert {(p.tilt_threshold, p.tilt_boost) for p in tilt} == {(0.5, 1.0), (0.5, 2.625), (0.8, 1.0), (0.8, 2.625)}
    assert len(tilt) == 4 and all(p.tilt_order == 4 for p in tilt)
    assert sweep.eval_points()[0].chunk_tokens == 16384
    assert sweep.run_config(42).train.seed == 42


def test_record_specs_match_the_prs():
    r779 = load_sweep(ROOT / "experiments/records/pr779.yaml")
    assert r779.train.seeds == (1337, 42, 2024) and r779.train.gpus_per_job == 8
    m = [p for p in r779.mixer_points() if p.mode == "hashed_target"]
    assert len(m) == 1
    m = m[0]
    assert (m.alpha_base, m.alpha_range, m.entropy_slope, m.entropy_center) == (0.05, 0.55, 2.0, 4.0)
    assert m.buckets == 2**22 and m.orders == (2, 3, 4, 5, 6, 7)
    ev = r779.eval_points()[0]
    assert (ev.stride, ev.chunk_tokens, ev.ttt.enabled, ev.ttt.lr, ev.ttt.last_k_blocks) == (64, 1048576, True, 3e-5, 1)
    r798 = load_sweep(ROOT / "experiments/records/pr798.yaml")
    (m798,) = [p for p in r798.mixer_points() if p.mode == "hashed_target"]
    assert m798.entropy_centers == {7: 3.0, 6: 3.2, 5: 3.5, 4: 3.8, 3: 4.2, 2: 4.5}
    assert r798.train.seeds == (1337, 42, 2025)


def test_scalar_and_list_axes_and_eval_forms():
    d = base()
    d["eval"] = [d["eval"], {**d["eval"], "stride": 32}]
    d["mixer"]["modes"] = ["normalized"]
    d["mixer"]["alpha_base"] = 0.1
    sweep = sweep_from_dict(d)
    assert len(sweep.eval_points()) == 2
    assert sweep.counts() == {"train": 2, "eval": 4, "mix": 4 * 3}
    d.pop("eval")  # omitted: the preset's own eval section
    sweep = sweep_from_dict(d)
    assert sweep.eval_points()[0].eval_config() == sweep.run_config(1337).eval


def test_random_search_is_seeded_and_valid():
    d = base()
    d["mixer"]["modes"] = ["none", "hashed_target", "normalized"]  # the alpha modes; tilt has its own test
    d["search"] = {"kind": "random", "n": 12, "seed": 3}
    d["mixer"]["alpha_base"] = {"low": 0.0, "high": 0.5}
    d["mixer"]["alpha_range"] = {"low": 0.3, "high": 0.8}  # half the box violates base + range <= 1
    a, b = sweep_from_dict(d), sweep_from_dict(d)
    assert a.mixer_points() == b.mixer_points()
    assert a.counts()["mix"] == 2 * (1 + 2 * 12)
    for p in a.mixer_points():
        assert p.alpha_base + p.alpha_range <= 1.0 and 0.0 <= p.alpha_base <= 0.5
    hashed = [(p.alpha_base, p.alpha_range) for p in a.mixer_points() if p.mode == "hashed_target"]
    normed = [(p.alpha_base, p.alpha_range) for p in a.mixer_points() if p.mode == "normalized"]
    assert hashed == normed  # modes compare on the same draws
    d["search"]["seed"] = 4
    assert sweep_from_dict(d).mixer_points() != a.mixer_points()


def test_tilt_random_and_optuna_search_their_own_fields():
    d = base()
    d["mixer"]["modes"] = ["tilt"]
    d["mixer"]["tilt_threshold"] = {"low": 0.5, "high": 0.95}
    d["mixer"]["tilt_boost"] = [1.0, 2.0]
    d["search"] = {"kind": "random", "n": 6, "seed": 1}
    pts = sweep_from_dict(d).mixer_points()
    assert len(pts) == 6 and all(p.mode == "tilt" and 0.5 <= p.tilt_threshold <= 0.95 for p in pts)
    d["search"] = {"kind": "optuna", "n": 20}
    (study,) = sweep_from_dict(d).optuna_studies()
    assert set(study["optuna"]["space"]) == {"tilt_threshold", "tilt_boost"}
    assert not [k for k in study["mixer_base"] if k.startswith("alpha") or k in ("primes", "orders")]


def test_optuna_space():
    d = base()
    d["mixer"]["modes"] = ["none", "hashed_target", "normalized"]  # the alpha modes
    d["search"] = {"kind": "optuna", "n": 50}
    d["mixer"]["alpha_base"] = {"low": 0.0, "high": 0.3}
    d["mixer"]["entropy_slope"] = {"low": 0.5, "high": 4.0, "log": True}
    sweep = sweep_from_dict(d)
    studies = sweep.optuna_studies()
    assert [s["mixer_base"]["mode"] for s in studies] == ["hashed_target", "normalized"]
    space = studies[0]["optuna"]["space"]
    assert space["alpha_base"] == {"low": 0.0, "high": 0.3, "log": False}
    assert space["alpha_range"] == {"choices": [0.2, 0.4, 0.6]}
    assert "alpha_base" not in studies[0]["mixer_base"] and studies[0]["mixer_base"]["buckets"] == 262144
    assert sweep.counts() == {"train": 2, "eval": 2, "mix": 2 * 3}  # none + one study per mode


def test_per_order_centers_keep_the_single_center():
    # golf_core's mixer uses entropy_center for positions with no order hit, even with per-order
    # centers (#798's 4.0 for no match), so it stays an axis of its own
    d = base()
    d["mixer"]["modes"] = ["normalized"]
    d["mixer"]["entropy_center"] = [3.0, 4.0, 5.0]
    d["mixer"]["entropy_centers"] = [None, {2: 4.5, 3: 4.2, 4: 3.8, 5: 3.5}]
    d["limits"]["max_jobs"] = 200
    pts = sweep_from_dict(d).mixer_points()
    assert len(pts) == 9 * 3 * 2
    assert {p.entropy_center for p in pts if p.entropy_centers} == {3.0, 4.0, 5.0}


def test_data_path_rules():
    d = base()
    d["data"]["path"] = "./data//smoke/"
    assert sweep_from_dict(d).data_config().path == "data/smoke"
    d["data"].update(path="/srv/fineweb10B_sp1024", external=True)
    assert sweep_from_dict(d).data_config().path == "/srv/fineweb10B_sp1024"
    assert "external" not in sweep_from_dict(d).data_config().model_dump()


def test_sweep_is_frozen():
    sweep = load_sweep(SMOKE)
    with pytest.raises(Exception):
        sweep.name = "other"
    assert isinstance(Sweep.model_fields["mixer"].default.alpha_base, float)
    assert Range(low=0, high=1).high == 1


# --- JSON Schema (what `golf schema` prints; tests/orchestrator/cli/test_spec.py checks the command)


def _as_json(path: Path):
    # what an editor's YAML language server sees: mapping keys are strings
    return json.loads(json.dumps(yaml.safe_load(path.read_text())))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_examples_validate_against_the_json_schema(path):
    schema = sweep_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(_as_json(path), schema)


def test_json_schema_rejects_what_pydantic_rejects():
    schema = sweep_schema()
    bad = _as_json(SMOKE)
    bad["mixer"]["bucketz"] = 4
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    bad = _as_json(SMOKE)
    bad["train"]["overrides"] = {"model": {"num_layerz": 3}}  # overrides are typed too
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    good = _as_json(SMOKE)
    good["train"]["overrides"] = {"model": {"num_layers": 3}}
    jsonschema.validate(good, schema)


def test_specs_are_data_only(tmp_path):
    marker = tmp_path / "pwned"
    text = f"name: x\ntrain: !!python/object/apply:os.system ['touch {marker}']\n"
    with pytest.raises(SpecError):
        parse_sweep(text)
    assert not marker.exists()
    d = copy.deepcopy(base())
    d["data"]["path"] = "${HOME}"
    with pytest.raises(SpecError, match=r"data.path: no ~ or \$ expansion"):
        sweep_from_dict(d)
