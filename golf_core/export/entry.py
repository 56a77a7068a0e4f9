"""The driver code of an exported train_gpt.py, pasted into the script verbatim.

Only the standard library is imported at module level: the script runs this before the
bundled golf_core sources are on sys.path. What it does, in order:
1. writes the bundled sources (SOURCES in the script) once to a cache dir named by their
   hash and imports golf_core from there (no installed golf is needed or used);
2. applies the upstream environment variables (golf_core.envvars) to the baked-in config;
3. joins the torchrun process group once (NCCL on CUDA, gloo on CPU): training and the
   evaluation reuse it and only this code destroys it, at the very end (an earlier export let
   run_training destroy its group and run_eval create a second one in the same process, which
   hung 2-rank torchrun runs now and then);
4. trains (golf_core.train.run_training), evaluates the artifact with the record's EvalSpec
   when it has one (golf_core.eval.run_eval), and logs upstream's lines to stdout and
   logs/<RUN_ID>.txt; the artifact is copied to upstream's file name final_model.<scheme>.ptz.
"""
import base64
import hashlib
import json
import lzma
import os
import shutil
import sys
import tempfile
import uuid


def sources_digest(sources):
    h = hashlib.sha256()
    for name in sorted(sources):
        h.update(name.encode() + b"\0" + sources[name].encode("utf-8") + b"\0")
    return h.hexdigest()[:16]


def decode_blob(blob):
    """The {path: source} dict of the compressed form (xz, base85)."""
    return json.loads(lzma.decompress(base64.b85decode("".join(blob.split()))).decode("utf-8"))


def unpack(sources, dest):
    """Write `sources` ({relative path: text}) under `dest`; refuses a path leaving it."""
    root = os.path.realpath(dest)
    for rel, text in sorted(sources.items()):
        path = os.path.realpath(os.path.join(root, rel))
        if not path.startswith(root + os.sep):
            raise ValueError("bundled path " + repr(rel) + " leaves " + root)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return dest


def import_runtime(sources, code_versions):
    """Import golf_core from the bundled sources (unpacked once per content hash)."""
    base = os.environ.get("GOLF_RECORD_CACHE") or tempfile.gettempdir()
    cache = os.path.join(base, "golf_record_" + sources_digest(sources))
    if not os.path.isdir(os.path.join(cache, "golf_core")):
        os.makedirs(base, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix="golf_record_tmp_", dir=base)
        unpack(sources, tmp)
        try:
            os.rename(tmp, cache)  # atomic; another rank may have won the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    sys.path.insert(0, cache)
    for name in [m for m in sys.modules if m == "golf_core" or m.startswith("golf_core.")]:
        del sys.modules[name]
    import golf_core

    here = os.path.realpath(os.path.dirname(golf_core.__file__))
    if not here.startswith(os.path.realpath(cache) + os.sep):
        raise RuntimeError("imported golf_core from " + here + ", not the bundled copy in " + cache)
    for kind, want in code_versions.items():
        got = golf_core.code_version(kind)
        if got != want:
            raise RuntimeError("bundled golf_core " + kind + " code hashes to " + got + ", expected " + want)
    return golf_core


