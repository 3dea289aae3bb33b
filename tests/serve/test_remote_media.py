"""``http(s)`` media URLs, fetched by the server (``molmo2.serve.fetch``), against a real local web server
(``http.server`` in a thread): an image, a video and a redirect give the same answer as the same media sent as
data URLs; a huge file is refused (413) without being downloaded, with or without Content-Length; a 404, a
host that is down, a slow or trickling server (504), a redirect loop, a corrupt or too long video get their
status and a message naming the URL; loopback addresses are refused unless allowed; fetching does not block
the event loop; and the client passes URLs through for the server to fetch."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import threading
import time

import httpx
import pytest
from serve.helpers import live_server
from serve.test_abuse import write_long_video

from molmo2.serve import ChatHandler, ServeLimits, build_app
from molmo2.serve.client import RemoteModel

MB = 1 << 20
HUGE = 200 * MB


class _Origin(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), _Routes)
        self.files = files
        self.sent: dict[str, int] = {}  # bytes of a huge body written before the client hung up
        self.ended: dict[str, threading.Event] = {"/huge": threading.Event(), "/huge-chunked": threading.Event()}


class _Routes(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        origin: _Origin = self.server
        path = self.path
        if path in origin.files:
            body = origin.files[path]
            self._head(200, {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))})
            self.wfile.write(body)
        elif path.startswith("/redirect/"):  # /redirect/N/target: N hops, then target
            n, target = path[len("/redirect/"):].split("/", 1)
            location = f"/redirect/{int(n) - 1}/{target}" if int(n) > 1 else "/" + target
            self._head(302, {"Location": location, "Content-Length": "0"})
        elif path in ("/huge", "/huge-chunked"):
            declared = {"Content-Length": str(HUGE)} if path == "/huge" else {"Connection": "close"}
            self._head(200, {"Content-Type": "video/mp4", **declared})
            chunk, sent = b"\0" * (64 << 10), 0
            try:
                while sent < HUGE:
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:  # the client hung up
                pass
            finally:
                origin.sent[path] = sent
                origin.ended[path].set()
                self.close_connection = True
        elif path == "/slow":
            time.sleep(3)
            self._head(200, {"Content-Length": "0"})
        elif path == "/trickle":  # a byte every 0.1 s, forever (for 30 s)
            self._head(200, {"Content-Length": "300"})
            with contextlib.suppress(OSError):
                for _ in range(300):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.1)
        else:
            self._head(404, {"Content-Length": "9"})
            self.wfile.write(b"not found")

    def _head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()


@pytest.fixture(scope="module")
def origin(media_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("origin")
    files = {"/a.png": (media_dir / "a.png").read_bytes(), "/b.jpg": (media_dir / "b.jpg").read_bytes(),
             "/clip.mp4": (media_dir / "clip.mp4").read_bytes(),
             "/corrupt.mp4": b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100,
             "/ten_hours.mp4": write_long_video(tmp / "long.mp4", 10 * 3600).read_bytes(),
             "/empty.png": b""}
    server = _Origin(files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


LIMITS = dict(max_body_bytes=2 * MB, max_frames=3, max_new_tokens=16, fetch_timeout=1.0)


@pytest.fixture(scope="module")
def url(pipe):
    with live_server(build_app(ChatHandler(pipe, "tiny", ServeLimits(**LIMITS, allow_private_urls=True)))) as u:
        yield u


def _ask(url, media_url, kind="image", text="Point to the dogs.", **fields):
    part = {"type": f"{kind}_url", f"{kind}_url": {"url": media_url}}
    return httpx.post(url + "/v1/chat/completions", timeout=60, json={
        "max_tokens": 8, "messages": [{"role": "user", "content": [part, {"type": "text", "text": text}]}], **fields})


def _data_url(raw: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(raw).decode()}"


def _answer(r):
    assert r.status_code == 200, r.text
    body = r.json()
    return body["choices"][0], body["usage"]


def test_fetched_media_answer_like_data_urls(url, origin):
    server, base = origin
    cases = [("/a.png", "image", "image/png", {}), ("/b.jpg", "image", "image/jpeg", {}),
             ("/clip.mp4", "video", "video/mp4", {"max_frames": 2})]
    for path, kind, mime, fields in cases:
        want = _answer(_ask(url, _data_url(server.files[path], mime), kind, **fields))
        assert _answer(_ask(url, base + path, kind, **fields)) == want, path
    # redirects are followed (up to 3 hops)
    want = _answer(_ask(url, _data_url(server.files["/a.png"], "image/png")))
    assert _answer(_ask(url, f"{base}/redirect/3/a.png")) == want
    # an image set from two URLs, streamed
    r = httpx.post(url + "/v1/chat/completions", timeout=60, json={"max_tokens": 4, "stream": True, "messages": [
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": base + "/a.png"}},
                                     {"type": "image_url", "image_url": {"url": base + "/b.jpg"}},
                                     {"type": "text", "text": "Compare."}]}]})
    assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")
    last = json.loads(r.text.split("data: ")[-2])["choices"][0]["delta"]
    assert last["grounding"]["sizes"] == [[90, 70], [60, 40]]


def test_fetch_failures_get_their_status_and_name_the_url(url, origin):
    server, base = origin
    cases = [
        ("/missing.png", "image", 400, ["/missing.png", "404"]),
        ("http://127.0.0.1:9/a.png", "image", 400, ["127.0.0.1:9/a.png", "could not fetch"]),
        ("/slow", "image", 504, ["/slow", "longer than 1 s"]),
        ("/trickle", "image", 504, ["/trickle", "longer than 1 s"]),
        ("/redirect/4/a.png", "image", 400, ["redirected more than 3 times"]),
        ("/corrupt.mp4", "video", 400, []),
        ("/ten_hours.mp4", "video", 413, ["36060 s long"]),
        ("/clip.mp4", "image", 400, ["could not read the image_url as an image"]),
        ("/empty.png", "image", 400, ["empty"]),
    ]
    for path, kind, status, words in cases:
        r = _ask(url, path if path.startswith("http") else base + path, kind)
        assert r.status_code == status, (path, r.text)
        message = r.json()["error"]["message"]
        assert all(w in message for w in words), (path, message)
    r = httpx.get(url + "/metrics")
    assert 'status="500"' not in r.text


@pytest.mark.parametrize("path", ["/huge", "/huge-chunked"])
def test_huge_file_is_refused_without_being_downloaded(url, origin, path):
    server, base = origin
    r = _ask(url, base + path, "video")
    assert r.status_code == 413, r.text
    message = r.json()["error"]["message"]
    assert path in message and str(2 * MB) in message
    if path == "/huge":
        assert f"is {HUGE} bytes" in message  # refused from the Content-Length
    assert server.ended[path].wait(30), "the origin is still sending: the server kept reading"
    print(f"{path}: the origin wrote {server.sent[path] / MB:.1f} MB of {HUGE / MB:.0f} before the server hung up")
    assert server.sent[path] < HUGE // 4


def test_loopback_is_refused_unless_allowed_and_fetching_can_be_turned_off(pipe, origin):
    server, base = origin
    with live_server(build_app(ChatHandler(pipe, "tiny", ServeLimits(**LIMITS)))) as u:
        for media_url in (base + "/a.png", base.replace("127.0.0.1", "localhost") + "/a.png"):
            r = _ask(u, media_url)
            assert r.status_code == 403, r.text
            assert "--allow-private-media-urls" in r.json()["error"]["message"]
    with live_server(build_app(ChatHandler(pipe, "tiny", ServeLimits(**LIMITS, remote_media=False)))) as u:
        r = _ask(u, base + "/a.png")
        assert r.status_code == 400 and "--no-remote-media" in r.json()["error"]["message"]


def test_a_slow_fetch_does_not_block_the_event_loop(url, origin):
    server, base = origin
    result = {}
    t = threading.Thread(target=lambda: result.update(r=_ask(url, base + "/slow")))
    t.start()
    time.sleep(0.2)
    assert httpx.get(url + "/health", timeout=30).status_code == 200
    r = httpx.post(url + "/v1/chat/completions", timeout=60, json={"messages": [{"role": "user", "content": "Hi"}],
                                                                    "max_tokens": 2})
    assert r.status_code == 200
    assert t.is_alive(), "the slow fetch ended first: the loop may have waited for it"
    t.join(30)
    assert result["r"].status_code == 504


def test_client_passes_urls_through(url, origin, pipe, media_dir):
    server, base = origin
    with RemoteModel(url) as remote:
        for verb, media, local_media, args, options in [
            ("point", base + "/a.png", media_dir / "a.png", ("dogs",), {}),
            ("count", [base + "/a.png", base + "/b.jpg"], [media_dir / "a.png", media_dir / "b.jpg"], ("dogs",), {}),
            ("track", base + "/clip.mp4", media_dir / "clip.mp4", ("the square",), {"max_frames": 2}),
        ]:
            got = getattr(remote, verb)(media, *args, max_new_tokens=12, **options)
            want = getattr(pipe, verb)(local_media, *args, max_new_tokens=12, **options)
            assert got.text == want.text and got.grounding == want.grounding, verb
            assert got.media.sizes == [tuple(s) for s in want.media.sizes]
        pieces = []
        streamed = remote.ask(base + "/a.png", "What is it?", max_new_tokens=8, on_text=pieces.append)
        assert "".join(pieces) == streamed.text and streamed.grounding.sizes == [(90, 70)]
