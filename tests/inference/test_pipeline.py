"""The ``Molmo2`` pipeline end to end on a tiny random checkpoint: every verb on an image, an image set and
a video; the media cache (hits, exactness of the reused prompt prefix, invalidation, LRU bound); media
forms; subtitles; and bad input raising ``Molmo2Error`` with a message instead of a deep traceback."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

import molmo2
from molmo2.errors import MediaError, Molmo2Error
from molmo2.grounding import GroundingResult, Point, Track
from molmo2.inference.pipeline import Answer, CountAnswer, Molmo2, PointAnswer, TrackAnswer
from molmo2.processing.video import Video

N = 6  # new tokens per answer: enough to exercise decoding, cheap on the tiny model


@pytest.fixture(scope="module")
def pipe(tiny_ckpt):
    return Molmo2.from_pretrained(tiny_ckpt)


@pytest.fixture
def fresh(pipe):
    """The module's model with an empty cache (cache statistics start at zero)."""
    return Molmo2(pipe.model, pipe.processor)


def _media(media_dir, kind):
    return {"image": media_dir / "a.png", "images": [media_dir / "a.png", media_dir / "b.jpg"],
            "video": media_dir / "clip.mp4"}[kind]


CASES = [("ask", ("What is shown?",), Answer), ("point", ("dogs",), PointAnswer),
         ("count", ("dogs",), CountAnswer), ("caption", (), Answer)]


@pytest.mark.parametrize("kind", ["image", "images", "video"])
@pytest.mark.parametrize("verb,args,cls", CASES, ids=[c[0] for c in CASES])
def test_every_verb_on_every_media_kind(pipe, media_dir, kind, verb, args, cls):
    answer = getattr(pipe, verb)(_media(media_dir, kind), *args, max_new_tokens=N)
    assert type(answer) is cls
    assert isinstance(answer.text, str) and isinstance(answer.grounding, GroundingResult)
    assert answer.media.kind == kind and answer.num_new_tokens <= N
    assert answer.finish_reason in ("stop", "length")
    assert answer.grounding.text == answer.text
    if kind == "images":
        assert answer.media.sizes == [(90, 70), (60, 40)]
    elif kind == "video":
        assert answer.media.sizes == [(64, 48)] and answer.media.timestamps == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    else:
        assert answer.media.sizes == [(90, 70)]
    if cls is CountAnswer:
        assert isinstance(answer.count, int) and isinstance(answer.points, list)
    if cls is PointAnswer:
        assert all(isinstance(p, Point) for p in answer.points)
    assert answer.to_dict()["grounding"] == answer.grounding.to_dict()


def test_track_on_a_video_and_not_on_an_image(pipe, media_dir):
    answer = pipe.track(media_dir / "clip.mp4", "the red square", max_new_tokens=N)
    assert type(answer) is TrackAnswer and all(isinstance(t, Track) for t in answer.tracks)
    with pytest.raises(MediaError, match="track needs a video"):
        pipe.track(media_dir / "a.png", "dogs")


def test_chat_multi_turn(pipe, media_dir):
    first = pipe.ask(media_dir / "a.png", "What is this?", max_new_tokens=N)
    answer = pipe.chat([{"role": "user", "content": "What is this?"},
                        {"role": "assistant", "content": first.text or "A picture."},
                        {"role": "user", "content": "What colour is it?"}], media=media_dir / "a.png", max_new_tokens=N)
    assert answer.prompt == "What colour is it?" and answer.cached
    assert answer.num_prompt_tokens > first.num_prompt_tokens
    text_only = pipe.chat([{"role": "user", "content": "Hello"}], max_new_tokens=N)
    assert text_only.media.kind == "none" and text_only.grounding.points == []


# ----------------------------------------------------------------------------------------- the cache


def test_second_question_reuses_the_video_and_matches_an_uncached_run(fresh, media_dir):
    video = media_dir / "clip.mp4"
    uncached = Molmo2(fresh.model, fresh.processor, cache_size=0)
    questions = ["What happens?", "Where is the red square at the end of the video?", "Why?"]
    for k, q in enumerate(questions):
        a = fresh.ask(video, q, max_new_tokens=12)
        b = uncached.ask(video, q, max_new_tokens=12)
        assert a.cached == (k > 0) and not b.cached
        assert a.text == b.text  # the reused prefix KV cache is exact
        if k:
            assert a.timings["media"] == 0 and a.timings["vision"] == 0
    assert fresh.cache_info().hits == 2 and fresh.cache_info().misses == 1
    # a longer answer than the prefix cache was sized for grows it, still exact
    a = fresh.count(video, "squares", max_new_tokens=40)
    b = uncached.count(video, "squares", max_new_tokens=40)
    assert a.text == b.text and a.cached


