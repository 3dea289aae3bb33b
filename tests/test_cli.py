"""The low-level ``molmo2 generate`` command."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from molmo2.checkpoint import load_model
from molmo2.cli import main
from molmo2.inference import SamplingParams, generate
from molmo2.model import VisualInputs
from molmo2.processing import Molmo2Processor


@pytest.fixture
def image_path(tmp_path):
    arr = np.random.default_rng(3).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    path = tmp_path / "img.png"
    Image.fromarray(arr).save(path)
    return path


def test_generate_prints_the_greedy_answer(reference, image_path, capsys):
    _, _, ckpt = reference
    rc = main(["generate", "--model", str(ckpt), "--image", str(image_path), "--prompt", "Point to the dogs.",
               "--max-new-tokens", "8"])
    assert rc == 0
    printed = capsys.readouterr().out.strip()

    proc = Molmo2Processor.from_pretrained(ckpt)
    prompt = proc.render([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Point to the dogs."}]}])
    assert prompt.startswith("<|image|><|im_start|>user\nPoint to the dogs.")  # media first, then the prompt
    enc = proc.encode(prompt, [image_path])
    out = generate(load_model(ckpt), enc.input_ids[None], visual=VisualInputs(enc.pixel_values, enc.pooling),
                   params=SamplingParams(max_new_tokens=8), eos_token_id=proc.tokenizer.eos_id)[0]
    assert printed == proc.decode(out.token_ids).strip()
    assert len(out.token_ids) > 0


def test_generate_missing_image_is_a_clear_error(reference, tmp_path, capsys):
    _, _, ckpt = reference
    rc = main(["generate", "--model", str(ckpt), "--image", str(tmp_path / "nope.png"), "--prompt", "hi"])
    assert rc == 2
    assert "image file not found" in capsys.readouterr().err


def test_generate_missing_model_dir(tmp_path, capsys):
    rc = main(["generate", "--model", str(tmp_path / "none"), "--prompt", "hi"])
    assert rc == 2
    assert "not found" in capsys.readouterr().err


def test_generate_on_a_video_file(reference, tmp_path, capsys):
    import av

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(25):
            arr = np.full((48, 64, 3), (i * 10) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    _, _, ckpt = reference
    rc = main(["generate", "--model", str(ckpt), "--video", str(path), "--prompt", "What happens?",
               "--max-new-tokens", "6"])
    assert rc == 0
    printed = capsys.readouterr().out.strip()

    from molmo2.processing.video import load_video

    proc = Molmo2Processor.from_pretrained(ckpt)
    video = load_video(path, max_frames=proc.video.max_frames, max_fps=proc.video.max_fps)
    assert len(video.timestamps) == 6 and video.timestamps[-1] == pytest.approx(2.5)  # 8-frame cap, 2.5 s clip
    prompt = proc.render([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens?"}]}])
    enc = proc.encode(prompt, video_frames=video.frames, timestamps=video.timestamps)
    assert "2.5 " in proc.decode(enc.input_ids, skip_special_tokens=False)
    out = generate(load_model(ckpt), enc.input_ids[None], visual=VisualInputs(enc.pixel_values, enc.pooling),
                   params=SamplingParams(max_new_tokens=6), eos_token_id=proc.tokenizer.eos_id)[0]
    assert printed == proc.decode(out.token_ids).strip()


def test_generate_corrupt_video_is_a_clear_error(reference, tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    _, _, ckpt = reference
    assert main(["generate", "--model", str(ckpt), "--video", str(bad), "--prompt", "hi"]) == 2
    assert "error" in capsys.readouterr().err
