"""``molmo2 serve``: an OpenAI-compatible chat-completions server over the ``Molmo2`` pipeline.

``protocol.py`` (pydantic wire format), ``handler.py`` (requests -> pipeline calls: media, limits,
queueing, timeouts), ``app.py`` (thin FastAPI routes and ``serve()``). Needs the ``serve`` extra
(``pip install 'molmo2[serve]'``).
"""

from molmo2.serve.app import build_app, serve
from molmo2.serve.handler import ChatHandler, ServeError, ServeLimits

__all__ = ["ChatHandler", "ServeError", "ServeLimits", "build_app", "serve"]
