"""The n-gram mixer's search space in a spec: axes, ranges, search kinds, and their expansion.

Each `mixer` field is one MixerConfig field or an axis of them: a scalar (one value), a list
(grid values, or random/optuna choices) or, for float fields under random/optuna search, a
range `{low, high, log}`. Single values are checked by MixerConfig's own validators, so the
spec follows golf_core's rules (buckets a power of two, orders in 1..16, alphas in [0, 1]);
whole points are checked as MixerConfigs (alpha_base + alpha_range <= 1, centers cover orders).
`modes` always multiplies: every point is evaluated in every listed mode, so modes compare on
identical settings; mode `none` (the model alone) is one point regardless of the other axes.
"""
from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, Discriminator, Field, Tag, ValidationError, model_validator

from golf_core.config import MAX_SEED, Frozen
from golf_core.eval.config import MixerConfig
from orchestrator.spec.io import clean_msg, golf_error
from workers.search_space import decode_space, draw, encode

MODES = ("none", "hashed_target", "normalized", "tilt")
# MixerConfig fields a spec may sweep, in the order points are enumerated (and named).
MIX_AXES = ("orders", "buckets", "min_count", "warmup_tokens", "alpha_base", "alpha_range",
            "entropy_slope", "entropy_center", "entropy_centers", "alpha_max")
# the tilt mode's own fields (#2135): a tilt point uses only these, the other modes never do
TILT_AXES = ("tilt_order", "tilt_threshold", "tilt_boost", "tilt_table_bits")
AXES = MIX_AXES + TILT_AXES
FLOAT_AXES = ("alpha_base", "alpha_range", "entropy_slope", "entropy_center", "alpha_max",
              "tilt_threshold", "tilt_boost")


def mode_axes(mode: str) -> tuple[str, ...]:
    """The axes a point of `mode` uses."""
    return TILT_AXES if mode == "tilt" else MIX_AXES
MAX_DRAWS = 100_000  # random draws / optuna trials per study


# ---------------------------------------------------------------------------------------------
# mixer axes: values checked by MixerConfig itself


def _mixer_value(name: str):
    """The type of one value of MixerConfig.<name>, checked by MixerConfig's own validators."""
    field = MixerConfig.model_fields[name]

    def check(v):
        try:
            MixerConfig.model_validate({name: v})
        except ValidationError as e:
            for err in e.errors():  # model-level errors involve other fields: checked per point
                if err["loc"][:1] == (name,):
                    raise golf_error(clean_msg(err["msg"]) + ("" if "(got" in err["msg"] else f" (got {v!r})"))
        return v

    return Annotated[(field.annotation, *field.metadata, AfterValidator(check))]


class Range(Frozen):
    """A continuous search range for random/optuna search (log: sample log-uniformly)."""

    low: float = Field(description="lowest value searched")
    high: float = Field(description="highest value searched (above low)")
    log: bool = Field(False, description="sample on a log scale (low > 0)")

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if not self.low < self.high:
            raise ValueError(f"low {self.low} must be below high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError("log ranges need low > 0")
        return self


def _axis_tag(v: Any) -> str:
    if isinstance(v, (dict, Range)):
        return "<range>"
    if isinstance(v, (list, tuple)):
        return "<list>"
    return "<value>"


def _float_axis(name: str):
    item = _mixer_value(name)
    return Annotated[
        Union[Annotated[item, Tag("<value>")], Annotated[tuple[item, ...], Tag("<list>")],
              Annotated[Range, Tag("<range>")]],
        Discriminator(_axis_tag),
    ]


def _int_axis(name: str):
    item = _mixer_value(name)
    return Annotated[
        Union[Annotated[item, Tag("<value>")], Annotated[tuple[item, ...], Tag("<list>")]],
        Discriminator(lambda v: "<list>" if isinstance(v, (list, tuple)) else "<value>"),
    ]


_Orders = _mixer_value("orders")
_Centers = dict[int, float]


def _orders_tag(v: Any) -> str:
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, (list, tuple)) for x in v):
        return "<list>"
    return "<value>"


def _centers_tag(v: Any) -> str:
    if v is None:
        return "<none>"
    return "<list>" if isinstance(v, (list, tuple)) else "<value>"


_AXIS_NOTE = {"<float>": " (a value, a list of values, or a {low, high} range)",
              "<int>": " (a value or a list of values)"}


