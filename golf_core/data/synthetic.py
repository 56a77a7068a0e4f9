"""Synthetic FineWeb stand-in: English-like text, a real SentencePiece tokenizer, real shards.

For tests and laptops: the whole pipeline (shards, byte tables, bpb, n-gram mixer) runs on data
with the same format and tokenizer settings as the challenge, in seconds and without a download.
The text has what the scoring cares about: a Zipf vocabulary, word-to-word structure a model and
an n-gram cache can learn (a sparse bigram Markov chain with unigram back-off), capitalized
sentence starts, punctuation, digits (split by the tokenizer) and a few non-ASCII letters (so
byte-fallback pieces occur). Everything derives from one seed: same seed, same bytes.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
from pathlib import Path

import numpy as np

from golf_core.data.shards import write_shard
from golf_core.errors import UserError

BOS_ID = 1
# Common English words take the top ranks, as in real text; the rest are generated.
FUNCTION_WORDS = (
    "the of and to a in is that for it was on with as by he at from his are be this or an "
    "they which have one had not but you all were we there can been has more their if will"
).split()
ONSETS = ("", "", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v",
          "w", "y", "z", "br", "cr", "dr", "fl", "gr", "pl", "pr", "sh", "st", "th", "tr", "ch", "sl", "sp")
VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ea", "ee", "ou", "oo", "ie")
CODAS = ("", "", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "rk", "ck", "sh", "th", "x")
ACCENTS = {"a": "á", "e": "é", "i": "í", "o": "ö", "u": "ü", "n": "ñ"}


def _lexicon(rng: np.random.Generator, n_words: int) -> list[str]:
    """Distinct pronounceable words, shorter ones at higher (more frequent) ranks."""
    seen = set(FUNCTION_WORDS)
    made: list[str] = []
    while len(made) < n_words - len(FUNCTION_WORDS):
        n_syl = int(rng.choice([1, 1, 2, 2, 2, 3]))
        parts = [ONSETS[rng.integers(len(ONSETS))] + VOWELS[rng.integers(len(VOWELS))]
                 + CODAS[rng.integers(len(CODAS))] for _ in range(n_syl)]
        w = "".join(parts)
        if rng.random() < 0.02:  # a few loanwords with accents: multi-byte UTF-8 / byte fallback
            idx = [i for i, c in enumerate(w) if c in ACCENTS]
            if idx:
                i = idx[int(rng.integers(len(idx)))]
                w = w[:i] + ACCENTS[w[i]] + w[i + 1:]
        if len(w) > 1 and w not in seen:
            seen.add(w)
            made.append(w)
    made.sort(key=len)  # stable: ties keep generation order
    return list(FUNCTION_WORDS) + made


class _Generator:
    """Documents from a word-level sparse bigram chain over a Zipf lexicon."""

    def __init__(self, seed: int, n_words: int = 4000, fanout: int = 24, backoff: float = 0.25):
        self.rng = np.random.default_rng(seed)
        self.words = _lexicon(self.rng, n_words)
        self.caps = [w[:1].upper() + w[1:] for w in self.words]
        ranks = np.arange(1, len(self.words) + 1, dtype=np.float64)
        self.unigram = 1.0 / (ranks + 2.7) ** 1.07  # Zipf–Mandelbrot, as fitted to English
        self.unigram /= self.unigram.sum()
        # Each word has `fanout` likely successors (drawn by unigram frequency) with Zipf weights.
        self.succ = self.rng.choice(len(self.words), size=(len(self.words), fanout), p=self.unigram).tolist()
        slot_w = 1.0 / np.arange(1, fanout + 1) ** 1.2
        self.slot_p = slot_w / slot_w.sum()
        self.backoff = backoff
        self.state = 0

    def _number(self, kind: int, r: float) -> str:
        if kind == 0:
            return str(1900 + int(r * 130))  # a year
        if kind == 1:
            return str(1 + int(r * 999))
        if kind == 2:
            return f"{int(r * 100)}.{int(r * 1000) % 10}"
        return f"{int(r * 100)}%"

    def documents(self, n_docs: int) -> list[str]:
        rng = self.rng
        n_sent = 2 + rng.poisson(7, size=n_docs).clip(max=18)
        lens = 3 + rng.poisson(10, size=int(n_sent.sum())).clip(max=30)
        n = int(lens.sum())
        slot = rng.choice(len(self.slot_p), size=n, p=self.slot_p).tolist()
        uni = rng.choice(len(self.words), size=n, p=self.unigram).tolist()
        u = rng.random((n, 4)).tolist()  # back-off, comma, number, number value
        num_kind = rng.integers(0, 4, size=n).tolist()
        ends = rng.choice([".", ".", ".", ".", ".", ".", ".", ".", "?", "!"], size=len(lens)).tolist()
        docs, i, s = [], 0, 0
        w = self.state
        for d in range(n_docs):
            sentences = []
            for _ in range(int(n_sent[d])):
                out = []
                for j in range(int(lens[s])):
                    ub, uc, un, uv = u[i]
                    w = uni[i] if ub < self.backoff else self.succ[w][slot[i]]
                    if un < 0.015:
                        out.append(self._number(num_kind[i], uv))
                    else:
                        out.append(self.caps[w] if j == 0 else self.words[w])
                    if uc < 0.06 and j + 1 < lens[s]:
                        out[-1] += "," if uv > 0.1 else " —"
                    i += 1
                sentences.append(" ".join(out) + ends[s])
                s += 1
            docs.append(" ".join(sentences))
        self.state = w
        return docs


def _train_tokenizer(docs: list[str], vocab_size: int, seed: int) -> bytes:
    """SentencePiece BPE with the challenge's settings (upstream download_hf_docs_and_tokenize.py)."""
    import sentencepiece as spm

    writer = io.BytesIO()
    spm.set_random_generator_seed(seed)  # BPE is deterministic; this pins any sampling too
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(docs),
        # Written to memory: the stored trainer spec then holds no output path, so the
        # model's bytes depend only on the seed.
        model_writer=writer,
        model_type="bpe",
        vocab_size=vocab_size,
        character_coverage=0.999,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="nmt_nfkc",
        add_dummy_prefix=False,
        pad_id=0,
        bos_id=1,
        eos_id=2,
        unk_id=3,
        hard_vocab_limit=False,
        # Ours, for determinism and speed: one thread, no sampling of the input.
        num_threads=1,
        input_sentence_size=0,
        max_sentence_length=1 << 14,
        minloglevel=2,
    )
    return writer.getvalue()


