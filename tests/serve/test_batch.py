"""``molmo2.serve.batch``: many videos through a server (ours here; vLLM in production): one JSONL line per
video with the same answer as the local pipeline, a bad video recorded as an error without stopping the
batch, and a rerun that skips what is already answered."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from serve.helpers import live_server

from molmo2.errors import Molmo2Error
from molmo2.serve import ChatHandler, ServeLimits, build_app
from molmo2.serve.batch import main, run_batch


@pytest.fixture(scope="module")
def url(pipe):
    with live_server(build_app(ChatHandler(pipe, "tiny", ServeLimits(max_frames=4, max_new_tokens=64)))) as u:
        yield u


def test_batch_over_videos_resumes_and_records_failures(url, pipe, media_dir, tmp_path):
    videos = []
    for k in range(3):
        videos.append(tmp_path / f"v{k}.mp4")
        shutil.copy(media_dir / "clip.mp4", videos[-1])
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"junk" * 50)
    inputs = [*videos, tmp_path / "broken.mp4"]
    out = tmp_path / "out" / "tracks.jsonl"
    options = {"max_new_tokens": 6, "max_frames": 3}
    counts = run_batch(url, inputs[:2], "track", "the square", out, workers=2, options=options)
    assert counts == {"answered": 2, "failed": 0, "skipped": 0}
    counts = run_batch(url, inputs, "track", "the square", out, workers=3, options=options)
    assert counts == {"answered": 1, "failed": 1, "skipped": 2}
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 4 and {r["media"] for r in records} == {str(p) for p in inputs}
    local = pipe.track(media_dir / "clip.mp4", "the square", **options)
    for r in records:
        if r["media"].endswith("broken.mp4"):
            assert "could not read" in r["error"] and "answer" not in r
        else:
            assert r["answer"]["text"] == local.text
            assert r["answer"]["grounding"] == local.grounding.to_dict()
    # the command line: exit status 1 while an input fails, which is retried on every rerun
    assert main([str(p) for p in inputs] + ["--endpoint", url, "--verb", "track", "--query", "the square",
                                            "--out", str(out), "--max-new-tokens", "6", "--max-frames", "3"]) == 1
    assert sum(1 for line in out.read_text().splitlines() if "error" in json.loads(line)) == 2


def test_batch_checks_its_arguments(url, tmp_path):
    for kwargs, message in [({"verb": "dance", "query": "x"}, "unknown verb"),
                            ({"verb": "caption", "query": "x"}, "caption takes no query"),
                            ({"verb": "point", "query": None}, "need one"),
                            ({"verb": "point", "query": "x", "workers": 0}, "at least 1")]:
        with pytest.raises(Molmo2Error, match=message):
            run_batch(url, [], out=tmp_path / "o.jsonl", **kwargs)


SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "vllm_serve.sh"


def _run_script(tmp_path, fakes: dict[str, str], **env) -> subprocess.CompletedProcess:
    """scripts/vllm_serve.sh with stand-ins for ``vllm`` / ``nvidia-smi`` first on PATH (no GPU needed)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    path = f"{bin_dir}:/usr/bin:/bin"
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30,
                          env={"PATH": path, "HOME": str(tmp_path), **env})


def test_vllm_script_checks_and_arguments(tmp_path):
    """The GPU-only script's own logic: what it says without vllm or a GPU, and the vllm command it runs."""
    r = _run_script(tmp_path, {})
    assert r.returncode == 2 and "pip install vllm" in r.stderr
    r = _run_script(tmp_path, {"vllm": "echo ran"})
    assert r.returncode == 2 and "no NVIDIA GPU" in r.stderr
    gpus = "echo 'GPU 0: H100'; echo 'GPU 1: H100'"
    r = _run_script(tmp_path, {"vllm": 'printf "%s\\n" "$@"', "nvidia-smi": gpus},
                    MODEL="allenai/Molmo2-8B", HOST="0.0.0.0", MOLMO2_API_KEY="s3cret")
    assert r.returncode == 0, r.stderr
    args = r.stdout.splitlines()
    assert args[:2] == ["serve", "allenai/Molmo2-8B"]
    assert args[args.index("--tensor-parallel-size") + 1] == "2" and args[args.index("--api-key") + 1] == "s3cret"
    assert json.loads(args[args.index("--limit-mm-per-prompt") + 1]) == {"image": 16, "video": 1}
    assert "s3cret" not in r.stderr  # the key is not echoed
