"""Tiny copies of the referring-VOS benchmarks (MeViS, Ref-YouTube-VOS, Ref-DAVIS17, ReasonVOS) in the
layout the official eval reads: Molmo2's annotation rows (official ``save_to_disk`` cache, hub parquet or
JSONL export), the release's masks (MeViS ``mask_dict.json`` RLE; binary PNG folders; DAVIS palette PNGs
at twice the row's size) and the encoded videos.

Every video is the 4-frame, 2 fps clip of ``benchmark_fixtures`` (a white square moving right, frame k
at k/2 s); each row's fps is 2, so the 1 fps ground truth sits on frames 0 and 2 (0 s and 1 s). Objects:

- ``A``: the square, ``square_mask(square_x(k))`` in frame k;
- ``B``: a fixed 10 px box at (40, 2)-(50, 12), in frames 0 and 1 only (gone at 1 s).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from benchmark_fixtures import (
    NUM_FRAMES,
    SIZE,
    centre,
    square_mask,
    square_x,
    write_jsonl,
    write_parquet,
    write_square_video,
)
from PIL import Image

from molmo2.eval.metrics import rle_encode

FPS = 2
GT_FRAMES = (0, 2)
LABEL = "the white square"


def box_mask() -> np.ndarray:
    m = np.zeros((SIZE, SIZE), dtype=bool)
    m[2:12, 40:50] = True
    return m


BOX_CENTRE = (45.0, 7.0)


def mask_a(k: int) -> np.ndarray:
    return square_mask(square_x(k))


def mask_b(k: int) -> np.ndarray:
    return box_mask() if k < 2 else np.zeros((SIZE, SIZE), dtype=bool)


def trajectories(objects: dict[str, Callable]) -> list[dict]:
    """``frame_trajectories`` at 1 fps; ``objects`` maps the row's mask id to a centre per frame or None
    (absent: no entry, so a frame where every target is gone has an empty ``points`` list)."""
    out = []
    for f in GT_FRAMES:
        pts = [{"id": oid, "point": list(where(f)), "occluded": False} for oid, where in objects.items()
               if where(f) is not None]
        out.append({"frame": f, "time": f"00:0{f // FPS}.00", "points": pts})
    return out


def row(id_: str, video: str, qid: str, mask_id: list[str], objects: dict, **extra) -> dict:
    return {"id": id_, "video": video, "qid": qid, "expression": LABEL, "width": SIZE, "height": SIZE,
            "fps": FPS, "sampling_fps": 1, "mask_id": mask_id, "frame_trajectories": trajectories(objects),
            **extra}


def centre_a(f: int) -> tuple[float, float]:
    return centre(square_x(f))


def centre_b(f: int) -> tuple[float, float] | None:
    return BOX_CENTRE if f < 2 else None


def write_arrow_cache(folder: Path, rows: list[dict]) -> None:
    """What ``datasets.Dataset.save_to_disk`` writes: an Arrow IPC stream next to ``state.json``."""
    import pyarrow as pa

    folder.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows)
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))


def write_png(path: Path, arr: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.ascontiguousarray(arr.astype(np.uint8))
    if palette:  # DAVIS ships palette PNGs: pixel = object id, drawn with the DAVIS colours
        im = Image.frombytes("P", (arr.shape[1], arr.shape[0]), arr.tobytes())
        im.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * (3 * 253))
    else:
        im = Image.fromarray(arr)
    im.save(path)


def mevis_rows() -> list[dict]:
    """Query 0: both objects (anno 101 = A, 102 = B); query 1: A only; a 2 fps duplicate row (skipped)."""
    both = row("mevis-0", "vid_a", "0", ["101", "102"], {"101": centre_a, "102": centre_b}, anno_id=[101, 102])
    one = row("mevis-1", "vid_a", "1", ["101"], {"101": centre_a}, anno_id=[101])
    dup = dict(one, id="mevis-1-2fps", sampling_fps=2)
    return [both, one, dup]


def make_mevis(root: Path, cache: str = "arrow") -> Path:
    base = root / "video_track"
    rows = mevis_rows()
    if cache == "arrow":
        write_arrow_cache(base / "tracking" / "mevis" / "track" / "valid_u", rows)
    else:
        write_jsonl(base / "molmo2-mevis" / "valid_u.jsonl", rows)
    release = base / "MeViS" / "MeViS_release" / "valid_u"
    masks = {"101": [rle_encode(mask_a(k)) for k in range(NUM_FRAMES)],
             "102": [rle_encode(mask_b(k)) if k < 2 else None for k in range(NUM_FRAMES)]}
    release.mkdir(parents=True, exist_ok=True)
    (release / "mask_dict.json").write_text(json.dumps(masks))
    write_square_video(base / "MeViS" / "valid_u" / "videos" / "vid_a.mp4")
    return root


def make_ref_youtube_vos(root: Path) -> Path:
    """Hub parquet (``track/valid-*.parquet``): query ``0`` refers to A, query ``1`` to B."""
    base = root / "video_track"
    rows = [row("ytvos-0", "yt1", "0", ["1"], {"1": centre_a}), row("ytvos-1", "yt1", "1", ["2"], {"2": centre_b})]
    write_parquet(base / "molmo2-ref-yt-vos" / "track" / "valid-00000-of-00001.parquet", rows)
    for qid, mask in (("0", mask_a), ("1", mask_b)):
        for k in range(NUM_FRAMES):
            write_png(base / "Ref-YT-VOS" / "valid" / "Annotations" / "yt1" / qid / f"{5 * k:05d}.png",
                      mask(k) * 255)
    write_square_video(base / "Ref-YT-VOS" / "valid" / "videos" / "yt1.mp4")
    return root


def make_ref_davis17(root: Path) -> Path:
    """JSONL export; one palette PNG per frame at 2x the row's size (A = index 1, B = index 2)."""
    base = root / "video_track"
    rows = [row("davis-0", "bear", "0", ["m1"], {"m1": centre_a}, obj_id=[1]),
            row("davis-1", "bear", "1", ["m1", "m2"], {"m1": centre_a, "m2": centre_b}, obj_id=[1, 2])]
    write_jsonl(base / "molmo2-ref-davis17" / "valid.jsonl", rows)
    for k in range(NUM_FRAMES):
        ids = mask_a(k).astype(np.uint8) + 2 * mask_b(k).astype(np.uint8)
        write_png(base / "Ref-DAVIS17" / "DAVIS" / "Annotations" / "480p" / "bear" / f"{k:05d}.png",
                  ids.repeat(2, 0).repeat(2, 1), palette=True)
    write_square_video(base / "Ref-DAVIS17" / "valid" / "videos" / "bear.mp4")
    return root


def make_reasonvos(root: Path) -> Path:
    """JSONL export in a ``VIDEO_TRACK_DATA_HOME`` (no ``video_track/`` level): one query about B."""
    base = root
    rows = [row("rvos-0", "r1", "0", ["0"], {"0": centre_b}, anno_id=["LVVIS_r1_0"], obj_id=[0])]
    write_jsonl(base / "molmo2-reasonvos" / "test.jsonl", rows)
    for k in range(NUM_FRAMES):
        write_png(base / "ReasonVOS" / "ReasonVOS" / "Annotations" / "LVVIS_r1_0" / f"{k:05d}.png", mask_b(k) * 255)
    write_square_video(base / "ReasonVOS" / "videos" / "r1.mp4")
    return root


VOS_MAKERS = {"mevis": make_mevis, "ref-youtube-vos": make_ref_youtube_vos, "ref-davis17": make_ref_davis17,
              "reasonvos": make_reasonvos}