def _axis_default(name: str):
    """MixerConfig's default and description for the spec field `name`, plus how it is swept."""
    f = MixerConfig.model_fields[name]
    kind = "<float>" if name in FLOAT_AXES else "<int>" if name not in ("primes", "miss_vocab") else ""
    return Field(f.default, description=(f.description or name) + _AXIS_NOTE.get(kind, ""))


def nonempty(v: tuple) -> tuple:
    if not v:
        raise ValueError("must not be empty")
    return v


class MixerSpec(Frozen):
    """The n-gram mixer's search space; each field is one MixerConfig field (or an axis of them)."""

    modes: Annotated[tuple[Literal["none", "hashed_target", "normalized", "tilt"], ...], AfterValidator(nonempty)] = Field(
        ("none",), description="every point runs in every mode; none = the model alone (one job)")
    # one order set [2, 3, 4] or an axis of sets [[2, 3], [2, 3, 4]]
    orders: Annotated[Union[Annotated[_Orders, Tag("<value>")], Annotated[tuple[_Orders, ...], Tag("<list>")]],
                      Discriminator(_orders_tag)] = _axis_default("orders")
    buckets: _int_axis("buckets") = _axis_default("buckets")
    min_count: _int_axis("min_count") = _axis_default("min_count")
    warmup_tokens: _int_axis("warmup_tokens") = _axis_default("warmup_tokens")
    primes: _mixer_value("primes") = _axis_default("primes")
    # hashed_target's 1/V on a miss: the model's V, or #779's max token id + 1 (not an axis)
    miss_vocab: _mixer_value("miss_vocab") = _axis_default("miss_vocab")
    alpha_base: _float_axis("alpha_base") = _axis_default("alpha_base")
    alpha_range: _float_axis("alpha_range") = _axis_default("alpha_range")
    entropy_slope: _float_axis("entropy_slope") = _axis_default("entropy_slope")
    entropy_center: _float_axis("entropy_center") = _axis_default("entropy_center")
    alpha_max: _float_axis("alpha_max") = _axis_default("alpha_max")
    # per-order centers (#798) {7: 3.0, ...}, or an axis of them (null = one center for all orders)
    entropy_centers: Annotated[
        Union[Annotated[None, Tag("<none>")], Annotated[_Centers, Tag("<value>")],
              Annotated[tuple[_Centers | None, ...], Tag("<list>")]],
        Discriminator(_centers_tag)] = _axis_default("entropy_centers")
    # token-only tilt (#2135); used by mode tilt alone
    tilt_order: _int_axis("tilt_order") = _axis_default("tilt_order")
    tilt_threshold: _float_axis("tilt_threshold") = _axis_default("tilt_threshold")
    tilt_boost: _float_axis("tilt_boost") = _axis_default("tilt_boost")
    tilt_table_bits: _int_axis("tilt_table_bits") = _axis_default("tilt_table_bits")

    def axis(self, name: str) -> tuple | Range:
        """The values an axis takes: a tuple of MixerConfig values, or a Range."""
        v = getattr(self, name)
        if isinstance(v, Range):
            return v
        if name == "orders":  # one value is itself a tuple (an order set): an axis is a tuple of them
            return v if v and isinstance(v[0], tuple) else (v,)
        return v if isinstance(v, tuple) else (v,)  # entropy_centers' one value is a dict or None

    @property
    def mixing_modes(self) -> tuple[str, ...]:
        """The listed modes other than `none`, in order, without duplicates."""
        return tuple(dict.fromkeys(m for m in self.modes if m != "none"))


# ---------------------------------------------------------------------------------------------
# search


class GridSearch(Frozen):
    kind: Literal["grid"] = Field("grid", description="every combination of the listed values")


class RandomSearch(Frozen):
    kind: Literal["random"] = Field("random", description="n points drawn from the lists and ranges")
    n: int = Field(ge=1, le=MAX_DRAWS, description="points drawn")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the draw")


class OptunaSearch(Frozen):
    """Optuna ask/tell: one mix job per (eval job, mode) that runs `n` trials (see plan.py)."""

    kind: Literal["optuna"] = Field("optuna", description="TPE search over the token stats of each eval")
    n: int = Field(ge=1, le=MAX_DRAWS, description="trials per eval job and mode")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="TPESampler seed")


def _search_tag(v: Any) -> str | None:
    kind = v.get("kind") if isinstance(v, dict) else getattr(v, "kind", None)
    return f"<{kind}>" if kind in ("grid", "random", "optuna") else None


