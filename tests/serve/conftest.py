"""Fixtures for the server tests: the tiny random checkpoint and media of tests/inference, one pipeline
shared by the session, and servers around it: FastAPI's in-process TestClient, or ``live_server(app)``
(uvicorn on a free 127.0.0.1 port in a thread, for real sockets: clients that disconnect, our client)."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from inference.conftest import media_dir, tiny_ckpt  # noqa: E402, F401 (fixtures shared with tests/inference)


@pytest.fixture(scope="session")
def pipe(tiny_ckpt):  # noqa: F811
    from molmo2.inference import Molmo2

    return Molmo2.from_pretrained(tiny_ckpt)


@contextlib.contextmanager
def live_server(app):
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
