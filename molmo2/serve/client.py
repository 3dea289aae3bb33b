"""A client for OpenAI-compatible chat-completions servers (``molmo2 serve``, or vLLM serving a released
Molmo2) that returns the pipeline's typed answers.

    from molmo2.serve.client import RemoteModel
    with RemoteModel("http://127.0.0.1:8000", api_key="secret") as m:
        m.point("dogs.jpg", "dogs").points            # [Point(x, y, ...)] in pixels, like Molmo2.point
        m.track("match.mp4", "the ball").tracks
        m.ask("talk.mp4", "What is said?", on_text=print)   # streamed: deltas as they are generated

``RemoteModel(url, model=None, api_key=None)`` has the verbs of ``molmo2.Molmo2`` (``ask``, ``point``,
``count``, ``track``, ``caption``, ``chat``) with the same prompts and per-task answer budgets, and returns
the same ``Answer`` / ``PointAnswer`` / ``CountAnswer`` / ``TrackAnswer``. Why it is built this way:

* **The grounding is parsed here, from the answer text and the media's sizes** (read locally: image
  headers, the video's frame size from its container), with ``molmo2.grounding.parse``, as the pipeline
  does. So any OpenAI-compatible server works, including ones that know nothing of grounding (vLLM); our
  server's own ``message.grounding`` is the same parse of the same text and is not needed.
* **Media travel as base64 ``data:`` URLs** (``image_url`` / ``video_url`` parts), so the server needs no
  access to the client's files. Paths, bytes, PIL images and ``[H, W, 3]`` arrays work; a list is an image
  set; a video is a file path or its bytes. An ``http(s)://`` URL is passed through as it is, for the
  server to fetch (a video when its path ends in a video extension, else an image); its size is then not
  known here, so the grounding is parsed with the sizes the server reports (``molmo2 serve``'s
  ``message.grounding``); a server that reports none (vLLM) gives the text with no pixel grounding.
* **What runs on the server's side stays there**: video sampling is the server's (``max_frames`` and
  ``max_fps`` are sent as request fields, which ``molmo2 serve`` honours and vLLM ignores), so
  ``MediaInfo.timestamps`` is None. ``clip=(start, end)`` is sent as the request field ``clip``, which
  ``molmo2 serve`` honours (the answer's times are put back on the video's timeline, as the pipeline
  does); a server that answers without ``molmo2 serve``'s ``grounding`` extension (vLLM) would have seen
  the whole video, so that answer is refused with ``RemoteError``. ``windows``, ``slowfast`` and
  ``subtitles`` need the local pipeline and are refused with a message saying so.
* **Busy servers are retried**: a 503 (queue full) is retried ``retries`` times after its
  ``Retry-After``; every other error raises ``RemoteError`` with the server's message and status.

``model=None`` asks the server (``GET /v1/models``) and uses the first model it lists. ``url`` may end in
``/v1`` or not. Needs ``httpx`` (in the ``serve`` extra).
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from molmo2.errors import MediaError, Molmo2Error
from molmo2.grounding import GroundingResult, parse
from molmo2.inference.generate import SamplingParams
from molmo2.inference.pipeline import (
    MAX_NEW_TOKENS,
    MAX_QUERY_CHARS,
    PROMPTS,
    Answer,
    CountAnswer,
    MediaInfo,
    PointAnswer,
    TrackAnswer,
)

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
         ".gif": "image/gif", ".bmp": "image/bmp", ".tif": "image/tiff", ".tiff": "image/tiff",
         ".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime", ".webm": "video/webm",
         ".mkv": "video/x-matroska", ".avi": "video/x-msvideo", ".ogv": "video/ogg"}
_LOCAL_ONLY = ("windows", "slowfast", "subtitles")


class RemoteError(Molmo2Error):
    """The server answered with an error (``status``: its HTTP status; 0 when it could not be reached)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class RemoteModel:
    """The ``Molmo2`` verbs over an OpenAI-compatible server at ``url`` (see the module docstring).

    ``timeout``: seconds per request; ``retries``: how often a 503 (busy) is retried; ``transport``: an
    ``httpx`` transport (tests pass ``httpx.ASGITransport(app)`` or a ``MockTransport``)."""

    def __init__(self, url: str, model: str | None = None, api_key: str | None = None, *,
                 timeout: float = 600.0, retries: int = 3, transport: Any = None):
        import httpx

        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise Molmo2Error(f"the endpoint must be an http(s) URL such as http://127.0.0.1:8000, got {url!r}")
        self.base = url if url.endswith("/v1") else url + "/v1"
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(headers=headers, timeout=timeout, transport=transport)
        self._model = model

    def __enter__(self) -> RemoteModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def model(self) -> str:
        """The model id sent with each request (asked from the server once when not given)."""
        if self._model is None:
            ids = self.models()
            if not ids:
                raise RemoteError(f"{self.base}/models lists no model; pass model= explicitly")
            self._model = ids[0]
        return self._model

    def models(self) -> list[str]:
        """The ids the server lists at ``GET /v1/models``."""
        body = self._request("GET", "/models")
        return [m["id"] for m in body.get("data", [])]

    # ------------------------------------------------------------------------------------ verbs
    def ask(self, media: Any, question: str, **options: Any) -> Answer:
        """Answer a free-form ``question`` about ``media`` (options: see ``chat``)."""
        return self._answer(Answer, "ask", media, [{"role": "user", "content": _text(question, "question")}],
                            **options)

    def point(self, media: Any, query: str, **options: Any) -> PointAnswer:
        """Point to every ``query``: ``.points`` in pixels."""
        prompt = PROMPTS["point"].format(query=_query(query))
        return self._answer(PointAnswer, "point", media, [{"role": "user", "content": prompt}], **options)

    def count(self, media: Any, query: str, **options: Any) -> CountAnswer:
        """Count the ``query`` objects: ``.count``, with ``.points`` as evidence."""
        prompt = PROMPTS["count"].format(query=_query(query))
        return self._answer(CountAnswer, "count", media, [{"role": "user", "content": prompt}], **options)

    def track(self, video: Any, query: str, **options: Any) -> TrackAnswer:
        """Track the ``query`` objects through a video: ``.tracks``."""
        if _kind(video) != "video":
            raise MediaError("track needs a video (a video file or its bytes); use point() for images")
        prompt = PROMPTS["track"].format(query=_query(query))
        return self._answer(TrackAnswer, "track", video, [{"role": "user", "content": prompt}], **options)

    def caption(self, media: Any, **options: Any) -> Answer:
        """Describe ``media``."""
        prompt = PROMPTS["caption_video" if _kind(media) == "video" else "caption_image"]
        return self._answer(Answer, "caption", media, [{"role": "user", "content": prompt}], **options)

    def chat(self, messages: Sequence[dict], media: Any = None, **options: Any) -> Answer:
        """Continue a conversation about ``media`` (``messages``: user / assistant turns, ending with user).

        Options: ``max_new_tokens``, ``sampling`` (a ``SamplingParams``), ``max_frames``, ``max_fps``,
        ``clip=(start, end)`` (video sampling, done by the server), ``on_text`` (called with each piece of the answer as the
        server streams it; their concatenation is ``Answer.text``)."""
        if isinstance(messages, (str, bytes)) or not messages:
            raise Molmo2Error("messages must be a non-empty list of {'role': 'user'|'assistant', 'content': str}")
        turns = [{"role": m["role"], "content": _text(m.get("content"), f"content of message {k}")}
                 for k, m in enumerate(messages)]
        return self._answer(Answer, "ask", media, turns, **options)

    # -------------------------------------------------------------------------------------- core
    def _answer(self, result_cls: type, verb: str, media: Any, turns: list[dict], *,
                max_new_tokens: int | None = None, sampling: SamplingParams | None = None,
                max_frames: int | None = None, max_fps: float | None = None,
                clip: tuple[float, float] | None = None,
                on_text: Callable[[str], None] | None = None, **options: Any) -> Answer:
        local = [k for k in options if k in _LOCAL_ONLY]
        if local:
            raise Molmo2Error(f"{', '.join(local)} need(s) the local pipeline (molmo2.Molmo2); a remote server "
                              "samples the video itself (send max_frames / max_fps / clip instead)")
        if options:
            raise TypeError(f"unexpected option(s) {sorted(options)}")
        t0 = time.perf_counter()
        kind = None if media is None else _kind(media)
        is_video = kind == "video"
        if (max_frames is not None or max_fps is not None or clip is not None) and not is_video:
            raise MediaError("max_frames, max_fps and clip apply to videos; this media is not one")
        if clip is not None:
            try:
                clip = (float(clip[0]), float(clip[1]))
            except (TypeError, ValueError, IndexError):
                raise MediaError(f"clip must be (start, end) in seconds, got {clip!r}") from None
        if max_new_tokens is None:  # as the pipeline: the sampling's budget, else the task's default
            max_new_tokens = sampling.max_new_tokens if sampling is not None else MAX_NEW_TOKENS.get(
                (verb, is_video), 448)
        sampling = sampling or SamplingParams()
        items = [] if media is None else (list(media) if kind == "images" else [media])
        parts: list[dict] = []
        sizes: list[Any] = []  # (width, height), None for a URL (read by the server)
        for item in items:
            url, size = (item, None) if _is_url(item) else _encode(item, "video" if is_video else "image")
            part_type = "video_url" if is_video else "image_url"
            parts.append({"type": part_type, part_type: {"url": url}})
            sizes.append(size)
        messages = [{"role": turns[0]["role"], "content": [*parts, {"type": "text", "text": turns[0]["content"]}]}]
        messages += [dict(t) for t in turns[1:]]
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_new_tokens,
                                "temperature": sampling.temperature, "top_p": sampling.top_p}
        if sampling.top_k:
            body["top_k"] = sampling.top_k
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if max_frames is not None:
            body["max_frames"] = max_frames
        if max_fps is not None:
            body["max_fps"] = max_fps
        if clip is not None:
            body["clip"] = list(clip)
        if on_text is None:
            response = self._request("POST", "/chat/completions", body)
            choice = response["choices"][0]
            text, finish = (choice["message"].get("content") or ""), choice.get("finish_reason") or "stop"
            usage = response.get("usage") or {}
            server_grounding = choice["message"].get("grounding")
        else:
            text, finish, usage, server_grounding = self._stream(body, on_text)
        text = text.strip()
        if clip is not None and server_grounding is None:
            raise RemoteError(f"{self.base} answered without molmo2 serve's grounding extension, so it did not "
                              "honour clip (vLLM ignores the field and answers about the whole video); ask about "
                              "clips with molmo2 serve or the local model, or cut the clip into its own file")
        if None in sizes:  # media passed by URL: the sizes the server read, if it says
            reported = (server_grounding or {}).get("sizes") or []
            sizes = [tuple(s) for s in reported] if len(reported) == len(sizes) else []
        if kind is None or not sizes:
            grounding = GroundingResult(text=text, sizes=[])
        elif is_video:
            grounding = parse(text, sizes[0], video=True)
            if clip is not None and clip[0]:  # clip times start at 0: back on the video's timeline, as the pipeline
                grounding = grounding.shift_times(clip[0])
        else:
            grounding = parse(text, sizes if kind == "images" else sizes[0], video=False)
        return result_cls(text=text, grounding=grounding, media=MediaInfo(kind or "none", sizes), finish_reason=finish,
                          prompt=turns[-1]["content"], timings={"total": time.perf_counter() - t0},
                          num_prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          num_new_tokens=int(usage.get("completion_tokens") or 0))

    def _stream(self, body: dict, on_text: Callable[[str], None]) -> tuple[str, str, dict, dict | None]:
        """POST with ``stream: true``; call ``on_text`` per content delta; (text, finish reason, usage, the
        server's grounding if it sends one)."""
        body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        pieces: list[str] = []
        finish, usage, grounding = "stop", {}, None
        with self._send("POST", "/chat/completions", body) as r:
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[len("data:"):].strip()
                if data == "[DONE]":
                    break
                event = json.loads(data)
                if "error" in event:
                    err = event["error"]
                    raise RemoteError(f"{self.base} stopped the answer: {err.get('message')}", err.get("code") or 0)
                for choice in event.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        pieces.append(piece)
                        on_text(piece)
                    finish = choice.get("finish_reason") or finish
                    grounding = (choice.get("delta") or {}).get("grounding") or grounding
                usage = event.get("usage") or usage
        return "".join(pieces), finish, usage, grounding

    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        with self._send(method, path, body) as r:
            r.read()
            return r.json()

    @contextlib.contextmanager
    def _send(self, method: str, path: str, body: dict | None) -> Iterator[Any]:
        """The (successful) response, closed afterwards; errors raise ``RemoteError``."""
        import httpx

        url = self.base + path
        for attempt in range(self.retries + 1):
            try:
                r = self._http.send(self._http.build_request(method, url, json=body), stream=True)
            except httpx.HTTPError as e:
                raise RemoteError(f"could not reach {url} ({type(e).__name__}: {e}); is the server running "
                                  "(molmo2 serve --model M) and the URL right?") from None
            if r.status_code == 503 and attempt < self.retries:
                r.close()
                time.sleep(min(float(r.headers.get("retry-after", "1") or 1), 30.0))
                continue
            if r.status_code >= 400:
                r.read()
                r.close()
                raise RemoteError(f"{url} answered {r.status_code}: {_error_message(r)}", r.status_code)
            try:
                yield r
            finally:
                r.close()
            return


