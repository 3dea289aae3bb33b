"""Video sampling (model.md §6.4, written out by hand) and selective decoding on clips made here.

Every generated frame shows its own index in binary as 8 black/white stripes, so a test can read back
which frame the decoder returned. Clips are tiny (160x120) and take ~0.1 s to encode.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from molmo2.errors import MediaError
from molmo2.processing import video as V

av = pytest.importorskip("av")

W, H, FPS = 160, 120, 10


def _stripes(i: int) -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    for b in range(8):
        if (i >> b) & 1:
            img[:, b * W // 8 : (b + 1) * W // 8] = 255
    return img


def read_indices(frames: np.ndarray) -> list[int]:
    """Inverse of ``_stripes`` for each frame of ``[T, H, W, 3]``."""
    w = frames.shape[2]
    return [sum(int(f[:, b * w // 8 : (b + 1) * w // 8].mean() > 127) << b for b in range(8)) for f in frames]


def make_clip(path: Path, num_frames: int, gop: int, codec: str = "libx264") -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.gop_size = gop  # libx264 also uses B-frames: pts order != decode order
        for i in range(num_frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_stripes(i), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def expected_indices(times, num_frames: int, fps: float = FPS) -> list[int]:
    """The frame on screen at t: t clipped inside the video, then the last frame starting at or before it."""
    t = np.clip(np.asarray(times, float), 1e-6, num_frames / fps - 1e-6)
    return np.minimum(np.floor(t * fps + 1e-6), num_frames - 1).astype(int).tolist()


def decode_all(path: Path, times) -> np.ndarray:
    """Brute-force reference: decode every frame, pick the last one with pts <= t."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        decoded = [(f.pts * float(s.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(s)]
    pts = np.array([p for p, _ in decoded])
    t = np.clip(np.asarray(times, float), 1e-6, V.probe_video(path).duration - 1e-6)
    k = np.maximum(np.searchsorted(pts, t + 1e-9, side="right") - 1, 0)
    return np.stack([decoded[i][1] for i in k])


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("video")
    return {
        "mp4": make_clip(d / "short.mp4", 40, gop=12),  # 4 s, H.264 with B-frames, full sample index
        "mkv": make_clip(d / "short.mkv", 40, gop=12, codec="mpeg4"),  # no usable index: blind seeking
        "long": make_clip(d / "long.mp4", 200, gop=10),  # 20 s
        "long_mkv": make_clip(d / "long.mkv", 200, gop=10, codec="mpeg4"),
    }


# ---------------------------------------------------------------------------------------------------
# sample_times: the uniform_last_frame rule, max_fps = 2
# ---------------------------------------------------------------------------------------------------

HALF_SECONDS = [i * 0.5 for i in range(200)]


@pytest.mark.parametrize("n", [128, 384])
@pytest.mark.parametrize(
    "duration, expected",
    [
        (0.1, [0.0, 0.1]),
        (2.0, [0.0, 0.5, 1.0, 1.5, 2.0]),
        (10.0, HALF_SECONDS[:20] + [10.0]),  # 0, 0.5, ..., 9.5, then the end: 21 frames
        (63.4, HALF_SECONDS[:127] + [63.4]),  # 63.4 <= 63.5: still 2 fps, 128 frames for N=128
    ],
)
def test_sample_times_two_fps_plus_last_instant(duration, expected, n):
    np.testing.assert_allclose(V.sample_times(duration, n), expected, rtol=0, atol=1e-12)


def test_sample_times_64s_straddles_the_n128_threshold():
    # N=128: 64 > 127/2 = 63.5 -> 128 instants evenly over [0, 64], both ends included.
    t = V.sample_times(64.0, 128)
    assert len(t) == 128 and t[0] == 0.0 and t[-1] == 64.0
    np.testing.assert_allclose(np.diff(t), 64 / 127, rtol=1e-12)
    # N=384: 64 <= 191.5 -> 0, 0.5, ..., 63.5 then 64.0: 129 instants.
    np.testing.assert_allclose(V.sample_times(64.0, 384), HALF_SECONDS[:128] + [64.0], atol=1e-12)


