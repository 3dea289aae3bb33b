"""Package a trained tiny-shapes model for the repository: bf16 weights in the standard layout, its
tokenizer and processor files, and a model card built from the run's logs and held-out evaluations.

    python scripts/ship_tiny_shapes.py --run runs/tiny-shapes --eval runs/eval-images runs/eval-video \
        [--model runs/tiny-shapes/final] [--out molmo2/assets/tiny-shapes] [--notes notes.md]

``--eval`` folders are ``molmo2 eval`` outputs (``metrics.json``); ``--notes`` is Markdown appended to the
card (what was tried, where a target stands).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from molmo2.checkpoint import load_model, read_config, save_pretrained

TARGETS = {"pointing/image": 0.8, "pointing/video": 0.6, "counting/image": 0.7, "counting/video": 0.7,
           "tracking/video": 0.6}


def _log_rows(run: Path) -> list[tuple[str, dict]]:
    rows = []
    for phase in sorted(run.glob("phase*")):
        log = phase / "log.jsonl"
        if log.is_file():
            rows += [(phase.name, json.loads(line)) for line in log.read_text().splitlines() if line.strip()]
    return rows


def _phase_summary(run: Path) -> list[str]:
    out = ["| phase | steps | data (group: rate) | rows x seq | peak lr (vit/connector/llm) |",
           "| --- | --- | --- | --- | --- |"]
    for phase in sorted(run.glob("phase*")):
        cfg_path = phase / "config.json"
        if not cfg_path.is_file():
            continue
        c = json.loads(cfg_path.read_text())
        data = ", ".join(f"{g}: {r:g}" for g, r in c["data"]["group_rates"].items())
        lr = c["optim"]["lr"]
        out.append(f"| {phase.name} | {c['steps']} | {data} | {c['global_batch_rows']} x {c['data']['seq_len']} | "
                   f"{lr['vit']:g} / {lr['connector']:g} / {lr['llm']:g} |")
    return out


def _curve(rows: list[tuple[str, dict]], every: int = 100) -> list[str]:
    out = ["| phase | step | loss | token accuracy | tokens/s |", "| --- | --- | --- | --- | --- |"]
    for phase, r in rows:
        if r["step"] % every == 0:
            out.append(f"| {phase} | {r['step']} | {r['loss']:.3f} | {r['accuracy']:.3f} | "
                       f"{r.get('tokens_per_s', 0):.0f} |")
    return out


def _scores(evals: list[Path]) -> tuple[list[str], dict[str, float]]:
    out = ["| task | items | metric | held-out score | target |", "| --- | --- | --- | --- | --- |"]
    got: dict[str, float] = {}
    for e in evals:
        m = json.loads((e / "metrics.json").read_text())
        for group, h in m["headline"].items():
            n = m["groups"][group]["num"]
            got[group] = h["value"]
            target = TARGETS.get(group)
            mark = "" if target is None else (f">= {target}" + (" (met)" if h["value"] >= target else " (NOT met)"))
            out.append(f"| {group} | {n} | {h['metric']} | {h['value']:.3f} | {mark} |")
            if group.startswith("tracking"):
                g = m["groups"][group]
                out.append(f"| {group} | {n} | HOTA | {g['HOTA']:.3f} | |")
    return out, got


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", required=True, type=Path, help="the recipe's run folder (phase*/log.jsonl, final/)")
    p.add_argument("--model", type=Path, help="model directory to ship (default: RUN/final)")
    p.add_argument("--eval", nargs="+", type=Path, default=[], help="molmo2 eval output folders")
    p.add_argument("--out", type=Path, default=Path("molmo2/assets/tiny-shapes"))
    p.add_argument("--notes", type=Path, help="Markdown appended to the model card")
    args = p.parse_args()

    src = args.model or args.run / "final"
    model = load_model(src, dtype=torch.float32)
    n_params = sum(t.numel() for t in model.state_dict().values())
    save_pretrained(model, args.out, source_dir=src, dtype=torch.bfloat16)
    cfg = read_config(args.out)
    size_mb = sum(f.stat().st_size for f in args.out.glob("*.safetensors")) / 2**20

    rows = _log_rows(args.run)
    scores, _ = _scores(args.eval)
    pre = json.loads((args.out / "preprocessor_config.json").read_text())
    vpre = json.loads((args.out / "video_preprocessor_config.json").read_text())
    card = [
        "# tiny-shapes: a Molmo2-architecture model that points, counts and tracks coloured shapes",
        "",
        "The model `make demo` runs. Same code path as the released Molmo2 models (ViT with features",
        "from two layers, attention-pooling connector with a SwiGLU projector, Qwen3-style LLM with QK-norm),",
        f"at {n_params / 1e6:.1f}M parameters ({size_mb:.1f} MB of bf16 safetensors), trained from scratch",
        "on this project's synthetic data (`molmo2.data.shapes`) by `molmo2 train --recipe tiny-shapes` on a",
        "2-core CPU. It knows coloured shapes only; on real footage it runs, but its answers mean little.",
        "",
        "## Architecture",
        "",
        f"- ViT: {cfg.vision.num_layers} layers, width {cfg.vision.hidden_size}, patch 14, "
        f"{cfg.vision.image_size} px input, features from layers {cfg.connector.feature_layers}",
        f"- connector: attention pooling {tuple(pre['pooling_size'])} for images, {tuple(vpre['pooling_size'])} "
        "for video frames, SwiGLU projector",
        f"- LLM: {cfg.text.num_layers} layers, width {cfg.text.hidden_size}, {cfg.text.num_heads} heads "
        f"({cfg.text.num_kv_heads} KV), vocabulary {cfg.text.vocab_size} (byte-level BPE trained on the task "
        "language, digits one by one) + Molmo2's visual tokens, context "
        f"{cfg.text.max_position_embeddings}",
        f"- video: up to {vpre['num_frames']} frames at {vpre['max_fps']} fps",
        "",
        "## Training",
        "",
        "Random init (`molmo2.train.trainer.init_weights`: unit-gain ViT/connector matrices except the ViT's",
        "residual branches, 2D sin-cos start for the ViT positions, 0.02 in the LLM),",
        "AdamW (betas 0.9/0.95, eps 1e-8), per-part learning rates with warmup and cosine decay, bf16",
        "autocast on CPU, packed rows. Phase 1: images with one shape, and with 1-3, on plain backgrounds; phase 2:",
        "full-difficulty images (textures, overlaps, cut by the border) and videos (motion, occlusion,",
        "objects entering and leaving); phase 3: the same again at half the learning rate; phases 4 and 5:",
        "fresh images (three quarters, then 60% of the examples) and videos, at half the learning rate.",
        "",
        *_phase_summary(args.run),
        "",
        "Training curve (loss = mean cross-entropy over answer tokens; from `phase*/log.jsonl`):",
        "",
        *_curve(rows),
        "",
        "## Held-out scores",
        "",
        "Fresh generator seeds (never used in training), scored by `molmo2 eval --task tiny-shapes` with the",
        "same metric functions as the official benchmarks (pointing: one-to-one matching, hit = point in the",
        "instance mask (and exact timestamp for video); counting: exact; tracking: per-frame point-in-mask",
        "F1 and HOTA):",
        "",
        *scores,
        "",
        "## Reproduce",
        "",
        "```",
        "molmo2 train --recipe tiny-shapes          # data, tokenizer, all five phases; resumable",
        "python -m molmo2.data.shapes runs/heldout-images --num 120 --preset images --size 112 --seed 999 \\",
        "    --kinds pointing,counting",
        "python -m molmo2.data.shapes runs/heldout-video --num 120 --preset video --size 112 --seed 998 \\",
        "    --kinds pointing,counting,tracking",
        "molmo2 eval --task tiny-shapes --model molmo2/assets/tiny-shapes --data runs/heldout-images",
        "molmo2 eval --task tiny-shapes --model molmo2/assets/tiny-shapes --data runs/heldout-video --limit 600",
        "# (the first 100 clips: 200 questions per task; the table merged two halves run in parallel)",
        "```",
        "",
    ]
    if args.notes:
        card += [args.notes.read_text().strip(), ""]
    (args.out / "README.md").write_text("\n".join(card))
    print(f"shipped {src} -> {args.out} ({n_params / 1e6:.1f}M params, {size_mb:.1f} MB)")


if __name__ == "__main__":
    main()
