"""The ``molmo2 ask|point|count|track|caption`` commands end to end on a tiny random checkpoint: ``--json``
output checked against the schema documented in ``molmo2.grounding.types``, ``--out`` files, and bad
input exiting with status 2 and a one-line message (no traceback)."""

from __future__ import annotations

import json

import pytest
from inference.conftest import media_dir, tiny_ckpt  # noqa: F401 (fixtures shared with tests/inference)

from molmo2.cli import main
from molmo2.grounding import GroundingResult

POINT_KEYS = {"x": (float,), "y": (float,), "t": (float, type(None)), "image": (int, type(None)),
              "object_id": (int, type(None)), "label": (str, type(None)), "alt": (str, type(None))}


def check_schema(d: dict) -> None:
    """The GroundingResult JSON schema (molmo2.grounding.types): every key present, types as documented."""
    assert set(d) == {"text", "sizes", "points", "tracks", "count", "errors"}
    assert isinstance(d["text"], str)
    assert all(len(s) == 2 and all(isinstance(v, (int, float)) for v in s) for s in d["sizes"])

    def check_point(p):
        assert set(p) == set(POINT_KEYS)
        for k, types in POINT_KEYS.items():
            assert isinstance(p[k], types), (k, p[k])

    for p in d["points"]:
        check_point(p)
    for t in d["tracks"]:
        assert set(t) == {"object_id", "label", "alt", "points"} and isinstance(t["object_id"], int)
        for p in t["points"]:
            check_point(p)
    assert set(d["count"]) == {"stated", "pointed"}
    assert d["count"]["stated"] is None or isinstance(d["count"]["stated"], int)
    assert isinstance(d["count"]["pointed"], int)
    assert all(isinstance(e, str) for e in d["errors"])
    GroundingResult.from_dict(d)  # and it reads back


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("kind", ["image", "images", "video"])
def test_every_verb_prints_schema_valid_json(tiny_ckpt, media_dir, kind, capsys):  # noqa: F811
    media = {"image": [media_dir / "a.png"], "images": [media_dir / "a.png", media_dir / "b.jpg"],
             "video": [media_dir / "clip.mp4"]}[kind]
    verbs = [("ask", "What is it?"), ("point", "dogs"), ("count", "dogs"), ("caption", None)]
    if kind == "video":
        verbs.append(("track", "the square"))
    for verb, text in verbs:
        argv = [verb, *media] + ([text] if text else []) + ["--model", tiny_ckpt, "--json", "--max-new-tokens", "5"]
        rc, out, err = run(capsys, *argv)
        assert rc == 0, err
        result = json.loads(out)
        check_schema(result)
        assert len(result["sizes"]) == (2 if kind == "images" else 1)


def test_text_output_and_out_dir(tiny_ckpt, media_dir, tmp_path, capsys):  # noqa: F811
    rc, out, err = run(capsys, "count", media_dir / "a.png", "dogs", "--model", tiny_ckpt, "--max-new-tokens", "5",
                       "--out", tmp_path / "o")
    assert rc == 0, err
    assert "count:" in err
    answer = json.loads((tmp_path / "o" / "answer.json").read_text())
    assert answer["text"] == out.strip() and answer["media"]["kind"] == "image"
    check_schema(json.loads((tmp_path / "o" / "result.json").read_text()))
    viz = pytest.importorskip("molmo2.viz")
    if hasattr(viz, "render"):
        assert (tmp_path / "o" / "annotated.png").is_file()
    if hasattr(viz, "write_viewer"):
        assert (tmp_path / "o" / "viewer.html").is_file()


def test_video_options_subtitles_and_slowfast(tiny_ckpt, media_dir, tmp_path, capsys):  # noqa: F811
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:01,000\nhello\n")
    rc, out, err = run(capsys, "ask", media_dir / "clip.mp4", "What is said?", "--model", tiny_ckpt,
                       "--max-new-tokens", "3", "--max-frames", "4", "--clip", "0.5:2.5", "--subtitles", srt,
                       "--slowfast", "2", "--out", tmp_path / "o")
    assert rc == 0, err
    answer = json.loads((tmp_path / "o" / "answer.json").read_text())
    assert answer["media"]["timestamps"][0] == 0.5 and len(answer["media"]["timestamps"]) == 4
    assert f"visual tokens: {answer['media']['num_visual_tokens']}" in err
    rc, out, err = run(capsys, "track", media_dir / "clip.mp4", "the square", "--model", tiny_ckpt, "--json",
                       "--max-new-tokens", "3", "--windows", "1:0.5")
    assert rc == 0, err
    check_schema(json.loads(out))


def test_bad_input_exits_2_with_a_message(tiny_ckpt, media_dir, tmp_path, capsys):  # noqa: F811
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    corrupt = tmp_path / "bad.mp4"
    corrupt.write_bytes(b"\x00" * 1000)
    img, video = media_dir / "a.png", media_dir / "clip.mp4"
    cases = [
        (["ask", tmp_path / "nope.png", "What?"], "not found"),
        (["ask", empty, "What?"], "empty"),
        (["ask", corrupt, "What?"], "could not read"),
        (["ask", video, "What?", "--max-frames", "0"], "max_frames must be a positive integer"),
        (["point", img, "x" * 10_000], "10000 characters"),
        (["ask", img, "x" * 10_000], "context"),
        (["track", img, "dogs"], "track needs a video"),
        (["ask", img, video, "What?"], "image set"),
        (["ask", video, "What?", "--subtitles", tmp_path / "none.srt"], "subtitle file not found"),
    ]
    for argv, message in cases:
        rc, out, err = run(capsys, *argv, "--model", tiny_ckpt)
        assert rc == 2, (argv[:2], err)
        assert message in err and "Traceback" not in err
        assert err.startswith(f"molmo2 {argv[0]}: error:")


def test_default_model_offline_says_how_to_get_it(media_dir, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    rc, _, err = run(capsys, "caption", media_dir / "a.png")
    assert rc == 2
    assert "huggingface-cli download allenai/Molmo2-4B" in err and "--model" in err