@pytest.mark.parametrize("n", [128, 384])
def test_sample_times_long_video_is_uniform(n):
    t = V.sample_times(600.0, n)
    assert len(t) == n and t[0] == 0.0 and t[-1] == 600.0
    np.testing.assert_allclose(np.diff(t), 600 / (n - 1), rtol=1e-12)


def test_sample_times_threshold_is_continuous():
    # At exactly D = (N-1)/2 the 2 fps branch applies and already gives N frames ending at D.
    np.testing.assert_allclose(V.sample_times(63.5, 128), HALF_SECONDS[:128], atol=1e-12)


def test_sample_times_duplicates():
    # Like the official code, a grid instant just below the end is kept: two instants, maybe one frame.
    assert V.sample_times(10.01)[-3:].tolist() == [9.5, 10.0, 10.01]
    # A grid instant equal to the end up to float error is not doubled (steps not exact in binary).
    np.testing.assert_allclose(V.sample_times(1.0, max_fps=3.0), [0, 1 / 3, 2 / 3, 1.0])
    rng = np.random.default_rng(0)
    for duration, max_fps, n in zip(rng.uniform(0, 100, 300), rng.choice([0.5, 1, 2, 3, 7, 10], 300),
                                    rng.integers(2, 400, 300)):
        t = V.sample_times(duration, int(n), float(max_fps))
        assert t[0] == 0.0 and t[-1] == pytest.approx(duration) and len(t) <= n
        assert np.all(np.diff(t) > 0), (duration, max_fps, n)


def test_sample_times_edge_cases():
    assert V.sample_times(0.0).tolist() == [0.0]
    assert V.sample_times(-3.0).tolist() == [0.0]
    assert V.sample_times(5.0, max_frames=1).tolist() == [0.0]
    with pytest.raises(MediaError, match="max_frames must be a positive integer"):
        V.sample_times(5.0, max_frames=0)
    with pytest.raises(MediaError, match="max_fps"):
        V.sample_times(5.0, max_fps=0)
    with pytest.raises(MediaError, match="finite"):
        V.sample_times(float("nan"))


# ---------------------------------------------------------------------------------------------------
# sample_frame_indices: the same rule on already-decoded frames
# ---------------------------------------------------------------------------------------------------


def test_sample_frame_indices():
    assert V.sample_frame_indices(1, 30.0, 384).tolist() == [0]
    assert V.sample_frame_indices(2, 30.0, 384).tolist() == [0, 1]
    # 10 s at 30 fps: every 15th frame, then the last one.
    assert V.sample_frame_indices(300, 30.0, 384).tolist() == list(range(0, 286, 15)) + [299]
    # 100 s at 30 fps with N=128 (100 > 63.5): 128 indices evenly over [0, 2999], truncated.
    np.testing.assert_array_equal(V.sample_frame_indices(3000, 30.0, 128),
                                  np.linspace(0, 2999, 128).astype(int))
    # 25 fps: grid 0, 12.5, 25, 37.5 rounds half-to-even to 0, 12, 25, 38 = the last frame: not added twice.
    assert V.sample_frame_indices(39, 25.0, 384).tolist() == [0, 12, 25, 38]
    # Slower than max_fps: the official rule repeats frames (step 0.5 frame).
    assert V.sample_frame_indices(5, 1.0, 384).tolist() == [0, 0, 1, 2, 2, 2, 3, 4]
    # More frames than N but short: linspace over min(N, total).
    assert V.sample_frame_indices(10, 1.0, 4).tolist() == [0, 3, 6, 9]


def test_sample_frame_indices_errors():
    with pytest.raises(MediaError, match="at least one frame"):
        V.sample_frame_indices(0, 30.0, 384)
    with pytest.raises(MediaError, match="fps must be a positive"):
        V.sample_frame_indices(10, 0.0, 384)
    with pytest.raises(MediaError, match="max_frames"):
        V.sample_frame_indices(10, 30.0, 0)


# ---------------------------------------------------------------------------------------------------
# Probing and decoding
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, num", [("mp4", 40), ("mkv", 40), ("long", 200)])
def test_probe_video(clips, kind, num):
    assert V.probe_video(clips[kind]) == V.VideoMetadata(num / FPS, FPS, num, W, H, 0.0)


