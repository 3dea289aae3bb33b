"""Preprocessing parity with transformers' Molmo2Processor through golden files.

The reference processor needs torchvision, which molmo2 does not depend on, so its outputs were saved by
``scripts/golden/make_golden.py`` (rerun command and format in tests/fixtures/README.md). Every case must
give identical token ids, pooling indices and pixel values (pixels are stored as the uint8 k of the
exact value (k - 127.5) / 127.5). Our processor returns those uint8 k; the model normalizes them
(``normalize_pixels``) to the reference's float32 values, checked here too."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from molmo2.model.vision import normalize_pixels
from molmo2.processing import Molmo2Processor
from molmo2.processing import tokens as tk
from molmo2.processing.image import ImageSettings

GOLDEN = Path(__file__).parents[1] / "fixtures" / "golden"
INDEX = json.loads((GOLDEN / "cases.json").read_text())
CASES = {c["name"]: c for c in INDEX["cases"]}


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    from test_tokens import qwen3_tokenizer_json

    out = {"tiny": tk.Tokenizer(GOLDEN.parent / "tokenizer_tiny" / "tokenizer.json",
                                json.loads((GOLDEN.parent / "tokenizer_tiny" / "tokenizer_config.json").read_text()))}
    d = tmp_path_factory.mktemp("qwen3")
    tk.extend_base_tokenizer(qwen3_tokenizer_json(), 151936).save(str(d / "tokenizer.json"))
    out["qwen3"] = tk.Tokenizer(d / "tokenizer.json", {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
    return out


def _processor(case, tokenizer) -> Molmo2Processor:
    settings = INDEX["settings"][case["settings"]]
    ip = case["image_processor"] or settings["image_processor"]
    vp = case["video_processor"] or settings["video_processor"]
    image = ImageSettings(
        crop_size=ip["size"]["height"], patch_size=ip["patch_size"], max_crops=ip["max_crops"],
        overlap_margins=tuple(ip["overlap_margins"]), pooling_size=tuple(ip["pooling_size"]),
        video_pooling_size=tuple(vp["pooling_size"]), image_mean=tuple(ip["image_mean"]),
        image_std=tuple(ip["image_std"]),
    )
    return Molmo2Processor(tokenizer, image, flags=tk.LayoutFlags.from_dict(case["processor_flags"]))


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_reference_processor(name, tokenizers):
    case = CASES[name]
    proc = _processor(case, tokenizers[case["tokenizer"]])
    want = np.load(GOLDEN / case["npz"])
    if case["kind"] == "video":
        frames = np.load(GOLDEN / "media" / case["media"][0])
        enc = proc.encode(case["text"], video_frames=frames, timestamps=case["timestamps"])
        pixels, pooling = want["pixel_values_videos_u8"], want["video_token_pooling"]
    else:
        enc = proc.encode(case["text"], [GOLDEN / "media" / m for m in case["media"]])
        pixels, pooling = want["pixel_values_u8"], want["image_token_pooling"]

    assert enc.input_ids.tolist() == want["input_ids"][0].tolist()
    visual = torch.isin(enc.input_ids, torch.tensor([proc.tokenizer.ids[t] for t in (
        "<im_patch>", "<im_col>", "<im_start>", "<low_res_im_start>", "<frame_start>", "<im_end>", "<frame_end>",
        "<im_low>")]))
    assert visual.long().tolist() == want["mm_token_type_ids"][0].tolist()
    assert enc.pooling.tolist() == pooling.tolist()
    # our processor returns the uint8 pixels; the model normalizes them to the reference's float32 values
    assert enc.pixel_values.dtype == torch.uint8 and enc.pixel_values.shape == pixels.shape
    assert torch.equal(enc.pixel_values, torch.from_numpy(pixels))
    expected = (pixels.astype(np.float32) - np.float32(127.5)) / np.float32(127.5)
    normalized = normalize_pixels(enc.pixel_values, proc.image.image_mean, proc.image.image_std)
    assert torch.equal(normalized, torch.from_numpy(expected))
