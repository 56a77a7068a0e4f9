"""`golf check RECORD_DIR...`: the pre-merge checklist, on every published record folder and on
folders written here (a passing one, an over-limit one, a missing seed log, a wrong bytes_code)."""
from __future__ import annotations

import json
from pathlib import Path

from golf_core.cli import run_cli
from orchestrator.records.check import check_folder

SEEDS = {42: 1.05001, 0: 1.05012, 1234: 1.04995}


def golf(argv: list[str]) -> int:
    return run_cli("golf", ("orchestrator.cli.check",), argv)


def _log(seed: int, bpb: float, size: int = 15_900_000, train_ms: int = 599_500) -> str:
    loss = bpb * 2.1876  # one tokens-per-byte ratio for every seed (same validation tokens)
    return (f"seed: {seed}\ntrain_shards: 80\nval_tokens: 47851520\n"
            "  tokenizer_path: ./data/tokenizers/fineweb_8192_bpe_lossless_caps_caseops_v1_reserved.model\n"
            f"4900/20000 train_loss: 2.3 train_time: {train_ms / 60000:.4f}m tok/s: 8000000\n"
            f"Total submission size quantized+pergroup: {size} bytes\n"
            f"quantized_ttt_phased val_loss:{loss:.8f} val_bpb:{bpb:.8f} eval_time:500000ms\n"
            f"final_worse_pass val_loss:{loss + 1:.8f} val_bpb:{bpb + 0.3:.8f}\n")


def _record(root: Path, name: str = "2026-06-01_Good", **kw) -> Path:
    d = root / name
    d.mkdir()
    script = "print('train')\n" * 10
    (d / "train_gpt.py").write_text(script)
    sizes = kw.get("sizes", {})
    for s, bpb in SEEDS.items():
        (d / f"train_seed{s}.log").write_text(_log(s, bpb, size=sizes.get(s, 15_900_000)))
    (d / "README.md").write_text("```bash\nfor SEED in 42 0 1234; do\n  NUM_LAYERS=11 SEED=$SEED \\\n"
                                 "  uv run torchrun --standalone --nproc_per_node=8 train_gpt.py\ndone\n```\n")
    mean = sum(SEEDS.values()) / 3
    (d / "submission.json").write_text(json.dumps({
        "val_bpb": round(mean, 8), "seeds": list(SEEDS), "bytes_code": kw.get("bytes_code", len(script)),
        "comparison_baseline_bpb": 1.06107587,
        "seed_results": {str(s): {"val_bpb": bpb, "artifact_bytes": sizes.get(s, 15_900_000)}
                         for s, bpb in SEEDS.items()}}))
    return d


def test_a_good_record_passes_every_check(tmp_path, capsys):
    d = _record(tmp_path)
    fc = check_folder(d)
    assert fc.passed, [str(c) for c in fc.lines]
    names = [c.name.split(":")[0].split(" <=")[0] for c in fc.lines]
    for want in ("submission.json", "seed logs", "bytes", "train", "eval", "data", "submission.json agrees with the logs",
                 "submission.json mean", "train_gpt.py", "README command", "statistics vs previous best 1.06108 (submission.json comparison_baseline_bpb)"):
        assert want in names, (want, names)
    agree = next(c for c in fc.lines if c.name == "submission.json agrees with the logs")
    assert "= quantized_ttt_phased" in agree.detail  # the claimed line, not the worse last one
    stat = next(c for c in fc.lines if c.name.startswith("statistics"))
    assert "record at p < 0.25 (as practised)" in stat.detail and "at p < 0.01 (as written)" in stat.detail
    readme = next(c for c in fc.lines if c.name == "README command")
    assert readme.detail.startswith("uv run torchrun --nproc_per_node=8 train_gpt.py") and "for SEED in 42 0 1234" in readme.detail
    assert golf(["check", str(d)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"golf: check {d}: PASS\n") and "golf: 1 of 1 folder(s) pass every check" in out


def test_failures_are_checklist_lines_and_exit_1(tmp_path, capsys):
    over = _record(tmp_path, "2026-06-02_Over", sizes={0: 16_000_001})
    lost = _record(tmp_path, "2026-06-03_Lost", bytes_code=5)
    (lost / "train_seed1234.log").unlink()
    assert golf(["check", str(over), str(lost), str(tmp_path / "nowhere")]) == 1
    out = capsys.readouterr().out
    assert "FAIL  bytes <= 16,000,000: 42, 1234: 15,900,000; 0: 16,000,001" in out
    assert "FAIL  seed logs: no log for seed(s) 1234; found 42: train_seed42.log, 0: train_seed0.log" in out
    assert "FAIL  train_gpt.py: 150 bytes; bytes_code 5" in out
    assert f"golf: check {tmp_path / 'nowhere'}: FAIL\n  FAIL  folder: no such directory" in out
    assert "golf: 0 of 3 folder(s) pass every check" in out
    assert golf(["check", "--json", str(over)]) == 1
    row = json.loads(capsys.readouterr().out)
    assert row["passed"] is False and any(c["status"] == "FAIL" and c["name"].startswith("bytes") for c in row["checks"])


def test_every_published_record_folder_is_checked_without_error(reference_dir, capsys):
    dirs = reference_dir.record_dirs()
    assert golf(["check", *map(str, dirs)]) == 1  # the folders here hold no train_gpt.py
    out = capsys.readouterr().out
    assert out.count("golf: check ") == len(dirs)
    by = {d.name: check_folder(d) for d in dirs}
    for name, fc in by.items():
        assert any(c.name == "train_gpt.py" and c.status == "FAIL" for c in fc.lines), name
    best = by.get("2026-05-01_SP8192_PR2130Base_Calib32")
    if best is not None:
        status = {c.name.split(" (")[0].split(":")[0]: c.status for c in best.lines}
        assert status["bytes <= 16,000,000"] == status["eval <= 600 s"] == "PASS"
        assert status["data"] == status["submission.json agrees with the logs"] == "PASS"
        assert status["statistics vs previous best 1.06108"] == "PASS"
    base = by.get("2026-03-17_NaiveBaseline")
    if base is not None:  # 25 train shards and the older 63,779,840-token validation set
        data = next(c for c in base.lines if c.name.startswith("data"))
        assert data.status == "FAIL" and "train_shards 25" in data.detail
    ngram = by.get("2026-03-25_BackoffNgramMixer_DriftFreeTTT_0.6683")
    if ngram is not None:
        assert any(c.name == "ruling" and c.status == "FAIL" for c in ngram.lines)
