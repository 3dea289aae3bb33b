"""The trainer end to end on a tiny model: loss falls, resume is exact, bad data is skipped."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from molmo2.data.schema import Annotation, Example, Media, write_jsonl
from molmo2.errors import ConfigError
from molmo2.grounding.types import Point
from molmo2.train.config import TrainConfig, apply_overrides
from molmo2.train.trainer import Trainer


def make_cfg(model_dir, manifest, run_dir, steps=6, **kw) -> TrainConfig:
    cfg = TrainConfig(model=str(model_dir), init="random", run_dir=str(run_dir), steps=steps, global_batch_rows=2,
                      micro_batch_rows=1, precision="fp32", save_every=3, log_every=1, freeze_base_embedding=False,
                      threads=1)
    apply_overrides(cfg, ['optim.lr={"vit": 0.003, "connector": 0.003, "llm": 0.003}',
                          'optim.warmup={"vit": 1, "connector": 1, "llm": 1}'])
    cfg.data.manifests = [str(manifest)]
    cfg.data.seq_len, cfg.data.max_crops_per_row, cfg.data.buffer_size = 384, 8, 4
    for k, v in kw.items():
        apply_overrides(cfg, [f"{k}={v}"])
    return cfg


def test_loss_falls(model_dir, manifest, tmp_path):
    cfg = make_cfg(model_dir, manifest, tmp_path / "run", steps=25, save_every=0)
    hist = Trainer(cfg, log=lambda m: None).fit()
    first = sum(m["loss"] for m in hist[:3]) / 3
    last = sum(m["loss"] for m in hist[-3:]) / 3
    assert last < 0.7 * first, (first, last)
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(logged) == 25 and {"loss", "lr", "grad_norm", "token_fill", "tokens_per_s"} <= logged[0].keys()


def test_resume_continues_bit_for_bit(model_dir, manifest, tmp_path):
    full = Trainer(make_cfg(model_dir, manifest, tmp_path / "a"), log=lambda m: None).fit()
    Trainer(make_cfg(model_dir, manifest, tmp_path / "b", stop_at=3), log=lambda m: None).fit()
    resumed_trainer = Trainer(make_cfg(model_dir, manifest, tmp_path / "b"), log=lambda m: None)
    assert resumed_trainer.step == 3
    resumed = resumed_trainer.fit()
    assert [m["loss"] for m in resumed] == [m["loss"] for m in full[3:]]
    ckpts = sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir())
    assert ckpts == ["step_000003", "step_000006"]
    # the checkpoint's model folder is a normal model directory
    from molmo2.checkpoint import load_model

    load_model(tmp_path / "b" / "checkpoints" / "step_000006" / "model")


def test_kill_9_mid_run_then_resume_matches(model_dir, manifest, tmp_path):
    """A real SIGKILL in the middle of a run: no half-written checkpoint, and resuming reproduces the
    losses of an uninterrupted run."""
    full = Trainer(make_cfg(model_dir, manifest, tmp_path / "ref", steps=8, save_every=2), log=lambda m: None).fit()
    run = tmp_path / "killed"
    here = str(Path(__file__).parent)
    code = (
        f"import sys, time; sys.path.insert(0, {here!r})\n"
        "from test_trainer import make_cfg\nfrom molmo2.train.trainer import Trainer\n"
        f"cfg = make_cfg({str(model_dir)!r}, {str(manifest)!r}, {str(run)!r}, steps=8, save_every=2)\n"
        "Trainer(cfg, log=lambda m: None).fit(on_step=lambda m: time.sleep(0.3))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.getcwd()})
    deadline = time.time() + 120
    while time.time() < deadline:
        ckpt = run / "checkpoints"
        if ckpt.is_dir() and any(p.name == "step_000004" for p in ckpt.iterdir()):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in (run / "checkpoints").iterdir() if not p.name.endswith(".tmp"))
    assert done and all(p.startswith("step_") for p in done)
    t = Trainer(make_cfg(model_dir, manifest, run, steps=8, save_every=2), log=lambda m: None)
    start = t.step
    assert 4 <= start < 8
    resumed = t.fit()
    assert [m["loss"] for m in resumed] == [m["loss"] for m in full[start:]]


def test_bad_examples_are_skipped_and_counted(model_dir, manifest, tmp_path):
    bad = tmp_path / "bad.jsonl"
    (tmp_path / "corrupt.mp4").write_bytes(b"not a video")
    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp_path / "ok.png")
    write_jsonl(bad, [
        Example("missing", Media("image", ["nope.png"]), [Annotation("qa", question="q", answer="a")]),
        Example("corrupt", Media("video", ["corrupt.mp4"]), [Annotation("qa", question="q", answer="a")]),
        Example("outside", Media("image", ["ok.png"]), [Annotation("pointing", label="x", points=[Point(90, 5)])]),
        Example("too-long", Media("image", ["ok.png"]), [Annotation("qa", question="q " * 400, answer="a")]),
    ])
    messages = []
    cfg = make_cfg(model_dir, manifest, tmp_path / "run", steps=3, save_every=0)
    cfg.data.manifests = [str(manifest), str(bad)]
    trainer = Trainer(cfg, log=messages.append)
    hist = trainer.fit()
    skipped = trainer.rows.stream.skipped
    assert hist[-1]["skipped"] == sum(skipped.values()) > 0
    assert set(skipped) <= {"DataError", "MediaError", "TooLong"}
    assert any("skipped example" in m for m in messages)


def test_config_errors_are_clear(model_dir, manifest, tmp_path):
    with pytest.raises(ConfigError, match="multiple of"):
        Trainer(make_cfg(model_dir, manifest, tmp_path / "r", global_batch_rows=3, micro_batch_rows=2))
    with pytest.raises(ConfigError, match="no config.json"):
        Trainer(make_cfg(tmp_path, manifest, tmp_path / "r"))
    with pytest.raises(ConfigError, match="unknown key"):
        make_cfg(model_dir, manifest, tmp_path / "r", **{"data.seqlen": 3})


def test_frozen_embedding_rows_and_head(model_dir, manifest, tmp_path):
    """freeze_base_embedding: the base-vocabulary rows never move, the Molmo2 special-token rows train;
    freeze_lm_head also freezes the (separate) head."""
    t = Trainer(make_cfg(model_dir, manifest, tmp_path / "run", steps=2, save_every=0, freeze_base_embedding=True,
                         freeze_lm_head=True), log=lambda m: None)
    vocab = t.model_cfg.text.vocab_size
    embed, head = t.model.text.embed.detach().clone(), t.model.lm_head.weight.detach().clone()
    t.fit()
    assert torch.equal(t.model.text.embed[:vocab], embed[:vocab])
    assert not torch.equal(t.model.text.embed[vocab:], embed[vocab:])
    assert torch.equal(t.model.lm_head.weight, head) and not t.model.lm_head.weight.requires_grad
    names = {g["name"]: g["param_names"] for g in t.optimizer.param_groups}
    assert "text.embed" in names["connector"] and "lm_head.weight" not in names["llm"]


def test_tied_head_cannot_train_apart_from_the_embedding(manifest, tmp_path):
    from helpers import tiny_model_dir

    from molmo2.config import Molmo2Config

    cfg = Molmo2Config.from_name("tiny")
    cfg.tie_word_embeddings = True
    tied = tiny_model_dir(tmp_path / "tied", cfg)
    with pytest.raises(ConfigError, match="tie_word_embeddings"):
        Trainer(make_cfg(tied, manifest, tmp_path / "r", freeze_base_embedding=False), log=lambda m: None)
    t = Trainer(make_cfg(tied, manifest, tmp_path / "r", freeze_base_embedding=True), log=lambda m: None)
    assert torch.equal(t.model.lm_head.weight, t.model.text.embed[: cfg.text.vocab_size])  # init=random ties too
    assert not t.model.lm_head.weight.requires_grad