def test_prefix_reuse_is_exact_in_logits(fresh, media_dir):
    """Stronger than equal greedy text: the first answer token's logits match to float error."""
    import torch

    from molmo2.inference.generate import prefill_cache
    from molmo2.model import VisualInputs

    proc, model = fresh.processor, fresh.model
    prompt = proc.render([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi there"}]}])
    enc = proc.encode(prompt, [media_dir / "a.png"])
    ids = enc.input_ids.tolist()
    P = max(i for i, t in enumerate(ids) if t in set(model.cfg.visual_token_ids)) + 1
    with torch.inference_mode():
        full = model(enc.input_ids[None], visual=VisualInputs(enc.pixel_values, enc.pooling))[:, -1]
        feats = model.encode_visual(VisualInputs(enc.pixel_values, enc.pooling))
        cache = prefill_cache(model, enc.input_ids[None, :P], feats, max_len=len(ids))
        split = model(enc.input_ids[None, P:], cache=cache)[:, -1]
    torch.testing.assert_close(split, full, rtol=1e-4, atol=1e-5)


def test_cache_key_follows_video_options_and_file_changes(fresh, media_dir, tmp_path):
    video = media_dir / "clip.mp4"
    fresh.ask(video, "What?", max_new_tokens=2)
    assert fresh.ask(video, "What?", max_new_tokens=2, max_frames=3).media.timestamps == [0.0, 1.25, 2.5]
    clipped = fresh.ask(video, "What?", max_new_tokens=2, clip=(1.0, 2.0))
    assert clipped.media.timestamps == [1.0, 1.5, 2.0]  # on the video's timeline
    assert fresh.cache_info().misses == 3
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(img)
    fresh.ask(img, "What?", max_new_tokens=2)
    Image.fromarray(np.full((30, 40, 3), 9, np.uint8)).save(img)
    os.utime(img, ns=(1, 1))  # a new mtime even on coarse clocks
    assert fresh.ask(img, "What?", max_new_tokens=2).media.sizes == [(40, 30)]
    assert fresh.cache_info().size == 4  # LRU bound (default 4 entries)


def test_cache_is_bounded(pipe, media_dir):
    small = Molmo2(pipe.model, pipe.processor, cache_size=2)
    for m in ("a.png", "b.jpg", "clip.mp4"):
        small.ask(media_dir / m, "What?", max_new_tokens=1)
    assert small.cache_info().size == 2
    assert not small.ask(media_dir / "a.png", "What?", max_new_tokens=1).cached  # evicted first
    off = Molmo2(pipe.model, pipe.processor, cache_size=0)
    off.ask(media_dir / "a.png", "What?", max_new_tokens=1)
    assert off.cache_info().size == 0


# --------------------------------------------------------------------------------------- media forms


def test_media_forms(fresh, media_dir):
    path = media_dir / "a.png"
    arr = np.array(Image.open(path))
    by_path = fresh.point(path, "dogs", max_new_tokens=N)
    for form in (arr, Image.open(path), path.read_bytes(), str(path)):
        answer = fresh.point(form, "dogs", max_new_tokens=N)
        assert answer.text == by_path.text and answer.media.sizes == [(90, 70)]
    video_bytes = (media_dir / "clip.mp4").read_bytes()
    assert fresh.ask(video_bytes, "What?", max_new_tokens=2).media.kind == "video"
    frames = np.stack([np.full((48, 64, 3), 20 * i, np.uint8) for i in range(5)])
    times = [0.0, 0.5, 1.0, 1.5, 2.0]
    pair = fresh.ask((frames, times), "What?", max_new_tokens=2)
    assert pair.media.kind == "video" and pair.media.timestamps == times
    assert fresh.ask(Video.from_frames(frames, timestamps=times), "What?", max_new_tokens=2).cached
    assert fresh.ask((frames, times), "What?", max_new_tokens=2, max_frames=2).media.timestamps == [0.0, 2.0]


def test_grounded_answers_are_parsed_in_pixels_and_video_time(fresh, media_dir, monkeypatch):
    """The verbs' results come from parse() with the right sizes; clip times go back on the timeline."""
    texts = iter(['Counting the <points coords="1 1 500 500 2 100 200">dogs</points> shows a total of 2.',
                  '<points coords="2 1 500 500">dogs</points>',
                  '<tracks coords="0.0 1 500 500;0.5 1 600 500">square</tracks>'])
    monkeypatch.setattr(fresh.processor, "decode", lambda ids, skip_special_tokens=True: next(texts))
    count = fresh.count(media_dir / "a.png", "dogs", max_new_tokens=1)
    assert count.count == 2 and (count.points[0].x, count.points[0].y) == (45.0, 35.0)
    pts = fresh.point([media_dir / "a.png", media_dir / "b.jpg"], "dogs", max_new_tokens=1).points
    assert (pts[0].image, pts[0].x, pts[0].y) == (1, 30.0, 20.0)
    track = fresh.track(media_dir / "clip.mp4", "square", max_new_tokens=1, clip=(1.0, 2.5)).tracks[0]
    assert [p.t for p in track.points] == [1.0, 1.5] and track.points[1].x == pytest.approx(38.4)


def test_progress_reports_each_stage(pipe, media_dir):
    seen = []
    p = Molmo2(pipe.model, pipe.processor, progress=lambda stage, done, total: seen.append((stage, done, total)))
    p.ask(media_dir / "clip.mp4", "What?", max_new_tokens=3)
    stages = {s for s, _, _ in seen}
    assert {"decode", "encode", "generate"} <= stages
    assert ("encode", 6, 6) in seen and seen[-1] == ("generate", 3, 3)


# ------------------------------------------------------------------------------------------ subtitles


def test_subtitles_follow_the_video_in_the_prompt(fresh, media_dir, tmp_path, monkeypatch):
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:00,500 --> 00:00:01,200\n<i>hello</i> there\n\n"
                   "2\n00:00:09,000 --> 00:00:10,000\nfar away\n")
    rendered = []
    render = fresh.processor.render
    monkeypatch.setattr(fresh.processor, "render", lambda msgs, *a: rendered.append(render(msgs, *a)) or rendered[-1])
    fresh.ask(media_dir / "clip.mp4", "What is said?", subtitles=srt, max_new_tokens=2)
    assert rendered[-1].startswith("<|video|>subtitle\n0.5 - 1.2 hello there\n<|im_start|>user\nWhat is said?")
    fresh.ask(media_dir / "clip.mp4", "What is said?", subtitles=[(1.8, 2.2, "late")], clip=(1.5, 2.5),
              max_new_tokens=2)
    assert rendered[-1].startswith("<|video|>subtitle\n0.3 - 0.7 late\n<|im_start|>user")  # clip-relative
    with pytest.raises(MediaError, match="subtitles go with a video"):
        fresh.ask(media_dir / "a.png", "What?", subtitles=srt)


def test_embedded_subtitle_stream(fresh, media_dir, tmp_path, monkeypatch):
    av = pytest.importorskip("av")
    srt = tmp_path / "s.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:01,500\nembedded words\n")
    mkv = tmp_path / "sub.mkv"
    with av.open(str(srt)) as src, av.open(str(mkv), "w") as out:
        vs = out.add_stream("mpeg4", rate=10)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        ss = out.add_stream_from_template(src.streams.subtitles[0])
        for i in range(20):
            for packet in vs.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i, np.uint8), format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        for packet in src.demux(src.streams.subtitles[0]):
            if packet.size:
                packet.stream = ss
                out.mux(packet)
    rendered = []
    render = fresh.processor.render
    monkeypatch.setattr(fresh.processor, "render", lambda msgs, *a: rendered.append(render(msgs, *a)) or rendered[-1])
    fresh.ask(mkv, "What is said?", subtitles="embedded", max_new_tokens=2)
    assert "subtitle\n1.0 - 1.5 embedded words\n" in rendered[-1]
    with pytest.raises(MediaError, match="no text subtitle stream"):
        fresh.ask(media_dir / "clip.mp4", "What?", subtitles="embedded")


