"""`data.tokenizer_path` in specs: validated like data.path, resolved against the workspace,
part of the data identity, handed to every job."""
from __future__ import annotations

import shutil

import pytest

from golf_core.config import ConfigError
from golf_core.data.shards import find_tokenizer
from orchestrator.plan.build import build_plan, data_identity, tokenizer_file
from orchestrator.spec.sweep import sweep_from_dict


def _spec(**data) -> dict:
    return {"name": "tok", "data": {"path": "data/datasets/fineweb10B_sp1024", "source": "fineweb", **data},
            "train": {"preset": "tiny", "seeds": [1], "gpus_per_job": 1}, "eval": {"seq_len": 128, "stride": 64}}


@pytest.mark.parametrize("bad, needle", [("../t.model", "leaves the workspace"), ("/abs/t.model", "leaves the workspace"),
                                         ("~/t.model", r"without ~ or \$")])
def test_tokenizer_path_is_checked_like_data_path(bad, needle):
    with pytest.raises(ConfigError, match=f"data.tokenizer_path.*{needle}"):
        sweep_from_dict(_spec(tokenizer_path=bad))


def test_upstream_layout_identity_and_explicit_tokenizer(synthetic_data_dir, tmp_path):
    ds = tmp_path / "data" / "datasets" / "fineweb10B_sp1024"
    ds.mkdir(parents=True)
    for f in synthetic_data_dir.glob("fineweb_*.bin"):
        shutil.copy(f, ds / f.name)
    (tmp_path / "data" / "tokenizers").mkdir()
    shutil.copy(find_tokenizer(synthetic_data_dir), tmp_path / "data" / "tokenizers" / "fineweb_1024_bpe.model")

    plan = build_plan(sweep_from_dict(_spec()), tmp_path)
    assert tokenizer_file(plan, tmp_path) is None
    explicit = build_plan(sweep_from_dict(_spec(tokenizer_path="data/tokenizers/fineweb_1024_bpe.model")), tmp_path)
    assert tokenizer_file(explicit, tmp_path) == tmp_path / "data/tokenizers/fineweb_1024_bpe.model"
    # the same tokenizer, found or named: the same data; another tokenizer: other data
    assert data_identity(plan.data, tmp_path) == data_identity(explicit.data, tmp_path)
    other = tmp_path / "data" / "tokenizers" / "other.model"
    other.write_bytes(b"not the same")
    named_other = build_plan(sweep_from_dict(_spec(tokenizer_path="data/tokenizers/other.model")), tmp_path)
    assert data_identity(named_other.data, tmp_path) != data_identity(plan.data, tmp_path)