Search = Annotated[
    Union[Annotated[GridSearch, Tag("<grid>")], Annotated[RandomSearch, Tag("<random>")],
          Annotated[OptunaSearch, Tag("<optuna>")]],
    Discriminator(_search_tag, custom_error_type="golf",
                  custom_error_message="kind must be one of grid, random, optuna"),
]


# ---------------------------------------------------------------------------------------------
# expansion


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v)) if v is not None else None


def upper_points(mixer: MixerSpec, search: Search) -> int:
    """Mix points per eval job before validation/dedup (cheap: no configs built)."""
    modes = len(mixer.mixing_modes)
    n_none = 1 if "none" in mixer.modes else 0
    if search.kind == "optuna":
        return modes + n_none
    if search.kind == "random":
        return modes * search.n + n_none
    return sum(math.prod(len(mixer.axis(n)) for n in mode_axes(m)) for m in mixer.mixing_modes) + n_none


def _first(ax: tuple | Range) -> Any:
    return (ax.low + ax.high) / 2 if isinstance(ax, Range) else ax[0]


def _raw_points(mixer: MixerSpec, search: Search) -> list[dict[str, Any]]:
    """Mode-less field dicts: the grid's product, or the random draws (rejecting invalid ones)."""
    axes = {n: mixer.axis(n) for n in AXES}
    if search.kind == "grid":
        return [dict(zip(AXES, combo)) for combo in itertools.product(*(axes[n] for n in AXES))]
    if search.kind == "random":
        rng, out = random.Random(search.seed), []
        for _ in range(search.n):
            for _attempt in range(100):
                pt = {n: draw(axes[n], rng) for n in MIX_AXES}
                # tilt axes drawn only when tilt runs: random specs without tilt draw as before
                pt.update({n: draw(axes[n], rng) if "tilt" in mixer.modes else _first(axes[n]) for n in TILT_AXES})
                if _config_error(pt, mixer) is None:
                    break
            out.append(pt)
        return out
    return []  # optuna: the worker draws (workers.worker.run_optuna)


def _config_error(fields: dict[str, Any], mixer: MixerSpec, mode: str = "hashed_target") -> str | None:
    try:
        MixerConfig(mode=mode, primes=mixer.primes, miss_vocab=mixer.miss_vocab, **fields)
    except ValidationError as e:
        return clean_msg(e.errors()[0]["msg"])
    return None


def _describe(fields: dict[str, Any], mixer: MixerSpec) -> str:
    varying = [n for n in AXES if isinstance(mixer.axis(n), Range) or len(mixer.axis(n)) > 1]
    shown = varying or [n for n in AXES if n in ("alpha_base", "alpha_range")]
    return ", ".join(f"{n}={_jsonable(fields[n])}" for n in shown)


class _FieldsOnly(MixerConfig):
    """MixerConfig's field checks (types, bounds, bools, sorted orders) without its cross-field
    one: what one axis value becomes in any MixerConfig, validated once per value."""

    @model_validator(mode="after")
    def _consistent(self) -> "_FieldsOnly":
        return self


@dataclass(frozen=True)
class _Grid:
    """A grid's points as index tuples into its axes (in _raw_points' order), each axis's values
    validated once (issue 21: one pydantic check per axis value, not per point), and per value
    the key that tells equal values apart as their JSON does (repr: -0.0 / 0.0, 1 / 1.0)."""
    combos: list[tuple[int, ...]]
    raw: dict[str, tuple]  # the spec's values, per axis
    valid: dict[str, list]  # the same as MixerConfig validation makes them (orders sorted, ints as floats)
    keys: dict[str, list[str]]
    fixed: dict[str, Any]  # the validated fields every point has (primes, miss_vocab)

    def point(self, combo: tuple[int, ...]) -> dict[str, Any]:
        """A point's spec values (what error messages show)."""
        return {n: self.raw[n][i] for n, i in zip(AXES, combo)}


def _value_key(v: Any) -> str:
    return repr(sorted(v.items())) if isinstance(v, dict) else repr(v)


_DEFAULTS = {n: f.get_default(call_default_factory=True) for n, f in MixerConfig.model_fields.items()}
_GRIDS: dict[int, tuple] = {}  # id(mixer) -> (mixer, grid): the spec's check and its expansion share one