@pytest.mark.parametrize("kind", ["mp4", "mkv"])
def test_decode_returns_the_frame_on_screen(clips, kind):
    boundaries = [k / FPS for k in range(41)]  # exactly at a frame's pts
    just_before = [k / FPS - 1e-4 for k in range(1, 41)]
    outside = [-1.0, 0.0, 4.0, 4.05, 100.0]
    times = np.array(boundaries + just_before + outside)
    times = np.concatenate([times, times[::-3]])  # unsorted, with repeats
    frames = V.decode_frames_at(clips[kind], times)
    assert frames.shape == (len(times), H, W, 3) and frames.dtype == np.uint8
    assert read_indices(frames) == expected_indices(times, 40)


@pytest.mark.parametrize("threads", [False, True])
@pytest.mark.parametrize("kind", ["long", "long_mkv"])
def test_decode_matches_decoding_everything(clips, kind, threads, monkeypatch):
    # Frame threading (used on >2 cores) must not change which frames are dropped or returned.
    monkeypatch.setattr(V, "_MIN_CPUS_FOR_THREADS", 1 if threads else 10**6)
    rng = np.random.default_rng(1)
    for times in (rng.uniform(-1, 21, 25), np.sort(rng.uniform(0, 20, 6)), V.sample_times(20.0, 7)):
        got, stats = V._decode_with_stats(clips[kind], times)
        np.testing.assert_array_equal(got, decode_all(clips[kind], times))
        if kind == "long":  # with a keyframe index every seek goes forward: no frame is decoded twice
            assert stats.num_decoded <= 200, stats
        assert read_indices(got) == expected_indices(times, 200)


def test_selective_decoding_skips_most_frames(clips):
    times = V.sample_times(20.0, 5)  # 0, 5, 10, 15, 20 over 200 frames
    frames, stats = V._decode_with_stats(clips["long"], times)
    assert read_indices(frames) == [0, 50, 100, 150, 199]
    assert stats.num_seeks >= 3 and stats.num_decoded < 60, stats
    assert stats.num_converted == 5


def test_seek_that_lands_after_the_instant_backs_off(clips, monkeypatch):
    # Some demuxers land a seek on a keyframe after the requested instant; simulate one that is 1.5 s
    # late on its first seek. The decoder must notice (first frame > instant) and seek further back.
    real_frames, late = V._SelectiveDecoder.frames, [True]

    def late_frames(self, seek_to):
        if seek_to is not None and late[0]:
            late[0] = False
            seek_to += 1.5
        return real_frames(self, seek_to)

    monkeypatch.setattr(V._SelectiveDecoder, "frames", late_frames)
    frames, stats = V._decode_with_stats(clips["long"], [12.05, 12.3])
    assert read_indices(frames) == [120, 123]
    assert stats.num_seeks >= 2


def test_no_instants(clips):
    assert V.decode_frames_at(clips["mp4"], []).shape == (0, H, W, 3)


def test_close_instants_share_one_frame(clips):
    frames, stats = V._decode_with_stats(clips["mp4"], [1.0, 1.01, 1.05, 1.099])
    assert read_indices(frames) == [10, 10, 10, 10]
    assert stats.num_converted == 1


def test_load_video(clips):
    video = V.load_video(clips["mp4"])
    np.testing.assert_allclose(video.timestamps, [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4.0])
    assert read_indices(video.frames) == [0, 5, 10, 15, 20, 25, 30, 35, 39]
    assert video.time_offset == 0.0 and video.num_frames == 9
    assert video.metadata == V.probe_video(clips["mp4"])
    from_bytes = V.load_video(clips["mp4"].read_bytes())
    np.testing.assert_array_equal(from_bytes.frames, video.frames)
    assert read_indices(V.load_video(clips["long"], max_frames=3).frames) == [0, 100, 199]


@pytest.mark.parametrize("kind", ["long", "long_mkv"])
def test_load_video_resized_while_decoding_gives_the_same_patches(clips, kind):
    import torch

    from molmo2.processing.image import ImageSettings, frames_to_patches

    s = ImageSettings()
    full = V.load_video(clips[kind], clip=(2.0, 9.0))
    small = V.load_video(clips[kind], clip=(2.0, 9.0), resize_to=s.crop_size)
    assert small.frames.shape == (full.num_frames, s.crop_size, s.crop_size, 3)
    assert small.size == full.size == (W, H) and full.source_size is None
    np.testing.assert_array_equal(small.timestamps, full.timestamps)
    assert torch.equal(frames_to_patches(small.frames, s).patches, frames_to_patches(full.frames, s).patches)
    for bad in (0, -3, 1.5, True):
        with pytest.raises(MediaError, match="resize_to must be"):
            V.load_video(clips[kind], resize_to=bad)


