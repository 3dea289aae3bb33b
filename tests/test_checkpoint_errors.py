"""Bad checkpoints fail with a clear CheckpointError naming the problem, before any weight is loaded."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from molmo2.checkpoint import load_model
from molmo2.checkpoint.io import resolve_model_dir
from molmo2.errors import CheckpointError


@pytest.fixture
def ckpt(reference, tmp_path):
    _, _, src = reference
    dst = tmp_path / "ckpt"
    shutil.copytree(src, dst)
    return dst


def _edit(ckpt, fn):
    path = ckpt / "model.safetensors"
    tensors = load_file(path)
    fn(tensors)
    save_file(tensors, path)


def test_missing_tensor_is_named(ckpt):
    _edit(ckpt, lambda t: t.pop("model.transformer.ln_f.weight"))
    with pytest.raises(CheckpointError, match=r"missing tensors: model\.transformer\.ln_f\.weight"):
        load_model(ckpt)


def test_unexpected_tensor_is_named(ckpt):
    _edit(ckpt, lambda t: t.update({"model.transformer.extra.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"unexpected tensors: model\.transformer\.extra\.weight"):
        load_model(ckpt)


def test_misshaped_tensor_is_named(ckpt):
    _edit(ckpt, lambda t: t.update({"model.transformer.ln_f.weight": torch.zeros(3)}))
    with pytest.raises(CheckpointError, match=r"ln_f\.weight: checkpoint \(3,\) vs model \(64,\)"):
        load_model(ckpt)


def test_embedding_rows_must_add_up(ckpt):
    _edit(ckpt, lambda t: t.update({"model.transformer.wte.new_embedding": t["model.transformer.wte.new_embedding"][:-1]}))
    with pytest.raises(CheckpointError, match="vocab_size \\+ additional_vocab_size"):
        load_model(ckpt)


def test_truncated_shard(ckpt):
    path = ckpt / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(ckpt)


def test_garbage_shard(ckpt):
    (ckpt / "model.safetensors").write_bytes(b"\x00\x01not a safetensors file")
    with pytest.raises(CheckpointError, match="not a valid safetensors"):
        load_model(ckpt)


def test_unknown_model_type(ckpt):
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["model_type"] = "llava"
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="model_type 'llava'"):
        load_model(ckpt)


def test_pickle_weights_are_refused(ckpt):
    (ckpt / "model.safetensors").unlink()
    (ckpt / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="never pickles"):
        load_model(ckpt)


def test_missing_directory_message(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        resolve_model_dir(tmp_path / "nope")


def test_missing_shard_in_index(ckpt):
    (ckpt / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-1.safetensors"}}))
    with pytest.raises(CheckpointError, match="missing"):
        load_model(ckpt)


def test_offline_repo_id_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(CheckpointError, match="huggingface-cli download allenai/Molmo2-4B"):
        resolve_model_dir("allenai/Molmo2-4B")
