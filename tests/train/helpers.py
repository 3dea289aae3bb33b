"""Tiny model directories and datasets written by the tests themselves (no network, seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from reference import write_side_files

from molmo2.config import Molmo2Config
from molmo2.data.schema import Annotation, Example, Media, write_jsonl
from molmo2.grounding.types import Point, Track


def tiny_model_dir(out: Path, cfg: Molmo2Config | None = None) -> Path:
    """config.json + tokenizer + processor files, no weights (train with init=random)."""
    cfg = cfg or Molmo2Config.from_name("tiny")
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_hf_config()))
    write_side_files(out, max_crops=2, num_frames=4)
    return out


def write_video(path: Path, frames: np.ndarray, fps: int = 2) -> Path:
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def tiny_dataset(root: Path, num: int = 12, seed: int = 0, video: bool = True) -> Path:
    """Images (pointing, counting, caption, qa trees) and, optionally, videos (tracking)."""
    rng = np.random.default_rng(seed)
    (root / "media").mkdir(parents=True, exist_ok=True)
    examples = []
    for i in range(num):
        w, h = 64 + 8 * (i % 3), 48
        arr = np.full((h, w, 3), 30, np.uint8)
        cx, cy = int(rng.integers(8, w - 8)), int(rng.integers(8, h - 8))
        arr[cy - 5 : cy + 5, cx - 5 : cx + 5] = (220, 40, 40)
        Image.fromarray(arr).save(root / "media" / f"img{i}.png")
        anns = [Annotation("pointing", label="red square", points=[Point(cx, cy)]),
                Annotation("counting", label="red squares", points=[Point(cx, cy)]),
                Annotation("qa", question="What colour is the square?", answer="red")]
        if i % 2:
            anns.append(Annotation("caption", answer="A red square on a dark background."))
        examples.append(Example(f"img{i}", Media("image", [f"media/img{i}.png"]), anns, source="tiny"))
        if video and i % 3 == 0:
            frames = np.full((4, 48, 64, 3), 30, np.uint8)
            pts = []
            for t in range(4):
                x = 10 + 12 * t
                frames[t, 20:30, x - 5 : x + 5] = (40, 40, 220)
                pts.append(Point(x, 25, t * 0.5))
            write_video(root / "media" / f"vid{i}.mp4", frames)
            examples.append(Example(f"vid{i}", Media("video", [f"media/vid{i}.mp4"]),
                                    [Annotation("tracking", label="blue square", tracks=[Track(1, None, pts)]),
                                     Annotation("pointing", label="blue square", points=pts[:2])], source="tiny"))
    write_jsonl(root / "data.jsonl", examples)
    return root / "data.jsonl"