def _take_tokens(gen: _Generator, sp, docs: list[str], n_tokens: int) -> np.ndarray:
    """Whole documents (BOS + tokens) from `docs` (topped up from `gen`) until `n_tokens`.

    The last document is cut so the split holds exactly `n_tokens`; used docs are removed.
    """
    parts, have = [], 0
    while have < n_tokens:
        if not docs:
            docs.extend(gen.documents(64))
        batch = docs[:64]
        del docs[:64]
        for k, ids in enumerate(sp.encode(batch, out_type=int)):
            parts.append(np.asarray([BOS_ID, *ids], dtype=np.uint16))
            have += len(parts[-1])
            if have >= n_tokens:
                docs[:0] = batch[k + 1:]  # unused documents go to the next split
                break
    out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint16)
    return out[:n_tokens]


RECIPE_FILE = "golf_synthetic.json"  # marks a directory golf made; lists every file it wrote


class DataDirError(UserError):
    """A data directory golf will not write into (it holds files golf did not make)."""


def own_files(out_dir: str | Path) -> set[str] | None:
    """The names golf wrote into `out_dir` (its recipe file's list, or a manifest.json of
    kind synthetic from before the recipe file existed), or None if golf did not make it."""
    out = Path(out_dir)
    for name, keys in ((RECIPE_FILE, ("files",)), ("manifest.json", ("files_train", "files_val"))):
        f = out / name
        if not f.is_file() or f.is_symlink():
            continue
        try:
            meta = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(meta, dict) or (name == "manifest.json" and meta.get("kind") != "synthetic"):
            continue
        files = [x for k in keys for x in (meta.get(k) or [])]
        if name == "manifest.json":
            files += [meta.get("tokenizer"), "manifest.json"]
        # plain names only: a recipe can never point golf at a file outside its directory
        names = {x for x in files if isinstance(x, str) and x and Path(x).name == x and x not in (".", "..")}
        return names | {name}
    return None


