"""``molmo2.serve.client.RemoteModel`` against ``molmo2 serve`` on a real local port: every verb gives the
same typed answer as the local pipeline on the same tiny checkpoint (greedy), streamed or not; server errors
come back as ``RemoteError`` with the server's message; options that need the local pipeline are refused."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image
from serve.helpers import SlowPipe, live_server

from molmo2.errors import MediaError, Molmo2Error
from molmo2.inference.pipeline import CountAnswer, PointAnswer, TrackAnswer
from molmo2.serve import ChatHandler, ServeLimits, build_app
from molmo2.serve.client import RemoteError, RemoteModel

KEY = "client-key"


@pytest.fixture(scope="module")
def url(pipe):
    limits = ServeLimits(max_frames=4, max_new_tokens=64)
    with live_server(build_app(ChatHandler(pipe, "tiny", limits), api_key=KEY)) as u:
        yield u


@pytest.fixture(scope="module")
def remote(url):
    with RemoteModel(url, api_key=KEY) as m:
        yield m


def _same(remote_answer, local_answer):
    assert type(remote_answer) is type(local_answer)
    assert remote_answer.text == local_answer.text
    assert remote_answer.grounding == local_answer.grounding
    assert remote_answer.finish_reason == local_answer.finish_reason
    assert remote_answer.media.kind == local_answer.media.kind
    assert remote_answer.media.sizes == [tuple(s) for s in local_answer.media.sizes]
    assert (remote_answer.num_prompt_tokens, remote_answer.num_new_tokens) == \
        (local_answer.num_prompt_tokens, local_answer.num_new_tokens)


def test_verbs_equal_the_local_pipeline(remote, pipe, media_dir):
    a, b, clip = media_dir / "a.png", media_dir / "b.jpg", media_dir / "clip.mp4"
    assert remote.model == "tiny" and remote.models() == ["tiny"]
    cases = [
        ("ask", (a, "What is this?"), {}),
        ("point", (a, "dogs"), {}),
        ("count", ([a, b], "dogs"), {}),
        ("caption", (b.read_bytes(),), {}),  # bytes: the type is sniffed
        ("ask", (np.asarray(Image.open(a)), "What colour?"), {}),  # an array: sent as PNG
        ("track", (clip, "the square"), {"max_frames": 3}),
        ("point", (clip.read_bytes(), "the square"), {"max_frames": 2}),
        ("count", (clip, "squares"), {"max_frames": 4, "clip": (0.8, 1.6)}),  # 3 frames, the video has 4
        ("ask", (None, "Say hi."), {}),
    ]
    for verb, args, options in cases:
        local = getattr(pipe, verb)(*args, max_new_tokens=12, **options)
        _same(getattr(remote, verb)(*args, max_new_tokens=12, **options), local)
    assert isinstance(remote.point(a, "dogs", max_new_tokens=2), PointAnswer)
    assert isinstance(remote.count(a, "dogs", max_new_tokens=2), CountAnswer)
    assert isinstance(remote.track(clip, "x", max_new_tokens=2, max_frames=2), TrackAnswer)
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
             {"role": "user", "content": "What is it?"}]
    _same(remote.chat(turns, media=a, max_new_tokens=8), pipe.chat(turns, media=a, max_new_tokens=8))


def test_streamed_answer_equals_the_plain_one(remote, media_dir):
    pieces = []
    streamed = remote.ask(media_dir / "a.png", "Describe it.", max_new_tokens=16, on_text=pieces.append)
    plain = remote.ask(media_dir / "a.png", "Describe it.", max_new_tokens=16)
    assert "".join(pieces) == streamed.text == plain.text and len(pieces) > 1
    assert streamed.grounding == plain.grounding
    assert streamed.num_new_tokens == plain.num_new_tokens > 0


def test_errors_say_what_the_server_said(url, remote, media_dir):
    with pytest.raises(RemoteError, match="401.*API key") as e:
        RemoteModel(url, model="tiny", api_key="wrong").ask(None, "Hi")
    assert e.value.status == 401
    with pytest.raises(RemoteError, match="404.*not served here"):
        RemoteModel(url + "/v1/", model="gpt-4", api_key=KEY).ask(None, "Hi")
    with pytest.raises(RemoteError, match="400.*limit of 64"):
        remote.ask(None, "Hi", max_new_tokens=1000)
    with pytest.raises(RemoteError, match="could not reach"):
        RemoteModel("http://127.0.0.1:9", model="m").ask(None, "Hi")
    with pytest.raises(Molmo2Error, match="local pipeline"):
        remote.point(media_dir / "clip.mp4", "x", windows=(2, 1))
    with pytest.raises(MediaError, match="track needs a video"):
        remote.track(media_dir / "a.png", "x")
    with pytest.raises(Molmo2Error, match="http"):
        RemoteModel("localhost:8000")
    with pytest.raises(Molmo2Error, match="query"):
        remote.point(media_dir / "a.png", "  ")


def test_clip_is_sent_its_times_put_back_and_refused_by_a_server_that_ignores_it(media_dir):
    """``clip`` travels as the request field; the answer's times are moved onto the video's timeline as the
    pipeline does; an answer without molmo2 serve's grounding extension (vLLM) cannot have honoured it."""
    import json as json_

    import httpx

    sent = []
    text = '<tracks coords="0.0 1 500 500\t1.0 1 600 500">sq</tracks>'

    def server(with_grounding: bool):
        def handle(request):
            body = json_.loads(request.content)
            sent.append(body)
            message = {"role": "assistant", "content": text}
            if with_grounding:
                message["grounding"] = {"sizes": [[64, 48]]}
            return httpx.Response(200, json={"choices": [{"message": message, "finish_reason": "stop"}],
                                             "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
        return httpx.MockTransport(handle)

    clip = media_dir / "clip.mp4"
    with RemoteModel("http://x", model="m", transport=server(True)) as m:
        answer = m.track(clip, "the square", clip=(0.8, 2.0))
        assert sent[-1]["clip"] == [0.8, 2.0]
        assert [p.t for p in answer.tracks[0].points] == [0.8, 1.8]
        assert [p.t for p in m.track(clip, "the square").tracks[0].points] == [0.0, 1.0]
        assert "clip" not in sent[-1]
        with pytest.raises(MediaError, match="clip apply to videos"):
            m.point(media_dir / "a.png", "x", clip=(0, 1))
    with RemoteModel("http://x", model="m", transport=server(False)) as m:
        assert m.track(clip, "x").tracks  # without clip a plain OpenAI server is fine
        with pytest.raises(RemoteError, match="did not honour clip"):
            m.track(clip, "x", clip=(0.8, 2.0))


def test_busy_server_is_retried(media_dir):
    """A 503 (queue full) is retried after Retry-After: both of two concurrent calls get an answer."""
    slow = SlowPipe(steps=30)
    with live_server(build_app(ChatHandler(slow, "slow", ServeLimits(max_concurrency=1)))) as u:
        results = {}
        m1, m2 = RemoteModel(u), RemoteModel(u, model="slow")
        t = threading.Thread(target=lambda: results.update(first=m1.ask(None, "Hi")))
        t.start()
        assert slow.started.wait(10)
        results["second"] = m2.ask(None, "Hi")
        t.join(30)
        assert results["first"].text == results["second"].text == "done"
