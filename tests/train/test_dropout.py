"""LLM residual dropout (training.md §1.2-1.3): everywhere, or at the loss-bearing positions only;
per element and inverted; nothing in eval mode; resume stays bit for bit with dropout on."""

from __future__ import annotations

import pytest
import torch
from test_trainer import make_cfg

from molmo2.config import Molmo2Config
from molmo2.model import Molmo2Model
from molmo2.train.trainer import Trainer


def _block_and_input():
    torch.manual_seed(0)
    model = Molmo2Model(Molmo2Config.from_name("tiny"))
    block = model.text.blocks[0]
    return model, block, torch.ones(1, 4000, 8)


def test_response_dropout_touches_only_the_masked_positions():
    model, block, y = _block_and_input()
    mask = torch.zeros(1, 4000, dtype=torch.bool)
    mask[:, 2000:] = True
    model.text.set_dropout(response=0.1)
    model.train()
    out = block.dropout(y, mask)
    assert (out[:, :2000] == 1).all()
    dropped = (out[:, 2000:] == 0).float().mean().item()
    assert 0.08 < dropped < 0.12
    kept = out[:, 2000:][out[:, 2000:] != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.9))  # inverted dropout
    zeros_per_token = (out[0, 2000:] == 0).sum(-1)
    assert (zeros_per_token > 0).float().mean() > 0.5 and (zeros_per_token < 8).all()  # per element
    with pytest.raises(ValueError, match="drop_mask"):
        block.dropout(y, None)
    model.eval()
    assert torch.equal(block.dropout(y, mask), y)


def test_residual_dropout_everywhere_and_rates_checked():
    model, block, y = _block_and_input()
    model.text.set_dropout(residual=0.2)
    model.train()
    out = block.dropout(y, None)
    assert 0.17 < (out == 0).float().mean().item() < 0.23
    with pytest.raises(ValueError, match="dropout"):
        model.text.set_dropout(residual=1.0)


def test_training_with_dropout_differs_and_resumes_bit_for_bit(model_dir, manifest, tmp_path):
    kw = {"residual_dropout": 0.1, "response_residual_dropout": 0.1}
    plain = Trainer(make_cfg(model_dir, manifest, tmp_path / "p", steps=4), log=lambda m: None).fit()
    full = Trainer(make_cfg(model_dir, manifest, tmp_path / "a", steps=4, **kw), log=lambda m: None).fit()
    assert [m["loss"] for m in full] != [m["loss"] for m in plain]
    Trainer(make_cfg(model_dir, manifest, tmp_path / "b", steps=4, stop_at=2, save_every=2, **kw),
            log=lambda m: None).fit()
    resumed = Trainer(make_cfg(model_dir, manifest, tmp_path / "b", steps=4, save_every=2, **kw), log=lambda m: None)
    assert resumed.step == 2
    assert [m["loss"] for m in resumed.fit()] == [m["loss"] for m in full[2:]]


def test_recipes_carry_the_official_dropout():
    from molmo2.train.recipes import get_recipe

    pre, sft = get_recipe("pretrain-4b").phases[0], get_recipe("sft-4b").phases[0]
    assert (pre.residual_dropout, pre.response_residual_dropout) == (0.0, 0.1)
    assert (sft.residual_dropout, sft.response_residual_dropout) == (0.1, 0.0)
