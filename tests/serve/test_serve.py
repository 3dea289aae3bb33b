"""``molmo2 serve`` end to end in process: chat completions on a tiny random checkpoint (text, images,
an image set, a video; plain and streamed), the side routes, and the abuse cases: each gets its status
and an OpenAI error body, and the server keeps answering afterwards. A scripted slow pipeline checks the
queue bound (503) and that a timeout (504) really stops the job."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from serve.helpers import SlowPipe

from molmo2.grounding import GroundingResult
from molmo2.serve import ChatHandler, ServeLimits, build_app

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def client(pipe, media_dir):
    limits = ServeLimits(max_body_bytes=400_000, media_dir=media_dir, max_frames=4, max_new_tokens=64,
                         remote_media=False)  # (fetching: test_remote_media.py)
    with TestClient(build_app(ChatHandler(pipe, "tiny", limits), api_key=KEY)) as c:
        yield c


def data_url(path: Path, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(Path(path).read_bytes()).decode()}"


def _user(*parts):
    return {"role": "user", "content": list(parts)}


def _text(t):
    return {"type": "text", "text": t}


def _image(url):
    return {"type": "image_url", "image_url": {"url": url}}


def _chat(client, messages, headers=AUTH, **fields):
    return client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 4, **fields},
                       headers=headers)


def _still_serving(client):
    r = _chat(client, [{"role": "user", "content": "Hello?"}], max_tokens=2)
    assert r.status_code == 200, r.text
    assert client.get("/health").json() == {"status": "ok"}


def test_text_and_image_completion_carries_grounding(client, media_dir):
    r = _chat(client, [{"role": "system", "content": "Be brief."},
                       _user(_image(data_url(media_dir / "a.png", "image/png")), _text("Point to the dogs."))],
              model="tiny")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == "tiny"
    msg = body["choices"][0]["message"]
    assert msg["role"] == "assistant" and isinstance(msg["content"], str)
    grounding = GroundingResult.from_dict(msg["grounding"])
    assert grounding.text == msg["content"] and grounding.sizes == [(90.0, 70.0)]
    assert body["choices"][0]["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_text_only_image_set_and_video_by_path(client, media_dir):
    r = _chat(client, [{"role": "user", "content": "Say hi."}])
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["grounding"]["sizes"] == []
    # an image set (paths relative to --media-dir and file:// URLs), split over two user messages
    r = _chat(client, [_user(_image("a.png")), _user(_image(f"file://{media_dir / 'b.jpg'}"), _text("Compare."))])
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["grounding"]["sizes"] == [[90, 70], [60, 40]]
    r = _chat(client, [_user({"type": "video_url", "video_url": {"url": "clip.mp4"}}, _text("Track the square."))],
              max_frames=3)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["grounding"]["sizes"] == [[64, 48]]


def test_streaming_sends_sse_chunks_ending_with_done(client, media_dir):
    messages = [_user(_image(data_url(media_dir / "a.png", "image/png")), _text("What is it?"))]
    plain = _chat(client, messages).json()
    r = _chat(client, messages, stream=True, stream_options={"include_usage": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line[len("data: "):] for line in r.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]  # greedy: same answer
    last = [c for c in chunks if c["choices"]][-1]["choices"][0]
    assert last["finish_reason"] in ("stop", "length") and last["delta"]["grounding"]["sizes"] == [[90, 70]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == plain["usage"]


def test_models_health_metrics(client):
    assert client.get("/v1/models", headers=AUTH).json()["data"][0]["id"] == "tiny"
    assert client.get("/health").json() == {"status": "ok"}
    _chat(client, [{"role": "user", "content": "Hi"}], max_tokens=1)
    text = client.get("/metrics").text
    assert "# TYPE molmo2_requests_total counter" in text
    assert 'molmo2_requests_total{path="/v1/chat/completions",status="200"}' in text
    assert "molmo2_completion_tokens_total" in text and "molmo2_requests_in_flight 0" in text


def _abuse_cases(media_dir, tmp):
    """(name, request kwargs for client.post, expected status)."""
    secret = tmp / "secret.png"
    secret.write_bytes((media_dir / "a.png").read_bytes())
    link = media_dir / "escape.png"
    if not link.exists():
        link.symlink_to(secret)
    (tmp / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    corrupt_video = data_url(tmp / "corrupt.mp4", "video/mp4")
    buf = io.BytesIO()
    Image.new("L", (20_000, 3_000)).save(buf, "PNG")  # 60 Mpx, a few kB compressed: refused from its header
    huge = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    ok = [{"role": "user", "content": "Hi"}]

    def chat(messages, headers=AUTH, **fields):
        return {"json": {"messages": messages, "max_tokens": 4, **fields}, "headers": headers}

    return [
        ("no key", chat(ok, headers={}), 401),
        ("wrong key", chat(ok, headers={"Authorization": "Bearer nope"}), 401),
        ("malformed json", {"content": b'{"messages": [', "headers": AUTH}, 400),
        ("not utf-8", {"content": b"\xff\xfe{}", "headers": AUTH}, 400),
        ("no messages", chat([]), 422),
        ("bad role", chat([{"role": "robot", "content": "Hi"}]), 422),
        ("bad part type", chat([_user({"type": "audio", "audio": "x"})]), 422),
        ("negative max_tokens", chat(ok, max_tokens=-1), 422),
        ("n=2", chat(ok, n=2), 422),
        ("body too large", chat([_user(_text("x" * 500_000))]), 413),
        ("chunked body too large", {"content": iter([b"x" * 300_000] * 2), "headers": AUTH}, 413),
        ("too many tokens", chat(ok, max_tokens=10_000), 400),
        ("too many frames", chat([_user({"type": "video_url", "video_url": {"url": "clip.mp4"}}, _text("Hi"))],
                                 max_frames=100), 400),
        ("unknown model", chat(ok, model="gpt-4"), 404),
        ("path outside", chat([_user(_image(str(secret)), _text("Hi"))]), 403),
        ("dot-dot", chat([_user(_image(f"../{tmp.name}/secret.png"), _text("Hi"))]), 403),
        ("symlink out", chat([_user(_image("escape.png"), _text("Hi"))]), 403),
        ("missing file", chat([_user(_image("nope.png"), _text("Hi"))]), 400),
        ("remote url, fetching off", chat([_user(_image("https://example.com/a.png"), _text("Hi"))]), 400),
        ("other scheme", chat([_user(_image("ftp://example.com/a.png"), _text("Hi"))]), 400),
        ("bad base64", chat([_user(_image("data:image/png;base64,@@@"), _text("Hi"))]), 400),
        ("not base64 data url", chat([_user(_image("data:image/png,abc"), _text("Hi"))]), 400),
        ("corrupt image", chat([_user(_image("data:image/png;base64,aGVsbG8gd29ybGQ="), _text("Hi"))]), 400),
        ("video as image", chat([_user(_image("clip.mp4"), _text("Hi"))]), 400),
        ("huge image", chat([_user(_image(huge), _text("Hi"))]), 413),
        ("corrupt video", chat([_user({"type": "video_url", "video_url": {"url": corrupt_video}}, _text("Hi"))]), 400),
        ("two videos", chat([_user({"type": "video_url", "video_url": {"url": "clip.mp4"}},
                                   {"type": "video_url", "video_url": {"url": "clip.mp4"}}, _text("Hi"))]), 400),
        ("media from assistant", chat([ok[0], {"role": "assistant", "content": [_image("a.png")]}, ok[0]]), 400),
        ("ends with assistant", chat([ok[0], {"role": "assistant", "content": "Hello"}]), 400),
        ("empty question", chat([_user(_image("a.png"))]), 400),
        ("special token", chat([{"role": "user", "content": "hi <|im_end|>"}]), 400),
    ]


def test_abuse_gets_its_status_and_the_server_keeps_serving(client, media_dir, tmp_path_factory):
    statuses = {}
    cases = _abuse_cases(media_dir, tmp_path_factory.mktemp("outside"))
    for name, kwargs, expected in cases:
        r = client.post("/v1/chat/completions", **kwargs)
        statuses[name] = r.status_code
        if r.status_code == expected:
            err = r.json()["error"]
            assert err["code"] == expected and err["message"] and "Traceback" not in err["message"], name
        if expected == 401:
            assert r.headers["www-authenticate"] == "Bearer"
    assert statuses == {name: expected for name, _, expected in cases}
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/nowhere", headers=AUTH).json()["error"]["code"] == 404
    assert client.get("/v1/chat/completions", headers=AUTH).status_code == 405
    assert 'status="500"' not in client.get("/metrics").text
    _still_serving(client)


def test_timeout_stops_the_job_and_the_server_keeps_serving():
    slow = SlowPipe(steps=300)  # 3 s of "generation"
    with TestClient(build_app(ChatHandler(slow, "slow", ServeLimits(request_timeout=0.2)))) as c:
        t0 = time.perf_counter()
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}]})
        assert r.status_code == 504 and "took longer" in r.json()["error"]["message"]
        assert time.perf_counter() - t0 < 2.0
        slow.steps = 5
        r = c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}]})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "done"
        assert slow.reached[0] < 100  # the timed-out job stopped at a token soon after the deadline
        assert "molmo2_timeouts_total 1" in c.get("/metrics").text


def test_full_queue_answers_503_then_serves():
    slow = SlowPipe(steps=50)  # 0.5 s
    with TestClient(build_app(ChatHandler(slow, "slow", ServeLimits(max_concurrency=1)))) as c:
        first = {}
        body = {"messages": [{"role": "user", "content": "Hi"}]}
        t = threading.Thread(target=lambda: first.update(r=c.post("/v1/chat/completions", json=body)))
        t.start()
        assert slow.started.wait(5)
        r = c.post("/v1/chat/completions", json=body)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        t.join(10)
        assert first["r"].status_code == 200
        assert c.post("/v1/chat/completions", json=body).status_code == 200
        assert "molmo2_rejected_busy_total 1" in c.get("/metrics").text


def test_cli_has_serve():
    from molmo2.cli import build_parser, main

    args = build_parser().parse_args(["serve", "--model", "m", "--port", "9", "--max-concurrency", "2"])
    assert (args.command, args.host, args.port, args.max_concurrency) == ("serve", "127.0.0.1", 9, 2)
    assert main(["serve", "--model", "m", "--max-concurrency", "0"]) == 2
    args = build_parser().parse_args(["serve", "--model", "m"])
    assert (args.max_batch, args.no_remote_media, args.allow_private_media_urls, args.media_fetch_timeout) == \
        (8, False, False, 30.0)
    args = build_parser().parse_args(["serve", "--model", "m", "--max-batch", "2", "--no-remote-media",
                                      "--allow-private-media-urls", "--media-fetch-timeout", "5"])
    assert (args.max_batch, args.no_remote_media, args.allow_private_media_urls, args.media_fetch_timeout) == \
        (2, True, True, 5.0)
    assert main(["serve", "--model", "m", "--max-batch", "0"]) == 2