# ---------------------------------------------------------------------------------------- bad input


def test_bad_input_is_a_clear_error(pipe, media_dir, tmp_path):
    corrupt = tmp_path / "bad.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    empty_video = tmp_path / "empty.mp4"
    empty_video.write_bytes(b"")
    garbage_video = tmp_path / "garbage.mp4"
    garbage_video.write_bytes(b"\x00" * 1000)
    img, video = media_dir / "a.png", media_dir / "clip.mp4"
    cases = [
        (lambda: pipe.ask(tmp_path / "missing.png", "What?"), "not found"),
        (lambda: pipe.ask(corrupt, "What?"), "could not decode"),
        (lambda: pipe.ask(empty_video, "What?"), "empty"),
        (lambda: pipe.ask(garbage_video, "What?"), "could not read"),
        (lambda: pipe.ask(b"", "What?"), "empty"),
        (lambda: pipe.ask(12, "What?"), "unsupported media"),
        (lambda: pipe.ask([], "What?"), "image list is empty"),
        (lambda: pipe.ask([img, video], "What?"), "image set holds images only"),
        (lambda: pipe.ask(np.zeros((2, 4, 4, 3), np.uint8), "What?"), "timestamps"),
        (lambda: pipe.ask(video, "What?", max_frames=0), "max_frames must be a positive integer"),
        (lambda: pipe.ask(video, "What?", max_fps=-1), "max_fps"),
        (lambda: pipe.ask(video, "What?", clip=(3, 1)), "clip"),
        (lambda: pipe.ask(video, "What?", clip=(30, 40)), "only 2.5"),
        (lambda: pipe.ask(img, "What?", max_frames=4), "apply to videos; this media is not one"),
        (lambda: pipe.point(img, "dogs " * 2000), "10000 characters"),
        (lambda: pipe.ask(img, "x" * 10_000), "context of 8192 tokens"),
        (lambda: pipe.ask(img, ""), "empty"),
        (lambda: pipe.ask(img, "What is <|image|> here?"), "special token"),
        (lambda: pipe.ask(img, "What?", max_new_tokens=0), "max_new_tokens"),
        (lambda: pipe.chat([{"role": "assistant", "content": "hi"}]), "expected 'user'"),
        (lambda: pipe.chat([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]), "last message"),
        (lambda: pipe.ask(video, "What?", subtitles=tmp_path / "none.srt"), "subtitle file not found"),
    ]
    for call, message in cases:
        with pytest.raises(Molmo2Error, match=message):
            call()