# ------------------------------------------------------------------------------------------ helpers


def _error_message(r: Any) -> str:
    try:
        err = r.json().get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    except (ValueError, AttributeError):
        pass
    return r.text[:500] or r.reason_phrase


def _text(text: Any, what: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise Molmo2Error(f"the {what} must be a non-empty string; say what you want to know")
    return text


def _query(query: Any) -> str:
    query = _text(query, "query")
    if len(query) > MAX_QUERY_CHARS:
        raise Molmo2Error(f"the query is {len(query)} characters long; a point/count/track query names what to "
                          f"find (e.g. 'red cars') in at most {MAX_QUERY_CHARS} characters. Use ask() for long "
                          "questions")
    return query.strip().rstrip(".")


def _is_url(media: Any) -> bool:
    return isinstance(media, str) and media[:8].lower().startswith(("http://", "https://"))


def _kind(media: Any) -> str:
    from molmo2.inference.media import VIDEO_EXTENSIONS, media_kind

    if _is_url(media):
        from urllib.parse import urlsplit

        return "video" if Path(urlsplit(media).path).suffix.lower() in VIDEO_EXTENSIONS else "image"
    if isinstance(media, list) and any(_is_url(m) for m in media):
        if any(_kind(m) != "image" for m in media):
            raise MediaError("an image set holds images only; ask about a video separately (one video per question)")
        return "images"
    kind = media_kind(media)
    if kind == "video" and not isinstance(media, (str, os.PathLike, bytes, bytearray, memoryview)):
        raise MediaError("a remote server needs the video file: pass its path or bytes, not decoded frames")
    return kind


def _encode(item: Any, kind: str) -> tuple[str, tuple[int, int]]:
    """(data URL, (width, height)) of one image or video, the size as the model's grounding uses it."""
    import numpy as np

    if kind == "video":
        from molmo2.processing.video import probe_video

        meta = probe_video(item)
        raw = Path(item).expanduser().read_bytes() if isinstance(item, (str, os.PathLike)) else bytes(item)
        mime = _MIME.get(Path(item).suffix.lower(), "video/mp4") if isinstance(item, (str, os.PathLike)) \
            else _sniff_video(raw)
        return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}", (meta.width, meta.height)
    from molmo2.processing.media import load_image

    pixels_HW3 = load_image(item)  # validates, applies EXIF orientation like the pipeline
    size = (int(pixels_HW3.shape[1]), int(pixels_HW3.shape[0]))
    if isinstance(item, (str, os.PathLike)) and Path(item).suffix.lower() in _MIME:
        raw, mime = Path(item).expanduser().read_bytes(), _MIME[Path(item).suffix.lower()]
    elif isinstance(item, (bytes, bytearray, memoryview)):
        raw, mime = bytes(item), "image/" + _sniff_image(bytes(item))
    else:  # PIL or array (or a file of an unusual type): as the PNG of what the pipeline would see
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pixels_HW3)).save(buf, "PNG")
        raw, mime = buf.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}", size


def _sniff_image(raw: bytes) -> str:
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as im:
        return (im.format or "png").lower()


def _sniff_video(raw: bytes) -> str:
    if raw[:4] == b"\x1a\x45\xdf\xa3":
        return "video/webm"
    if raw[:4] == b"RIFF":
        return "video/x-msvideo"
    return "video/mp4"
