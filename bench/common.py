"""Shared helpers for the benchmarks: the ~100M benchmark config, random reference checkpoints written by
transformers (the oracle, used here only as the speed/memory baseline), inputs for both implementations,
and a machine description for BENCHMARKS.md."""

from __future__ import annotations

import copy
import datetime
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from molmo2.config import ConnectorConfig, Molmo2Config, TextConfig, VisionConfig
from molmo2.model.vision import normalize_pixels

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference import reference_model  # noqa: E402,F401 (the same oracle as the parity tests)
from reference import write_side_files as write_tiny_side_files  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CROP = 224  # square crop size of the benchmark ViT (16x16 patches of 14 px)
MAX_CROPS = 8
VIDEO_FRAMES = 16


def bench_config(text_layers: int = 12, text_hidden: int = 768, text_inter: int = 2048) -> Molmo2Config:
    """~100M parameters: ViT 12 x 384 on 224 px crops, Qwen3-style LLM 12 x 768 (12 heads, 4 KV heads,
    head_dim 64, SwiGLU 2048), vocab 1024 + 16 extra rows (the tiny test tokenizer's ids).

    The connector reads ViT layers [-1, -7] -- like the released models in transformers' layout, where
    the ViT is stored truncated at the deepest feature layer, so both implementations run the same
    12 ViT blocks."""
    tiny = Molmo2Config.from_name("tiny")
    cfg = copy.deepcopy(tiny)
    cfg.vision = VisionConfig(hidden_size=384, intermediate_size=1536, num_layers=12, num_heads=6, head_dim=64,
                              image_size=CROP, patch_size=14)
    cfg.connector = ConnectorConfig(feature_layers=[-1, -7], hidden_size=384, num_heads=6, head_dim=64,
                                    intermediate_size=text_inter)
    cfg.text = TextConfig(hidden_size=text_hidden, num_layers=text_layers, num_heads=text_hidden // 64,
                          num_kv_heads=4, head_dim=64, intermediate_size=text_inter, vocab_size=1024,
                          additional_vocab_size=16, rope_theta=1_000_000.0, max_position_embeddings=8192)
    return cfg.validate()


def config_summary(cfg: Molmo2Config) -> str:
    v, c, t = cfg.vision, cfg.connector, cfg.text
    return (
        f"ViT {v.num_layers} x {v.hidden_size} (heads {v.num_heads}x{v.head_dim}, MLP {v.intermediate_size}, "
        f"{v.image_size} px crops, patch {v.patch_size}); connector reads ViT layers {c.feature_layers}, "
        f"pooling attn {c.num_heads}x{c.head_dim}, SwiGLU {c.hidden_size}->{c.intermediate_size}->{t.hidden_size}; "
        f"LLM (Qwen3-style) {t.num_layers} x {t.hidden_size} (heads {t.num_heads}, KV heads {t.num_kv_heads}, "
        f"head_dim {t.head_dim}, SwiGLU {t.intermediate_size}), vocab {t.vocab_size} + {t.additional_vocab_size}"
    )


def write_side_files(out: Path) -> None:
    """Tokenizer (tiny test tokenizer) and processor settings for the benchmark crop size."""
    write_tiny_side_files(out, crop=CROP, max_crops=MAX_CROPS, num_frames=VIDEO_FRAMES, margins=4)


def save_reference(model, out: Path, max_shard_size: str | int | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    kwargs = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    model.save_pretrained(out, **kwargs)
    write_side_files(out)
    return out


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def reference_inputs(enc, cfg: Molmo2Config, video: bool) -> dict:
    """The same prompt as transformers' Molmo2 takes it (as in tests/test_parity.py)."""
    ids = enc.input_ids[None]
    kwargs = {"input_ids": ids, "mm_token_type_ids": torch.isin(ids, torch.tensor(cfg.visual_token_ids)).long()}
    if enc.pixel_values is not None:
        # transformers takes normalized float32 pixels; ours are uint8 until the ViT
        pixels = normalize_pixels(enc.pixel_values, cfg.vision.pixel_mean, cfg.vision.pixel_std)
        if video:
            kwargs.update(pixel_values_videos=pixels, video_token_pooling=enc.pooling,
                          video_grids=torch.tensor([[enc.num_visual_tokens, 1, 1]]))
        else:
            kwargs.update(pixel_values=pixels, image_token_pooling=enc.pooling,
                          image_grids=torch.tensor([[enc.num_visual_tokens, 1, 0, 0]]))
    return kwargs


def median(xs):
    return statistics.median(xs)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def mem_total_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def machine_description() -> str:
    import transformers

    flags = ""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        have = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in cpuinfo]
        flags = ", ".join(have)
    except OSError:
        pass
    return (
        f"{cpu_model()} ({os.cpu_count()} cores; {flags}), {mem_total_gib():.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}"
    )


def today() -> str:
    return datetime.date.today().isoformat()


def append_section(path: Path, text: str) -> None:
    """Append a section to BENCHMARKS.md (creating it with a title if absent)."""
    if not path.exists():
        path.write_text("# Benchmarks\n")
    with path.open("a") as f:
        f.write("\n" + text.rstrip() + "\n")


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


class ForeignLoad:
    """CPU cores used by *other* processes while a block runs (machine busy time from /proc/stat minus this
    process's CPU time), to flag timings taken while the machine was shared."""

    def __init__(self):
        self.samples: list[float] = []

    @staticmethod
    def _busy_s() -> float:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except OSError:
            return float("nan")
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    def __enter__(self):
        t = os.times()
        self._start = (time.perf_counter(), self._busy_s(), t.user + t.system)
        return self

    def __exit__(self, *exc):
        t = os.times()
        wall0, busy0, own0 = self._start
        wall = time.perf_counter() - wall0
        foreign = (self._busy_s() - busy0) - (t.user + t.system - own0)
        if wall > 0:
            self.samples.append(max(0.0, foreign / wall))
        return False

    def summary(self) -> str:
        if not self.samples:
            return "n/a"
        return f"median {statistics.median(self.samples):.2f}, max {max(self.samples):.2f} cores"
