"""The oracle for parity tests and benchmarks: transformers' native Molmo2 with random weights.

transformers appears in tests and benchmarks only; bench/common.py imports this module too.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch

from molmo2.config import Molmo2Config


def reference_model(cfg: Molmo2Config, seed: int = 0):
    """A transformers Molmo2 with random weights, scaled up so every part visibly moves the logits."""
    from transformers import Molmo2Config as HFConfig
    from transformers import Molmo2ForConditionalGeneration

    torch.manual_seed(seed)
    model = Molmo2ForConditionalGeneration(HFConfig(**cfg.to_hf_config())).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or "layernorm" in name:
                p.add_(torch.randn_like(p) * 0.1)
            else:
                p.normal_(0, 0.5 / p.shape[-1] ** 0.5 if p.dim() > 1 else 0.05)
    return model


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


TINY_TOKENIZER = Path(__file__).parent / "fixtures" / "tokenizer_tiny"


def write_side_files(out: Path, crop: int = 56, max_crops: int = 4, num_frames: int = 8, margins: int = 1) -> Path:
    """The tiny test tokenizer plus image and video processor settings for ``crop``-px crops: what a
    model directory needs besides config.json and the weights."""
    out.mkdir(parents=True, exist_ok=True)
    for f in TINY_TOKENIZER.iterdir():
        shutil.copy(f, out / f.name)
    (out / "preprocessor_config.json").write_text(json.dumps({
        "size": {"height": crop, "width": crop}, "patch_size": 14, "max_crops": max_crops,
        "overlap_margins": [margins, margins], "pooling_size": [2, 2], "image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    (out / "video_preprocessor_config.json").write_text(json.dumps({
        "size": {"height": crop, "width": crop}, "patch_size": 14, "pooling_size": [3, 3],
        "num_frames": num_frames, "max_fps": 2}))
    return out
