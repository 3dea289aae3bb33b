"""FSDP2 over 2 CPU processes (gloo, launched by torchrun) trains exactly like 1 process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from molmo2.checkpoint import load_model

RUNNER = '''
import json, sys
sys.path.insert(0, {here!r})
from test_trainer import make_cfg
from molmo2.train.trainer import Trainer
cfg = make_cfg({model!r}, {manifest!r}, {run!r}, steps=4, save_every=4, **{{"data.buffer_size": 1}})
t = Trainer(cfg, log=lambda m: None)
hist = t.fit()
if t.rank == 0:
    json.dump([m["loss"] for m in hist], open({out!r}, "w"))
'''


def _run(tmp_path: Path, model_dir, manifest, nproc: int) -> tuple[list[float], Path]:
    script = tmp_path / f"run{nproc}.py"
    run, out = tmp_path / f"run{nproc}", tmp_path / f"losses{nproc}.json"
    script.write_text(RUNNER.format(here=str(Path(__file__).parent), model=str(model_dir), manifest=str(manifest),
                                    run=str(run), out=str(out)))
    cmd = [sys.executable, str(script)] if nproc == 1 else \
        [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}", str(script)]
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(out.read_text()), run / "checkpoints" / "step_000004" / "model"


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
def test_two_process_fsdp2_matches_one_process(model_dir, manifest, tmp_path):
    one, ckpt1 = _run(tmp_path, model_dir, manifest, 1)
    two, ckpt2 = _run(tmp_path, model_dir, manifest, 2)
    assert two == pytest.approx(one, rel=1e-6)
    a, b = load_model(ckpt1).state_dict(), load_model(ckpt2).state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], atol=1e-5, rtol=1e-4, msg=name)
