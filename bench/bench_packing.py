"""Packing: fill of token and crop slots, attention-mask memory, and packed vs pad-to-longest training
throughput, all measured in one run.

1. Fill: the knapsack packer on a length distribution like Molmo2's SFT mix (training.md §3, 3.8
   examples per 16k row on average): video-heavy, 200..16k tokens, up to 128 crops. Token fill =
   real tokens / row slots, crop fill = crops / crop slots (rows of 16,384 tokens, 128 crops).
2. Mask memory at 16k tokens: the official dense float32 bias ``[B, 1, S, S]`` (plus the bf16 copy
   made inside every layer) vs ``SegmentMask``'s per-example boolean masks (``sum L_i^2`` bytes).
3. Throughput: the same examples of that mix (rows of 16,384 tokens), each a message tree of 1..6
   conversations, on a small text-only LLM with Molmo2-4B's attention : linear cost ratio, one
   training step per batch: (a) packed rows, (b) pad-to-longest batches of trees with our per-example
   attention, (c) the same with the official dense float mask (training.md §4.3), (d) pad-to-longest
   without message trees (one sequence per conversation, prefix repeated), both attentions; examples/s
   with the CPU other processes used.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from molmo2.config import Molmo2Config
from molmo2.model import Molmo2Model
from molmo2.train.batch import collate, loss_sums
from molmo2.train.packing import Packer, PackItem
from molmo2.train.trainer import init_weights, tune_malloc
from molmo2.train.trees import Branch, TreeSettings, build_tree

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/common.py
from common import ForeignLoad  # noqa: E402


def sft_like_lengths(n: int, rng: np.random.Generator) -> list[tuple[int, int, str]]:
    """(tokens, crops, kind): 55% video (frames 8..128 at ~90 tokens/frame + 50..3000 tokens of QA
    trees), 35% image (1..9 crops of ~150 tokens + 200..2000 tokens of text), 10% text (100..4000)."""
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.55:
            frames = int(rng.integers(8, 129))
            out.append((min(16_384, frames * 90 + int(rng.integers(50, 3000))), frames, "video"))
        elif r < 0.9:
            crops = int(rng.integers(1, 10))
            out.append((int(rng.integers(200, 2000)) + crops * 150, crops, "image"))
        else:
            out.append((int(rng.integers(100, 4000)), 0, "text"))
    return out


def tree_shape(tokens: int, crops: int, kind: str, rng: np.random.Generator) -> tuple[int, int, list[int]]:
    """How an example of ``sft_like_lengths`` splits into a message tree: (prefix tokens, visual tokens
    among them, branch lengths summing to the rest). The prefix is the media: 90 tokens per video frame
    (81 visual + frame timestamp text), 150 per image crop; text examples have a 1-token prefix and one
    conversation. Media examples carry 1..6 conversations (the annotations of one video or image: its
    QAs, pointing queries, caption variants; training.md §4.1), each >= 20 tokens."""
    if kind == "text":
        return 1, 0, [tokens - 1]
    prefix = crops * (90 if kind == "video" else 150)
    visual = crops * (81 if kind == "video" else 150)
    text = tokens - prefix
    k = max(1, min(int(rng.integers(1, 7)), text // 40))
    branches = (rng.dirichlet(np.ones(k)) * (text - 20 * k)).astype(int) + 20
    branches[-1] += text - branches.sum()
    return prefix, visual, [int(b) for b in branches]


def fill(num: int, seq_len: int, max_crops: int, buffer: int, image_weight: float) -> tuple[float, float, float, float]:
    rng = np.random.default_rng(0)
    sizes = sft_like_lengths(num, rng)
    packer = Packer(max_tokens=seq_len, max_crops=max_crops, buffer_size=buffer, image_weight=image_weight)
    rows = []
    t0 = time.perf_counter()
    for k, (t, c, _) in enumerate(sizes):
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
    """A TrainItem stand-in with random tokens, built like a real one (``build_tree``): a media prefix
    whose first ``num_visual`` tokens are visual (bidirectional in the mask, as frames and crops are),
    then the branches (conversations), each supervised on its second half (the answer)."""

    def __init__(self, tree, num_visual: int):
        self.tree = tree
        self.is_visual = np.arange(len(tree)) < num_visual
        self.pixel_values = self.pooling = None
        self.num_tokens, self.num_crops = len(tree), 0

    @staticmethod
    def example(prefix: int, num_visual: int, branches: list[int], rng: np.random.Generator, vocab: int
                ) -> tuple[_Item, list[_Item]]:
        """The example as one message tree, and as one sequence per conversation (its prefix repeated:
        how a trainer without message trees sees the same data)."""
        prefix_ids = [int(i) for i in rng.integers(3, vocab, prefix)]
        conv = []
        for n in branches:
            loss = [False] * (n - n // 2) + [True] * (n // 2)
            conv.append(Branch([int(i) for i in rng.integers(3, vocab, n)], loss))
        s = TreeSettings(max_seq_len=16_384, shuffle_branches=False)
        return (_Item(build_tree(prefix_ids, conv, s), num_visual),
                [_Item(build_tree(prefix_ids, [b], s), num_visual) for b in conv])


def official_dense_attention(q, k, v, mask, scale, gqa):
    """What the official trainer does in every layer (training.md §4.3): one dense additive float32 bias
    ``[B, 1, S, S]`` (0 / finfo.min) built once per forward from the same rule, K/V repeated for GQA,
    SDPA with ``attn_mask``. (Under bf16 autocast it also makes a bf16 copy per layer; this bench runs
    fp32, which spares the baseline that copy.)"""
    if "bias" not in mask._local:
        ex, br, vis = mask.example_ids, mask.branch_ids, mask.is_visual
        B, S = ex.shape
        bias = torch.empty(B, 1, S, S)
        for b in range(B):  # row by row: only the bias itself is B x S^2 (the official builds it at once)
            allowed = type(mask)(ex[b : b + 1], br[b : b + 1], vis[b : b + 1]).dense()
            bias[b] = torch.where(allowed[0], 0.0, torch.finfo(torch.float32).min)
        mask._local["bias"] = bias
    if gqa:
        rep = q.shape[1] // k.shape[1]
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask._local["bias"], scale=scale)


def throughput_model() -> Molmo2Model:
    """1-layer LLM whose attention : linear FLOP ratio per token is Molmo2-4B's (attention width /
    parameters per layer: 64 / 1.70M here, 4096 / 101M there), so padding and attention cost in the
    same proportion; vocab 1024 (the head runs at supervised positions only, as in training)."""
    cfg = Molmo2Config.from_name("tiny")
    cfg.text.hidden_size, cfg.text.num_layers, cfg.text.intermediate_size = 512, 1, 1024
    cfg.text.num_heads, cfg.text.num_kv_heads, cfg.text.head_dim = 1, 1, 64
    cfg.text.max_position_embeddings = 16_384
    model = Molmo2Model(cfg.validate())
    init_weights(model, 0)
    return model


def throughput(num_rows: int, rows_per_step: int = 2, seq_len: int = 16_384, max_crops: int = 128) -> dict:
    """Examples/s on the same examples: those of the first ``num_rows`` packed rows of the SFT-like mix,
    each a message tree (``tree_shape``). (a) packed, ``rows_per_step`` rows per step (the official SFT
    micro-batch is 2 rows); pad-to-longest batches of whole trees in stream order, as many examples per
    step (and half as many), each with (b) our per-example attention and (c) the official dense float
    mask; (d) pad-to-longest without message trees: every conversation its own sequence with the
    example's prefix repeated, as many sequences per step as (b), with both attentions. An example
    counts as trained when all its conversations are. Each mode runs as a block after one untimed
    warm-up step: interleaving the modes made every step pay for the previous mode's differently sized
    buffers (fresh pages: the first pass spent 28% of its CPU time in the kernel, and one packed batch
    took 7-18 s), which measures the CPU allocator rather than the batching."""
    import molmo2.model.attention as attention

    rng = np.random.default_rng(0)
    sizes = sft_like_lengths(48 + 8 * num_rows, rng)
    packer = Packer(max_tokens=seq_len, max_crops=max_crops, buffer_size=48, image_weight=30)
    rows = [r for r in (packer.add(PackItem(k, t, c)) for k, (t, c, _) in enumerate(sizes)) if r][:num_rows]
    assert len(rows) == num_rows
    model = throughput_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    shapes = np.random.default_rng(1)  # tree shapes from their own stream: the packing is unchanged
    items, convs = {}, {}
    for key in sorted(p.key for r in rows for p in r):
        prefix, visual, branches = tree_shape(*sizes[key], shapes)
        items[key], convs[key] = _Item.example(prefix, visual, branches, rng, model.cfg.text.vocab_size)
        assert items[key].num_tokens == sizes[key][0]
    keys = sorted(items)  # stream order
    per_step = max(1, round(len(keys) * rows_per_step / num_rows))
    trees = [items[key] for key in keys]
    flat = [c for key in keys for c in convs[key]]

    def padded(seqs, k):
        return [[[s] for s in seqs[i : i + k]] for i in range(0, len(seqs), k)]

    packed = [[[items[p.key] for p in r] for r in rows[i : i + rows_per_step]]
              for i in range(0, num_rows, rows_per_step)]
    modes = {"packed": ("packed", rows_per_step, packed, False)}
    for k in (per_step, max(1, per_step // 2)):
        modes[f"dense{k}"] = ("pad to longest", k, padded(trees, k), True)
        modes[f"ours{k}"] = ("pad to longest", k, padded(trees, k), False)
    modes["flat-dense"] = ("pad to longest, no message trees", per_step, padded(flat, per_step), True)
    modes["flat-ours"] = ("pad to longest, no message trees", per_step, padded(flat, per_step), False)
    segments = attention._attend_segments

    def step(batch, dense: bool) -> int:
        attention._attend_segments = official_dense_attention if dense else segments
        try:
            b = collate(batch)
            s = loss_sums(model, b, backend="segments")
            ((s.ce + s.z) / max(s.weight, 1)).backward()
            opt.step()
            opt.zero_grad()
        finally:
            attention._attend_segments = segments
        return b.input_ids.numel()

    out = {m: {"slots": 0, "seconds": 0.0, "load": ForeignLoad()} for m in modes}
    whole = ForeignLoad()
    with whole:
        for m, (_, _, batches, dense) in modes.items():
            print(f"  {m}: {len(batches)} steps", file=sys.stderr, flush=True)
            step(batches[0], dense)  # warm-up (not timed): the allocator's pages and kernels for this shape mix
            for batch in batches:
                t0 = time.perf_counter()
                with out[m]["load"]:
                    slots = step(batch, dense)
                out[m]["seconds"] += time.perf_counter() - t0
                out[m]["slots"] += slots
    for m, (label, k, batches, dense) in modes.items():
        o = out[m]
        seqs = [s[0] for b in batches for s in b] if label != "packed" else trees
        o.update(label=label, per_step=k, dense=dense, steps=len(batches), examples_per_s=len(keys) / o["seconds"],
                 real=sum(s.num_tokens for s in seqs), token_fill=sum(s.num_tokens for s in seqs) / o["slots"],
                 load=o["load"].summary())
        # attention work: sum L_i^2 with per-example attention, B * S_max^2 with the dense mask
        o["pairs"] = sum(s.num_tokens ** 2 for s in seqs) if not dense else \
            sum(len(b) * max(r[0].num_tokens for r in b) ** 2 for b in batches)
    tokens = sum(it.num_tokens for it in trees)
    return {"modes": out, "examples": len(keys), "conversations": len(flat), "tokens": tokens, "rows": num_rows,
            "rows_per_step": rows_per_step, "row_fill": tokens / (num_rows * seq_len),
            "foreign": whole.samples[0], "seconds": sum(o["seconds"] for o in out.values())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rows", type=int, default=8, help="packed rows in the throughput measurement")
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
    rows = [r for r in (packer.add(PackItem(k, t, c)) for k, (t, c, _) in enumerate(sizes)) if r][:2]
    dense, ours = mask_memory([[i.num_tokens for i in r] for r in rows], 16_384)
    print(f"\n## Attention mask memory, 2 packed rows of 16,384 tokens\n\nofficial dense fp32 bias + bf16 copy: "
          f"{dense:,.0f} MiB; SegmentMask per-example bool masks: {ours:,.0f} MiB ({dense / ours:.0f}x less); "
          "FlexAttention (CUDA): block mask only.\n")
    r = throughput(2 if args.quick else args.rows)
    m = throughput_model().cfg.text
    print(f"## Training throughput, the same {r['examples']} examples of the SFT-like mix ({r['conversations']} "
          f"conversations as message trees; {r['rows']} packed rows of 16,384 tokens, token fill {r['row_fill']:.1%}; "
          f"text-only LLM {m.num_layers} x {m.hidden_size}, {m.num_heads} head of {m.head_dim}, SwiGLU "
          f"{m.intermediate_size}; fp32 forward + backward + AdamW)\n")
    print("| batching | per step | attention | real tokens | computed tokens that are real | attention pairs "
          "| examples/s | packed is | other processes' CPU |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|")
    p = r["modes"]["packed"]["examples_per_s"]
    for o in r["modes"].values():
        unit = {"packed": "rows", "pad to longest": "examples"}.get(o["label"], "conversations")
        attn = "official dense fp32 mask" if o["dense"] else "ours, per example"
        print(f"| {o['label']} | {o['per_step']} {unit} | {attn} | {o['real']:,} | {o['token_fill']:.0%} | "
              f"{o['pairs'] / 1e9:.2f}G | {o['examples_per_s']:.3f} | {p / o['examples_per_s']:.2f}x | {o['load']} |")
    print(f"\ntimed steps {r['seconds']:.0f} s; other processes used {r['foreign']:.2f} cores on average during "
          f"the measurement, warm-ups included (of {os.cpu_count()})")


if __name__ == "__main__":
    main()
