"""``molmo2 serve``: an OpenAI-compatible chat-completions server over the ``Molmo2`` pipeline, and a client.

``protocol.py`` (pydantic wire format), ``handler.py`` (requests -> pipeline calls: media, limits,
queueing and batching, timeouts, streaming), ``fetch.py`` (http(s) media URLs: size, time and address
limits), ``app.py`` (thin FastAPI routes and ``serve()``), ``client.py``
(``RemoteModel``: the pipeline's verbs against any OpenAI-compatible server, typed answers back),
``batch.py`` (many videos through a server, resumable JSONL; scale-out with vLLM: docs/vllm.md).
The server needs the ``serve`` extra (``pip install 'molmo2[serve]'``); the client needs only ``httpx``.
Names are imported lazily, so that ``from molmo2.serve.client import RemoteModel`` does not import FastAPI.
"""

__all__ = ["ChatHandler", "RemoteError", "RemoteModel", "ServeError", "ServeLimits", "build_app", "serve"]

_WHERE = {"build_app": "app", "serve": "app", "ChatHandler": "handler", "ServeError": "handler",
          "ServeLimits": "handler", "RemoteModel": "client", "RemoteError": "client"}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"molmo2.serve.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'molmo2.serve' has no attribute {name!r}")
