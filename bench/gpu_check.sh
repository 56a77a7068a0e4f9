#!/usr/bin/env bash
# Everything golf must show on a GPU, in one run of under 9 minutes on one H100/H200:
#   1. `golf run` on CUDA of experiments/gpu_check.yaml (baseline preset, 200 steps) and
#      experiments/gpu_check_pr779.yaml (pr779 preset, 50 steps), each with an eval whose mix
#      jobs cover both mixer modes (torch.compile, bf16 autocast, TTT, MLflow, on a real GPU);
#   2. train ms/step of the baseline and pr779 presets beside the reference scripts
#      (bench/train_throughput.py; $GOLF_REFERENCE_DIR/parameter-golf/{train_gpt.py,pr779/train_gpt.py};
#      same synthetic shards as step 1, same run);
#   3. the normalized (and hashed) n-gram pass and the mix speed at 62,021,632 tokens.
# Its figures, with device and date, are appended to bench/RESULTS.md (or --results FILE).
# Synthetic data throughout: the GPU machine may have no network and no FineWeb.
#
#   bash bench/gpu_check.sh                 # on a GPU machine
#   bash bench/gpu_check.sh --dry-run       # the same steps at toy size on CPU (< 2 min); figures
#                                           # go to OUT/gpu_check_results.md, never RESULTS.md
# Options: --out DIR (scratch; default a new temp dir), --results FILE. Environment:
# GOLF_REFERENCE_DIR (the folder holding parameter-golf/; without it step 2 is skipped and says
# so), PYTHON (default: python).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python}"
DRY=0
OUT=""
RESULTS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dry-run) DRY=1; shift ;;
    --out) OUT="$2"; shift 2 ;;
    --results) RESULTS="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
OUT="${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

DEVICE="$("$PY" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")')"
if [[ $DRY -eq 0 && "$DEVICE" == "cpu" ]]; then
  echo "gpu_check: no CUDA GPU here (use --dry-run for the CPU rehearsal)" >&2
  exit 2
fi
if [[ $DRY -eq 1 ]]; then
  RESULTS="${RESULTS:-$OUT/gpu_check_results.md}"
  TITLE="GPU check DRY RUN (toy size, CPU; not GPU figures)"
  TOKENS=200000; SAMPLE=50000; BUCKETS=65536; CHUNK=16384; CONFIGS=20; TDEV=cpu
  TT_STEPS=20; TT_LOSS=20
else
  RESULTS="${RESULTS:-$REPO/bench/RESULTS.md}"
  TITLE="GPU check (bench/gpu_check.sh)"
  TOKENS=62021632; SAMPLE=4000000; BUCKETS=4194304; CHUNK=1048576; CONFIGS=100; TDEV=cuda
  TT_STEPS=40; TT_LOSS=30
fi
WS="$OUT/workspace"
mkdir -p "$WS" "$OUT/bench"
log() { echo "== gpu_check [$(date -u +%H:%M:%S)] $*"; }
T0=$SECONDS

# 1. golf run (the toy copies keep presets and model options, at a CPU size)
for spec in gpu_check gpu_check_pr779; do
  src="$REPO/experiments/$spec.yaml"
  if [[ $DRY -eq 1 ]]; then
    "$PY" "$REPO/bench/gpu_check.py" toy-spec "$src" "$OUT/$spec.dry.yaml"
    src="$OUT/$spec.dry.yaml"
  fi
  log "golf run $src"
  (cd "$WS" && "$PY" -m orchestrator.cli.main run "$src" --no-progress --work-dir "$WS/.golf" \
      --tracking-uri "sqlite:///$WS/mlflow.db" $([[ $DRY -eq 1 ]] && echo "--num-cpus 2 --num-gpus 0")) \
      > "$OUT/golf_run_$spec.log" 2>&1 || { tail -20 "$OUT/golf_run_$spec.log"; echo "gpu_check: golf run $spec failed" >&2; exit 1; }
  tail -3 "$OUT/golf_run_$spec.log"
done

# 2. train ms/step beside the reference scripts, on step 1's shards
NOTE=""
REF="${GOLF_REFERENCE_DIR:-}"
if [[ -n "$REF" && -f "$REF/parameter-golf/train_gpt.py" && -f "$REF/parameter-golf/pr779/train_gpt.py" ]]; then
  DATA="$WS/data/gpu_check"
  [[ $DRY -eq 1 ]] && DATA="$WS/data/gpu_check_dry"
  TT=("$PY" "$REPO/bench/train_throughput.py" --upstream "$REF/parameter-golf/train_gpt.py"
      --pr779-script "$REF/parameter-golf/pr779/train_gpt.py" --data "$DATA" --steps "$TT_STEPS"
      --loss-step "$TT_LOSS" --out "$OUT/bench" --work "$OUT/upstream" --timeout 300)
  if [[ $DRY -eq 1 ]]; then
    # the reference scripts need CUDA: a dry run resolves them and prints the plan only
    log "train_throughput --dry-run"
    "${TT[@]}" --dry-run > "$OUT/bench/train_throughput_plan.json"
    NOTE="dry run: reference scripts resolved, plan in train_throughput_plan.json (they need CUDA)"
  else
    log "train_throughput ($TT_STEPS steps per side)"
    "${TT[@]}" || NOTE="train_throughput exited $? (see $OUT/bench)"
  fi
else
  NOTE="skipped: GOLF_REFERENCE_DIR does not hold parameter-golf/train_gpt.py and pr779/train_gpt.py"
  log "$NOTE"
fi

# 3. n-gram pass and mix speed at the full validation size
log "ngram_pass --tokens $TOKENS --device $TDEV"
"$PY" "$REPO/bench/ngram_pass.py" --tokens "$TOKENS" --sample-tokens "$SAMPLE" --buckets "$BUCKETS" \
    --chunk "$CHUNK" --device "$TDEV" --modes normalized,hashed_target | tee "$OUT/bench/ngram_pass.txt"
log "mix_speed --tokens $TOKENS --device $TDEV"
"$PY" "$REPO/bench/mix_speed.py" --tokens "$TOKENS" --configs "$CONFIGS" --device "$TDEV" \
    | tee "$OUT/bench/mix_speed.txt"

log "report -> $RESULTS ($((SECONDS - T0)) s in all)"
"$PY" "$REPO/bench/gpu_check.py" report --work "$WS/.golf" --bench "$OUT/bench" --device "$DEVICE" \
    --tracking-uri "sqlite:///$WS/mlflow.db" \
    --out "$RESULTS" --title "$TITLE ($((SECONDS - T0)) s)" ${NOTE:+--throughput-note "$NOTE"}
