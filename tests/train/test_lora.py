"""LoRA: only the adapters train, resume is exact, and the merged export is a normal checkpoint that
computes what the adapted model computes."""

from __future__ import annotations

import torch
from test_trainer import make_cfg

from molmo2.checkpoint import load_model
from molmo2.cli import main
from molmo2.train.lora import apply_lora, merged_state
from molmo2.train.trainer import Trainer


def test_lora_trains_only_adapters_and_resumes_exactly(model_dir, manifest, tmp_path):
    kw = {"lora.rank": 4, "lora.alpha": 8.0}
    full = Trainer(make_cfg(model_dir, manifest, tmp_path / "a", **kw), log=lambda m: None)
    base = {k: v.clone() for k, v in full.model.named_parameters() if "lora" not in k}
    hist = full.fit()
    assert hist[-1]["loss"] < hist[0]["loss"]
    for k, v in full.model.named_parameters():
        if "lora" in k:
            assert v.requires_grad
        else:
            assert not v.requires_grad and torch.equal(v, base[k]), k
    assert any("lora_b" in k and v.abs().sum() > 0 for k, v in full.model.named_parameters())

    Trainer(make_cfg(model_dir, manifest, tmp_path / "b", stop_at=3, **kw), log=lambda m: None).fit()
    resumed = Trainer(make_cfg(model_dir, manifest, tmp_path / "b", **kw), log=lambda m: None).fit()
    assert [m["loss"] for m in resumed] == [m["loss"] for m in hist[3:]]


def test_merged_weights_compute_the_adapted_model(model_dir):
    from molmo2.checkpoint import read_config
    from molmo2.model import Molmo2Model
    from molmo2.train.trainer import init_weights

    model = Molmo2Model(read_config(model_dir))
    init_weights(model, 0)
    apply_lora(model, 4, 8.0, ["qkv", "down"])
    with torch.no_grad():
        for k, v in model.named_parameters():
            if "lora" in k:
                v.normal_(0, 0.1)
    ids = torch.randint(0, 1000, (1, 12))
    with torch.no_grad():
        adapted = model(ids)
        plain = Molmo2Model(model.cfg)
        plain.load_state_dict(merged_state(model))
        torch.testing.assert_close(plain(ids), adapted, atol=1e-5, rtol=1e-5)


def test_lora_recipe_exports_a_merged_checkpoint(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--recipe", "debug-cpu", "--run-dir", str(run), "--set", "steps=3",
                 "--set", "save_every=3", "--set", "lora.rank=2", "--set", "data.seq_len=384"]) == 0
    assert (run / "phase1" / "checkpoints" / "step_000003" / "lora.safetensors").is_file()
    merged = load_model(run / "final")
    assert not any("lora" in k for k in merged.state_dict())


def test_a_lora_phase_hands_its_merged_weights_to_the_next(model_dir, manifest, tmp_path, monkeypatch):
    from molmo2.train import launch, recipes

    kw = {"lora.rank": 2, "lora.alpha": 4.0, "save_every": 2}
    first = make_cfg(model_dir, manifest, tmp_path / "p1", steps=2, **kw)
    second = make_cfg(model_dir, manifest, tmp_path / "p2", steps=2, **kw)
    second.model = ""
    monkeypatch.setitem(recipes.RECIPES, "two-lora", lambda: recipes.Recipe("two-lora", [first, second]))
    final = launch.run("two-lora", [], log=lambda m: None)
    merged1 = load_model(tmp_path / "p1" / "merged").state_dict()
    base1 = load_model(tmp_path / "p1" / "checkpoints" / "step_000002" / "model").state_dict()
    base2 = load_model(tmp_path / "p2" / "checkpoints" / "step_000002" / "model").state_dict()
    changed = [k for k in merged1 if not torch.equal(merged1[k], base1[k])]
    assert changed and all("text.blocks" in k for k in changed)  # phase 1's adapters are in the merge
    assert all(torch.equal(base2[k], merged1[k]) for k in merged1)  # phase 2 trained on top of it
    assert not any("lora" in k for k in load_model(final).state_dict())
