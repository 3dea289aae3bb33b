"""The HTML viewer: well-formed, self-contained, carries the result's JSON; and, in a headless Chromium when
one is installed, actually draws the overlay at the right place and time (skipped without a browser)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from molmo2.errors import MediaError
from molmo2.grounding import GroundingResult, Point
from molmo2.viz import PALETTE, write_viewer

VOID = {"meta", "img", "br", "hr", "input", "link", "source", "area", "base", "col", "embed", "track", "wbr"}


class _Checker(HTMLParser):
    """Collects well-formedness problems, script blocks by id, and external resource references."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.problems, self.scripts, self.external = [], [], {}, []
        self._script_id = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for k in ("src", "href"):
            v = attrs.get(k) or ""
            if v.startswith(("http:", "https:", "//")):
                self.external.append(v)
        if tag == "script":
            self._script_id = attrs.get("id", "")
            self.scripts[self._script_id] = ""
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()
        if tag == "script":
            self._script_id = None

    def handle_data(self, data):
        if self._script_id is not None:
            self.scripts[self._script_id] += data


def _check(path):
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    c = _Checker()
    c.feed(text)
    c.close()
    assert not c.problems and not c.stack, (c.problems, c.stack)
    assert not c.external
    return c, text


def test_video_viewer_is_valid_and_embeds_the_result(clip, video_result, tmp_path):
    video_result.errors.append("a </script><b>tricky</b> error")  # must not break out of the JSON block
    out = write_viewer(tmp_path / "v.html", clip, video_result)
    c, text = _check(out)
    assert json.loads(c.scripts["molmo2-result"]) == video_result.to_dict()
    assert GroundingResult.from_dict(json.loads(c.scripts["molmo2-result"])) == video_result
    config = json.loads(c.scripts["molmo2-config"])
    assert config["media"]["kind"] == "video" and config["media"]["src"].startswith("data:video/mp4;base64,")
    assert config["tolerance"] == 0.25 and config["media"]["sizes"] == [[160, 120]]
    assert [s["text"] for s in config["trackStyle"]] == ["3 cat"]
    assert "requestAnimationFrame" in text and "<canvas" not in text.split("<script>")[0]  # built by the JS


def test_large_videos_are_linked_by_relative_path(clip, video_result, tmp_path):
    out = write_viewer(tmp_path / "sub" / "v.html", clip, video_result, embed_limit_mb=0)
    c, _ = _check(out)
    assert json.loads(c.scripts["molmo2-config"])["media"]["src"] == "../clip.mp4"
    out = write_viewer(tmp_path / "v2.html", clip, video_result, embed=False)
    assert json.loads(_check(out)[0].scripts["molmo2-config"])["media"]["src"] == "clip.mp4"


def test_image_set_viewer_embeds_images(tmp_path):
    Image.new("RGB", (50, 40), (1, 2, 3)).save(tmp_path / "a.jpg")
    r = GroundingResult("two", [(50, 40), (30, 20)], points=[Point(5, 5, image=1)])
    out = write_viewer(tmp_path / "i.html", [tmp_path / "a.jpg", np.zeros((20, 30, 3), np.uint8)], r)
    config = json.loads(_check(out)[0].scripts["molmo2-config"])
    media = config["media"]
    assert media["kind"] == "images" and media["sizes"] == [[50, 40], [30, 20]]
    assert media["srcs"][0].startswith("data:image/jpeg;base64,") and media["srcs"][1].startswith("data:image/png;base64,")


def test_viewer_rejects_bad_input(tmp_path, video_result):
    with pytest.raises(MediaError, match=r"\.html"):
        write_viewer(tmp_path / "v.txt", np.zeros((4, 4, 3), np.uint8), video_result)
    with pytest.raises(MediaError, match="empty"):
        write_viewer(tmp_path / "v.html", [], video_result)


# ---------------------------------------------------------------------------------------------------
# Headless Chromium
# ---------------------------------------------------------------------------------------------------


def _chromium() -> str | None:
    for name in (os.environ.get("MOLMO2_CHROMIUM"), "chromium", "chromium-browser", "google-chrome",
                 "google-chrome-stable", "chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _browser(tmp_path, url: str, *args: str) -> subprocess.CompletedProcess:
    exe = _chromium()
    if exe is None:
        pytest.skip("no chromium/chrome binary found (apt-get install chromium, or set MOLMO2_CHROMIUM)")
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--mute-audio",
           "--no-first-run", "--force-device-scale-factor=1", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=3000", *args, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90)


def _screenshot(tmp_path, url: str, size=(480, 360)) -> np.ndarray:
    shot = tmp_path / "shot.png"
    proc = _browser(tmp_path, url, f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}")
    assert shot.exists(), proc.stderr[-2000:]
    return np.asarray(Image.open(shot).convert("RGB"))  # [H, W, 3]


def _has_color(shot_HW3: np.ndarray, x: int, y: int, color, tol: int = 30, r: int = 1) -> bool:
    patch = shot_HW3[y - r:y + r + 1, x - r:x + r + 1].astype(int)
    return bool((np.abs(patch - np.array(color)).max(axis=-1) <= tol).any())


PAD = 16  # body padding of the viewer page: the first stage starts at (16, 16)


def test_chromium_draws_video_overlay_at_the_current_time(clip, tmp_path):
    r = GroundingResult("answer", [(160, 120)], points=[Point(40, 30, t=0.0, object_id=1, label="a"),
                                                        Point(120, 30, t=1.5, object_id=2, label="b")])
    page = write_viewer(tmp_path / "v.html", clip, r)
    shot = _screenshot(tmp_path, page.as_uri())
    assert _has_color(shot, PAD + 40, PAD + 30, PALETTE[0])  # the t=0 point, at time 0
    assert not _has_color(shot, PAD + 120, PAD + 30, PALETTE[1])  # the t=1.5 point is not shown yet
    shot = _screenshot(tmp_path, page.as_uri() + "#t=1.5")
    assert _has_color(shot, PAD + 120, PAD + 30, PALETTE[1])
    assert not _has_color(shot, PAD + 40, PAD + 30, PALETTE[0])


def test_chromium_draws_image_set_overlay_and_fills_the_panel(tmp_path):
    imgs = [np.full((80, 100, 3), 200, np.uint8), np.full((80, 100, 3), 200, np.uint8)]
    r = GroundingResult("There are 2.", [(100, 80), (100, 80)], count=type(GroundingResult("", []).count)(2, 2),
                        points=[Point(20, 20, image=0, object_id=4), Point(30, 40, image=1, object_id=2)])
    page = write_viewer(tmp_path / "i.html", imgs, r)
    shot = _screenshot(tmp_path, page.as_uri())
    grey = np.flatnonzero((shot[PAD + 70] == 200).all(axis=-1))  # columns of the two images' bottom row
    second = int(grey[np.flatnonzero(np.diff(grey) > 1)[0] + 1])  # left edge of image 1 (captions set the gap)
    assert grey[0] == PAD
    assert _has_color(shot, PAD + 20, PAD + 20, PALETTE[3])
    assert _has_color(shot, second + 30, PAD + 40, PALETTE[1])
    assert not _has_color(shot, second + 20, PAD + 20, PALETTE[3])  # image 0's point is not on image 1
    dom = _browser(tmp_path, page.as_uri(), "--dump-dom").stdout
    assert "count: stated 2, pointed 2" in dom and "There are 2." in dom
