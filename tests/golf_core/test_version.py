"""Code versions per job kind (golf_core.version), marin-style version table.

Each row edits one file of a copy of golf_core and says which job kinds' versions must stay:
cosmetic edits keep every identity, a change in code a kind runs changes that kind only."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import golf_core
from golf_core import version

ROOT = Path(golf_core.__file__).resolve().parent
KINDS = ("train", "eval", "mix")


def _edit_docstring(text: str) -> str:
    i = text.index('"""') + 3
    return text[:i] + "Reworded: " + text[i:]


def _edit_comment(text: str) -> str:
    return text.replace("\n", "\n# a new comment line\n", 3) + "\n# trailing comment\n"


def _edit_code(text: str) -> str:
    return text + "\n\ndef _added_for_the_version_test():\n    return 1\n"


def _reformat(text: str) -> str:  # layout only: blank lines
    return text.replace("\n\n\n", "\n\n\n\n")


TABLE = [
    # (file, edit, kinds whose version must stay the same)
    ("eval/ngram.py", _edit_docstring, {"train", "eval", "mix"}),
    ("train/loop.py", _edit_comment, {"train", "eval", "mix"}),
    ("model/gpt.py", _reformat, {"train", "eval", "mix"}),
    ("eval/mix_dir.py", _edit_code, {"train", "eval"}),       # only mix jobs run it
    ("eval/ngram.py", _edit_code, {"train"}),                  # eval (fused audit) and mix use it
    ("train/muon.py", _edit_code, {"mix"}),                   # train; eval loads artifacts via train code
    ("data/synthetic.py", _edit_code, {"train", "eval", "mix"}),  # no job imports it
    ("data/fineweb.py", _edit_code, {"train", "eval", "mix"}),
    # behind lazy package names (issue 21): `from golf_core.model import GPT` runs model/gpt.py
    ("model/gpt.py", _edit_code, {"mix"}),
    ("quant/quantize.py", _edit_code, {"mix"}),
    ("data/luts.py", _edit_code, {"mix"}),
    ("data/config.py", _edit_code, {"train", "eval", "mix"}),  # only the spec and plan use it
]


@pytest.fixture()
def copy(tmp_path) -> Path:
    dst = tmp_path / "golf_core"
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


@pytest.mark.parametrize("rel,edit,same", TABLE, ids=[f"{r}:{e.__name__}" for r, e, _ in TABLE])
def test_version_table(copy, rel, edit, same):
    before = {k: version.kind_version(k, copy) for k in KINDS}
    path = copy / rel
    path.write_text(edit(path.read_text()))
    after = {k: version.kind_version(k, copy) for k in KINDS}
    for k in KINDS:
        if k in same:
            assert before[k] == after[k], f"{rel} {edit.__name__} must keep the {k} version"
        else:
            assert before[k] != after[k], f"{rel} {edit.__name__} must change the {k} version"


def test_copy_hashes_like_the_package(copy):
    assert {k: version.kind_version(k, copy) for k in KINDS} == {k: golf_core.code_version(k) for k in KINDS}


def test_relative_and_submodule_imports_are_followed(tmp_path):
    pkg = tmp_path / "golf_core"
    (pkg / "eval").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "eval" / "__init__.py").write_text("")
    (pkg / "eval" / "mix_dir.py").write_text("from . import helper\nfrom golf_core.eval.other import f\n")
    (pkg / "eval" / "helper.py").write_text("from ..util import g\n")
    (pkg / "eval" / "other.py").write_text("def f():\n    return 1\n")
    (pkg / "util.py").write_text("def g():\n    return 2\n")
    (pkg / "unused.py").write_text("x = 1\n")
    mods = version.kind_modules("mix", pkg)
    assert {"golf_core.eval.helper", "golf_core.eval.other", "golf_core.util"} <= set(mods)
    assert "golf_core.unused" not in mods


def test_lazy_package_names_count_as_imports_of_their_modules(tmp_path):
    """A package whose __getattr__ loads `_LAZY` names: `from pkg import Name` imports the module
    behind Name, `import pkg` / `from golf_core import pkg` may use any of them, and being the
    parent of an imported module runs only the package's __init__."""
    pkg = tmp_path / "golf_core"
    (pkg / "lazy").mkdir(parents=True)
    (pkg / "eval").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "eval" / "__init__.py").write_text("")
    (pkg / "lazy" / "__init__.py").write_text(
        '_LAZY = {"A": "golf_core.lazy.a", "B": "golf_core.lazy.b", "C": "golf_core.lazy.c"}\n')
    for m in "abc":
        (pkg / "lazy" / f"{m}.py").write_text(f"{m.upper()} = 1\n")
    (pkg / "lazy" / "cfg.py").write_text("X = 1\n")
    mix = pkg / "eval" / "mix_dir.py"
    mix.write_text("from golf_core.lazy import A\nfrom golf_core.lazy.cfg import X\n")
    mods = set(version.kind_modules("mix", pkg))
    assert {"golf_core.lazy", "golf_core.lazy.a", "golf_core.lazy.cfg"} <= mods
    assert not {"golf_core.lazy.b", "golf_core.lazy.c"} & mods  # a parent's other names do not run
    version._analyzed.cache_clear()
    for whole in ("import golf_core.lazy\n", "from golf_core import lazy\n"):
        mix.write_text(whole)
        assert {"golf_core.lazy.a", "golf_core.lazy.b", "golf_core.lazy.c"} <= set(version.kind_modules("mix", pkg))


def test_unknown_kind_is_refused():
    with pytest.raises(KeyError, match="unknown job kind"):
        version.kind_modules("bogus")
