"""Shared fixtures: the tiny test tokenizer and tiny random reference checkpoints.

Reference models are transformers' native Molmo2 (the oracle; used in tests only), built from our
``tiny`` preset (Qwen3-style) or an OLMo-style variant, and saved with ``save_pretrained``.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
from reference import reference_model  # noqa: F401 (re-exported for tests)

from molmo2.config import Molmo2Config

FIXTURES = Path(__file__).parent / "fixtures"
TINY_TOKENIZER = FIXTURES / "tokenizer_tiny"


def tiny_config(backbone: str = "qwen3") -> Molmo2Config:
    cfg = Molmo2Config.from_name("tiny")
    if backbone == "olmo":
        cfg = copy.deepcopy(cfg)
        t = cfg.text
        t.num_layers, t.num_kv_heads = 4, 4
        t.qk_norm_type, t.norm_after = "olmo", True
        t.rope_theta = 500_000.0
        t.rope_scaling = {"rope_type": "yarn", "factor": 8.0, "attention_factor": 1.2079441541679836,
                          "beta_fast": 32.0, "beta_slow": 1.0, "original_max_position_embeddings": 256}
        t.rope_scaling_layers = [1, 3]
    return cfg.validate()


def save_reference(model, out: Path) -> Path:
    model.save_pretrained(out)
    for f in TINY_TOKENIZER.iterdir():
        shutil.copy(f, out / f.name)
    (out / "preprocessor_config.json").write_text(
        '{"size": {"height": 56, "width": 56}, "patch_size": 14, "max_crops": 4, "overlap_margins": [1, 1],'
        ' "pooling_size": [2, 2], "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}'
    )
    (out / "video_preprocessor_config.json").write_text(
        '{"size": {"height": 56, "width": 56}, "patch_size": 14, "pooling_size": [3, 3], "num_frames": 8, "max_fps": 2}'
    )
    return out


@pytest.fixture(scope="session", params=["qwen3", "olmo"])
def reference(request, tmp_path_factory):
    """(backbone, transformers model, checkpoint dir written by transformers' save_pretrained)."""
    cfg = tiny_config(request.param)
    model = reference_model(cfg)
    out = save_reference(model, tmp_path_factory.mktemp(f"ref-{request.param}"))
    return request.param, model, out