def test_load_video_clip(clips):
    # Timestamps restart at 0 inside the clip, as in the official loader; time_offset maps them back.
    video = V.load_video(clips["long"], clip=(3.0, 7.3))
    np.testing.assert_allclose(video.timestamps, HALF_SECONDS[:9] + [4.3])
    np.testing.assert_allclose(video.absolute_timestamps, 3.0 + np.array(HALF_SECONDS[:9] + [4.3]))
    assert video.time_offset == 3.0
    assert read_indices(video.frames) == [30, 35, 40, 45, 50, 55, 60, 65, 70, 73]
    tail = V.load_video(clips["long"], clip=(18.0, 100.0))  # the end is cut to the video's end
    np.testing.assert_allclose(tail.timestamps, [0, 0.5, 1, 1.5, 2])
    assert read_indices(tail.frames) == [180, 185, 190, 195, 199]
    for bad in [(5.0, 5.0), (-1.0, 2.0), (3.0, 1.0), (1.0,), (float("nan"), 2.0)]:
        with pytest.raises(MediaError, match="clip must be"):
            V.load_video(clips["long"], clip=bad)
    with pytest.raises(MediaError, match="only 20.000 s long"):
        V.load_video(clips["long"], clip=(25.0, 30.0))


# ---------------------------------------------------------------------------------------------------
# Display rotation (phone videos): frames come out as players show them
# ---------------------------------------------------------------------------------------------------

# Where the coded frame's top-left (red) and top-right (green) blocks are shown, for each display matrix
# angle (counter-clockwise degrees, what set_display_rotation takes and ffmpeg prints as "displaymatrix:
# rotation of ... degrees"); read off ffmpeg 7.0's own output (autorotate) for such files. -90 is a phone's
# portrait video (the old rotate=90 tag: turn 90 clockwise); 270 is stored as -90.
SHOWN_CORNERS = {
    None: ("top-left", "top-right"),
    0: ("top-left", "top-right"),
    90: ("bottom-left", "top-left"),
    -90: ("top-right", "bottom-right"),
    270: ("top-right", "bottom-right"),
    180: ("bottom-right", "bottom-left"),
}


def _corner_blocks() -> np.ndarray:
    img = np.full((H, W, 3), 60, np.uint8)
    img[:30, :30] = (255, 0, 0)
    img[:20, -20:] = (0, 255, 0)
    return img


