"""Token-by-token streaming: the pipeline's ``on_text`` hook (pieces that join to the answer), SSE chunks as
tokens are generated with the grounding in the last one, errors before the first token with their status,
a timeout mid-stream as an error event, and a client that disconnects mid-stream: the generation stops at
its next token, the slot is released and the server keeps serving (real uvicorn on a local port)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from serve.helpers import StreamingPipe, live_server

from molmo2.errors import Molmo2Error
from molmo2.inference.pipeline import TextDeltas
from molmo2.serve import ChatHandler, ServeLimits, build_app

HI = {"messages": [{"role": "user", "content": "Hi"}]}


def _events(text: str) -> list:
    """The parsed ``data:`` events of an SSE body (``[DONE]`` as the string)."""
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def _content(events) -> list[str]:
    return [c["choices"][0]["delta"]["content"] for c in events
            if isinstance(c, dict) and c.get("choices") and c["choices"][0]["delta"].get("content")]


def test_text_deltas_join_to_the_stripped_answer():
    """Whitespace at the ends and split UTF-8 characters are held back until they are settled."""
    steps = ["  ", "  He", "  Hel\ufffd", "  Helé", "  Helé  ", "  Helé  wo\ufffd", "  Helé  wor", "  Helé  world \n"]
    pieces = []
    deltas = TextDeltas(lambda ids: steps[len(ids) - 1], pieces.append)
    for k in range(1, len(steps) + 1):
        deltas.update(list(range(k)))
    assert pieces == ["He", "lé", "  wor", "ld"]
    deltas.finish("Helé  world")
    assert "".join(pieces) == "Helé  world"
    deltas.finish("something else")  # a final text that disagrees: nothing more is sent, nothing raises
    assert "".join(pieces) == "Helé  world"


def test_pipeline_on_text_streams_the_answer(pipe, media_dir):
    pieces = []
    streamed = pipe.ask(media_dir / "a.png", "Describe it.", max_new_tokens=16, on_text=pieces.append)
    plain = pipe.ask(media_dir / "a.png", "Describe it.", max_new_tokens=16)
    assert len(pieces) > 1 and "".join(pieces) == streamed.text == plain.text
    pieces.clear()
    video = pipe.point(media_dir / "clip.mp4", "the square", max_frames=2, max_new_tokens=8, on_text=pieces.append)
    assert "".join(pieces) == video.text
    with pytest.raises(Molmo2Error, match="on_text"):
        pipe.point(media_dir / "clip.mp4", "x", windows=(1.0, 0.5), on_text=print)


def test_sse_chunks_come_token_by_token_and_end_with_the_grounding(pipe, media_dir):
    limits = ServeLimits(media_dir=media_dir, max_frames=4, max_new_tokens=64)
    with TestClient(build_app(ChatHandler(pipe, "tiny", limits))) as c:
        body = {"messages": [{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": "clip.mp4"}}, {"type": "text", "text": "Point to it."}]}],
            "max_tokens": 12, "max_frames": 2}
        plain = c.post("/v1/chat/completions", json=body).json()
        r = c.post("/v1/chat/completions", json={**body, "stream": True, "stream_options": {"include_usage": True}})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _events(r.text)
        assert events[-1] == "[DONE]" and events[0]["choices"][0]["delta"]["role"] == "assistant"
        pieces = _content(events)
        assert len(pieces) > 1 and "".join(pieces) == plain["choices"][0]["message"]["content"]
        final = [e for e in events[:-1] if e["choices"]][-1]["choices"][0]
        assert final["finish_reason"] == plain["choices"][0]["finish_reason"]
        assert final["delta"]["grounding"] == plain["choices"][0]["message"]["grounding"]
        assert events[-2]["usage"] == plain["usage"]
        # an error of the media before any token still gets its status, not a 200 stream
        bad = {"messages": [{"role": "user", "content": [
            {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,AAAAGGZ0eXBtcDQy" + "A" * 40}},
            {"type": "text", "text": "Hi"}]}], "stream": True}
        r = c.post("/v1/chat/completions", json=bad)
        assert r.status_code == 400 and "video" in r.json()["error"]["message"]
        assert "molmo2_requests_in_flight 0" in c.get("/metrics").text


def test_client_disconnect_mid_stream_stops_generation_and_the_server_keeps_serving():
    fake = StreamingPipe(steps=3000)  # 30 s if nothing stopped it
    with live_server(build_app(ChatHandler(fake, "fake", ServeLimits(max_concurrency=1)))) as url:
        with httpx.Client(base_url=url, timeout=30) as c:
            with c.stream("POST", "/v1/chat/completions", json={**HI, "stream": True}) as r:
                assert r.status_code == 200
                seen = 0
                for line in r.iter_lines():
                    if line.startswith("data: ") and '"content":"w' in line:
                        seen += 1
                        if seen == 3:
                            break  # leaving the block closes the connection mid-stream
            assert fake.ended.wait(20), "the generation did not stop after the client left"
            assert 3 <= fake.reached[0] < 3000
            for _ in range(200):  # the slot is released (max_concurrency=1: a leak would answer 503)
                if "molmo2_requests_in_flight 0" in c.get("/metrics").text:
                    break
                time.sleep(0.05)
            assert "molmo2_requests_in_flight 0" in c.get("/metrics").text
            fake.steps = 3
            r = c.post("/v1/chat/completions", json={**HI, "stream": True})
            assert r.status_code == 200 and "".join(_content(_events(r.text))) == "w0 w1 w2 "
            assert c.post("/v1/chat/completions", json=HI).json()["choices"][0]["message"]["content"] == "w0 w1 w2"


def test_timeout_mid_stream_ends_with_an_error_event():
    fake = StreamingPipe(steps=3000)
    with TestClient(build_app(ChatHandler(fake, "fake", ServeLimits(request_timeout=0.3)))) as c:
        r = c.post("/v1/chat/completions", json={**HI, "stream": True})
        assert r.status_code == 200  # the first words came before the deadline
        events = _events(r.text)
        assert events[-1] == "[DONE]" and events[-2]["error"]["code"] == 504
        assert "took longer" in events[-2]["error"]["message"] and _content(events)
        assert fake.ended.wait(10) and fake.reached[0] < 3000
        assert "molmo2_timeouts_total 1" in c.get("/metrics").text
        fake.steps = 2
        assert c.post("/v1/chat/completions", json=HI).status_code == 200
