"""The request handler of ``molmo2 serve``: one object on the app's state that turns a chat-completions
request into a ``Molmo2.chat`` call and the answer into a response (vLLM's ``OpenAIServingChat`` shape).

Why it is built this way:

* **One model call at a time, several requests per call.** The pipeline keeps a media cache and reuses KV
  caches in place, so it is not thread-safe; calls run on a single worker thread, in arrival order (its
  queue is the request queue). When the worker is free and several admitted requests wait, it takes up to
  ``max_batch`` that can share a call (greedy, text or images: ``_Call.batchable``) and answers them with
  one ``Molmo2.chat_batch`` (a left-padded batch: the same text as one by one, each answer sent as soon as
  its row ends); anything else (sampling, videos, a pipeline without ``chat_batch``) runs alone. This is
  static batching: a request arriving while a batch runs waits for the next call. ``max_concurrency``
  bounds how many requests may be admitted (running or queued): one more gets 503 at once with
  ``Retry-After`` instead of piling up memory and latency.
* **Timeouts that stop the work.** ``request_timeout`` covers queueing and generation; when it fires the
  client gets 504 and the job is cancelled: a queued job never starts, a running one stops at the next
  token (the pipeline's ``progress`` callback raises; in a batch the row's ``should_stop`` ends that row
  alone and its batch mates go on), so a timed-out request does not hold the model.
* **Media from three places.** ``data:`` URLs (base64); paths under ``media_dir`` (symlinks resolved first,
  so ``..`` and links cannot leave it: 403); ``http(s)`` URLs, fetched by ``molmo2.serve.fetch`` (at most
  ``max_body_bytes`` per request in all, as if sent in the body; ``fetch_timeout``; a few redirects; no
  private or loopback addresses unless ``allow_private_urls``; ``remote_media=False`` refuses them). A
  request's media are read, fetched and checked on a thread of their own, never on the event loop, and
  before the request queues for the model; fetched media then get the same checks as uploaded ones.
* **Streaming is token by token.** The pipeline's ``on_text`` hook hands each new piece of the answer from
  the worker thread to the event loop (``ChatStream``); the response starts once the first piece is there,
  so a request that fails before it (bad media, a prompt too long) still gets its 4xx. When the client goes
  away the response is closed, which cancels the job like a timeout does and frees its slot.
* **Every failure has a status and a message.** ``ServeError(status, message)`` for what we check here;
  ``Molmo2Error`` from the pipeline (bad text, corrupt media, prompt too long) is 400; anything else is
  logged with its traceback and answered 500 without it.

Conversation mapping: ``system`` / ``developer`` text is put before the first user turn's text (the
released chat template has no system role); consecutive messages of one role are joined (clients often
send the image and the question as two user messages); media parts may appear in user messages only and
all go to the model before the first turn, as the chat template places them. Several images make an image
set; a video goes alone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import io
import json
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pydantic import ValidationError

from molmo2.errors import Molmo2Error
from molmo2.inference import SamplingParams
from molmo2.serve.fetch import FetchError, fetch, shown
from molmo2.serve.protocol import (
    AssistantMessage,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    Choice,
    ChunkChoice,
    Delta,
    ErrorInfo,
    ErrorResponse,
    ImagePart,
    ModelCard,
    ModelList,
    TextPart,
    Usage,
    VideoPart,
    ViewerRequest,
    completion_id,
    now,
)

log = logging.getLogger("molmo2.serve")


class ServeError(Exception):
    """An error answered with ``status`` and ``message`` (OpenAI's error envelope)."""

    TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
             404: "not_found_error", 413: "request_too_large", 422: "invalid_request_error",
             503: "server_busy", 504: "timeout"}

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    @property
    def type(self) -> str:
        return self.TYPES.get(self.status, "server_error")