def recipe_of(out_dir: str | Path) -> dict | None:
    """The parameters a golf-made directory was made with (None: not golf's, or no recipe)."""
    try:
        meta = json.loads((Path(out_dir) / RECIPE_FILE).read_text())
        return meta.get("recipe") if isinstance(meta, dict) else None
    except (OSError, ValueError):
        return None


def _is_data_file(name: str) -> bool:
    return (name.startswith("fineweb_") and name.endswith(".bin")) or name.endswith(".model") \
        or name in ("manifest.json", RECIPE_FILE)


def _foreign(out: Path) -> list[str]:
    """Entries of `out` golf did not write (sorted)."""
    mine = own_files(out) or set()
    return sorted(e.name for e in out.iterdir() if e.name not in mine)


def make_synthetic(out_dir: str | Path, train_tokens: int, val_tokens: int, seed: int,
                   vocab_size: int = 1024, shard_tokens: int | None = None, force: bool = False) -> Path:
    """Write a synthetic data dir: val shard, train shards, tokenizer, manifest.json, recipe.

    `shard_tokens` caps the tokens per train shard (default: all train tokens in one shard).
    Never destroys data: `out_dir` must be missing, empty, or made by golf (its recipe file
    lists what golf wrote there, and only those files are ever replaced). A directory holding
    anything else is refused; `force` allows other files beside the new data (never shards or
    tokenizers golf did not write: those would mix into the data set or be overwritten).
    Everything is written into a hidden sibling first and moved into place at the end, so a
    killed run leaves no half-made directory under `out_dir`'s name.
    """
    if train_tokens < 1 or val_tokens < 1:
        raise UserError(f"synthetic data: train_tokens ({train_tokens}) and val_tokens ({val_tokens}) must be >= 1")
    if not 300 <= vocab_size <= 65536:
        raise UserError(f"synthetic data: vocab_size must be in [300, 65536], got {vocab_size}")
    if shard_tokens is not None and shard_tokens < 1:
        raise UserError(f"synthetic data: shard_tokens must be >= 1, got {shard_tokens}")
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise DataDirError(f"{out_dir}: exists and is not a directory")
    foreign = _foreign(out) if out.is_dir() else []
    clash = [n for n in foreign if _is_data_file(n)]
    if clash:
        raise DataDirError(f"{out_dir}: holds data files golf did not make ({', '.join(clash[:3])}"
                           f"{', ...' if len(clash) > 3 else ''}); golf never overwrites them: choose another --out")
    if foreign and not force:
        raise DataDirError(f"{out_dir}: holds files golf did not make ({', '.join(foreign[:3])}"
                           f"{', ...' if len(foreign) > 3 else ''}); choose an empty or new directory, or pass "
                           "--force to write beside them (they are kept)")

    out.parent.mkdir(parents=True, exist_ok=True)
    _clear_dead_siblings(out)
    tmp = _sibling(out, "tmp")
    try:
        written = _write(tmp, train_tokens, val_tokens, seed, vocab_size, shard_tokens)
        _place(tmp, out, written)
    finally:
        if tmp.exists():  # ours, made above: only its own files are in it
            for f in tmp.iterdir():
                f.unlink()
            tmp.rmdir()
    return out


def _sibling(out: Path, what: str) -> Path:
    """A new hidden directory beside `out` (same file system, so the final rename is atomic;
    mkdir, not mkdtemp, so it gets the usual permissions)."""
    d = out.parent / f".{out.name}.golf-{what}-{os.getpid()}-{secrets.token_hex(4)}"
    d.mkdir()
    return d


def _clear_dead_siblings(out: Path) -> None:
    """Remove what a killed make_synthetic left beside `out`: a hidden `.NAME.golf-tmp-PID-*`
    dir of a process that is gone, holding nothing but the data files golf writes."""
    for d in out.parent.glob(f".{out.name}.golf-tmp-*-*"):
        try:
            pid = int(d.name.rsplit("-", 2)[-2])
            os.kill(pid, 0)
            continue  # that run is still going
        except ProcessLookupError:
            pass
        except (ValueError, OSError):
            continue
        if d.is_symlink() or not d.is_dir():
            continue
        entries = list(d.iterdir())
        if all(e.is_file() and not e.is_symlink() and (_is_data_file(e.name) or e.name.endswith(".bin.tmp"))
               for e in entries):
            for e in entries:
                e.unlink()
            d.rmdir()


