"""AdamW with one parameter group per model part, each with its own warmup + cosine schedule and
its own gradient clipping (training.md §1.1).

Parts: ``vit`` (the vision transformer), ``connector`` (pooling + projector, plus the extra embedding
rows of the Molmo2 special tokens when the base embedding is frozen) and ``llm`` (everything else,
``lm_head`` included).
The schedule of a group: linear warmup from 0 to its peak over ``warmup`` steps, then cosine to
``alpha_f * peak`` at ``max_steps``; steps count from 1 (the LR of the first update uses step 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from molmo2.errors import ConfigError

PARTS = ("vit", "connector", "llm")


@dataclass
class OptimConfig:
    lr: dict[str, float] = field(default_factory=lambda: {"vit": 6e-6, "connector": 2e-4, "llm": 2e-5})
    warmup: dict[str, int] = field(default_factory=lambda: {"vit": 2000, "connector": 200, "llm": 2000})
    alpha_f: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-6
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    z_loss: float = 1e-4


def part_of(name: str) -> str:
    if name.startswith("vision."):
        return "vit"
    if name.startswith("connector."):
        return "connector"
    return "llm"


def param_groups(model: torch.nn.Module, cfg: OptimConfig, frozen: set[str] = frozenset(),
                 freeze_base_embedding: bool = False, freeze_lm_head: bool = False) -> list[dict]:
    """Groups for ``torch.optim.AdamW``; parts in ``frozen`` get ``requires_grad=False`` and no group.

    ``freeze_base_embedding`` (the official ``ft_embedding="lm_head"``): the base-vocabulary rows
    ``text.embed[:vocab_size]`` get a zero gradient in every step (``zero_frozen_rows``, before
    clipping), so AdamW never moves them; the Molmo2 special-token rows after them train, with the
    connector's LR. It does not touch ``lm_head``, which is a separate parameter and trains with the
    LLM, except when ``freeze_lm_head`` is set or the model ties its head to the embedding
    (``tie_word_embeddings``): then the head is frozen too, as in the official Molmo2-4B runs, where
    the head *is* the frozen embedding, so head and embedding rows stay equal. A tied model with a
    trainable embedding is refused (the head would drift from the rows it is tied to).
    """
    tied = bool(getattr(model.cfg, "tie_word_embeddings", False))
    freeze_head = freeze_lm_head or (tied and freeze_base_embedding)
    groups: dict[str, list] = {p: [] for p in PARTS}
    names: dict[str, list[str]] = {p: [] for p in PARTS}
    for name, p in model.named_parameters():
        part = part_of(name)
        if name == "text.embed" and freeze_base_embedding:
            part = "connector"
            p._molmo2_frozen_rows = model.cfg.text.vocab_size
        if name == "lm_head.weight" and freeze_head:
            p.requires_grad_(False)
        if part in frozen:
            p.requires_grad_(False)
            continue
        if not p.requires_grad:
            continue
        groups[part].append(p)
        names[part].append(name)
    trained = {n for part in PARTS for n in names[part]}
    if tied and not freeze_base_embedding and trained & {"text.embed", "lm_head.weight"}:
        raise ConfigError("the model ties lm_head to the token embedding (tie_word_embeddings) but they would train "
                         "apart: set freeze_base_embedding=true (the official recipe; the head is then frozen too), "
                         "or untie the head by setting tie_word_embeddings to false in the model's config.json")
    return [{"name": part, "params": groups[part], "param_names": names[part], "lr": cfg.lr[part],
             "peak_lr": cfg.lr[part], "warmup": cfg.warmup[part]}
            for part in PARTS if groups[part]]


def zero_frozen_rows(optimizer: torch.optim.Optimizer) -> None:
    """Zero the gradient rows that ``freeze_base_embedding`` freezes (plain or FSDP2-sharded)."""
    from molmo2.train.parallel import local_rows

    for g in optimizer.param_groups:
        for p in g["params"]:
            num_rows = getattr(p, "_molmo2_frozen_rows", 0)
            if num_rows and p.grad is not None:
                local, start = local_rows(p.grad)
                local[: max(0, num_rows - start)].zero_()


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig, frozen=frozenset(), freeze_base_embedding=False,
                    freeze_lm_head=False):
    groups = param_groups(model, cfg, set(frozen), freeze_base_embedding, freeze_lm_head)
    if not groups:
        raise ValueError("every part of the model is frozen; nothing to train")
    return torch.optim.AdamW(groups, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


def lr_at(step: int, peak: float, warmup: int, max_steps: int, alpha_f: float) -> float:
    """Warmup from 0 then cosine to ``alpha_f * peak`` (``CosWithWarmup``); ``step`` is 1-based."""
    if warmup > 0 and step < warmup:
        return peak * step / warmup
    if step >= max_steps:
        return peak * alpha_f
    frac = (step - warmup) / max(1, max_steps - warmup)
    return peak * alpha_f + (peak - peak * alpha_f) * (1 + math.cos(math.pi * frac)) / 2


def set_lrs(optimizer: torch.optim.Optimizer, step: int, max_steps: int, alpha_f: float) -> dict[str, float]:
    out = {}
    for g in optimizer.param_groups:
        g["lr"] = lr_at(step, g["peak_lr"], g["warmup"], max_steps, alpha_f)
        out[g["name"]] = g["lr"]
    return out


def clip_per_group(optimizer: torch.optim.Optimizer, max_norm: float) -> dict[str, float]:
    """Clip each group to ``max_norm`` by its own global norm; returns the norms before clipping."""
    norms = {}
    for g in optimizer.param_groups:
        params = [p for p in g["params"] if p.grad is not None]
        if params:
            norms[g["name"]] = float(torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True))
    return norms
