"""Upstream's environment interface on golf's configs: `ITERATIONS=3` means train.iterations=3.

Every parameter-golf script reads its hyperparameters from environment variables
(upstream train_gpt.py's Hyperparameters class; PR #779 adds its own knobs). An exported
train_gpt.py (golf_core.export) takes the same names, so a competitor runs it exactly as any
record: `DATA_PATH=... SEED=42 ITERATIONS=4950 torchrun ... train_gpt.py`.

Names: every model.* and train.* field under its upper-cased name (upstream's names are its
field names, which golf's configs keep), plus the names upstream and #779 give to fields that
golf calls otherwise. Values are parsed by the field's type: "1"/"0"/"true"/"false" for bools,
commas for tuples (VE_LAYERS=9,10). A value that does not parse is a ValueError naming the
variable; pydantic then checks bounds when the config is built.
"""
from __future__ import annotations

from golf_core.errors import UserError
import typing
from typing import Any, Mapping

__all__ = ["ALIASES", "EVAL_ALIASES", "RUN_SECTIONS", "TILT_SWITCH", "apply_env", "env_fields"]

# The sections whose fields are exposed under their own upper-cased names.
RUN_SECTIONS = ("model", "train")

# Upstream / #779 names for fields golf names otherwise (#779's train_gpt.py Hyperparameters).
ALIASES: dict[str, str] = {
    "CROWN_Q_LAMBDA": "train.crownq_lambda",
    "DTG_ENABLED": "model.gated_attention",
    "VE_ENABLED": "model.value_embed",
    "PRUNE_PCT": "quant.prune_frac",
    "INT6_LAST_N": "quant.int6_last_n",
}

# Names that set the evaluation: the record's EvalSpec when the script has one, else the
# roundtrip evaluation of the run config (`eval.*`).
EVAL_ALIASES: dict[str, str] = {
    "EVAL_SEQ_LEN": "eval.seq_len",
    "EVAL_STRIDE": "eval.stride",
    "TTT_LR": "ttt.lr",
    "TTT_EPOCHS": "ttt.epochs",
    "TTT_CHUNK_TOKENS": "eval.chunk_tokens",
    "BYTE_WEIGHTED_TTT": "ttt.byte_weighted",
    # PR #2135's token-only n-gram tilt (online_ngram_tilt.py's knobs)
    "TOKEN_ORDER": "mixer.tilt_order",
    "TOKEN_THRESHOLD": "mixer.tilt_threshold",
    "TOKEN_BOOST": "mixer.tilt_boost",
}
# #2135's switch: NGRAM_TILT_ENABLED=1 sets mixer.mode=tilt, =0 turns a tilt mixer off (none)
TILT_SWITCH = "NGRAM_TILT_ENABLED"

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _aliased(cls, aliases: dict[str, str]) -> dict[str, tuple[str, Any]]:
    """{ENV: ("section.field", annotation)} for `aliases` over a config class's sections."""
    out = {}
    for env, path in aliases.items():
        section, name = path.split(".")
        out[env] = (path, cls.model_fields[section].annotation.model_fields[name].annotation)
    return out


def env_fields(run_config_cls) -> dict[str, tuple[str, Any]]:
    """{ENV_NAME: ("section.field", annotation)} for a RunConfig class (section fields + ALIASES)."""
    out: dict[str, tuple[str, Any]] = {}
    for section in RUN_SECTIONS:
        cls = run_config_cls.model_fields[section].annotation
        for name, f in cls.model_fields.items():
            out[name.upper()] = (f"{section}.{name}", f.annotation)
    return {**out, **_aliased(run_config_cls, ALIASES)}


def parse_value(env: str, text: str, annotation: Any) -> Any:
    """`text` (an environment value) as the type `annotation` admits; ValueError naming `env`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return parse_value(env, text, args[0])
    s = text.strip()
    if annotation is bool:
        if s.lower() in _TRUE:
            return True
        if s.lower() in _FALSE:
            return False
        raise UserError(f"{env}={text!r}: expected 1/0 or true/false")
    if origin is tuple:
        inner = args[0] if args else str
        return tuple(parse_value(env, p, inner) for p in s.split(",") if p.strip())
    if origin is typing.Literal:
        if s not in [str(a) for a in args]:
            raise UserError(f"{env}={text!r}: expected one of {', '.join(str(a) for a in args)}")
        return s
    for kind in (int, float):
        if annotation is kind:
            try:
                return kind(float(s)) if kind is int and s.endswith(".0") else kind(s)
            except ValueError:
                raise UserError(f"{env}={text!r}: expected {'an integer' if kind is int else 'a number'}") from None
    return s


def _set(tree: dict, path: str, value: Any) -> None:
    section, name = path.split(".")
    tree.setdefault(section, {})[name] = value


def apply_env(run_config: Mapping[str, Any], eval_spec: Mapping[str, Any] | None,
              environ: Mapping[str, str], run_config_cls, eval_spec_cls) -> tuple[dict, dict | None, dict[str, str]]:
    """(run config tree, eval spec tree, {ENV: "section.field"} used): the baked-in trees with
    every recognised variable of `environ` applied. Unknown variables are ignored (the
    environment holds many unrelated ones); DATA_PATH and friends are the caller's."""
    import copy

    run, spec = copy.deepcopy(dict(run_config)), copy.deepcopy(dict(eval_spec)) if eval_spec is not None else None
    used: dict[str, str] = {}
    for env, (path, ann) in sorted(env_fields(run_config_cls).items()):
        if env in environ:
            _set(run, path, parse_value(env, environ[env], ann))
            used[env] = path
    if spec is None and TILT_SWITCH in environ and parse_value(TILT_SWITCH, environ[TILT_SWITCH], bool):
        # a script exported without an evaluation: #2135's switch asks for one (the default
        # EvalSpec, its mixer the tilt below) rather than being ignored in silence
        spec = eval_spec_cls().model_dump(mode="json")
    for env, (path, ann) in sorted(_aliased(eval_spec_cls, EVAL_ALIASES).items()):
        if env not in environ:
            continue
        value = parse_value(env, environ[env], ann)
        if spec is not None:
            _set(spec, path, value)
            used[env] = "eval_spec." + path
        elif path.startswith("eval."):
            _set(run, path, value)
            used[env] = path
    if TILT_SWITCH in environ and spec is not None:
        on = parse_value(TILT_SWITCH, environ[TILT_SWITCH], bool)
        mode = (spec.get("mixer") or {}).get("mode", "none")
        _set(spec, "mixer.mode", "tilt" if on else ("none" if mode == "tilt" else mode))
        used[TILT_SWITCH] = "eval_spec.mixer.mode"
    return run, spec, used
