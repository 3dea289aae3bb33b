"""FSDP2 over 2 CPU processes (gloo, launched by torchrun) trains exactly like 1 process: full
training with a frozen base embedding (untied head, and a head tied to the embedding), and LoRA
(sharded adapters, resume, rank-0 merged export)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_model_dir

from molmo2.checkpoint import load_model, read_config
from molmo2.config import Molmo2Config

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")

HEAD = '''
import json, sys
sys.path.insert(0, {here!r})
from test_trainer import make_cfg
from molmo2.train.trainer import Trainer
'''

RUNNER = HEAD + '''
cfg = make_cfg({model!r}, {manifest!r}, {run!r}, steps=4, save_every=4, freeze_base_embedding=True,
               **{{"data.buffer_size": 1}})
t = Trainer(cfg, log=lambda m: None)
hist = t.fit()
if t.rank == 0:
    json.dump([m["loss"] for m in hist], open({out!r}, "w"))
'''

# A LoRA run through `molmo2 train`'s phase runner (fit, then the rank-0 merged export), and the same
# run stopped at step 2 and resumed by a fresh Trainer (2 processes only).
LORA_RUNNER = HEAD + '''
from molmo2.train import launch, recipes, parallel
kw = {{"data.buffer_size": 1, "lora.rank": 4, "lora.alpha": 8.0}}
recipes.RECIPES["lora-test"] = lambda: recipes.Recipe("lora-test", [
    make_cfg({model!r}, {manifest!r}, {run!r} + "/a", steps=4, save_every=2, **kw)])
launch.run("lora-test", [], log=lambda m: None)
losses = {{"a": [json.loads(x)["loss"] for x in open({run!r} + "/a/log.jsonl")] if parallel.get_rank() == 0 else []}}
if {resume!r}:
    Trainer(make_cfg({model!r}, {manifest!r}, {run!r} + "/b", steps=4, save_every=2, stop_at=2, **kw),
            log=lambda m: None).fit()
    t = Trainer(make_cfg({model!r}, {manifest!r}, {run!r} + "/b", steps=4, save_every=2, **kw), log=lambda m: None)
    assert t.step == 2, t.step
    losses["b"] = [m["loss"] for m in t.fit()]
if parallel.get_rank() == 0:
    json.dump(losses, open({out!r}, "w"))
'''


def _launch(tmp_path: Path, name: str, code: str, nproc: int) -> None:
    script = tmp_path / f"{name}.py"
    script.write_text(code)
    cmd = [sys.executable, str(script)] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", str(script)]
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


def _run(tmp_path: Path, model_dir, manifest, nproc: int) -> tuple[list[float], Path]:
    run, out = tmp_path / f"run{nproc}", tmp_path / f"losses{nproc}.json"
    _launch(tmp_path, f"run{nproc}", RUNNER.format(here=str(Path(__file__).parent), model=str(model_dir),
                                                    manifest=str(manifest), run=str(run), out=str(out)), nproc)
    return json.loads(out.read_text()), run / "checkpoints" / "step_000004" / "model"


def _init_state(model_dir) -> dict[str, torch.Tensor]:
    """The weights a run with make_cfg's seed starts from (init=random)."""
    from molmo2.model import Molmo2Model
    from molmo2.train.trainer import init_weights

    model = Molmo2Model(read_config(model_dir))
    init_weights(model, 6198)
    return model.state_dict()


@pytest.mark.parametrize("tied", [False, True], ids=["untied-head", "tied-head"])
def test_two_process_fsdp2_matches_one_process(model_dir, manifest, tmp_path, tied):
    if tied:  # the official Molmo2-4B layout: the head is the (frozen) base rows of the embedding
        cfg = Molmo2Config.from_name("tiny")
        cfg.tie_word_embeddings = True
        model_dir = tiny_model_dir(tmp_path / "tied-model", cfg)
    one, ckpt1 = _run(tmp_path, model_dir, manifest, 1)
    two, ckpt2 = _run(tmp_path, model_dir, manifest, 2)
    assert two == pytest.approx(one, rel=1e-6)
    a, b = load_model(ckpt1).state_dict(), load_model(ckpt2).state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=name)
    init, vocab = _init_state(model_dir), read_config(model_dir).text.vocab_size
    for state in (a, b):
        # freeze_base_embedding holds under FSDP2 too (a gradient hook on a sharded parameter never fires)
        assert torch.equal(state["text.embed"][:vocab], init["text.embed"][:vocab])
        assert not torch.equal(state["text.embed"][vocab:], init["text.embed"][vocab:])
        assert torch.equal(state["lm_head.weight"], init["lm_head.weight"]) == tied
        if tied:
            assert torch.equal(state["lm_head.weight"], state["text.embed"][:vocab])