@dataclass
class ServeLimits:
    """What one request may ask for. ``media_dir``: the only directory file paths may point into (None:
    file paths are refused). ``max_frames``: the most video frames a request may sample (None: no cap
    beyond the pipeline's default, which requests cannot raise past this). ``max_video_seconds`` and
    ``max_pixels`` (per image or video frame) are read from the media's header: a 10-hour video or a
    decompression bomb is refused before anything is decoded. ``max_batch``: the most requests one model
    call answers together (1: no batching). Remote media: ``remote_media`` (fetch ``http(s)`` URLs at all),
    ``allow_private_urls`` (also from loopback / private addresses: off, so that a request cannot make the
    server probe its own network), ``fetch_timeout`` (seconds per URL, redirects included),
    ``max_redirects``; what one request fetches counts against ``max_body_bytes``."""

    max_body_bytes: int = 64 << 20
    max_media_bytes: int = 512 << 20  # a file under media_dir
    max_images: int = 16
    max_pixels: int = 50_000_000  # per image, checked from the header before decoding
    max_frames: int | None = None
    max_video_seconds: float = 3 * 3600.0  # checked from the container before any frame is decoded
    max_new_tokens: int = 4096
    max_concurrency: int = 4
    max_batch: int = 8
    request_timeout: float = 600.0
    media_dir: Path | None = None
    remote_media: bool = True
    allow_private_urls: bool = False
    fetch_timeout: float = 30.0
    max_redirects: int = 3


class _Cancelled(Exception):
    """Raised inside the worker thread (from the pipeline's progress callback) to stop a timed-out job."""