def _place(tmp: Path, out: Path, written: list[str]) -> None:
    """Move the finished data from `tmp` to `out`, removing only files golf wrote before."""
    old = own_files(out) if out.is_dir() else None
    if not out.exists() or not any(out.iterdir()):
        os.replace(tmp, out)  # one rename: the data appears whole (an empty dir is replaced)
        return
    if old is not None and not (set(p.name for p in out.iterdir()) - old):
        # golf's own earlier data, nothing else: swap whole directories, then delete the old one's files
        aside = out.parent / f".{out.name}.golf-old-{os.getpid()}-{secrets.token_hex(4)}"
        os.replace(out, aside)
        os.replace(tmp, out)
        for name in old:
            (aside / name).unlink(missing_ok=True)
        aside.rmdir()
        return
    # beside files golf keeps (--force): golf's old files go, then the new ones move in,
    # the recipe last (its presence means the data is complete)
    for name in sorted(old or ()):
        (out / name).unlink(missing_ok=True)
    for name in sorted(written, key=lambda n: n in (RECIPE_FILE, "manifest.json")):
        os.replace(tmp / name, out / name)


def _write(out: Path, train_tokens: int, val_tokens: int, seed: int, vocab_size: int,
           shard_tokens: int | None) -> list[str]:
    """Generate the data into the (empty) directory `out`; the names written."""
    import sentencepiece as spm

    gen = _Generator(seed)
    # Tokenizer trained on the first documents (val and the start of train, as upstream
    # trains on the head of its document list); ~4 bytes per token, capped for speed.
    est_bytes = 4 * (train_tokens + val_tokens)
    docs: list[str] = []
    n_bytes = 0
    while n_bytes < min(est_bytes, 1_500_000) or n_bytes < 200_000:
        batch = gen.documents(64)
        docs.extend(batch)
        n_bytes += sum(len(d.encode()) for d in batch)
    model_bytes = _train_tokenizer(docs, vocab_size, seed)
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    if int(sp.vocab_size()) != vocab_size:
        raise ValueError(f"synthetic data: tokenizer reached vocab {sp.vocab_size()}, wanted {vocab_size}")
    model_path = out / f"synthetic_{vocab_size}_bpe.model"
    model_path.write_bytes(model_bytes)

    val = _take_tokens(gen, sp, docs, val_tokens)
    write_shard(out / "fineweb_val_000000.bin", val)
    train = _take_tokens(gen, sp, docs, train_tokens)
    per = shard_tokens or train_tokens
    train_files = []
    for k, start in enumerate(range(0, train_tokens, per)):
        train_files.append(write_shard(out / f"fineweb_train_{k:06d}.bin", train[start:start + per]).name)

    manifest = {
        "kind": "synthetic",
        "seed": seed,
        "vocab_size": vocab_size,
        "train_tokens": int(train.size),
        "val_tokens": int(val.size),
        "val_docs": int((val == BOS_ID).sum()),
        "train_docs": int((train == BOS_ID).sum()),
        "shard_tokens": per,
        "files_train": train_files,
        "files_val": ["fineweb_val_000000.bin"],
        "tokenizer": model_path.name,
        "tokenizer_train_bytes": n_bytes,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    files = [*train_files, "fineweb_val_000000.bin", model_path.name, "manifest.json", RECIPE_FILE]
    recipe = {"train_tokens": train_tokens, "val_tokens": val_tokens, "seed": seed, "vocab_size": vocab_size,
              "shard_tokens": shard_tokens}
    # what the shards held when golf made them: a data identity (orchestrator.plan) stays the
    # recipe's while they still hold it, and changes with a changed byte (issue 20)
    digests = {}
    for name in [*train_files, "fineweb_val_000000.bin"]:
        with open(out / name, "rb") as f:
            digests[name] = hashlib.file_digest(f, "sha256").hexdigest()
    (out / RECIPE_FILE).write_text(json.dumps({"made_by": "golf data synthetic", "recipe": recipe,
                                                "files": files, "sha256": digests}, indent=2) + "\n")
    return files