def test_two_process_lora_matches_one_process_and_resumes(model_dir, manifest, tmp_path):
    from safetensors.torch import load_file

    from molmo2 import Molmo2

    runs = {}
    for nproc in (1, 2):
        run, out = tmp_path / f"lora{nproc}", tmp_path / f"lora{nproc}.json"
        _launch(tmp_path, f"lora{nproc}", LORA_RUNNER.format(
            here=str(Path(__file__).parent), model=str(model_dir), manifest=str(manifest), run=str(run),
            out=str(out), resume=nproc == 2), nproc)
        runs[nproc] = (json.loads(out.read_text()), run)
    (one, run1), (two, run2) = runs[1], runs[2]
    assert len(one["a"]) == 4 and one["a"][-1] < one["a"][0]
    assert two["a"] == pytest.approx(one["a"], rel=1e-6)
    assert two["b"] == two["a"][2:]  # resumed from the step-2 checkpoint: bit for bit

    step4 = "checkpoints/step_000004"
    lora1, lora2 = load_file(run1 / "a" / step4 / "lora.safetensors"), load_file(run2 / "a" / step4 / "lora.safetensors")
    assert lora1.keys() == lora2.keys() and any("lora_b" in k and v.abs().sum() > 0 for k, v in lora2.items())
    for k in lora1:
        torch.testing.assert_close(lora2[k], lora1[k], atol=1e-5, rtol=1e-4, msg=k)
    resumed = load_file(run2 / "b" / step4 / "lora.safetensors")
    assert all(torch.equal(resumed[k], lora2[k]) for k in lora2)

    # the base stays frozen; the merged export (written by rank 0) is a plain checkpoint
    base = load_model(run2 / "a" / step4 / "model").state_dict()
    init = _init_state(model_dir)
    assert not any("lora" in k for k in base) and all(torch.equal(base[k], init[k]) for k in init)
    merged = load_model(run2 / "a" / "final").state_dict()
    assert merged.keys() == init.keys()
    w = "text.blocks.0.attn.qkv"
    expect = base[f"{w}.weight"] + (lora2[f"{w}.lora_b"] @ lora2[f"{w}.lora_a"]) * (8.0 / 4)
    torch.testing.assert_close(merged[f"{w}.weight"], expect, atol=1e-6, rtol=1e-6)
    pipe = Molmo2.from_pretrained(run2 / "a" / "final")
    assert not any("lora" in k for k, _ in pipe.model.named_parameters())


# `molmo2 train` with a self-contained recipe under torchrun: rank 0 alone generates its data and model
# directory, and every rank shuts its process group down before exiting.
PREPARE_RUNNER = '''
import json, os
from molmo2.data import shapes
from molmo2.cli import main
real = shapes.generate_dataset
def counted(*a, **k):
    with open({calls!r}, "a") as f:
        f.write(os.environ["RANK"] + "\\n")
    return real(*a, **k)
shapes.generate_dataset = counted
sets = ["steps=2", "save_every=2", "micro_batch_rows=2", "data.buffer_size=1"]
assert main(["train", "--recipe", "debug-cpu", "--run-dir", {run!r}] + [a for s in sets for a in ("--set", s)]) == 0
'''


def test_torchrun_prepares_self_contained_recipe_on_rank_0_only(tmp_path):
    calls, run = tmp_path / "calls.txt", tmp_path / "run"
    _launch(tmp_path, "prepare", PREPARE_RUNNER.format(calls=str(calls), run=str(run)), 2)
    assert calls.read_text().split() == ["0"]  # debug-cpu has one dataset: generated once, by rank 0
    assert (run / "final" / "model.safetensors").is_file()
