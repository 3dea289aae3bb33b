"""PNG / GIF / MP4 writers and ``render``: round trips through PyAV and Pillow, colours after encoding."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from molmo2.errors import MediaError
from molmo2.grounding import GroundingResult, Point
from molmo2.viz import PALETTE, render, save_gif, save_mp4, save_png

av = pytest.importorskip("av")

BG = 90
TOL = 40  # H.264 4:2:0 at crf 23 moves a saturated colour by a few tens at most


def _decode(path):
    """(frames uint8 [T, H, W, 3], times [T]) of a video file."""
    with av.open(str(path)) as c:
        frames = [(f.time, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
    return np.stack([a for _, a in frames]), np.array([t for t, _ in frames])


def _close(pixel, color, tol=TOL) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(color)).max() <= tol)


def test_render_mp4_round_trip(clip, video_result, tmp_path):
    out = render(clip, video_result, tmp_path / "out.mp4")
    frames_THW3, times = _decode(out)
    assert frames_THW3.shape == (8, 120, 160, 3)
    np.testing.assert_allclose(times, np.arange(8) / 4, atol=1e-3)  # the source's timestamps
    # point id 1 at (40, 30), t=0.5, tolerance 0.25: frames at 0.25, 0.5, 0.75
    for i in (1, 2, 3):
        assert _close(frames_THW3[i, 30, 40], PALETTE[0]), (i, frames_THW3[i, 30, 40])
    for i in (0, 5, 6, 7):
        assert _close(frames_THW3[i, 30, 40], (BG, BG, BG), 8), (i, frames_THW3[i, 30, 40])
    # track id 3 interpolated: (60, 90) at t=0.25
    assert _close(frames_THW3[1, 90, 60], PALETTE[2])
    assert _close(frames_THW3[7, 90, 120], (BG, BG, BG), 8)  # past the track's end + tolerance
    # the source's content is kept where nothing is drawn (the bar of frame 4)
    assert frames_THW3[4, 5, 42].min() > 180


@pytest.mark.parametrize("size,pix_fmt,codec,suffix", [((161, 121), "yuv420p", "ffv1", ".mkv"),
                                                      ((160, 120), "yuv444p", "libx264", ".mp4"),
                                                      ((159, 120), "rgb24", "png", ".mov")])
def test_render_mp4_odd_sizes_and_other_pixel_formats(make_clip, video_result, tmp_path, size, pix_fmt, codec, suffix):
    src = make_clip(tmp_path / f"src{suffix}", *size, pix_fmt=pix_fmt, codec=codec)
    frames_THW3, _ = _decode(render(src, video_result, tmp_path / "out.mp4"))
    assert frames_THW3.shape == (8, size[1] + size[1] % 2, size[0] + size[0] % 2, 3)
    assert _close(frames_THW3[2, 30, 40], PALETTE[0])
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"


def test_render_mp4_scales_points_to_the_video_size(make_clip, tmp_path):
    src = make_clip(tmp_path / "src.mp4", 320, 240)
    r = GroundingResult("", [(160, 120)], points=[Point(40, 30, t=0.5, object_id=1)])
    frames_THW3, _ = _decode(render(src, r, tmp_path / "out.mp4"))
    assert _close(frames_THW3[2, 60, 80], PALETTE[0])


def test_render_mp4_of_a_rotated_video_is_upright(make_clip, tmp_path):
    # a phone's portrait video: coded 160x120, shown turned 90 degrees clockwise (120x160), as the model sees it
    from molmo2.viz.media import VideoReader, video_size

    src = make_clip(tmp_path / "portrait.mp4", rotation=-90)
    assert video_size(src) == (120, 160)
    with VideoReader(src) as reader:
        assert reader.info.rotation == 270
        first = next(reader.frames())[1]
        assert (first.width, first.height, first.rotation) == (120, 160, 0)  # turned; the matrix is dropped
    r = GroundingResult("", [(120, 160)], points=[Point(40, 30, t=0.5, object_id=1)])
    out = render(src, r, tmp_path / "out.mp4")
    frames_THW3, _ = _decode(out)
    assert frames_THW3.shape == (8, 160, 120, 3)
    with av.open(str(out)) as c:
        assert next(c.decode(video=0)).rotation == 0  # written upright, not turned again by players
    assert _close(frames_THW3[2, 30, 40], PALETTE[0])
    # the bar of frame 4 (coded: top rows, x = 40..45) is shown along the right edge, y = 40..45
    assert frames_THW3[4, 42, 115].min() > 180 and frames_THW3[4, 5, 42].max() < 120


def test_save_mp4_streams_frames_and_pads_odd_sizes(tmp_path):
    def frames():
        for i in range(5):
            yield np.full((33, 45, 3), 40 * i, np.uint8)  # [H, W, 3], odd

    out = save_mp4(frames(), tmp_path / "f.mp4", fps=5)
    frames_THW3, times = _decode(out)
    assert frames_THW3.shape == (5, 34, 46, 3)
    np.testing.assert_allclose(times, np.arange(5) / 5, atol=1e-3)
    assert abs(int(frames_THW3[4, 10, 10, 0]) - 160) < 8


def test_render_gif_round_trip(clip, video_result, tmp_path):
    out = render(clip, video_result, tmp_path / "out.gif")  # 4 fps video: the GIF keeps every frame
    with Image.open(out) as im:
        assert im.n_frames == 8 and im.size == (160, 120)
        im.seek(2)  # t = 0.5
        rgb = np.asarray(im.convert("RGB"))
    assert _close(rgb[30, 40], PALETTE[0], 12)
    out2 = render(clip, video_result, tmp_path / "slow.gif", gif_fps=2)
    with Image.open(out2) as im:
        assert im.n_frames == 4


def test_save_gif_and_png(tmp_path):
    frames = [np.full((20, 30, 3), v, np.uint8) for v in (0, 128, 255)]
    with Image.open(save_gif(frames, tmp_path / "a.gif", fps=5)) as im:
        assert im.n_frames == 3 and im.info["duration"] == 200
    p = save_png(frames[1], tmp_path / "sub" / "a.png")
    assert np.asarray(Image.open(p))[0, 0].tolist() == [128, 128, 128]


def test_render_image_and_image_set(tmp_path):
    Image.new("RGB", (160, 120), (BG, BG, BG)).save(tmp_path / "in.jpg")
    r = GroundingResult("", [(160, 120)], points=[Point(40, 30, object_id=1)])
    out = render(tmp_path / "in.jpg", r, tmp_path / "out.png")
    assert tuple(np.asarray(Image.open(out))[30, 40]) == PALETTE[0]

    imgs = [np.full((120, 160, 3), BG, np.uint8), Image.new("RGB", (80, 60), (BG, BG, BG))]
    rs = GroundingResult("", [(160, 120), (80, 60)], points=[Point(10, 10, image=1, object_id=2)])
    a, b = render(imgs, rs, tmp_path / "set.png")
    assert (a.name, b.name) == ("set-0.png", "set-1.png")
    assert tuple(np.asarray(Image.open(b))[10, 10]) == PALETTE[1]
    assert tuple(np.asarray(Image.open(a))[10, 10]) == (BG, BG, BG)


def test_render_rejects_what_it_cannot_write(clip, video_result, tmp_path):
    with pytest.raises(MediaError, match=r"\.mp4, \.gif or \.html"):
        render(clip, video_result, tmp_path / "out.png")
    with pytest.raises(MediaError, match=r"\.png"):
        render(np.zeros((8, 8, 3), np.uint8), video_result, tmp_path / "out.mp4")
    with pytest.raises(MediaError, match="not found"):
        render(tmp_path / "missing.mp4", video_result, tmp_path / "out.mp4")
    with pytest.raises(MediaError, match="2 images but 1"):
        render([np.zeros((8, 8, 3), np.uint8)], GroundingResult("", [(8, 8), (8, 8)]), tmp_path / "o.png")
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    with pytest.raises(MediaError, match="could not read"):
        render(tmp_path / "bad.mp4", video_result, tmp_path / "out.mp4")