def _grid_of(mixer: MixerSpec) -> _Grid:
    hit = _GRIDS.get(id(mixer))
    if hit is None or hit[0] is not mixer:
        _GRIDS.clear()
        raw = {n: mixer.axis(n) for n in AXES}
        valid = {n: [getattr(_FieldsOnly.model_validate({n: v}), n) for v in raw[n]] for n in AXES}
        fixed = {n: getattr(_FieldsOnly.model_validate({n: getattr(mixer, n)}), n) for n in ("primes", "miss_vocab")}
        grid = _Grid(list(itertools.product(*(range(len(raw[n])) for n in AXES))), raw, valid,
                     {n: [_value_key(v) for v in valid[n]] for n in AXES}, fixed)
        hit = _GRIDS[id(mixer)] = (mixer, grid)
    return hit[1]


def _copy_with(template: MixerConfig, fields: dict[str, Any]) -> MixerConfig:
    """template.model_copy(update=fields), as pydantic's __copy__ + update does it for a model
    without extra or private values, in one step: a 50,000-point spec makes 50,000 of them and
    model_copy's generic path was a fifth of `golf plan`'s spec load (issue 21). Anything else
    takes model_copy itself (tests/orchestrator/spec/test_mixer_space.py compares the two)."""
    if template.__pydantic_extra__ is not None or getattr(template, "__pydantic_private__", None) is not None:
        return template.model_copy(update=fields)
    cfg = MixerConfig.__new__(type(template))
    object.__setattr__(cfg, "__dict__", {**template.__dict__, **fields})
    object.__setattr__(cfg, "__pydantic_extra__", None)
    object.__setattr__(cfg, "__pydantic_fields_set__", template.__pydantic_fields_set__ | fields.keys())
    object.__setattr__(cfg, "__pydantic_private__", None)
    return cfg


def _construct(template: MixerConfig, fields: dict[str, Any]) -> MixerConfig | None:
    """MixerConfig(mode=..., primes=..., miss_vocab=..., **fields) from already validated values
    without validating them again: `template` (model_construct of the mode and fixed fields)
    copied with `fields` (the fields set come out the same), then only the cross-field check
    (None when it fails: the caller then validates in full, which gives MixerConfig's own error)."""
    cfg = _copy_with(template, fields)
    try:
        cfg._consistent()
    except ValueError:
        return None
    return cfg


def point_error(mixer: MixerSpec, search: Search) -> str | None:
    """The first invalid point's problem, e.g. `alpha_base + alpha_range must be <= 1 (at ...)`."""
    if not mixer.mixing_modes:
        return None
    if search.kind == "optuna":  # the space must hold valid points at all
        rng = random.Random(0)
        axes = {n: mixer.axis(n) for n in AXES}
        draws = [{n: draw(axes[n], rng) for n in AXES} for _ in range(200)]
        errs = [_config_error(pt, mixer) for pt in draws]
        if all(errs):
            return f"no valid point in the search space: {errs[0]} (e.g. {_describe(draws[0], mixer)})"
        return None
    if search.kind == "grid":  # axis values were validated once; a point needs only the cross-field check
        grid = _grid_of(mixer)
        base = {**_DEFAULTS, "mode": "hashed_target", **grid.fixed}
        cols = [grid.valid[n] for n in AXES]
        for combo in grid.combos:
            fields = dict(base)
            for n, col, i in zip(AXES, cols, combo):
                fields[n] = col[i]
            try:  # MixerConfig's cross-field check on the point's values, no object built
                MixerConfig._consistent(SimpleNamespace(**fields))
                continue
            except ValueError:
                pass
            pt = grid.point(combo)
            err = _config_error(pt, mixer)  # MixerConfig's own message
            if err:
                return f"{err} (at {_describe(pt, mixer)})"
        return None
    for pt in _raw_points(mixer, search):
        err = _config_error(pt, mixer)
        if err:
            return f"no valid point in the search space: {err} (e.g. {_describe(pt, mixer)})"
    return None


