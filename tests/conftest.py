"""Shared fixtures: the tiny test tokenizer and tiny random reference checkpoints.

Reference models are transformers' native Molmo2 (the oracle; used in tests only), built from our
``tiny`` preset (Qwen3-style) or an OLMo-style variant, and saved with ``save_pretrained``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from reference import reference_model, tiny_config  # noqa: F401 (re-exported for tests)

FIXTURES = Path(__file__).parent / "fixtures"
TINY_TOKENIZER = FIXTURES / "tokenizer_tiny"


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
