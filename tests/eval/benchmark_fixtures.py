"""Tiny copies of the released benchmarks, written in their released layouts (see each adapter's docstring).

Media are generated: 56 px images with one white square on grey, and 4-frame videos (instants 0, 0.5,
1.0, 1.5 s, written with ``molmo2.data.shapes.write_video`` so that 2 fps sampling returns exactly those
frames) of a white square moving right. Ground truth (points, COCO RLE masks) is the square itself, so
an answer pointing at the square's centre is right and one pointing at a corner is wrong.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from molmo2.data.shapes import write_video
from molmo2.eval.metrics import rle_encode

SIZE = 56
SQUARE = 12
NUM_FRAMES = 4
TIMES = [0.0, 0.5, 1.0, 1.5]


def square_x(k: int) -> int:
    return 6 + 8 * k  # left edge of the square in frame k


def square_mask(x0: int, y0: int = 20) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), dtype=bool)
    m[y0:y0 + SQUARE, x0:x0 + SQUARE] = True
    return m


def centre(x0: int, y0: int = 20) -> tuple[float, float]:
    return x0 + SQUARE / 2, y0 + SQUARE / 2


def write_image(path: Path, x0: int = 20, y0: int = 20, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((SIZE, SIZE, 3), 90, np.uint8)
    arr[square_mask(x0, y0)] = 255
    Image.fromarray(arr).save(path, format=fmt or "PNG")
    return path


def write_square_video(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.full((NUM_FRAMES, SIZE, SIZE, 3), 90, np.uint8)
    for k in range(NUM_FRAMES):
        frames[k][square_mask(square_x(k))] = 255
    write_video(path, frames)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# ------------------------------------------------------------------------------------- Molmo2 video


def video_point_rows() -> list[dict]:
    """Row 0: one square (GT point at 0.5 s, masks at every 2 fps frame); row 1: a label with no instance."""
    masks = [{"frame_id": k, "rle": rle_encode(square_mask(square_x(k)))} for k in range(NUM_FRAMES)]
    x, y = centre(square_x(1))
    return [
        {"video_id": "vid1", "video_source": "youtube", "label": "white square", "points": [{"x": x, "y": y}],
         "two_fps_timestamps": [0.5], "masks": [masks], "video_duration": 1.5, "width": SIZE, "height": SIZE},
        {"video_id": "sora2/gen1", "video_source": "generated", "label": "cat", "points": [],
         "two_fps_timestamps": [], "masks": [], "video_duration": 1.5, "width": SIZE, "height": SIZE},
    ]


def write_point_videos(root: Path) -> None:
    write_square_video(root / "youtube-cc" / "youtube-cc-exist-2fps" / "vid1_2fps.mp4")
    write_square_video(root / "generated_videos" / "sora2-2fps" / "gen1_2fps.mp4")


def make_video_point(root: Path) -> Path:
    write_jsonl(root / "Molmo2-VideoPointEval" / "val.jsonl", video_point_rows())
    write_point_videos(root)
    return root


def make_video_count(root: Path) -> Path:
    rows = [
        {"video_id": "vid1", "video_source": "youtube", "label": "white square", "count": 1, "category": "object",
         "question": "How many white squares are there?", "clip_start": 0.0, "clip_end": 1.5, "video_duration": 1.5},
        {"video_id": "sora2/gen1", "video_source": "generated", "label": "jump", "count": 3,
         "category": "action/event", "question": "How many times does it jump?", "clip_start": None,
         "clip_end": None, "video_duration": 1.5},
    ]
    write_jsonl(root / "Molmo2-VideoCountEval" / "val.jsonl", rows)
    write_point_videos(root)
    return root


def video_track_rows() -> list[dict]:
    """One clip at fps 2 (frames 0..3): object "a" is the square in every frame, "b" never appears."""
    pts = [list(centre(square_x(k))) for k in range(NUM_FRAMES)]
    return [{
        "id": "apt-0", "exp": "the white square", "w": SIZE, "h": SIZE, "fps": 2, "video": "v0", "clip": "c0",
        "video_dataset": "APTv2", "start_frame": 0, "end_frame": 3, "mask_id": ["a", "b"],
        "points": [{"object_id": "a", "points": pts}, {"object_id": "b", "points": [None] * NUM_FRAMES}],
        "masks": [{"object_id": "a", "masks": [rle_encode(square_mask(square_x(k))) for k in range(NUM_FRAMES)]},
                  {"object_id": "b", "masks": [None] * NUM_FRAMES}],
    }]


def make_video_track(root: Path) -> Path:
    write_jsonl(root / "Molmo2-VideoTrackEval" / "test.jsonl", video_track_rows())
    write_square_video(root / "video_track" / "APTv2" / "videos" / "test" / "c0.mp4")
    return root


# ------------------------------------------------------------------------------------------- images


def make_point_bench(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    cats = ["affordable", "counting", "reasoning", "spatial", "steerable"]
    rows = [{"image_filename": f"img{k}.jpg", "mask_filename": f"mask{k}.png", "category": c,
             "user_input": f"Point to the white square ({c})."} for k, c in enumerate(cats)]
    rows.append({"image_filename": "nomask.jpg", "category": "spatial", "user_input": "skipped: no mask"})
    for k, c in enumerate(cats):
        write_image(root / "selected_images" / c / f"img{k}.jpg", fmt="JPEG")
        path = root / "selected_masks" / c / f"mask{k}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
        rgb[square_mask(20)] = (200, 0, 0)  # any channel > 127 is in the mask
        Image.fromarray(rgb).save(path)
    (root / "data.json").write_text(json.dumps(rows))
    return root


def pixmo_url(k: int) -> str:
    return f"https://example.org/pixmo/{k}.jpg"


def write_pixmo_image(root: Path, k: int, x0: int = 20) -> None:
    name = hashlib.sha256(pixmo_url(k).encode()).hexdigest()
    write_image(root / "images" / name, x0=x0, fmt="JPEG")


def pixmo_points_rows() -> list[dict]:
    x, y = centre(20)
    return [
        {"image_url": pixmo_url(0), "label": "White Square", "points": [{"x": x / SIZE * 100, "y": y / SIZE * 100}],
         "masks": square_mask(20)[None].tolist()},
        {"image_url": pixmo_url(1), "label": "cat", "points": [], "masks": []},
    ]


def make_pixmo_points(root: Path) -> Path:
    write_jsonl(root / "test.jsonl", pixmo_points_rows())
    write_pixmo_image(root, 0)
    write_pixmo_image(root, 1)
    return root


def make_pixmo_count(root: Path) -> Path:
    rows = [{"image_url": pixmo_url(0), "label": "white squares", "count": 1, "image_sha256": "x"},
            {"image_url": pixmo_url(1), "label": "cats", "count": 2, "image_sha256": "y"}]
    write_jsonl(root / "validation.jsonl", rows)
    write_pixmo_image(root, 0)
    write_pixmo_image(root, 1)
    return root


def make_countbench(root: Path) -> Path:
    """Needs pyarrow (the released file is a parquet with the images inside)."""
    root.mkdir(parents=True, exist_ok=True)
    import io

    def png(gray: bool = False) -> bytes:
        buf = io.BytesIO()
        im = Image.open(write_image(root / "tmp.png"))
        (im.convert("L") if gray else im).save(buf, "PNG")
        return buf.getvalue()

    rows = [{"image": {"bytes": png(), "path": None}, "image_url": "u0", "text": "t0", "number": 1},
            {"image": None, "image_url": "u1", "text": "t1", "number": 2},
            {"image": {"bytes": png(gray=True), "path": None}, "image_url": "u2", "text": "t2", "number": 3},
            {"image": {"bytes": png(), "path": None}, "image_url": "u3", "text": "t3", "number": 4}]
    write_parquet(root / "data" / "train-00000-of-00001-cf54c241ba947306.parquet", rows)
    (root / "tmp.png").unlink()
    questions = [{"question": f"How many squares are in picture {k}?"} for k in range(4)]
    (root / "countbench_paired_questions.json").write_text(json.dumps(questions))
    return root


# ------------------------------------------------------------------------------------------ video QA


def make_nextqa_csv(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    rows = [{"video": 4010069381, "frame_count": 4, "width": SIZE, "height": SIZE,
             "question": "what does the square do ", "answer": 2, "qid": 6, "type": "TN",
             "a0": "stays", "a1": "jumps", "a2": "moves right", "a3": "turns", "a4": "vanishes"},
            {"video": 4010069382, "frame_count": 4, "width": SIZE, "height": SIZE,
             "question": "why is it white", "answer": 0, "qid": 7, "type": "CW",
             "a0": "paint", "a1": "light", "a2": "snow", "a3": "milk", "a4": "none"}]
    pd.DataFrame(rows).to_csv(root / "test.csv", index=False)
    (root / "map_vid_vidorID.json").write_text(json.dumps({"4010069381": "1001/4010069381",
                                                           "4010069382": "1001/4010069382"}))
    for vid in ("4010069381", "4010069382"):
        write_square_video(root / "NExTVideo-all-videos" / "1001" / f"{vid}.mp4")
    return root


def make_mvbench(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rows = {"action_sequence.json": [{"video": "A1.mp4", "question": "What happened after the square moved?",
                                      "candidates": ["It stopped.", "It moved on."], "answer": "It moved on.",
                                      "start": 0.0, "end": 1.5}],
            "moving_direction.json": [{"video": "m1.mp4", "question": "Which way does the square move?",
                                       "candidates": ["left", "right", "up"], "answer": "right"}],
            "episodic_reasoning.json": [{"video": "ep1", "question": "Is it a square?",
                                         "candidates": ["yes", "no"], "answer": "yes"}]}
    for name, r in rows.items():
        (root / "json").mkdir(parents=True, exist_ok=True)
        (root / "json" / name).write_text(json.dumps(r))
    write_square_video(root / "video" / "star" / "Charades_v1_480" / "A1.mp4")
    write_square_video(root / "video" / "clevrer" / "video_validation" / "m1.mp4")
    write_square_video(root / "video" / "tvqa" / "frames_fps3_hq" / "ep1" / "video.mp4")
    return root


def perception_rows() -> list[dict]:
    return [{"video_name": "video_1", "question_id": "q1", "question": "What moves?",
             "options": ["a circle", "a square", "nothing"], "answer_id": 1, "area": "physics", "reasoning": "x"},
            {"video_name": "video_1", "question_id": "q2", "question": "Where does it go?",
             "options": ["left", "right", "up"], "answer_id": 1, "area": "semantics", "reasoning": "x"}]


def make_perception_test(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    ann = {"video_1": {"metadata": {"num_frames": 4}, "mc_question": [
        {"id": r["question_id"], **{k: r[k] for k in ("question", "options", "answer_id", "area", "reasoning")}}
        for r in perception_rows()]}}
    (root / "mc_question_valid.json").write_text(json.dumps(ann))
    write_square_video(root / "videos" / "video_1.mp4")
    return root


MAKERS = {
    "molmo2-video-point": make_video_point, "molmo2-video-count": make_video_count,
    "molmo2-video-track": make_video_track, "point-bench": make_point_bench, "pixmo-points": make_pixmo_points,
    "pixmo-count": make_pixmo_count, "nextqa": make_nextqa_csv, "mvbench": make_mvbench,
    "perception-test": make_perception_test,
}
