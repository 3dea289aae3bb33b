"""Optional wandb logging: the same rows as log.jsonl go to a (fake, in-process) wandb; a missing wandb
fails at start-up with a message. No network: ``wandb`` is a stand-in module put in ``sys.modules``."""

from __future__ import annotations

import json
import sys
import types

import pytest
from test_trainer import make_cfg

from molmo2.errors import ConfigError
from molmo2.train.trainer import Trainer


class FakeRun:
    def __init__(self, **kwargs):
        self.init_kwargs = kwargs
        self.logged: list[tuple[dict, int]] = []
        self.finished = False

    def log(self, row: dict, step: int) -> None:
        self.logged.append((dict(row), step))

    def finish(self) -> None:
        self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch):
    module = types.ModuleType("wandb")
    module.runs = []

    def init(**kwargs):
        module.runs.append(FakeRun(**kwargs))
        return module.runs[-1]

    module.init = init
    monkeypatch.setitem(sys.modules, "wandb", module)
    return module


def test_wandb_gets_the_jsonl_rows(model_dir, manifest, tmp_path, fake_wandb):
    cfg = make_cfg(model_dir, manifest, tmp_path / "run", steps=2, save_every=0, log_every=1,
                   wandb_project="molmo2-tests")
    Trainer(cfg, log=lambda m: None).fit()
    (run,) = fake_wandb.runs
    assert run.init_kwargs["project"] == "molmo2-tests" and run.init_kwargs["name"] == "run"
    assert run.init_kwargs["config"]["wandb_project"] == "molmo2-tests" and run.finished
    logged = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [step for _, step in run.logged] == [1, 2]
    assert [row for row, _ in run.logged] == logged


def test_wandb_off_by_default(model_dir, manifest, tmp_path, fake_wandb):
    Trainer(make_cfg(model_dir, manifest, tmp_path / "run", steps=1, save_every=0), log=lambda m: None).fit()
    assert fake_wandb.runs == []


def test_missing_wandb_fails_at_startup(model_dir, manifest, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    cfg = make_cfg(model_dir, manifest, tmp_path / "run", steps=1, wandb_project="p")
    with pytest.raises(ConfigError, match="wandb is not installed: pip install wandb"):
        Trainer(cfg, log=lambda m: None)