def expand_points(mixer: MixerSpec, search: Search) -> list[MixerConfig]:
    points: dict[Any, MixerConfig] = {}
    if "none" in mixer.modes:
        cfg = MixerConfig(mode="none")  # the model alone: no other field matters
        points[cfg.fingerprint()] = cfg
    if search.kind == "grid":
        # built from the values validated once per axis value, with only the cross-field check
        # per point; one that fails it is built in full (MixerConfig's own error, as before).
        # Duplicates are found by the validated values they are built from, as their
        # fingerprints would: equal values, equal config
        grid = _grid_of(mixer)
        for mode in mixer.mixing_modes:
            pos = [(j, n, grid.valid[n], grid.keys[n]) for j, n in enumerate(AXES) if n in mode_axes(mode)]
            template = MixerConfig.model_construct(mode=mode, **grid.fixed)
            for combo in grid.combos:
                key = (mode, *(keys[combo[j]] for j, _n, _v, keys in pos))
                if key in points:
                    continue
                used = {n: valid[combo[j]] for j, n, valid, _k in pos}
                points[key] = _construct(template, used) or MixerConfig(  # a mixing mode's: never the `none` point
                    mode=mode, primes=mixer.primes, miss_vocab=mixer.miss_vocab,
                    **{n: grid.raw[n][combo[j]] for j, n, _v, _k in pos})
    elif search.kind != "optuna":
        raw = _raw_points(mixer, search)
        for mode in mixer.mixing_modes:
            for pt in raw:
                # a point keeps only its mode's fields (the rest default), so the other modes'
                # axes do not multiply it: a tilt grid does not repeat per alpha value
                used = {k: v for k, v in pt.items() if k in mode_axes(mode)}
                cfg = MixerConfig(mode=mode, primes=mixer.primes, miss_vocab=mixer.miss_vocab, **used)
                points.setdefault(cfg.fingerprint(), cfg)
    return list(points.values())


def varying_axes(mixer: MixerSpec, mode: str | None = None) -> list[str]:
    """The mixer fields that differ between points (what a mix job's name shows); of one mode's
    axes when `mode` is given."""
    names = AXES if mode is None else mode_axes(mode)
    return [n for n in names if isinstance(mixer.axis(n), Range) or len(mixer.axis(n)) > 1]


def optuna_studies(mixer: MixerSpec, search: Search) -> tuple[dict, ...]:
    """Under optuna: per mixing mode {"mixer_base": fixed fields, "optuna": {n, seed, space}}."""
    if search.kind != "optuna":
        return ()
    out = []
    for m in mixer.mixing_modes:
        base, space = {}, {}
        for name in mode_axes(m):
            ax = mixer.axis(name)
            if isinstance(ax, Range) or len(ax) > 1:
                space[name] = encode(ax, _jsonable)
            else:
                base[name] = _jsonable(ax[0])
        if m != "tilt":
            base["primes"] = list(mixer.primes)
            base["miss_vocab"] = mixer.miss_vocab
        out.append({"mixer_base": {"mode": m, **base}, "optuna": {"n": search.n, "seed": search.seed, "space": space}})
    return tuple(out)


def eval_groups(points, studies) -> list[tuple[tuple, list, list]]:
    """[(tilt_tables, mixer points, optuna studies)] per eval job of one eval point: the plain
    eval (tables ()) serves every non-tilt point, a tilt eval the tilt points. A sweep without
    tilt has exactly the plain group, as before tilt existed."""
    points, studies = list(points), list(studies)
    plain = [m for m in points if m.mode != "tilt"]
    plain_st = [s for s in studies if s["mixer_base"]["mode"] != "tilt"]
    tilt = [m for m in points if m.mode == "tilt"]
    tilt_st = [s for s in studies if s["mixer_base"]["mode"] == "tilt"]
    groups = []
    if (tilt or tilt_st) and not plain_st and all(m.mode == "none" for m in plain):
        tilt, plain = plain + tilt, []  # only `none` besides tilt: the tilt eval serves it too
    if plain or plain_st or not (tilt or tilt_st):
        groups.append(((), plain, plain_st))
    if tilt or tilt_st:
        tables = {(m.tilt_order, m.tilt_table_bits) for m in tilt}
        for st in tilt_st:
            tables |= set(tilt_study_tables(st))
        groups.append((tuple(sorted(tables)), tilt, tilt_st))
    return groups


def tilt_study_tables(study: dict) -> list[tuple[int, int]]:
    """(order, table_bits) pairs an optuna tilt study may ask for: its choices or fixed values."""
    base, space = study["mixer_base"], decode_space(study["optuna"]["space"])
    orders = space["tilt_order"].values if "tilt_order" in space else [base.get("tilt_order", 16)]
    bits = space["tilt_table_bits"].values if "tilt_table_bits" in space else [base.get("tilt_table_bits", 0)]
    return [(int(o), int(b)) for o in orders for b in bits]