class Metrics:
    """Counters rendered in Prometheus' text format (no client library needed for a handful of numbers)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, int], int] = {}
        self.seconds: dict[str, float] = {}
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.rejected_busy = 0
        self.timeouts = 0
        self.in_flight = 0
        self.batches: dict[int, int] = {}  # model calls by how many requests they answered

    def count_batch(self, size: int) -> None:
        self.batches[size] = self.batches.get(size, 0) + 1

    def observe(self, path: str, status: int, seconds: float) -> None:
        self.requests[(path, status)] = self.requests.get((path, status), 0) + 1
        self.seconds[path] = self.seconds.get(path, 0.0) + seconds

    def render(self) -> str:
        lines = ["# HELP molmo2_requests_total HTTP requests by path and status.",
                 "# TYPE molmo2_requests_total counter"]
        lines += [f'molmo2_requests_total{{path="{p}",status="{s}"}} {n}' for (p, s), n in sorted(self.requests.items())]
        lines += ["# HELP molmo2_request_seconds_total Time spent answering requests, by path.",
                  "# TYPE molmo2_request_seconds_total counter"]
        lines += [f'molmo2_request_seconds_total{{path="{p}"}} {s:.6f}' for p, s in sorted(self.seconds.items())]
        lines += ["# HELP molmo2_batches_total Model calls by the number of requests they answered together.",
                  "# TYPE molmo2_batches_total counter"]
        lines += [f'molmo2_batches_total{{size="{k}"}} {n}' for k, n in sorted(self.batches.copy().items())]
        for name, kind, value, help_text in [
            ("prompt_tokens_total", "counter", self.prompt_tokens, "Prompt tokens processed."),
            ("completion_tokens_total", "counter", self.completion_tokens, "Tokens generated."),
            ("rejected_busy_total", "counter", self.rejected_busy, "Requests refused with 503 (queue full)."),
            ("timeouts_total", "counter", self.timeouts, "Requests answered 504 (request_timeout)."),
            ("requests_in_flight", "gauge", self.in_flight, "Chat requests admitted (running or queued)."),
        ]:
            lines += [f"# HELP molmo2_{name} {help_text}", f"# TYPE molmo2_{name} {kind}", f"molmo2_{name} {value}"]
        return "\n".join(lines) + "\n"


@dataclass
class _Call:
    """A request turned into pipeline arguments."""

    turns: list[dict]
    media: Any
    options: dict[str, Any]
    is_video: bool = False

    @property
    def batchable(self) -> bool:
        """Whether it may share a ``chat_batch`` call: greedy (whose batched answer is the one-by-one answer)
        and no video (long prompts that would make their batch mates wait)."""
        return self.options["sampling"].temperature == 0 and not self.is_video


@dataclass
class _Job:
    """A call waiting for (or on) the worker thread; ``future`` gets its ``Answer`` or its exception."""

    call: _Call
    on_text: Callable[[str], None] | None = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)


class _Budget:
    """The bytes a request may still fetch from remote URLs."""

    def __init__(self, left: int):
        self.left = left


class ChatHandler:
    """Serves ``pipe`` (a ``Molmo2``, or anything with its ``chat`` and ``progress``) as ``model_name``."""

    def __init__(self, pipe: Any, model_name: str, limits: ServeLimits | None = None):
        self.pipe = pipe
        self.model_name = model_name
        self.limits = limits or ServeLimits()
        if self.limits.media_dir is not None:
            self.limits.media_dir = Path(self.limits.media_dir).resolve()
        self.metrics = Metrics()
        self._batching = self.limits.max_batch > 1 and callable(getattr(pipe, "chat_batch", None))
        self._pending: deque[_Job] = deque()  # the request queue (guarded by _cond)
        self._cond = threading.Condition()
        self._closed = False
        self._worker: threading.Thread | None = None  # started by the first job
        self._current: list[_Job] = []  # the jobs on the worker thread (written there only)
        outer = pipe.progress

        def progress(stage: str, done: int, total: int) -> None:
            jobs = [job for job in self._current if not job.future.done()]  # (answered: nothing to stop)
            if jobs and all(job.cancelled.is_set() for job in jobs):  # in a batch, rows stop on their own
                raise _Cancelled
            if outer is not None:
                outer(stage, done, total)

        pipe.progress = progress

    def close(self) -> None:
        """Stop the worker after its current call; queued jobs are cancelled."""
        with self._cond:
            self._closed = True
            while self._pending:
                job = self._pending.popleft()
                job.cancelled.set()
                job.future.cancel()
            self._cond.notify_all()

    # ---------------------------------------------------------------------------------------- routes
    def models(self) -> ModelList:
        return ModelList(data=[ModelCard(id=self.model_name)])

    def parse(self, body: bytes) -> ChatCompletionRequest:
        """The request, or ``ServeError`` 400 (not JSON) / 422 (JSON that is not a valid request)."""
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ServeError(400, f"the request body is not valid JSON ({e})") from None
        try:
            return ChatCompletionRequest.model_validate(data)
        except ValidationError as e:
            raise ServeError(422, f"invalid chat completion request: {_problems(e)}") from None

    async def chat(self, req: ChatCompletionRequest) -> ChatCompletionResponse:
        """Answer ``req`` (admission, media, the model call under the timeout, the response)."""
        call = await self._admit(req)
        try:
            answer = await self._run(_Job(call))
        finally:
            self.metrics.in_flight -= 1
        self._count(answer)
        return ChatCompletionResponse(
            model=self.model_name,
            choices=[Choice(message=AssistantMessage(content=answer.text, grounding=answer.grounding.to_dict()),
                            finish_reason=answer.finish_reason)],
            usage=_usage(answer))

    async def stream(self, req: ChatCompletionRequest) -> ChatStream:
        """Start answering ``req`` token by token; returns once the first piece of text (or the whole answer)
        is there, so that errors of the request or its media still get their status (raised as
        ``ServeError``). The returned ``ChatStream`` yields the server-sent events; the app calls its
        ``close()`` when the response ends, however it ends, which stops the generation if it still runs."""
        call = await self._admit(req)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()  # text pieces, then None when the job has ended

        def on_text(piece: str) -> None:  # on the worker thread
            loop.call_soon_threadsafe(events.put_nowait, piece)

        job = _Job(call, on_text)
        stream = ChatStream(self, job, events, loop.time() + self.limits.request_timeout,
                            req.stream_options is not None and req.stream_options.include_usage)
        try:
            stream.future = asyncio.wrap_future(self._submit(job))
            stream.future.add_done_callback(lambda _: events.put_nowait(None))
            stream.first = await stream.next_piece()
            if stream.first is None:
                stream.answer = await stream.future  # failed before any text: raise with its status
        except BaseException as e:
            stream.close()
            if isinstance(e, Exception) and not isinstance(e, ServeError):
                raise self._error(e) from None
            raise
        return stream

    async def _admit(self, req: ChatCompletionRequest) -> _Call:
        """The model check, a slot in the queue (``metrics.in_flight``, released by the caller) and the call
        (its media read, fetched and checked on a thread, off the event loop)."""
        if req.model is not None and req.model != self.model_name:
            raise ServeError(404, f"model {req.model!r} is not served here; this server serves {self.model_name!r} "
                                  "(GET /v1/models)")
        if self.metrics.in_flight >= self.limits.max_concurrency:
            self.metrics.rejected_busy += 1
            raise ServeError(503, f"the server is busy ({self.limits.max_concurrency} requests in flight); "
                                  "retry later", headers={"Retry-After": "1"})
        self.metrics.in_flight += 1
        try:
            return await asyncio.to_thread(self._call, req)  # before queueing for the model
        except BaseException:
            self.metrics.in_flight -= 1
            raise

    def _count(self, answer: Any) -> None:
        self.metrics.prompt_tokens += answer.num_prompt_tokens
        self.metrics.completion_tokens += answer.num_new_tokens

    def page(self) -> str:
        """The web page (``molmo2.serve.page``)."""
        from molmo2.inference.pipeline import PROMPTS
        from molmo2.serve.page import page_html

        return page_html(self.model_name, PROMPTS, min(self.limits.max_new_tokens, 448))

    def render_viewer(self, body: bytes) -> str:
        """The ``molmo2.viz`` viewer page of a grounding on its media (``ViewerRequest``). Blocking (decodes
        and embeds the media): run it off the event loop."""
        import tempfile

        from molmo2.errors import MediaError
        from molmo2.grounding import GroundingResult
        from molmo2.viz import write_viewer

        try:
            req = ViewerRequest.model_validate(json.loads(body))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ServeError(400, f"the request body is not valid JSON ({e})") from None
        except ValidationError as e:
            raise ServeError(422, f"invalid viewer request: {_problems(e)}") from None
        if req.kind == "video" and len(req.media) != 1:
            raise ServeError(400, "a viewer shows one video; send one media item with kind 'video'")
        if len(req.media) > self.limits.max_images:
            raise ServeError(413, f"{len(req.media)} images in one request; at most {self.limits.max_images}")
        budget = _Budget(self.limits.max_body_bytes)
        media = [self._media(url, req.kind, 0, budget) for url in req.media]
        try:
            result = GroundingResult.from_dict(req.grounding)
        except (KeyError, TypeError, ValueError) as e:
            raise ServeError(422, f"the grounding is not a GroundingResult.to_dict() ({type(e).__name__}: {e}); "
                                  "send choices[0].message.grounding of an answer as it is") from None
        with tempfile.TemporaryDirectory(prefix="molmo2-viewer-") as tmp:
            if req.kind == "video":
                source = media[0]
                if isinstance(source, bytes):
                    path = Path(tmp) / f"video{_video_suffix(req.media[0])}"
                    path.write_bytes(source)
                    source = path
            else:
                source = media if len(media) > 1 else media[0]
            try:
                out = write_viewer(Path(tmp) / "viewer.html", source, result, embed=True,
                                   title=f"molmo2: {self.model_name}")
            except MediaError as e:
                raise ServeError(400, str(e)) from None
            return out.read_text(encoding="utf-8")

    # -------------------------------------------------------------------------------- model calls
    async def _run(self, job: _Job) -> Any:
        future = asyncio.wrap_future(self._submit(job))
        try:
            return await asyncio.wait_for(future, self.limits.request_timeout)
        except asyncio.TimeoutError:
            raise self._timeout() from None
        except Exception as e:
            raise self._error(e) from None
        finally:
            job.cancelled.set()  # a job that never started (timed out in the queue) must not run later

    def _timeout(self) -> ServeError:
        self.metrics.timeouts += 1
        return ServeError(504, f"the request took longer than {self.limits.request_timeout:g} s and was "
                               "cancelled; ask for fewer tokens or frames, or retry later")

    def _error(self, e: Exception) -> ServeError:
        """The ``ServeError`` answering an exception of a model call."""
        if isinstance(e, ServeError):
            return e
        if isinstance(e, _Cancelled):
            return self._timeout()
        if isinstance(e, Molmo2Error):
            return ServeError(400, str(e))
        if type(e).__name__ == "DecompressionBombError":  # PIL's guard against huge images
            return ServeError(413, f"an image is too large to decode ({e})")
        log.error("molmo2 serve: the model call failed", exc_info=e)
        return ServeError(500, f"internal error ({type(e).__name__}); see the server log")

    def _submit(self, job: _Job) -> concurrent.futures.Future:
        """Queue ``job`` for the worker thread (started on first use); its future is the answer."""
        with self._cond:
            if self._closed:
                raise ServeError(503, "the server is shutting down", headers={"Retry-After": "1"})
            self._pending.append(job)
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="molmo2-serve", daemon=True)
                self._worker.start()
            self._cond.notify()
        return job.future

    def _work(self) -> None:
        """The worker thread: the next job, with the batchable jobs queued behind it, until closed."""
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                jobs = [self._pending.popleft()]
                if self._batching and jobs[0].call.batchable:
                    skipped: list[_Job] = []
                    while self._pending and len(jobs) < self.limits.max_batch:
                        job = self._pending.popleft()
                        (jobs if job.call.batchable else skipped).append(job)
                    self._pending.extendleft(reversed(skipped))  # they stay first in line, in order
            live = []
            for job in jobs:
                if not job.future.set_running_or_notify_cancel():
                    continue  # its request timed out while queued
                if job.cancelled.is_set():
                    job.future.set_exception(_Cancelled())
                else:
                    live.append(job)
            if live:
                self._execute(live)

    def _execute(self, jobs: list[_Job]) -> None:
        """One model call answering ``jobs`` (one: ``chat``; several: ``chat_batch``); sets their futures."""
        from molmo2.inference import ChatRequest

        def settle(job: _Job, result: Any) -> None:
            if job.future.done():
                return
            if job.cancelled.is_set():
                job.future.set_exception(_Cancelled())
            elif isinstance(result, BaseException):
                job.future.set_exception(result if isinstance(result, Exception) else _Cancelled())
            else:
                job.future.set_result(result)

        self.metrics.count_batch(len(jobs))
        self._current = jobs
        try:
            if len(jobs) == 1:
                call, on_text = jobs[0].call, jobs[0].on_text
                extra = {} if on_text is None else {"on_text": on_text}
                settle(jobs[0], self.pipe.chat(call.turns, media=call.media, **call.options, **extra))
            else:
                requests = [ChatRequest(job.call.turns, job.call.media,
                                        {**job.call.options, "on_text": job.on_text,
                                         "should_stop": job.cancelled.is_set}) for job in jobs]
                self.pipe.chat_batch(requests, on_answer=lambda i, result: settle(jobs[i], result))
        except BaseException as e:  # the call failed: every job it has not answered gets the error
            for job in jobs:
                settle(job, e)
            if not isinstance(e, Exception):
                raise
        finally:
            self._current = []

    # ------------------------------------------------------------------------------ request -> call
    def _call(self, req: ChatCompletionRequest) -> _Call:
        limits = self.limits
        system: list[str] = []
        turns: list[dict] = []
        images: list[Any] = []
        videos: list[Any] = []
        budget = _Budget(limits.max_body_bytes)
        for k, msg in enumerate(req.messages):
            parts = [TextPart(type="text", text=msg.content)] if isinstance(msg.content, str) else msg.content
            texts = [p.text for p in parts if isinstance(p, TextPart)]
            media = [p for p in parts if not isinstance(p, TextPart)]
            if media and msg.role != "user":
                raise ServeError(400, f"message {k} ({msg.role}) has media; images and videos go in user messages")
            for part in media:
                if isinstance(part, ImagePart):
                    images.append(self._media(part.image_url.url, "image", k, budget))
                else:
                    assert isinstance(part, VideoPart)
                    videos.append(self._media(part.video_url.url, "video", k, budget))
            text = "\n".join(texts)
            if msg.role in ("system", "developer"):
                if turns:
                    raise ServeError(400, f"message {k}: system messages must come before the conversation")
                system.append(text)
            elif turns and turns[-1]["role"] == msg.role:
                turns[-1]["content"] = "\n".join(t for t in (turns[-1]["content"], text) if t)
            else:
                turns.append({"role": msg.role, "content": text})
        if not turns or turns[0]["role"] != "user":
            raise ServeError(400, "the conversation must start with a user message (after any system messages)")
        if turns[-1]["role"] != "user":
            raise ServeError(400, "the last message must be a user message (the model answers it)")
        if system:
            turns[0]["content"] = "\n\n".join([*system, turns[0]["content"]])
        if len(images) > limits.max_images:
            raise ServeError(413, f"{len(images)} images in one request; at most {limits.max_images}")
        if videos and (images or len(videos) > 1):
            raise ServeError(400, "a request holds images or one video, not both and not several videos")
        media: Any = videos[0] if videos else (images[0] if len(images) == 1 else images or None)

        options: dict[str, Any] = {}
        max_new = req.max_completion_tokens or req.max_tokens
        if max_new is not None and max_new > limits.max_new_tokens:
            raise ServeError(400, f"max_tokens={max_new} is above this server's limit of {limits.max_new_tokens}")
        options["max_new_tokens"] = max_new or min(limits.max_new_tokens, 448)
        options["sampling"] = SamplingParams(temperature=req.temperature, top_p=req.top_p, top_k=req.top_k,
                                             seed=req.seed)
        if videos:
            if req.max_frames is not None:
                if limits.max_frames is not None and req.max_frames > limits.max_frames:
                    raise ServeError(400, f"max_frames={req.max_frames} is above this server's limit of "
                                          f"{limits.max_frames}")
                options["max_frames"] = req.max_frames
            if req.max_fps is not None:
                options["max_fps"] = req.max_fps
            if req.clip is not None:
                options["clip"] = (float(req.clip[0]), float(req.clip[1]))  # checked by the video loader
        elif req.clip is not None:
            raise ServeError(400, "clip applies to a video; this request has none")
        return _Call(turns, media, options, is_video=bool(videos))

    def _media(self, url: str, kind: str, k: int, budget: _Budget) -> bytes | Path:
        """The bytes of a ``data:`` URL or of a fetched ``http(s)`` URL, or a checked path under ``media_dir``.
        Blocking (a fetch may take ``fetch_timeout``): called on a worker thread."""
        limits = self.limits
        if url.startswith("data:"):
            header, sep, payload = url.partition(",")
            if not sep or not header.endswith(";base64"):
                raise ServeError(400, f"message {k}: a data URL must be data:<mime>;base64,<data>")
            try:
                raw = base64.b64decode("".join(payload.split()), validate=True)
            except (binascii.Error, ValueError):
                raise ServeError(400, f"message {k}: the {kind} data URL is not valid base64") from None
            if not raw:
                raise ServeError(400, f"message {k}: the {kind} data URL is empty")
            if kind == "image":
                self._check_image(io.BytesIO(raw), k)
            else:
                self._check_video(raw, k)
            return raw
        scheme = urlparse(url).scheme.lower()
        if scheme in ("http", "https"):
            return self._fetch(url, kind, k, budget)
        if scheme == "file":
            path = Path(unquote(urlparse(url).path))
        elif scheme and len(scheme) > 1:  # (one letter: a Windows drive)
            raise ServeError(400, f"message {k}: unsupported URL scheme {scheme!r}; use data:, http(s) or a file "
                                  "path")
        else:
            path = Path(url)
        if limits.media_dir is None:
            raise ServeError(403, "file paths are disabled on this server (start it with --media-dir DIR); "
                                  "send media as data: URLs")
        real = (limits.media_dir / path.expanduser()).resolve()
        if not real.is_relative_to(limits.media_dir):
            raise ServeError(403, f"message {k}: {url!r} is outside the server's media directory")
        if not real.is_file():
            raise ServeError(400, f"message {k}: no such {kind} file under the media directory: {url!r}")
        size = real.stat().st_size
        if size > limits.max_media_bytes:
            raise ServeError(413, f"message {k}: the {kind} file is {size} bytes; at most {limits.max_media_bytes}")
        if kind == "image":
            self._check_image(real, k)
        else:
            self._check_video(real, k)
        return real

    def _fetch(self, url: str, kind: str, k: int, budget: _Budget) -> bytes:
        """The bytes of an ``http(s)`` URL (``molmo2.serve.fetch``), checked like a data URL's."""
        limits = self.limits
        if not limits.remote_media:
            raise ServeError(400, f"message {k}: this server does not fetch remote URLs (--no-remote-media); send "
                                  f"the {kind} as a data: URL (base64) or as a path under its --media-dir")
        try:
            raw = fetch(url, max_bytes=budget.left, timeout=limits.fetch_timeout, max_redirects=limits.max_redirects,
                        allow_private=limits.allow_private_urls)
        except FetchError as e:
            raise ServeError(e.status, f"message {k}: {e.message}") from None
        if not raw:
            raise ServeError(400, f"message {k}: {shown(url)} is empty (0 bytes)")
        budget.left -= len(raw)
        if kind == "image":
            self._check_image(io.BytesIO(raw), k)
        else:
            self._check_video(raw, k)
        return raw

    def _check_video(self, source: bytes | Path, k: int) -> None:
        """A ``video_url`` must be a readable video of at most ``max_video_seconds`` and ``max_pixels`` per
        frame: its container header is read (demuxed at most, for containers without a duration), not
        decoded."""
        from molmo2.processing.video import probe_video

        try:
            meta = probe_video(source, upright=False)  # the coded size: the same number of pixels
        except Molmo2Error as e:
            raise ServeError(400, f"message {k}: {e}") from None
        limit = self.limits.max_video_seconds
        if limit is not None and meta.duration > limit:
            raise ServeError(413, f"message {k}: the video is {meta.duration:.0f} s long; this server takes videos "
                                  f"of at most {limit:.0f} s: cut it (e.g. ffmpeg -ss START -t SECONDS) or send "
                                  "a part of it")
        if meta.width * meta.height > self.limits.max_pixels:
            raise ServeError(413, f"message {k}: the video frames are {meta.width}x{meta.height} pixels; at most "
                                  f"{self.limits.max_pixels}: scale the video down")

    def _check_image(self, source: Any, k: int) -> None:
        """An ``image_url`` must hold an image (not a video the pipeline would then guess at), and not a huge
        one: its header is read, nothing is decoded yet."""
        from PIL import Image

        try:
            with Image.open(source) as im:
                w, h = im.size
        except Image.DecompressionBombError as e:
            raise ServeError(413, f"message {k}: the image is too large to decode ({e})") from None
        except Exception:
            raise ServeError(400, f"message {k}: could not read the image_url as an image; send PNG, JPEG, "
                                  "WebP, GIF, BMP or TIFF (videos go in video_url parts)") from None
        if w * h > self.limits.max_pixels:
            raise ServeError(413, f"message {k}: the image is {w}x{h} pixels; at most {self.limits.max_pixels}")