def make_rotated_clip(path: Path, degrees: int | None, num_frames: int = 10) -> Path:
    """A 1 s clip of ``_corner_blocks`` whose container says "turn by ``degrees``" (None: no display matrix)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        if degrees is not None:
            stream.set_display_rotation(degrees)  # the track matrix (tkhd) of mp4/mov, as phones write it
        for _ in range(num_frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(_corner_blocks(), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def corners(frame_HW3: np.ndarray) -> tuple[str, str]:
    """The corners of ``frame`` the red and the green block are in."""
    h, w = frame_HW3.shape[:2]
    r, g, b = (frame_HW3[..., c].astype(int) for c in range(3))
    found = []
    for mask in ((r > 150) & (g < 100) & (b < 100), (g > 150) & (r < 100) & (b < 100)):
        ys, xs = np.nonzero(mask)
        assert len(ys), "block not found"
        found.append(("top" if ys.mean() < h / 2 else "bottom") + "-" + ("left" if xs.mean() < w / 2 else "right"))
    return tuple(found)


@pytest.fixture(scope="module")
def rotated(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("rotated")
    clips = {deg: make_rotated_clip(d / f"rot{deg}.mp4", deg) for deg in SHOWN_CORNERS}
    clips["mov"] = make_rotated_clip(d / "rot-90.mov", -90)
    return clips


@pytest.mark.parametrize("degrees, read_back", [(None, 0), (0, 0), (90, 90), (-90, -90), (270, -90), (180, 180)])
def test_rotated_clips_carry_a_display_matrix(rotated, degrees, read_back):
    # the fixture itself: PyAV reads back the angle written, on the decoded frames, at the coded size
    with av.open(str(rotated[degrees])) as c:
        frame = next(c.decode(video=0))
        assert frame.rotation % 360 == read_back % 360  # 180 reads back as -180
        assert (frame.width, frame.height) == (W, H)
        assert corners(frame.to_ndarray(format="rgb24")) == ("top-left", "top-right")


@pytest.mark.parametrize("degrees", list(SHOWN_CORNERS))
def test_load_video_is_upright(rotated, degrees):
    video = V.load_video(rotated[degrees])
    shown = (H, W) if degrees in (90, -90, 270) else (W, H)  # (width, height) on screen
    assert video.frames.shape == (video.num_frames, shown[1], shown[0], 3)
    assert all(corners(f) == SHOWN_CORNERS[degrees] for f in video.frames)
    assert video.size == shown == (video.metadata.width, video.metadata.height)
    assert video.metadata.rotation == {90: 90, 180: 180}.get(degrees, 270 if degrees in (-90, 270) else 0)
    assert V.probe_video(rotated[degrees]) == video.metadata
    coded = V.probe_video(rotated[degrees], upright=False)  # nothing decoded: the coded size
    assert (coded.width, coded.height, coded.rotation) == (W, H, 0)


def test_unrotated_video_is_unchanged(rotated):
    # no display matrix and an explicit 0: the frames are the decoder's, byte for byte
    for degrees in (None, 0):
        frames = V.decode_frames_at(rotated[degrees], [0.0, 0.5])
        np.testing.assert_array_equal(frames, decode_all(rotated[degrees], [0.0, 0.5]))


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotated_frames_are_the_decoded_frames_turned(rotated, degrees):
    turned = np.rot90(decode_all(rotated[degrees], [0.3]), {90: 1, -90: 3, 180: 2}[degrees], axes=(1, 2))
    np.testing.assert_array_equal(V.decode_frames_at(rotated[degrees], [0.3]), turned)
    empty = V.decode_frames_at(rotated[degrees], [])  # no instants: still the displayed size
    assert empty.shape == (0, *turned.shape[1:])


def test_rotated_mov(rotated):
    video = V.load_video(rotated["mov"])
    assert video.size == (H, W) and corners(video.frames[0]) == SHOWN_CORNERS[-90]


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotated_and_resized_while_decoding_gives_the_same_patches(rotated, degrees):
    import torch

    from molmo2.processing.image import ImageSettings, frames_to_patches

    s = ImageSettings()
    full = V.load_video(rotated[degrees])
    small = V.load_video(rotated[degrees], resize_to=s.crop_size)
    assert small.size == full.size and small.metadata == full.metadata
    assert all(corners(f) == SHOWN_CORNERS[degrees] for f in small.frames)
    assert torch.equal(frames_to_patches(small.frames, s).patches, frames_to_patches(full.frames, s).patches)


def test_display_quarter_turns():
    from types import SimpleNamespace

    # PyAV's VideoFrame.rotation: counter-clockwise degrees in [-180, 180], truncated to an int
    for degrees, k in [(0, 0), (90, 1), (-90, 3), (180, 2), (-180, 2), (89, 1), (-91, 3), (45, 0), (30, 0), (-135, 0)]:
        assert V.display_quarter_turns(SimpleNamespace(rotation=degrees)) == k, degrees
    assert V.display_quarter_turns(object()) == 0  # PyAV < 13: no rotation attribute



# ---------------------------------------------------------------------------------------------------
# Video.from_frames
# ---------------------------------------------------------------------------------------------------


def test_from_frames_samples_by_fps():
    frames = np.arange(300, dtype=np.int64)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)
    video = V.Video.from_frames((frames % 256).astype(np.uint8), fps=30.0)  # 10 s at 30 fps
    expected = list(range(0, 286, 15)) + [299]
    assert video.frames[:, 0, 0, 0].tolist() == [i % 256 for i in expected]
    np.testing.assert_allclose(video.timestamps, np.array(expected) / 30.0)
    assert video.metadata == V.VideoMetadata(10.0, 30.0, 300, 2, 2, 0.0)


def test_from_frames_with_timestamps_keeps_frames():
    frames = np.zeros((3, 4, 5, 3), np.uint8)
    video = V.Video.from_frames(list(frames), timestamps=[0.0, 0.5, 2.0])
    assert video.frames.shape == (3, 4, 5, 3) and video.timestamps.tolist() == [0.0, 0.5, 2.0]


@pytest.mark.parametrize(
    "frames, kwargs, match",
    [
        (np.zeros((3, 4, 5, 3), np.uint8), {}, "exactly one of fps"),
        (np.zeros((3, 4, 5, 3), np.uint8), {"fps": 2.0, "timestamps": [0, 1, 2]}, "exactly one of fps"),
        (np.zeros((4, 5, 3), np.uint8), {"fps": 2.0}, r"\[T, H, W, 3\]"),
        (np.zeros((0, 4, 5, 3), np.uint8), {"fps": 2.0}, "non-empty"),
        (np.zeros((3, 4, 5, 3), np.float32), {"fps": 2.0}, "uint8"),
        (np.zeros((3, 4, 5, 3), np.uint8), {"timestamps": [0, 1]}, "one timestamp"),
        (np.zeros((3, 4, 5, 3), np.uint8), {"timestamps": [0, 2, 1]}, "increasing"),
        (np.zeros((3, 4, 5, 3), np.uint8), {"fps": -1.0}, "fps must be a positive"),
        ([np.zeros((4, 5, 3), np.uint8), np.zeros((4, 6, 3), np.uint8)], {"fps": 2.0}, "same size"),
    ],
)
def test_from_frames_errors(frames, kwargs, match):
    with pytest.raises(MediaError, match=match):
        V.Video.from_frames(frames, **kwargs)


# ---------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, clips) -> dict[str, Path]:
    from PIL import Image

    d = tmp_path_factory.mktemp("bad")
    (d / "empty.mp4").write_bytes(b"")
    (d / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    Image.new("RGB", (16, 16), (255, 0, 0)).save(d / "image.png")
    with av.open(str(d / "audio.wav"), "w") as out:  # audio only
        stream = out.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            out.mux(packet)
    out = av.open(str(d / "no_frames.avi"), "w")  # a video stream with zero frames
    stream = out.add_stream("mpeg4", rate=10)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    out.start_encoding()
    out.close()
    data = bytearray(clips["mp4"].read_bytes())  # a valid container whose frames are all zeros
    at = data.find(b"mdat")
    size = int.from_bytes(data[at - 4 : at], "big")
    data[at + 4 : at - 4 + size] = bytes(size - 8)
    (d / "zeroed.mp4").write_bytes(bytes(data))
    return {p.stem: p for p in d.iterdir()}


@pytest.mark.parametrize(
    "name, match",
    [
        ("missing", "not found"),
        ("directory", "is not a file"),
        ("empty", r"empty \(0 bytes\)"),
        ("garbage", "could not read .* as a video"),
        ("image", "still image"),
        ("audio", "no video stream .*audio"),
        ("no_frames", "no video frames"),
        ("zeroed", "could not decode|no decodable"),
    ],
)
def test_bad_files(bad_files, name, match):
    path = {"missing": bad_files["empty"].parent / "missing.mp4", "directory": bad_files["empty"].parent}.get(name)
    path = path or bad_files[name]
    with pytest.raises(MediaError, match=match):
        V.load_video(path)
    if name not in ("zeroed",):  # a probe reads headers only; zeroed frames fail at decode time
        with pytest.raises(MediaError, match=match):
            V.probe_video(path)


def test_bad_arguments(clips):
    with pytest.raises(MediaError, match="empty"):
        V.load_video(b"")
    with pytest.raises(MediaError, match="could not read"):
        V.load_video(b"not a video" * 100)
    with pytest.raises(MediaError, match="unsupported video input int"):
        V.load_video(3)
    with pytest.raises(MediaError, match="max_frames must be a positive integer"):
        V.load_video(clips["mp4"], max_frames=0)
    with pytest.raises(MediaError, match="finite"):
        V.decode_frames_at(clips["mp4"], [0.0, float("inf")])


def test_importable_without_pyav(monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # "import av" now raises ImportError
    spec = importlib.util.spec_from_file_location("video_without_av", V.__file__)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "video_without_av", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    assert module.sample_times(1.0).tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ImportError, match="pip install"):
        module.load_video(b"\x00" * 10)
