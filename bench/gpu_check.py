"""Helpers of bench/gpu_check.sh: toy-size copies of the GPU specs (for --dry-run) and the report.

    python bench/gpu_check.py toy-spec IN.yaml OUT.yaml     # the same spec at toy size, on CPU
    python bench/gpu_check.py report --work W --bench B --device D --tracking-uri URI --out FILE

`report` reads what the steps left (golf run's result.json files under W and its MLflow runs, B/train_throughput.json,
B/ngram_pass.txt, B/mix_speed.txt) and appends one dated section to FILE (bench/RESULTS.md on a
GPU; a temp file in a dry run). Figures it did not find are written as "missing", never guessed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import yaml

# Toy sizes: same presets and model options (XSA, BigramHash, VE, EMA, QAT, TTT, both mixers),
# a width and length that run on a CPU in seconds.
TOY_MODEL = {"num_layers": 2, "model_dim": 64, "num_heads": 4, "num_kv_heads": 2, "mlp_mult": 2.0}
TOY_PR779_MODEL = {**TOY_MODEL, "num_kv_heads": 4, "mlp_mult": 3.5, "xsa_last_n": 2, "bigram_vocab_size": 64,
                   "bigram_dim": 16, "ve_dim": 16, "ve_layers": [1], "rope_dims": 8}
TOY_TRAIN = {"iterations": 6, "warmdown_iters": 3, "train_batch_tokens": 2048, "train_seq_len": 128,
             "micro_batches": 2, "warmup_steps": 0, "device": "cpu", "max_wallclock_seconds": 120,
             "wallclock_reserve_seconds": 0, "train_log_every": 2}


def toy_spec(src: Path, dst: Path) -> None:
    spec = yaml.safe_load(src.read_text())
    spec["name"] = spec["name"] + "-dry"
    spec["data"].update(path=spec["data"]["path"] + "_dry", synthetic_train_tokens=200_000,
                        synthetic_val_tokens=16_384)
    tr = spec["train"]
    over = tr.setdefault("overrides", {})
    over["model"] = {**over.get("model", {}), **(TOY_PR779_MODEL if tr["preset"] == "pr779" else TOY_MODEL)}
    over["train"] = {**over.get("train", {}), **TOY_TRAIN}
    over["eval"] = {"seq_len": 128, "stride": 64, "batch_seqs": 16, "max_tokens": 8192}
    spec["eval"].update(seq_len=128, stride=64, batch_seqs=16, chunk_tokens=4096, max_tokens=8192)
    if spec["eval"].get("ttt", {}).get("enabled"):
        spec["eval"]["ttt"]["batch_seqs"] = 4
    spec["mixer"]["buckets"] = 65_536
    dst.write_text(yaml.safe_dump(spec, sort_keys=False))


def _trains(work: Path) -> list[dict]:
    """Rank 0's result.json of each training job (the spool holds copies: skipped)."""
    out = []
    for p in sorted(work.rglob("result.json")):
        if "spool" in p.parts:
            continue
        try:
            r = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if "step_avg_ms" in r and "config" in r:
            out.append(r)
    return out


def _mixes(tracking_uri: str) -> list[dict]:
    """FINISHED mix runs in MLflow: {mode, val_bpb, compliant}."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(exps, filter_string="tags.`golf.kind` = 'mix' and attributes.status = 'FINISHED'")
    # legal first (issue 19): a score that does not count is logged as val_bpb_noncompliant
    out = []
    for r in runs:
        bpb = r.data.metrics.get("val_bpb", r.data.metrics.get("val_bpb_noncompliant"))
        if bpb is not None:
            out.append({"mode": r.data.params.get("mixer.mode", "?"), "val_bpb": bpb,
                        "compliant": r.data.tags.get("golf.compliant")})
    return out


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if "device=" in ln] if path.exists() else ["missing"]


def _fmt(v, spec: str) -> str:
    return "missing" if v is None else format(v, spec)


def report(args) -> int:
    work, bench = Path(args.work), Path(args.bench)
    trains, mixes = _trains(work), _mixes(args.tracking_uri)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[1]).stdout.strip() or "unknown"
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"\n## {args.title}: {args.device}, {date}, commit {commit}\n"]
    out.append("golf run (experiments/gpu_check*.yaml):\n")
    out.append("| model | steps | ms/step | peak mem GiB | val_bpb (roundtrip) | artifact bytes | device |")
    out.append("|---|---|---|---|---|---|---|")
    for r in trains:
        peak = r.get("peak_mem_bytes")
        mc = r["config"]["model"]
        name = "pr779" if mc.get("xsa_last_n") else "baseline"
        out.append(f"| {name} {mc['num_layers']}L/{mc['model_dim']}d | {r['steps']} | "
                   f"{_fmt(r.get('step_avg_ms'), '.1f')} | {_fmt(peak / 2**30 if peak else None, '.2f')} | "
                   f"{_fmt(r.get('val_bpb'), '.4f')} | {r.get('artifact_bytes')} | {r.get('device_name')} |")
    if not trains:
        out.append("| missing | | | | | | |")
    modes: dict[str, list[dict]] = {}
    for m in mixes:
        modes.setdefault(m["mode"], []).append(m)
    out.append("\nmix jobs (MLflow), best val_bpb per mode: " + (", ".join(
        f"{k} {min(x['val_bpb'] for x in v):.4f} ({len(v)} runs, compliant: "
        f"{'/'.join(sorted({str(x['compliant']) for x in v}))})" for k, v in sorted(modes.items())) or "missing"))
    tt = bench / "train_throughput.json"
    out.append("\ntrain ms/step beside the reference scripts (bench/train_throughput.py, same shards, same run):")
    if tt.exists():
        rep = json.loads(tt.read_text())
        for pair, r in rep.get("pairs", {}).items():
            o, u = r.get("ours", {}), r.get("upstream", {})
            out.append(f"- {pair}: ours {_fmt(o.get('ms_per_step'), '.1f')} ms/step, reference "
                       f"{_fmt(u.get('ms_per_step'), '.1f')} ms/step, ratio {_fmt(r.get('ratio'), '.3f')}")
    else:
        out.append(f"- {args.throughput_note or 'missing'}")
    out.append("\nn-gram pass (bench/ngram_pass.py):")
    out += [f"- {ln}" for ln in _lines(bench / "ngram_pass.txt")]
    out.append("\nmix speed (bench/mix_speed.py):")
    out += [f"- {ln}" for ln in _lines(bench / "mix_speed.txt")]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print("\n".join(out))
    return 0 if trains and mixes else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("toy-spec")
    t.add_argument("src", type=Path)
    t.add_argument("dst", type=Path)
    r = sub.add_parser("report")
    for a in ("--work", "--bench", "--device", "--out", "--tracking-uri"):
        r.add_argument(a, required=True)
    r.add_argument("--title", default="GPU check (bench/gpu_check.sh)")
    r.add_argument("--throughput-note", default=None)
    args = p.parse_args(argv)
    if args.cmd == "toy-spec":
        toy_spec(args.src, args.dst)
        return 0
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