def test_import_molmo2_exports_the_pipeline_lazily():
    assert molmo2.Molmo2 is Molmo2
    assert "Molmo2" in molmo2.__all__
    with pytest.raises(AttributeError):
        molmo2.NoSuchThing  # noqa: B018


def test_slowfast_fewer_visual_tokens(fresh, media_dir):
    video = media_dir / "clip.mp4"
    full = fresh.ask(video, "What?", max_new_tokens=2)
    fast = fresh.ask(video, "What?", max_new_tokens=2, slowfast=3)
    # tiny model: 4x4 patches per frame; slow 3x3 pooling -> 2x2 tokens, fast 9x9 -> 1 token
    assert full.media.num_visual_tokens == 6 * 4
    assert fast.media.num_visual_tokens == 2 * 4 + 4 * 1
    assert fast.num_prompt_tokens == full.num_prompt_tokens - 4 * 3
    assert not fast.cached  # a different token layout is a different cache entry
    with pytest.raises(MediaError, match="slowfast must be a positive integer"):
        fresh.ask(video, "What?", slowfast=0)
    with pytest.raises(MediaError, match="not one"):
        fresh.ask(media_dir / "a.png", "What?", slowfast=2)


def test_max_new_tokens_is_an_upper_bound_fitted_to_the_context(pipe, media_dir, monkeypatch):
    """A budget past the context end generates up to the end; a prompt that fills the context is an error."""
    limit = pipe.model.cfg.text.max_position_embeddings
    seen = {}

    class Stop(Exception):
        pass

    def spy(self, entry, ids, params, *a, **k):  # record the budget, skip the (long) generation
        seen["budget"], seen["prompt"] = params.max_new_tokens, len(ids)
        raise Stop

    monkeypatch.setattr(type(pipe), "_generate_with_prefix", spy)
    with pytest.raises(Stop):
        pipe.ask(media_dir / "a.png", "What is this?", max_new_tokens=10 * limit)
    assert seen["prompt"] + seen["budget"] == limit
    with pytest.raises(Molmo2Error, match="context"):
        pipe.ask(media_dir / "a.png", "word " * limit, max_new_tokens=1)


def test_decode_layout_can_be_turned_off(pipe, tiny_ckpt, media_dir):
    """``decode_layout=False`` keeps the decoder's weights row-major (torch's own product); same answers."""
    plain = Molmo2.from_pretrained(tiny_ckpt, decode_layout=False)
    w, w_plain = pipe.model.text.blocks[0].up_gate.weight, plain.model.text.blocks[0].up_gate.weight
    assert w.stride() == (1, w.shape[0]) and w_plain.is_contiguous()
    a = pipe.ask(media_dir / "a.png", "What is shown?", max_new_tokens=N)
    b = plain.ask(media_dir / "a.png", "What is shown?", max_new_tokens=N)
    assert a.text == b.text
