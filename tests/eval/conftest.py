"""Fixtures for the eval task, runner and CLI tests: a tiny-shapes dataset generated in the test
(56 px images and 3-4 frame videos, every query names something present so that empty answers score 0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from molmo2.data.shapes import ShapesConfig, generate_dataset

SHAPES_CONFIG = ShapesConfig(seed=1, media="mixed", image_size=56, object_size=(14, 22), num_frames=(3, 4),
                             negative_prob=0.0)


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory) -> Path:
    """4 examples (seed 1: an image, then videos) with pointing, counting and tracking annotations."""
    out = tmp_path_factory.mktemp("shapes")
    generate_dataset(out, 4, SHAPES_CONFIG, kinds=["pointing", "counting", "tracking"], progress=False)
    return out
