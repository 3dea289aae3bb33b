"""Fixtures for the server tests: the tiny random checkpoint and media of tests/inference, one pipeline
shared by the session (servers around it: FastAPI's in-process TestClient, or ``serve.helpers.live_server``)."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from inference.conftest import media_dir, tiny_ckpt  # noqa: E402, F401 (fixtures shared with tests/inference)


@pytest.fixture(scope="session")
def pipe(tiny_ckpt):  # noqa: F811
    from molmo2.inference import Molmo2

    return Molmo2.from_pretrained(tiny_ckpt)
