"""Fixtures for the training tests: one tiny model directory, one tiny dataset, prepared items."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from helpers import tiny_dataset, tiny_model_dir  # noqa: E402


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("train-model"))


@pytest.fixture(scope="session")
def manifest(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.mktemp("train-data"))


@pytest.fixture(scope="session")
def items(model_dir, manifest):
    """Prepared TrainItems of the tiny dataset (SFT weighting, so weights differ per branch)."""
    from molmo2.checkpoint import read_config
    from molmo2.processing import Molmo2Processor
    from molmo2.train.data import DataSettings, Mixture, Preparer, Source

    proc = Molmo2Processor.from_pretrained(model_dir)
    mix = Mixture([Source(str(manifest))], seed=0)
    prep = Preparer(proc, read_config(model_dir), DataSettings(max_seq_len=1024, weighting="sft"), seed=0)
    out = []
    for i, ex in enumerate(mix.sources[0].examples):
        out.append(prep((i, 0, i), ex))
    return out
