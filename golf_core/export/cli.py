"""`golf export RUN_DIR --out DIR [--eval EVAL_DIR] [--compressed]`: a run as a submission script.

RUN_DIR is a training run's directory (what `golf train --out` or a golf train job writes:
artifact.json holds the run config). DIR gets train_gpt.py with that config baked in and
requirements.txt; `--eval EVAL_DIR` (an evaluation's directory, its result.json records the
EvalSpec) bakes that evaluation in as the script's final score. Both script sizes are printed:
the readable form is written unless `--compressed`. An existing train_gpt.py in DIR is never
overwritten unless `--force`.
"""
from __future__ import annotations

import json
from pathlib import Path
from golf_core.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("export", help="write a run's config as a self-contained upstream-style train_gpt.py",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a training run dir (holds artifact.json)")
    p.add_argument("--out", required=True, type=Path, help="folder for train_gpt.py and requirements.txt")
    p.add_argument("--eval", dest="eval_dir", type=Path, default=None, metavar="EVAL_DIR",
                   help="an evaluation's dir (result.json): its EvalSpec becomes the script's final score")
    p.add_argument("--compressed", action="store_true", help="ship the bundled sources xz-compressed (smaller)")
    p.add_argument("--title", default=None, help="the script's first docstring line (default: RUN_DIR's name)")
    p.add_argument("--force", action="store_true", help="overwrite an existing train_gpt.py / requirements.txt")
    p.set_defaults(func=cmd_export)


def _json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing ({what})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not JSON ({str(e)[:120]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def load_run(run_dir: Path, eval_dir: Path | None):
    """(RunConfig, EvalSpec | None) from a run dir and an optional eval dir; ValueError naming the file."""
    from golf_core.config import build
    from golf_core.eval.config import EvalSpec
    from golf_core.presets import RunConfig

    info = _json(run_dir / "artifact.json", "not a training run dir: no artifact.json")
    if not isinstance(info.get("run_config"), dict):
        raise UserError(f"{run_dir / 'artifact.json'}: has no run_config")
    run = build(RunConfig, info["run_config"])
    spec = None
    if eval_dir is not None:
        res = _json(eval_dir / "result.json", "not an evaluation dir: no result.json")
        if not isinstance(res.get("spec"), dict):
            raise UserError(f"{eval_dir / 'result.json'}: has no EvalSpec (`spec`): not an evaluation result")
        spec = build(EvalSpec, res["spec"])
    return run, spec


def cmd_export(args) -> int:
    from golf_core.export import export_script, requirements_text

    run, spec = load_run(args.run_dir, args.eval_dir)
    out: Path = args.out
    targets = {"train_gpt.py": None, "requirements.txt": requirements_text()}
    if not args.force:
        there = [n for n in targets if (out / n).exists()]
        if there:
            raise UserError(f"{out / there[0]} exists; pass --force to overwrite it")
    title = args.title or f"{args.run_dir.resolve().name}: exported by golf"
    texts = {form: export_script(run, spec, title, compressed=form == "compressed")
             for form in ("readable", "compressed")}
    form = "compressed" if args.compressed else "readable"
    targets["train_gpt.py"] = texts[form]
    out.mkdir(parents=True, exist_ok=True)
    for name, text in targets.items():
        (out / name).write_text(text, encoding="utf-8")
    sizes = {f: len(t.encode("utf-8")) for f, t in texts.items()}
    print(f"wrote {out / 'train_gpt.py'} ({form}, {sizes[form]:,} bytes; "
          f"readable {sizes['readable']:,}, compressed {sizes['compressed']:,}) and {out / 'requirements.txt'}")
    print(f"run it: cd {out} && DATA_PATH=... TOKENIZER_PATH=... SEED={run.train.seed} "
          f"torchrun --standalone --nproc_per_node=8 train_gpt.py")
    return 0