class ChatStream:
    """One streamed answer as server-sent events (OpenAI's ``chat.completion.chunk``): the role, one chunk
    per piece of text as it is generated, the finish reason with the parsed grounding (``delta.grounding``),
    the usage when asked (``stream_options.include_usage``), ``[DONE]``. A failure after the first event (a
    timeout, a model error) is sent as an ``{"error": ...}`` event before ``[DONE]``: the status is already 200.

    ``close()`` is idempotent: it cancels the job (a running generation stops at its next token, a queued
    one never starts) and releases the request's slot. Built by ``ChatHandler.stream``."""

    def __init__(self, handler: ChatHandler, job: _Job, events: asyncio.Queue, deadline: float, include_usage: bool):
        self.handler, self.job, self.events, self.deadline = handler, job, events, deadline
        self.include_usage = include_usage
        self.future: asyncio.Future | None = None
        self.first: str | None = None
        self.answer: Any = None
        self.id, self.created = completion_id(), now()
        self._closed = False

    async def next_piece(self) -> str | None:
        """The next piece of text, or None when the job has ended; ``ServeError`` 504 at the deadline."""
        remaining = self.deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(self.events.get(), max(remaining, 0.0))
        except asyncio.TimeoutError:
            self.job.cancelled.set()
            raise self.handler._timeout() from None

    def _event(self, delta: Delta | None, finish: str | None = None, usage: Usage | None = None) -> str:
        chunk = ChatCompletionChunk(id=self.id, created=self.created, model=self.handler.model_name,
                                    choices=[] if delta is None else [ChunkChoice(delta=delta, finish_reason=finish)],
                                    usage=usage)
        return f"data: {chunk.model_dump_json(exclude_none=True)}\n\n"

    async def __aiter__(self) -> AsyncIterator[str]:
        try:
            yield self._event(Delta(role="assistant", content=""))
            sent, piece = "", self.first
            while piece is not None:
                sent += piece
                yield self._event(Delta(content=piece))
                piece = await self.next_piece()
            try:
                answer = self.answer if self.answer is not None else await self.future
            except Exception as e:
                raise self.handler._error(e) from None
            self.handler._count(answer)
            if answer.text != sent and answer.text.startswith(sent):  # a pipe that does not stream
                yield self._event(Delta(content=answer.text[len(sent):]))
            yield self._event(Delta(grounding=answer.grounding.to_dict()), finish=answer.finish_reason)
            if self.include_usage:
                yield self._event(None, usage=_usage(answer))
        except ServeError as e:
            error = ErrorResponse(error=ErrorInfo(message=e.message, type=e.type, code=e.status))
            yield f"data: {error.model_dump_json()}\n\n"
        finally:
            self.close()
        yield "data: [DONE]\n\n"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.job.cancelled.set()
        if self.future is not None:  # nobody may await it any more: retrieve its exception (no asyncio warning)
            self.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.handler.metrics.in_flight -= 1


def _problems(e: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(x) for x in err['loc']) or 'body'}: {err['msg']}" for err in e.errors()[:10])


def _video_suffix(url: str) -> str:
    """A file suffix for a video data URL's MIME type (what the viewer's player is told)."""
    mime = url[len("data:"):].split(";", 1)[0].lower() if url.startswith("data:") else ""
    return {"video/webm": ".webm", "video/quicktime": ".mov", "video/x-matroska": ".mkv",
            "video/ogg": ".ogv"}.get(mime, ".mp4")


def _usage(answer: Any) -> Usage:
    return Usage(prompt_tokens=answer.num_prompt_tokens, completion_tokens=answer.num_new_tokens,
                 total_tokens=answer.num_prompt_tokens + answer.num_new_tokens)
