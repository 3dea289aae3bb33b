"""Cross-request batching in ``molmo2 serve``: requests that wait in the queue while the model is busy are
answered by one ``chat_batch`` call (greedy text and image requests; sampled and video requests alone), with
the same answers as when each is sent alone (the tiny random checkpoint, plain and streamed), and the batch
sizes in /metrics. With a scripted batching pipeline on a real socket: a streamed row whose client hangs up
and a row that times out stop alone, their batch mates get their full answers, and the server keeps
serving."""

from __future__ import annotations

import base64
import json
import threading
import time

import httpx
from serve.helpers import BatchingPipe, live_server

from molmo2.serve import ChatHandler, ServeLimits, build_app


class Gated:
    """The real pipeline, whose first single ``chat`` waits for ``gate`` (so that requests queue behind it)."""

    def __init__(self, pipe):
        self.pipe, self.gate, self.entered, self.first = pipe, threading.Event(), threading.Event(), True
        self.batches: list[int] = []

    @property
    def progress(self):
        return self.pipe.progress

    @progress.setter
    def progress(self, fn):
        self.pipe.progress = fn

    def chat(self, turns, media=None, **options):
        if self.first:
            self.first = False
            self.entered.set()
            assert self.gate.wait(60)
        return self.pipe.chat(turns, media=media, **options)

    def chat_batch(self, requests, on_answer=None):
        self.batches.append(len(requests))
        return self.pipe.chat_batch(requests, on_answer=on_answer)


