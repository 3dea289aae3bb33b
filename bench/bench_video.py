"""Video benchmark, file -> model input: molmo2's selective PyAV decoder (frames resized to the crop while
decoding) + processor vs transformers' ``load_video(backend="pyav")`` + ``Molmo2VideoProcessor``.

Both contenders decode the frame on screen at each of Molmo2's ``uniform_last_frame`` instants and must
produce the same model input: the "same pixels" column compares a checksum of the pixel patches (ours
are uint8; transformers' normalized float32 are mapped back to the uint8 they encode). Each contender
runs in a fresh subprocess (so that peak RSS is its own): the peak is read from ``/proc/self/status``
``VmHWM`` after resetting it with ``/proc/self/clear_refs`` once the imports are done, and reported
above the RSS at that moment.

A contender is a ``load`` stage (path, max_frames -> frames ``[T, H, W, 3]``, timestamps; ours are
already 378 x 378) and a ``preprocess`` stage (frames, timestamps -> model input, whose uint8 patches
``pixels_u8`` gives for the checksum). Each stage is timed separately, CPU time over both. Contenders
alternate over ``--rounds`` fresh processes of ``--repeat`` runs each, and the best wall and CPU times
are kept, so that load from other processes on a shared machine biases neither side; CPU time is the
steadier number there.

    python bench/bench_video.py [--rounds 3] [--repeat 3] [--cache /tmp/molmo2-bench]

The test clip (30 s, 640x480, 30 fps, H.264, 2 s GOP, scrolling texture) is encoded once into the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLIP_SECONDS, CLIP_FPS, CLIP_SIZE, CLIP_GOP = 30, 30, (640, 480), 60
SCENARIOS = [("2 fps", 384), ("8 frames", 8)]  # (label, max_frames): 30 s at 2 fps = 61 instants


# ---------------------------------------------------------------------------------------------------
# Test clip
# ---------------------------------------------------------------------------------------------------


def make_clip(path: Path) -> Path:
    """Encode the benchmark clip (once). Content: a smooth random texture scrolling right, plus a moving
    square, so that motion compensation and B-frames do real work but synthesis stays cheap."""
    if path.exists() and path.stat().st_size > 0:
        return path
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = CLIP_SIZE
    rng = np.random.default_rng(0)
    coarse = rng.integers(0, 256, size=(h // 8 + 1, 2 * w // 8 + 1, 3), dtype=np.uint8)
    texture = np.kron(coarse, np.ones((8, 8, 1), np.uint8))[:h, : 2 * w]
    texture = np.ascontiguousarray(texture // 2 + rng.integers(0, 64, size=texture.shape, dtype=np.uint8))
    tmp = path.with_suffix(".tmp.mp4")
    t0 = time.perf_counter()
    with av.open(str(tmp), "w") as out:
        stream = out.add_stream("libx264", rate=CLIP_FPS, options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = CLIP_GOP
        for i in range(CLIP_SECONDS * CLIP_FPS):
            shift = (4 * i) % w
            img = np.ascontiguousarray(texture[:, shift : shift + w])
            y, x = (3 * i) % (h - 64), (5 * i) % (w - 64)
            img[y : y + 64, x : x + 64] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.rename(path)
    print(f"encoded {path} ({path.stat().st_size // 1024} KB) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return path


# ---------------------------------------------------------------------------------------------------
# Contenders
# ---------------------------------------------------------------------------------------------------

Frames = tuple[np.ndarray, np.ndarray]  # (uint8 [T, H, W, 3], float seconds [T])


@dataclass
class Contender:
    name: str
    setup: Callable[[], None]  # imports, done before the memory baseline
    load: Callable[[Path, int], Frames]
    preprocess: Callable[[np.ndarray, np.ndarray], object]  # stage 2 (pixels -> model input)
    pixels_u8: Callable[[object], np.ndarray]  # model input -> uint8 patches [T, P, patch_dim], for the checksum
    python: str = sys.executable  # interpreter the worker runs under


def _molmo2_setup() -> None:
    import av  # noqa: F401

    import molmo2.processing.image  # noqa: F401
    import molmo2.processing.video  # noqa: F401


def _molmo2_load(path: Path, max_frames: int) -> Frames:
    from molmo2.processing.video import load_video

    video = load_video(path, max_frames=max_frames, max_fps=2.0, resize_to=378)  # resized while decoding
    return video.frames, video.timestamps


def _hf_setup() -> None:
    import av  # noqa: F401
    import transformers.video_utils  # noqa: F401
    from transformers import Molmo2VideoProcessor  # noqa: F401

    import molmo2.processing.video  # noqa: F401


def _hf_load(path: Path, max_frames: int) -> Frames:
    from transformers.video_utils import load_video

    from molmo2.processing.video import sample_times

    picked = {}

    def indices_fn(metadata, **kwargs):
        # The same instants as molmo2, mapped to the frame on screen at each (constant frame rate).
        times = sample_times(metadata.duration, max_frames, 2.0)
        picked["times"] = times
        idx = np.floor(times * metadata.fps + 1e-9).astype(int)
        return np.minimum(idx, metadata.total_num_frames - 1)

    frames, _ = load_video(str(path), backend="pyav", sample_indices_fn=indices_fn)
    return frames, picked["times"]


def _molmo2_preprocess(frames: np.ndarray, times: np.ndarray):
    from molmo2.processing.image import ImageSettings, frames_to_patches

    return frames_to_patches(frames, ImageSettings())  # released settings: 378 px, 3x3 pooling


def _molmo2_pixels(out) -> np.ndarray:
    return out.patches.numpy()


def _hf_preprocess(frames: np.ndarray, times: np.ndarray):
    from transformers import Molmo2VideoProcessor

    vp = Molmo2VideoProcessor(size={"height": 378, "width": 378}, do_rescale=True, do_normalize=True,
                              image_mean=[0.5] * 3, image_std=[0.5] * 3, pooling_size=[3, 3], patch_size=14)
    return vp(videos=[frames], do_sample_frames=False, return_tensors="pt")


def _hf_pixels(out) -> np.ndarray:
    x = out["pixel_values_videos"].numpy()  # (k - 127.5) / 127.5 exactly, k in 0..255
    return np.rint(x * 127.5 + 127.5).astype(np.uint8)


# transformers' video processor needs torchvision, which the project's CPU venv cannot have; it runs under
# a second interpreter (`make bench-ref-venv` builds one: torch 2.14.1 + torchvision 0.29.1).
REF_PYTHON = os.environ.get("MOLMO2_REF_PYTHON", str(Path(__file__).resolve().parents[1] / ".venv-ref/bin/python"))

CONTENDERS = {
    "molmo2": Contender("molmo2 `load_video(resize_to=378)` + processor", _molmo2_setup, _molmo2_load,
                        _molmo2_preprocess, _molmo2_pixels),
    "transformers": Contender("transformers `load_video(backend='pyav')` + `Molmo2VideoProcessor`", _hf_setup,
                              _hf_load, _hf_preprocess, _hf_pixels, REF_PYTHON),
}


# ---------------------------------------------------------------------------------------------------
# Worker (one contender, fresh process)
# ---------------------------------------------------------------------------------------------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass  # then the peak may include the imports; the baseline below still subtracts them


def worker(key: str, path: Path, max_frames: int, repeat: int) -> dict:
    c = CONTENDERS[key]
    c.setup()
    _reset_peak()
    base_kb = _status_kb("VmRSS")
    load_s, cpu_s, prep_s, checksum, num, peak_kb = [], [], [], None, 0, 0
    for r in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        frames, times = c.load(path, max_frames)
        t1 = time.perf_counter()
        out = c.preprocess(frames, times)
        t2, c2 = time.perf_counter(), time.process_time()
        load_s.append(t1 - t0)
        prep_s.append(t2 - t1)
        cpu_s.append(c2 - c0)
        if r == 0:
            peak_kb = _status_kb("VmHWM")
            pixels = c.pixels_u8(out)
            num, checksum = len(frames), [list(pixels.shape), int(pixels.sum(dtype=np.int64)),
                                          int((pixels[:, ::7, ::3].astype(np.int64) ** 2).sum())]
            del pixels
        del frames, out
    return {
        "frames": num,
        "load_s": min(load_s),
        "cpu_s": min(cpu_s),
        "preprocess_s": min(prep_s),
        "peak_extra_mb": (peak_kb - base_kb) / 1024,
        "checksum": checksum,
    }


def run_isolated(key: str, path: Path, max_frames: int, repeat: int) -> dict:
    python = CONTENDERS[key].python
    if not Path(python).exists():
        raise SystemExit(f"{python} not found: set MOLMO2_REF_PYTHON to a Python with torchvision + transformers, "
                         "or run `make bench-ref-venv`")
    cmd = [python, __file__, "--worker", key, "--clip", str(path), "--max-frames", str(max_frames),
           "--repeat", str(repeat)]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{key} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _best(runs: list[dict]) -> dict:
    best = dict(runs[0])
    for k in ("load_s", "cpu_s", "preprocess_s"):
        best[k] = min(r[k] for r in runs)
    best["peak_extra_mb"] = max(r["peak_extra_mb"] for r in runs)
    assert all(r["checksum"] == best["checksum"] for r in runs)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("MOLMO2_BENCH_CACHE", "/tmp/molmo2-bench")))
    ap.add_argument("--worker", choices=sorted(CONTENDERS), help=argparse.SUPPRESS)
    ap.add_argument("--clip", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--max-frames", type=int, default=384, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.clip, args.max_frames, args.repeat)))
        return

    w, h = CLIP_SIZE
    clip = make_clip(args.cache / f"clip_{CLIP_SECONDS}s_{w}x{h}_{CLIP_FPS}fps_gop{CLIP_GOP}.mp4")
    print(f"\n{CLIP_SECONDS} s {w}x{h} {CLIP_FPS} fps H.264 (GOP {CLIP_GOP}), {os.cpu_count()} CPUs; best of "
          f"{args.rounds} alternating rounds x {args.repeat} runs; memory = peak RSS above the post-import "
          "baseline\n")
    head = ("| sampling | contender | frames | load (s) | preprocess (s) | CPU (s) | wall vs molmo2 | CPU vs molmo2 |"
            " peak extra RSS (MB) | memory vs molmo2 | same pixels |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for label, max_frames in SCENARIOS:
        runs: dict[str, list[dict]] = {k: [] for k in CONTENDERS}
        for _ in range(args.rounds):
            for k in CONTENDERS:
                runs[k].append(run_isolated(k, clip, max_frames, args.repeat))
        results = {k: _best(v) for k, v in runs.items()}
        ref = results["molmo2"]

        def wall(r):
            return r["load_s"] + r["preprocess_s"]

        for key, r in results.items():
            row = (f"| {label} | {CONTENDERS[key].name} | {r['frames']} | {r['load_s']:.3f} | {r['preprocess_s']:.3f} |"
                   f" {r['cpu_s']:.3f} |")
            row += (f" {wall(r) / wall(ref):.2f}x | {r['cpu_s'] / ref['cpu_s']:.2f}x |"
                    f" {r['peak_extra_mb']:.0f} | {r['peak_extra_mb'] / max(ref['peak_extra_mb'], 1e-9):.2f}x |"
                    f" {'yes' if r['checksum'] == ref['checksum'] else 'NO'} |")
            print(row)


if __name__ == "__main__":
    main()
