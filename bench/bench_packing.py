"""Packing: fill of token and crop slots, attention-mask memory, and packed vs pad-to-longest training
throughput, all measured in one run.

1. Fill: the knapsack packer on a length distribution like Molmo2's SFT mix (training.md §3, 3.8
   examples per 16k row on average): video-heavy, 200..16k tokens, up to 128 crops. Token fill =
   real tokens / row slots, crop fill = crops / crop slots (rows of 16,384 tokens, 128 crops).
2. Mask memory at 16k tokens: the official dense float32 bias ``[B, 1, S, S]`` (plus the bf16 copy
   made inside every layer) vs ``SegmentMask``'s per-example boolean masks (``sum L_i^2`` bytes).
3. Throughput: the same examples on a small Molmo2 (text-only tokens, tiny config widened), trained
   one step per batch either packed into rows or padded to the longest example; examples/s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from molmo2.config import Molmo2Config
from molmo2.model import Molmo2Model
from molmo2.train.batch import collate, loss_sums
from molmo2.train.packing import Packer, PackItem
from molmo2.train.trainer import init_weights, tune_malloc


def sft_like_lengths(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(tokens, crops): 55% video (frames 8..128 at ~90 tokens/frame + QA trees), 35% image (1..9
    crops, 200..2000 tokens), 10% text (100..4000 tokens)."""
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.55:
            frames = int(rng.integers(8, 129))
            out.append((min(16_384, frames * 90 + int(rng.integers(50, 3000))), frames))
        elif r < 0.9:
            crops = int(rng.integers(1, 10))
            out.append((int(rng.integers(200, 2000)) + crops * 150, crops))
        else:
            out.append((int(rng.integers(100, 4000)), 0))
    return out


def fill(num: int, seq_len: int, max_crops: int, buffer: int, image_weight: float) -> tuple[float, float, float, float]:
    rng = np.random.default_rng(0)
    sizes = sft_like_lengths(num, rng)
    packer = Packer(max_tokens=seq_len, max_crops=max_crops, buffer_size=buffer, image_weight=image_weight)
    rows = []
    t0 = time.perf_counter()
    for k, (t, c) in enumerate(sizes):
        row = packer.add(PackItem(k, t, c))
        if row:
            rows.append(row)
    dt = time.perf_counter() - t0
    tok = np.mean([sum(i.num_tokens for i in r) / seq_len for r in rows])
    crop = np.mean([sum(i.num_crops for i in r) / max_crops for r in rows])
    per_row = np.mean([len(r) for r in rows])
    return float(tok), float(crop), float(per_row), dt / max(1, len(rows))


def mask_memory(rows_tokens: list[list[int]], S: int) -> tuple[float, float]:
    dense = len(rows_tokens) * S * S * (4 + 2)  # fp32 bias + the bf16 copy per layer call
    ours = sum(L * L for row in rows_tokens for L in row)  # bool per example
    return dense / 2**20, ours / 2**20


class _Item:
    """A text-only TrainItem stand-in with random tokens (loss on the second half)."""

    def __init__(self, n: int, rng: np.random.Generator, vocab: int):
        from molmo2.train.trees import TreeTokens

        ids = rng.integers(3, vocab, n)
        targets = np.append(ids[1:], -1)
        w = np.zeros(n, np.float32)
        w[n // 2 : n - 1] = 1.0
        targets[w == 0] = -1
        self.tree = TreeTokens(ids, targets, w, np.arange(n), np.ones(n, np.int64), 1, 0)
        self.is_visual = np.zeros(n, bool)
        self.pixel_values = self.pooling = None
        self.num_tokens, self.num_crops = n, 0


def throughput(num: int, seq_len: int, steps: int) -> tuple[float, float, float]:
    rng = np.random.default_rng(1)
    cfg = Molmo2Config.from_name("tiny")
    cfg.text.hidden_size, cfg.text.num_layers, cfg.text.intermediate_size = 256, 4, 768
    cfg.text.num_heads, cfg.text.num_kv_heads, cfg.text.head_dim = 4, 2, 64
    model = Molmo2Model(cfg.validate())
    init_weights(model, 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    lengths = [int(x) for x in np.clip(rng.lognormal(5.8, 0.9, num), 40, seq_len)]
    items = [_Item(n, rng, cfg.text.vocab_size) for n in lengths]

    def run(batches) -> float:
        t0 = time.perf_counter()
        done = 0
        for rows in batches[:steps]:
            b = collate(rows)
            s = loss_sums(model, b)
            ((s.ce + s.z) / max(s.weight, 1)).backward()
            opt.step()
            opt.zero_grad()
            done += b.num_examples
        return done / (time.perf_counter() - t0)

    packer = Packer(max_tokens=seq_len, buffer_size=32)
    packed_rows = [r for r in (packer.add(PackItem(i, it.num_tokens)) for i, it in enumerate(items)) if r]
    packed = [[[items[p.key] for p in row] for row in packed_rows[i : i + 2]] for i in range(0, len(packed_rows), 2)]
    per_batch = max(1, round(2 * np.mean([len(r) for r in packed_rows])))  # same examples per step
    padded = [[[it] for it in items[i : i + per_batch]] for i in range(0, len(items), per_batch)]
    run(packed[:1])  # warm up allocator and kernels
    return run(packed), run(padded), float(np.mean([sum(p.num_tokens for p in r) for r in packed_rows]) / seq_len)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.manual_seed(0)
    tune_malloc()
    print("## Packing (knapsack, SFT-like mix: 16,384 tokens and 128 crops per row, image_weight 30)\n")
    print("| buffer | token fill | crop fill | examples/row | solve time/row |")
    print("|---:|---:|---:|---:|---:|")
    for buffer in ((16, 48) if args.quick else (16, 48, 96)):
        tok, crop, per_row, dt = fill(2000 if args.quick else 6000, 16_384, 128, buffer, 30.0)
        print(f"| {buffer} | {tok:.1%} | {crop:.1%} | {per_row:.2f} | {dt * 1e3:.1f} ms |")
    rng = np.random.default_rng(0)
    sizes = sft_like_lengths(3000, rng)
    packer = Packer(max_tokens=16_384, max_crops=128, buffer_size=48, image_weight=30)
    rows = [r for r in (packer.add(PackItem(k, t, c)) for k, (t, c) in enumerate(sizes)) if r][:2]
    dense, ours = mask_memory([[i.num_tokens for i in r] for r in rows], 16_384)
    print(f"\n## Attention mask memory, 2 packed rows of 16,384 tokens\n\nofficial dense fp32 bias + bf16 copy: "
          f"{dense:,.0f} MiB; SegmentMask per-example bool masks: {ours:,.0f} MiB ({dense / ours:.0f}x less); "
          "FlexAttention (CUDA): block mask only.\n")
    steps = 3 if args.quick else 8
    p, q, f = throughput(400, 2048, steps)
    print("## Training throughput, same examples (text-only, 4 x 256 LLM, 2 rows of 2,048 tokens per step)\n")
    print("| batching | examples/s | ratio |")
    print("|---|---:|---:|")
    print(f"| pad to longest | {q:.1f} | 1.00x |")
    print(f"| packed (token fill {f:.0%}) | {p:.1f} | {p / q:.2f}x |")


if __name__ == "__main__":
    main()