def _wait(predicate, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _events(text: str) -> list:
    return [json.loads(b[6:]) for b in text.split("\n\n") if b.startswith("data: {")]


def _result(r: httpx.Response):
    """What must not change between a batched and a lone answer (not the id or the time)."""
    assert r.status_code == 200, r.text
    if r.headers["content-type"].startswith("text/event-stream"):
        events = _events(r.text)
        text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
        final = [e for e in events if e.get("choices")][-1]["choices"][0]
        return text, final["finish_reason"], final["delta"]["grounding"]
    choice = r.json()["choices"][0]
    return choice["message"]["content"], choice["finish_reason"], choice["message"]["grounding"], r.json()["usage"]


def _requests(media_dir):
    image = "data:image/png;base64," + base64.b64encode((media_dir / "a.png").read_bytes()).decode()

    def user(*parts):
        return [{"role": "user", "content": list(parts)}]

    return [
        {"messages": [{"role": "user", "content": "Hi."}], "max_tokens": 12},
        {"messages": [{"role": "user", "content": "A much longer question about squares and circles and the way "
                                                  "they stack when nobody looks?"}], "max_tokens": 5},
        {"messages": user({"type": "image_url", "image_url": {"url": image}},
                          {"type": "text", "text": "Point to the dogs."}), "max_tokens": 16},
        {"messages": user({"type": "image_url", "image_url": {"url": "b.jpg"}},
                          {"type": "text", "text": "What is it?"}), "max_tokens": 10, "stream": True},
        {"messages": [{"role": "user", "content": "Hi."}], "max_tokens": 6, "temperature": 0.8, "seed": 1},
        {"messages": user({"type": "video_url", "video_url": {"url": "clip.mp4"}},
                          {"type": "text", "text": "Track it."}), "max_tokens": 6, "max_frames": 2},
    ]


def test_queued_requests_are_batched_with_the_answers_they_get_alone(pipe, media_dir):
    gated = Gated(pipe)
    handler = ChatHandler(gated, "tiny", ServeLimits(media_dir=media_dir, max_frames=4, max_new_tokens=64,
                                                     max_concurrency=16))
    bodies = _requests(media_dir)
    with live_server(build_app(handler)) as url, httpx.Client(base_url=url, timeout=120) as http:
        first = threading.Thread(target=lambda: http.post("/v1/chat/completions", json=bodies[0]))
        first.start()
        assert gated.entered.wait(30)
        results: dict[int, httpx.Response] = {}
        threads = [threading.Thread(target=lambda k=k: results.update({k: http.post("/v1/chat/completions",
                                                                                     json=bodies[k])}))
                   for k in range(len(bodies))]
        for t in threads:
            t.start()
        _wait(lambda: len(handler._pending) == len(bodies), "the requests did not queue")
        gated.gate.set()
        for t in [first, *threads]:
            t.join(120)
        assert gated.batches == [4]  # the 4 greedy text / image requests; the sampled and video ones alone
        metrics = http.get("/metrics").text
        assert 'molmo2_batches_total{size="4"} 1' in metrics and 'molmo2_batches_total{size="1"} 3' in metrics
        for k, body in enumerate(bodies):  # each one alone now: the single path
            assert _result(results[k]) == _result(http.post("/v1/chat/completions", json=body)), k
        assert "molmo2_requests_in_flight 0" in http.get("/metrics").text


def test_max_batch_1_turns_batching_off(pipe):
    gated = Gated(pipe)
    handler = ChatHandler(gated, "tiny", ServeLimits(max_new_tokens=16, max_batch=1, max_concurrency=8))
    body = {"messages": [{"role": "user", "content": "Hi."}], "max_tokens": 3}
    with live_server(build_app(handler)) as url, httpx.Client(base_url=url, timeout=60) as http:
        threads = [threading.Thread(target=lambda: http.post("/v1/chat/completions", json=body)) for _ in range(4)]
        threads[0].start()
        assert gated.entered.wait(30)
        for t in threads[1:]:
            t.start()
        _wait(lambda: len(handler._pending) == 3, "the requests did not queue")
        gated.gate.set()
        for t in threads:
            t.join(60)
        assert gated.batches == [] and 'molmo2_batches_total{size="1"} 4' in http.get("/metrics").text


def test_a_row_that_is_cancelled_stops_alone_and_its_batch_mates_finish():
    fake = BatchingPipe()
    handler = ChatHandler(fake, "fake", ServeLimits(max_concurrency=8, request_timeout=3.0))

    def body(steps, **fields):
        return {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": steps, **fields}

    with live_server(build_app(handler)) as url, httpx.Client(base_url=url, timeout=60) as http:
        results: dict[str, httpx.Response] = {}
        hold = threading.Thread(target=lambda: results.update(hold=http.post("/v1/chat/completions", json=body(2))))
        hold.start()
        assert fake.entered.wait(30)
        seen = []

        def hang_up():  # streams a 3000-step answer and leaves after 3 pieces
            with httpx.Client(base_url=url, timeout=60) as own, \
                    own.stream("POST", "/v1/chat/completions", json=body(3000, stream=True)) as r:
                for line in r.iter_lines():
                    if '"content":"' in line and '"content":""' not in line:
                        seen.append(line)
                        if len(seen) == 3:
                            break

        threads = {"hang_up": threading.Thread(target=hang_up)}
        for name, steps in [("a", 40), ("b", 60), ("slow", 3000)]:  # slow: times out (3 s) mid-batch
            threads[name] = threading.Thread(
                target=lambda n=name, s=steps: results.update({n: http.post("/v1/chat/completions", json=body(s))}))
        for t in threads.values():
            t.start()
        _wait(lambda: len(handler._pending) == 4, "the requests did not queue")
        fake.gate.set()
        for t in threads.values():
            t.join(60)
        assert fake.batch_ended.wait(30), "the batch did not end: a cancelled row kept it going"
        assert fake.batches == [4] and len(seen) == 3
        for name, steps in [("a", 40), ("b", 60)]:
            assert results[name].json()["choices"][0]["message"]["content"] == " ".join(f"w{i}" for i in range(steps))
        assert results["slow"].status_code == 504
        by_budget = {budget: done for budget, done in fake.rows}
        assert by_budget[40] == 40 and by_budget[60] == 60
        assert all(done < 3000 for budget, done in fake.rows if budget == 3000)  # both long rows stopped early
        _wait(lambda: "molmo2_requests_in_flight 0" in http.get("/metrics").text, "a slot leaked")
        assert 'molmo2_batches_total{size="4"} 1' in http.get("/metrics").text
        assert http.post("/v1/chat/completions", json=body(3)).status_code == 200
