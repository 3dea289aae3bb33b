"""SlowFast on a trained model: visual tokens saved and how far grounded answers move, on held-out clips.

    python bench/bench_slowfast_trained.py [--model molmo2/assets/tiny-shapes] [--clips 20] [--k 2]

Generates held-out tiny-shapes videos (seed 997, never in training), asks every video pointing and
tracking question with full detail and with ``slowfast=K``, and scores both against the ground-truth
masks: visual tokens per clip, F1 per setting, and how often the two answers are identical.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from molmo2 import Molmo2
from molmo2.data import shapes
from molmo2.demo import SHIPPED_MODEL
from molmo2.eval.tasks.tiny_shapes import load_items, score_item


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(SHIPPED_MODEL))
    p.add_argument("--clips", type=int, default=20)
    p.add_argument("--k", type=int, default=2)
    args = p.parse_args()
    torch.manual_seed(0)
    pipe = Molmo2.from_pretrained(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        shapes.generate_dataset(Path(tmp), args.clips, shapes.preset("video", image_size=112, seed=997),
                                kinds=("pointing", "tracking"), progress=False)
        items = load_items(tmp, kinds=("pointing", "tracking"))
        rows = {}
        for name, opts in (("full", {}), (f"slowfast={args.k}", {"slowfast": args.k})):
            f1 = {"pointing": [], "tracking": []}
            texts, tokens, t0 = [], [], time.perf_counter()
            for it in items:
                ans = getattr(pipe, {"pointing": "point", "tracking": "track"}[it.kind])(it.media, it.label, **opts)
                rec = {"text": ans.text, "grounding": ans.grounding.to_dict()}
                f1[it.kind].append(score_item(it, rec)["f1"])
                texts.append(ans.text)
                tokens.append(ans.media.num_visual_tokens)
            rows[name] = (f1, texts, sum(tokens) / len(tokens), (time.perf_counter() - t0) / len(items))
    full_texts = rows["full"][1]
    print(f"model {args.model}; {args.clips} held-out clips, {len(items)} questions (video pointing + tracking)\n")
    print("| setting | visual tokens / clip | pointing F1 | tracking F1 | same answer as full | s / question |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (f1, texts, tok, sec) in rows.items():
        same = sum(a == b for a, b in zip(texts, full_texts)) / len(texts)
        mean = {k: sum(v) / max(1, len(v)) for k, v in f1.items()}
        print(f"| {name} | {tok:.0f} | {mean['pointing']:.3f} | {mean['tracking']:.3f} | {same:.0%} | {sec:.2f} |")


if __name__ == "__main__":
    main()