class UpstreamLog:
    """Upstream's log: every line on stdout and in logs/<RUN_ID>.txt, on rank 0 only."""

    def __init__(self, run_id, main):
        self.main = main
        self.path = os.path.join("logs", run_id + ".txt")
        self.iterations = 0
        self.train_ms = 0.0
        self.tag = ""
        self.train_dir = None
        if main:
            os.makedirs("logs", exist_ok=True)
            print(self.path, flush=True)

    def __call__(self, line, console=True):
        if not self.main:
            return
        if console:
            print(line, flush=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def train_event(self, ev):
        kind = ev.get("event")
        if kind == "step":
            self.iterations, self.train_ms = ev["iterations"], 1000.0 * ev["elapsed_s"]
            self(f"step:{ev['step']}/{ev['iterations']} train_loss:{ev['train_loss']:.4f} "
                 f"train_time:{self.train_ms:.0f}ms step_avg:{ev['step_avg_ms']:.2f}ms")
        elif kind == "val" and ev.get("phase") == "roundtrip":
            self.sizes()
            self(f"final_{self.tag}_roundtrip val_loss:{ev['val_loss']:.4f} val_bpb:{ev['val_bpb']:.4f} "
                 f"eval_time:{1000.0 * ev.get('eval_time_s', 0.0):.0f}ms")
            self(f"final_{self.tag}_roundtrip_exact val_loss:{ev['val_loss']:.8f} val_bpb:{ev['val_bpb']:.8f}")
        elif kind == "val":
            step = ev["step"]
            self(f"step:{step}/{self.iterations} val_loss:{ev['val_loss']:.4f} val_bpb:{ev['val_bpb']:.4f} "
                 f"train_time:{self.train_ms:.0f}ms step_avg:{self.train_ms / max(step, 1):.2f}ms")
        elif kind == "done":
            if ev.get("stopped_by") == "wallclock":
                self(f"stopping_early: wallclock_cap train_time:{1000.0 * ev['train_time_s']:.0f}ms "
                     f"step:{ev['steps']}/{self.iterations}")
            if ev.get("nan"):
                self(f"stopping: {ev.get('nan_reason')}")
            if ev.get("peak_mem_kind") == "cuda_max_memory_allocated" and ev.get("peak_mem_bytes"):
                self(f"peak memory allocated: {ev['peak_mem_bytes'] // 1024 // 1024} MiB")

    def sizes(self):
        """Upstream's size lines, from the artifact.json the trainer wrote before the roundtrip."""
        with open(os.path.join(self.train_dir, "artifact.json"), encoding="utf-8") as f:
            info = json.load(f)
        self(f"Serialized model {self.tag}: {info['model_bytes']} bytes")
        self(f"Code size: {info['code_bytes']} bytes")
        self(f"Total submission size {self.tag}: {info['artifact_bytes']} bytes")

    def eval_done(self, spec, result):
        ev = spec["eval"]
        kind = "ttt" if spec["ttt"]["enabled"] else "sliding_window" if ev["stride"] < ev["seq_len"] else "eval"
        name = f"final_{self.tag}_{kind}"
        mode = spec["mixer"]["mode"]
        if "tilt_hint_time_s" in result:  # #2135's line: the hint precompute, inside the eval timer
            self(f"ngram_tilt:precompute_done elapsed={result['tilt_hint_time_s']:.2f}s (inside eval_time)")
        if mode == "tilt":
            m = spec["mixer"]
            self(f"ngram_tilt:hints order={m['tilt_order']} threshold={m['tilt_threshold']} "
                 f"boost={m['tilt_boost']} gated={result.get('tilt_gated')} hits={result.get('tilt_hits')}")
        if mode != "none":  # the model alone first: the last score line is the record's
            self(f"{name}_model_exact val_loss:{result['val_loss_model']:.8f} val_bpb:{result['val_bpb_model']:.8f}")
            name += "_ngram_" + mode
        self(f"{name} val_loss:{result['val_loss']:.4f} val_bpb:{result['val_bpb']:.4f} stride:{ev['stride']} "
             f"eval_time:{1000.0 * result['eval_time_s']:.0f}ms")
        self(f"{name}_exact val_loss:{result['val_loss']:.8f} val_bpb:{result['val_bpb']:.8f}")


USAGE = """usage: [ENV=VALUE ...] torchrun --standalone --nproc_per_node=N train_gpt.py   (or: python train_gpt.py)
       python train_gpt.py --unpack DIR     write the bundled golf_core sources to DIR for review
       python train_gpt.py --print-config   the config after the environment is applied, as JSON
Environment: DATA_PATH, TOKENIZER_PATH, RUN_ID, SEED and every hyperparameter under upstream's
name (ITERATIONS, TRAIN_BATCH_TOKENS, NUM_LAYERS, MATRIX_LR, ...; see golf_core/envvars.py)."""


def main(run_config, eval_spec, sources, code_versions, script_path, argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if argv[:1] == ["--unpack"] and len(argv) == 2:
        print(unpack(sources, argv[1]))
        return 0
    if argv and argv != ["--print-config"]:
        print("train_gpt.py: unknown arguments " + " ".join(argv) + "\n" + USAGE, file=sys.stderr)
        return 2
    import_runtime(sources, code_versions)
    from golf_core import envvars
    from golf_core.config import build
    from golf_core.eval.config import EvalSpec
    from golf_core.presets import RunConfig

    try:
        run_tree, spec_tree, used = envvars.apply_env(run_config, eval_spec, os.environ, RunConfig, EvalSpec)
        cfg = build(RunConfig, run_tree)
        spec = build(EvalSpec, spec_tree) if spec_tree is not None else None
    except ValueError as e:
        print("train_gpt.py: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    if argv == ["--print-config"]:
        dump = {"run": cfg.model_dump(mode="json"), "eval": spec.model_dump(mode="json") if spec else None}
        print(json.dumps({**dump, "env": used}, indent=2, sort_keys=True))
        return 0
    return _run(cfg, spec, used, script_path)


def _run(cfg, spec, used, script_path):
    import platform

    import torch

    from golf_core.train import distributed as D
    from golf_core.train import run_training

    data_path = os.environ.get("DATA_PATH", "./data/datasets/fineweb10B_sp1024")
    tokenizer = os.environ.get("TOKENIZER_PATH")
    if tokenizer is None and os.path.isfile("./data/tokenizers/fineweb_1024_bpe.model"):
        tokenizer = "./data/tokenizers/fineweb_1024_bpe.model"  # upstream's default, when present
    run_id = os.environ.get("RUN_ID")
    code_bytes = os.path.getsize(script_path)
    import golf_core

    ctx = D.setup(cfg.train.device)  # the one process group of this process (none with 1 rank)
    try:
        if not run_id:  # upstream's READMEs do not always set it: rank 0 draws one, every rank uses it
            box = [str(uuid.uuid4()) if ctx.is_main else None]
            if ctx.distributed:
                import torch.distributed as dist

                dist.broadcast_object_list(box, src=0)
            run_id = box[0]
        log = UpstreamLog(run_id, ctx.is_main)
        log.tag = f"{cfg.quant.scheme}_{cfg.quant.compressor}"
        log.train_dir = os.path.join("golf_out", run_id, "train")
        log(f"Running Python {sys.version.split()[0]} ({platform.platform()})", console=False)
        log(f"Running PyTorch {torch.__version__}", console=False)
        log(f"golf_core train {golf_core.code_version('train')} "
            f"config:{json.dumps(cfg.model_dump(mode='json'), sort_keys=True)}", console=False)
        log(f"data_path:{data_path} tokenizer_path:{tokenizer or '(from data_path)'} seed:{cfg.train.seed} "
            f"world_size:{ctx.world_size} env:{','.join(sorted(used)) or 'none'}")
        result = run_training(cfg, data_path, log.train_dir, on_progress=log.train_event, tokenizer=tokenizer,
                              code_bytes=code_bytes)
        if result.get("val_bpb") is None:
            return 1  # NaN: the trainer said why; there is no artifact to evaluate
        if ctx.is_main:
            shutil.copyfile(os.path.join(log.train_dir, "model.ptz"), f"final_model.{cfg.quant.scheme}.ptz")
        if spec is not None:
            from golf_core.eval import run_eval

            res = run_eval(log.train_dir, spec, data_path, out_dir=os.path.join("golf_out", run_id, "eval"),
                           tokenizer=tokenizer)
            log.eval_done(spec.model_dump(mode="json"), res)
        D.barrier(ctx)  # every rank done before the group goes
        return 0
    finally:
        D.teardown(ctx)  # only when this code created it
