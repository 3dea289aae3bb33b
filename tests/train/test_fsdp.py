"""FSDP2 over 2 CPU processes (gloo, launched by torchrun) trains exactly like 1 process: full
training with a frozen base embedding (untied head, and a head tied to the embedding)."""

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
