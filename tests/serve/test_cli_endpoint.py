"""``molmo2 ask|point|count|track|caption ... --endpoint URL``: the verbs against ``molmo2 serve`` on a local
port print exactly what the same verbs print with the model loaded here, write the same ``--out`` files, and
fail with a one-line message (exit status 2) on a wrong key, an unreachable server or a local-only option."""

from __future__ import annotations

import json

import pytest
from serve.helpers import live_server

from molmo2.cli import build_parser, main
from molmo2.serve import ChatHandler, ServeLimits, build_app

KEY = "cli-key"


@pytest.fixture(scope="module")
def url(pipe):
    with live_server(build_app(ChatHandler(pipe, "tiny", ServeLimits(max_new_tokens=64)), api_key=KEY)) as u:
        yield u


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_endpoint_prints_what_the_local_model_prints(url, tiny_ckpt, media_dir, capsys, tmp_path):
    a, b, clip = media_dir / "a.png", media_dir / "b.jpg", media_dir / "clip.mp4"
    cases = [["point", a, "dogs", "--json"], ["count", a, b, "dogs"], ["caption", a],
             ["track", clip, "the square", "--json", "--max-frames", "3"], ["ask", clip, "What?", "--max-fps", "1"]]
    for argv in cases:
        local = run(capsys, *argv, "--max-new-tokens", "6", "--model", tiny_ckpt)
        remote = run(capsys, *argv, "--max-new-tokens", "6", "--endpoint", url, "--api-key", KEY)
        assert local[0] == remote[0] == 0, (argv, remote[2])
        assert remote[1] == local[1], argv
    rc, _, err = run(capsys, "point", a, "dogs", "--endpoint", url, "--api-key", KEY, "--out", tmp_path / "o",
                     "--max-new-tokens", "6")
    assert rc == 0, err
    assert json.loads((tmp_path / "o" / "result.json").read_text())["sizes"] == [[90, 70]]
    assert (tmp_path / "o" / "viewer.html").exists() and (tmp_path / "o" / "annotated.png").exists()


def test_endpoint_errors_are_one_line(url, media_dir, capsys, monkeypatch):
    a, clip = media_dir / "a.png", media_dir / "clip.mp4"
    monkeypatch.delenv("MOLMO2_API_KEY", raising=False)
    for argv, message in [
        (["ask", a, "Hi", "--endpoint", url], "401"),
        (["ask", a, "Hi", "--endpoint", url, "--api-key", "nope"], "API key"),
        (["ask", a, "Hi", "--endpoint", url, "--api-key", KEY, "--model", "other"], "not served here"),
        (["ask", a, "Hi", "--endpoint", "http://127.0.0.1:9"], "could not reach"),
        (["point", clip, "x", "--endpoint", url, "--windows", "2:1"], "--windows need(s) the model here"),
    ]:
        rc, _, err = run(capsys, *argv)
        assert rc == 2 and message in err and "Traceback" not in err, (argv, err)
    monkeypatch.setenv("MOLMO2_API_KEY", KEY)
    assert run(capsys, "ask", a, "Hi", "--endpoint", url, "--max-new-tokens", "2")[0] == 0
    args = build_parser().parse_args(["ask", "x.png", "Hi", "--endpoint", "http://h:1", "--api-key", "k"])
    assert (args.endpoint, args.api_key, args.model) == ("http://h:1", "k", None)


def test_serve_binds_localhost_with_limits_by_default():
    args = build_parser().parse_args(["serve", "--model", "m"])
    assert (args.host, args.max_video_seconds, args.max_body_mb) == ("127.0.0.1", 3 * 3600.0, 64.0)
