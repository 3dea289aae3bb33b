"""Abuse on a real socket (uvicorn on a local port; the in-process cases are in test_serve.py): a 200 MB body
is refused without being read into memory (declared: at once from Content-Length; chunked: after the limit),
a 10-hour video is refused from its header before any frame is decoded, and the server keeps serving.
(Malformed JSON, a corrupt video, paths outside --media-dir and wrong keys: test_serve.py; a client that
disconnects mid-stream: test_streaming.py.)"""

from __future__ import annotations

import base64
import json
import socket
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from serve.helpers import live_server

from molmo2.serve import ChatHandler, ServeLimits, build_app

MB = 1 << 20


def write_long_video(path: Path, seconds: int, size: int = 16) -> Path:
    """A real video of ``seconds`` (one tiny frame per minute: a 10-hour video is ~14 kB, made in ms)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=Fraction(1, 60))
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        stream.codec_context.time_base = Fraction(60, 1)
        for i in range(seconds // 60 + 1):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), (i * 7) % 256, np.uint8), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _post_raw(url: str, headers: dict[str, str], body_chunks, total: int) -> tuple[int, bytes]:
    """POST over a raw socket, sending ``body_chunks`` until done or the server stops reading; returns (bytes
    sent, the response head and body read so far)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode())
    sent = 0
    try:
        sock.settimeout(5)
        for chunk in body_chunks:
            sock.sendall(chunk)
            sent += len(chunk)
            if sent >= total:
                break
    except OSError:  # the server answered and closed: it is not reading the rest
        pass
    sock.settimeout(30)
    response = b""
    try:
        while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
            data = sock.recv(65536)
            if not data:
                break
            response += data
    except OSError:
        pass
    sock.close()
    return sent, response


@pytest.fixture(scope="module")
def url(pipe, tmp_path_factory):
    media = tmp_path_factory.mktemp("abuse-media")
    write_long_video(media / "ten_hours.mp4", 10 * 3600)
    limits = ServeLimits(max_body_bytes=2 * MB, media_dir=media, max_frames=2, max_new_tokens=8)
    with live_server(build_app(ChatHandler(pipe, "tiny", limits))) as u:
        yield u


def _still_serving(url: str) -> None:
    import httpx

    r = httpx.post(url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "Hi"}],
                                                       "max_tokens": 2}, timeout=60)
    assert r.status_code == 200, r.text


def test_200mb_body_declared_is_refused_from_the_header(url):
    total = 200 * MB
    chunk = b"x" * MB
    sent, response = _post_raw(url, {"Content-Type": "application/json", "Content-Length": str(total),
                                     "Connection": "close"}, iter(lambda: chunk, None), total)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"at most 2097152" in response
    print(f'sent {sent / MB:.0f} MB of 200 before the 413')
    assert sent < 100 * MB  # the server answered long before the body was through: it read none of it
    _still_serving(url)


def test_200mb_chunked_body_is_refused_after_the_limit(url):
    total = 200 * MB
    piece = b"x" * MB
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    sent, response = _post_raw(url, {"Content-Type": "application/json", "Transfer-Encoding": "chunked",
                                     "Connection": "close"}, iter(lambda: chunk, None), total)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"over this server's limit" in response
    print(f'sent {sent / MB:.0f} MB of 200 before the 413')
    assert sent < 100 * MB  # it stopped reading at the 2 MB limit (plus socket buffers)
    _still_serving(url)


def test_ten_hour_video_is_refused_before_decoding(url, tmp_path):
    import httpx

    def ask(video_url: str):
        return httpx.post(url + "/v1/chat/completions", timeout=60, json={"max_tokens": 2, "messages": [{
            "role": "user", "content": [{"type": "video_url", "video_url": {"url": video_url}},
                                        {"type": "text", "text": "What happens?"}]}]})

    data = base64.b64encode(write_long_video(tmp_path / "long.mp4", 10 * 3600).read_bytes()).decode()
    for video_url in (f"data:video/mp4;base64,{data}", "ten_hours.mp4"):
        r = ask(video_url)
        assert r.status_code == 413, r.text
        message = r.json()["error"]["message"]
        assert "36060 s long" in message and "at most 10800 s" in message
    # the same kind of video, one hour long, is answered: the duration is what was refused
    short = base64.b64encode(write_long_video(tmp_path / "short.mp4", 3600).read_bytes()).decode()
    r = ask(f"data:video/mp4;base64,{short}")
    assert r.status_code == 200, r.text
    assert json.loads(r.text)["choices"][0]["message"]["grounding"]["sizes"] == [[16, 16]]
    _still_serving(url)
