"""The HTTP app of ``molmo2 serve``: thin FastAPI routes over the ``ChatHandler`` on ``app.state``.

    molmo2 serve --model allenai/Molmo2-4B --port 8000 --api-key secret --media-dir ~/pictures
    curl localhost:8000/v1/chat/completions -H 'Authorization: Bearer secret' -d '{"messages": [{"role":
      "user", "content": [{"type": "image_url", "image_url": {"url": "dogs.jpg"}},
                          {"type": "text", "text": "Point to the dogs."}]}]}'

Routes: ``POST /v1/chat/completions`` (``"stream": true`` for server-sent events, one per piece of text as it
is generated, ending ``data: [DONE]``; a client that goes away stops the generation),
``GET /v1/models``, ``GET /health``, ``GET /metrics`` (Prometheus text), ``GET /`` (a web page: pick an image or
video, ask, see the answer drawn with a timeline; ``molmo2.serve.page``) and ``POST /viewer/render`` (the
page's drawing: ``molmo2.viz``'s viewer for a grounding on its media). With an API key the ``/v1`` routes
and ``/viewer/render`` need ``Authorization: Bearer KEY`` (401 otherwise); ``/``, ``/health`` and ``/metrics``
stay open (the page holds no data; probes).

The routes only read, authenticate and dispatch (vLLM's ``entrypoints/openai/api_server.py`` shape): the
body is read here with a byte cap (413 before JSON parsing, whatever the Content-Length claims), and
every error, including a bug, leaves as OpenAI's ``{"error": {...}}`` with a status, never a traceback.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from molmo2.serve.handler import ChatHandler, ChatStream, ServeError, ServeLimits
from molmo2.serve.protocol import ErrorInfo, ErrorResponse

log = logging.getLogger("molmo2.serve")


def error_response(status: int, message: str, type_: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorResponse(error=ErrorInfo(message=message, type=type_, code=status))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _handler(request: Request) -> ChatHandler:
    return request.app.state.handler


def _authorized(request: Request) -> None:
    key: str | None = request.app.state.api_key
    if key is None:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {key}".encode()):
        raise ServeError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'",
                         headers={"WWW-Authenticate": "Bearer"})


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ServeError(400, "invalid Content-Length header")
        if int(declared) > limit:
            raise ServeError(413, f"the request body is {declared} bytes; this server accepts at most {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ServeError(413, f"the request body is over this server's limit of {limit} bytes")
    return bytes(body)


class _SSEResponse(StreamingResponse):
    """Server-sent events of a ``ChatStream``, closed when the response ends however it ends: finished,
    the client gone (Starlette cancels the body), or never started."""

    def __init__(self, stream: ChatStream):
        super().__init__(stream, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.stream = stream

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.stream.close()


def build_app(handler: ChatHandler, api_key: str | None = None) -> FastAPI:
    """The app serving ``handler`` (``api_key``: required as a bearer token on ``/v1`` routes)."""
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        handler.close()

    app = FastAPI(title="molmo2", summary="Molmo2 with an OpenAI-compatible chat completions API",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.handler = handler
    app.state.api_key = api_key

    @app.middleware("http")
    async def metrics_and_last_resort(request: Request, call_next) -> Response:
        t0 = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:  # a bug: log the traceback, answer without it
            log.exception("molmo2 serve: unhandled error on %s", request.url.path)
            response = error_response(500, "internal server error; see the server log", "server_error")
        route = request.scope.get("route")
        handler.metrics.observe(getattr(route, "path", "other"), response.status_code, time.perf_counter() - t0)
        return response

    @app.exception_handler(ServeError)
    async def serve_error(request: Request, e: ServeError) -> JSONResponse:
        return error_response(e.status, e.message, e.type, e.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:  # unknown route, wrong method
        return error_response(e.status_code, str(e.detail), "invalid_request_error", getattr(e, "headers", None))

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(_handler(request).page())

    @app.post("/viewer/render", response_class=HTMLResponse, dependencies=[Depends(_authorized)])
    async def render_viewer(request: Request) -> HTMLResponse:
        handler = _handler(request)
        body = await _read_body(request, handler.limits.max_body_bytes)
        return HTMLResponse(await asyncio.to_thread(handler.render_viewer, body))

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics(request: Request) -> PlainTextResponse:
        return PlainTextResponse(_handler(request).metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", dependencies=[Depends(_authorized)])
    async def models(request: Request):
        return _handler(request).models()

    @app.post("/v1/chat/completions", dependencies=[Depends(_authorized)])
    async def chat_completions(request: Request):
        handler = _handler(request)
        req = handler.parse(await _read_body(request, handler.limits.max_body_bytes))
        if req.stream:
            return _SSEResponse(await handler.stream(req))
        return await handler.chat(req)

    return app


def serve(
    model: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    served_model_name: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    limits: ServeLimits | None = None,
) -> None:
    """Load ``model`` and serve it with uvicorn until interrupted."""
    import uvicorn

    from molmo2.inference import Molmo2

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    limits = limits or ServeLimits()
    if api_key is None and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s without --api-key: anyone who can reach this port can use the model", host)
    pipe = Molmo2.from_pretrained(model, device=device, dtype=dtype, max_frames=limits.max_frames)
    if limits.max_frames is None:  # requests may lower the model's frame budget, not raise it
        limits.max_frames = pipe.processor.video.max_frames
    handler = ChatHandler(pipe, served_model_name or str(model), limits)
    uvicorn.run(build_app(handler, api_key), host=host, port=port, log_level="info")
