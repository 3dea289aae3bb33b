"""Random init for training from scratch: the 2D sin-cos start of the ViT's positional embedding."""

from __future__ import annotations

import math

import pytest
import torch

from molmo2.model import Molmo2Model
from molmo2.train.recipes import tiny_shapes_config
from molmo2.train.trainer import init_weights, sincos_2d


def test_sincos_table_encodes_row_and_column():
    side, dim = 8, 32
    t = sincos_2d(side * side, dim)
    assert t.shape == (64, 32)
    grid = t.reshape(side, side, dim)
    # the first half depends on the row only, the second half on the column only
    assert torch.equal(grid[:, :1, : dim // 2].expand(side, side, dim // 2), grid[:, :, : dim // 2])
    assert torch.equal(grid[:1, :, dim // 2:].expand(side, side, dim // 2), grid[:, :, dim // 2:])
    # row r, lowest frequency channel: sin(r) and cos(r)
    for r in range(side):
        assert grid[r, 0, 0].item() == pytest.approx(math.sin(r), abs=1e-6)
        assert grid[r, 0, dim // 4].item() == pytest.approx(math.cos(r), abs=1e-6)
    # every position distinct
    assert torch.cdist(t, t).add(torch.eye(64) * 1e9).min() > 0.1


def test_sincos_rejects_non_square_grids():
    with pytest.raises(ValueError, match="square"):
        sincos_2d(60, 32)
    with pytest.raises(ValueError, match="dim"):
        sincos_2d(64, 30)


def test_init_weights_uses_the_table_for_the_vit_positions():
    model = Molmo2Model(tiny_shapes_config(image_size=56, scale=4))
    init_weights(model, seed=0)
    pos = model.vision.pos_embed
    assert torch.equal(pos.detach(), sincos_2d(*pos.shape))
    params = dict(model.named_parameters())
    # unit gain on the visual side (ViT + connector), 0.02 in the LLM
    for name in ("vision.patch_embed.weight", "vision.blocks.0.attn.q.weight", "connector.w2.weight"):
        p = params[name]
        assert p.std().item() == pytest.approx(1 / math.sqrt(p.shape[1]), rel=0.1), name
    for name in ("text.blocks.0.attn.qkv.weight", "text.embed", "lm_head.weight", "vision.blocks.0.attn.o.weight",
                 "vision.blocks.0.fc2.weight"):  # 0.02 in the LLM and the ViT's residual branches
        assert params[name].std().item() == pytest.approx(0.02, rel=0.1), name
    assert all(not params[n].any() for n in params if n.endswith(".bias"))
