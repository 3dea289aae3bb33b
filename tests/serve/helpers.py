"""Helpers of the server tests: ``live_server(app)`` (uvicorn on a free 127.0.0.1 port in a thread, for real
sockets: clients that disconnect, our HTTP client) and stand-in pipelines with scripted timing that report
progress like ``Molmo2`` does, so that cancellation can be observed."""

from __future__ import annotations

import contextlib
import threading
import time

from molmo2.grounding import GroundingResult
from molmo2.inference.pipeline import Answer, MediaInfo


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


class SlowPipe:
    """A stand-in pipeline: reports one 'generated token' every 10 ms for up to ``steps``, like ``Molmo2``
    does through ``progress``; remembers how far each call got."""

    def __init__(self, steps: int):
        self.steps, self.progress, self.reached, self.started = steps, None, [], threading.Event()

    def chat(self, turns, media=None, **options):
        self.started.set()
        self.reached.append(0)
        for i in range(self.steps):
            time.sleep(0.01)
            self.reached[-1] = i + 1
            if self.progress is not None:
                self.progress("generate", i + 1, self.steps)
        text = "done"
        return Answer(text=text, grounding=GroundingResult(text=text, sizes=[]), media=MediaInfo("none", []),
                      finish_reason="stop", prompt=turns[-1]["content"], num_prompt_tokens=3, num_new_tokens=1)


class StreamingPipe:
    """A stand-in pipeline that 'generates' one word every ``delay`` s for ``steps`` steps, streaming each
    through ``on_text`` and checking for cancellation through ``progress`` like ``Molmo2`` does."""

    def __init__(self, steps: int, delay: float = 0.01):
        self.steps, self.delay, self.progress = steps, delay, None
        self.reached: list[int] = []
        self.ended = threading.Event()

    def chat(self, turns, media=None, on_text=None, **options):
        self.ended.clear()
        self.reached.append(0)
        try:
            for i in range(self.steps):
                time.sleep(self.delay)
                if self.progress is not None:
                    self.progress("generate", i + 1, self.steps)  # raises once the request is cancelled
                self.reached[-1] = i + 1
                if on_text is not None:
                    on_text(f"w{i} ")
        finally:
            self.ended.set()
        text = "".join(f"w{i} " for i in range(self.steps)).strip()
        return Answer(text=text, grounding=GroundingResult(text=text, sizes=[]), media=MediaInfo("none", []),
                      finish_reason="length", prompt=turns[-1]["content"], num_prompt_tokens=2,
                      num_new_tokens=self.steps)


class GroundedPipe:
    """A stand-in pipeline whose answers hold points (an image: two points at 1/4 and 3/4 of the width, half
    height) or a track (a video: one object moving left to right), streamed word by word through
    ``on_text``, so that pages and clients have something to draw; a random tiny model rarely points."""

    def __init__(self):
        self.progress = None

    def chat(self, turns, media=None, on_text=None, **options):
        from molmo2.grounding import Point, Track, format_points, format_tracks, parse
        from molmo2.inference.media import media_kind

        kind = media_kind(media)
        if kind == "video":
            from molmo2.processing.video import probe_video

            meta = probe_video(media)
            size = (meta.width, meta.height)
            track = Track(1, "thing", [Point(size[0] * (0.2 + 0.3 * k), size[1] / 2, t=0.5 * k) for k in range(3)])
            text = format_tracks([track], size, "thing")
            grounding = parse(text, size, video=True)
        else:
            import io

            from PIL import Image

            with Image.open(io.BytesIO(media) if isinstance(media, bytes) else media) as im:
                size = im.size
            points = [Point(size[0] / 4, size[1] / 2), Point(3 * size[0] / 4, size[1] / 2)]
            text = format_points(points, size, "dogs", mode="point_then_count")
            grounding = parse(text, size, video=False)
        words = text.split(" ")
        for k, word in enumerate(words):
            if self.progress is not None:
                self.progress("generate", k + 1, len(words))
            if on_text is not None:
                on_text(word if k == 0 else " " + word)
        return Answer(text=text, grounding=grounding, media=MediaInfo(kind, [size]), finish_reason="stop",
                      prompt=turns[-1]["content"], num_prompt_tokens=5, num_new_tokens=len(words))


class BatchingPipe:
    """A stand-in pipeline with ``chat_batch``: each row 'generates' one word per 10 ms step for its
    ``max_new_tokens`` steps, streams it through its ``on_text``, polls its ``should_stop`` and is handed back
    through ``on_answer`` when it ends, as ``Molmo2.chat_batch`` does; ``chat`` (one request) waits for
    ``gate`` first, so that tests can queue requests behind it. ``rows`` records (max_new_tokens, steps done)
    of every batched row; ``batch_ended`` is set when a batch returns."""

    def __init__(self):
        self.progress = None
        self.gate, self.entered, self.batch_ended = threading.Event(), threading.Event(), threading.Event()
        self.rows: list[list[int]] = []
        self.batches: list[int] = []

    @staticmethod
    def _answer(turns, steps: int) -> Answer:
        text = " ".join(f"w{i}" for i in range(steps))
        return Answer(text=text, grounding=GroundingResult(text=text, sizes=[]), media=MediaInfo("none", []),
                      finish_reason="length", prompt=turns[-1]["content"], num_prompt_tokens=2, num_new_tokens=steps)

    def chat(self, turns, media=None, on_text=None, max_new_tokens=4, **options):
        self.entered.set()
        assert self.gate.wait(30)
        return self._answer(turns, max_new_tokens)

    def chat_batch(self, requests, on_answer=None):
        self.batch_ended.clear()
        self.batches.append(len(requests))
        rows = [[r.options["max_new_tokens"], 0] for r in requests]
        self.rows += rows
        live = set(range(len(requests)))
        results = [None] * len(requests)
        step = 0
        try:
            while live:
                time.sleep(0.01)
                step += 1
                if self.progress is not None:  # raises once every unanswered row is cancelled
                    self.progress("generate", step, max(r[0] for r in rows))
                for i in sorted(live):
                    r = requests[i]
                    rows[i][1] = step
                    if r.options.get("on_text") is not None:
                        r.options["on_text"](("" if step == 1 else " ") + f"w{step - 1}")
                    stopped = r.options["should_stop"] is not None and r.options["should_stop"]()
                    if step == rows[i][0] or stopped:
                        live.discard(i)
                        results[i] = self._answer(r.messages, step)
                        if on_answer is not None:
                            on_answer(i, results[i])
        finally:
            self.batch_ended.set()
        return results
