"""Shared fixtures: the tiny test tokenizer and tiny random reference checkpoints.

Reference models are transformers' native Molmo2 (the oracle; used in tests only), built from our
``tiny`` preset (Qwen3-style) or an OLMo-style variant, and saved with ``save_pretrained``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reference import reference_model, tiny_config, write_side_files  # noqa: F401 (re-exported for tests)


def save_reference(model, out: Path) -> Path:
    model.save_pretrained(out)
    return write_side_files(out)


@pytest.fixture(scope="session", params=["qwen3", "olmo"])
def reference(request, tmp_path_factory):
    """(backbone, transformers model, checkpoint dir written by transformers' save_pretrained)."""
    cfg = tiny_config(request.param)
    model = reference_model(cfg)
    out = save_reference(model, tmp_path_factory.mktemp(f"ref-{request.param}"))
    return request.param, model, out
