"""Packed rows -> model inputs, and the weighted loss over them.

A row is a list of ``TrainItem``s laid end to end; rows of one batch are right-padded to the longest
row (not to the fixed sequence length: attention cost follows the real tokens). Crops of every item
are concatenated and each item's pooling indices are offset into them. The loss applies the LM head
only at supervised positions (``weights > 0``), in float32, and returns *sums* so that the trainer can
normalize by the total weight of the whole global batch (training.md §2.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from molmo2.model import VisualInputs
from molmo2.model.attention import SegmentMask


@dataclass
class TrainBatch:
    input_ids: torch.Tensor  # [B, S]
    targets: torch.Tensor  # [B, S], -1 = none
    weights: torch.Tensor  # [B, S] float32
    position_ids: torch.Tensor  # [B, S]
    example_ids: torch.Tensor  # [B, S], -1 = padding
    branch_ids: torch.Tensor  # [B, S]
    is_visual: torch.Tensor  # [B, S] bool
    visual: VisualInputs | None
    num_examples: int
    num_tokens: int  # real (non-padding) tokens

    def segment_mask(self, backend: str = "auto") -> SegmentMask:
        return SegmentMask(self.example_ids, self.branch_ids, self.is_visual, backend=backend)

    def to(self, device) -> TrainBatch:
        mv = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        if self.visual is not None:
            mv["visual"] = self.visual.to(device)
        return TrainBatch(**mv)


def collate(rows: list[list], pad_id: int = 0, multiple: int = 1) -> TrainBatch:
    """``rows``: lists of TrainItem (see ``molmo2.train.data``); the padded length is a multiple of
    ``multiple`` (the context-parallel degree: every rank gets an equal slice)."""
    B = len(rows)
    S = max(sum(it.num_tokens for it in row) for row in rows)
    S = -(-S // multiple) * multiple
    ids = torch.full((B, S), pad_id, dtype=torch.long)
    targets = torch.full((B, S), -1, dtype=torch.long)
    weights = torch.zeros((B, S), dtype=torch.float32)
    pos = torch.zeros((B, S), dtype=torch.long)
    ex_ids = torch.full((B, S), -1, dtype=torch.long)
    br = torch.zeros((B, S), dtype=torch.long)
    vis = torch.zeros((B, S), dtype=torch.bool)
    pixels, pools = [], []
    patch_offset = 0
    K = max((it.pooling.shape[1] for row in rows for it in row if it.pooling is not None), default=0)
    n_tokens = 0
    for b, row in enumerate(rows):
        start = 0
        for e, it in enumerate(row):
            t = it.tree
            sl = slice(start, start + len(t))
            ids[b, sl] = torch.from_numpy(t.input_ids)
            targets[b, sl] = torch.from_numpy(t.targets)
            weights[b, sl] = torch.from_numpy(t.weights)
            pos[b, sl] = torch.from_numpy(t.position_ids)
            br[b, sl] = torch.from_numpy(t.branch_ids)
            vis[b, sl] = torch.from_numpy(np.asarray(it.is_visual))
            ex_ids[b, sl] = e
            start += len(t)
            if it.pixel_values is not None:
                pool = torch.where(it.pooling >= 0, it.pooling + patch_offset, -1)
                if pool.shape[1] < K:
                    pool = F.pad(pool, (0, K - pool.shape[1]), value=-1)
                pixels.append(it.pixel_values)
                pools.append(pool)
                patch_offset += it.pixel_values.shape[0] * it.pixel_values.shape[1]
        n_tokens += start
    visual = VisualInputs(torch.cat(pixels), torch.cat(pools)) if pixels else None
    return TrainBatch(ids, targets, weights, pos, ex_ids, br, vis, visual, sum(len(r) for r in rows), n_tokens)


@dataclass
class LossSums:
    ce: torch.Tensor  # sum of w * CE
    z: torch.Tensor  # sum of w * z_coef * logsumexp^2
    weight: float  # sum of w
    correct: float  # sum of w * (argmax == target)


def loss_sums(model, batch: TrainBatch, z_coef: float = 1e-4, backend: str = "auto") -> LossSums:
    """Forward one micro-batch; weighted CE and z-loss *sums* at the supervised positions only (with
    context parallelism: those of this rank's slice of the rows)."""
    sel = batch.weights > 0
    logits = model(batch.input_ids, visual=batch.visual, position_ids=batch.position_ids,
                   segments=batch.segment_mask(backend), select=sel).float()  # [N, V]
    w, tgt = batch.weights, batch.targets
    cp = getattr(model, "context_parallel", None)
    if cp is not None:  # the logits are those of this rank's slice of the rows
        w, tgt, sel = cp.shard(w), cp.shard(tgt), cp.shard(sel)
    w = w[sel]
    tgt = tgt[sel]
    ce = F.cross_entropy(logits, tgt, reduction="none")
    lse = torch.logsumexp(logits, dim=-1)
    correct = float((w * (logits.argmax(-1) == tgt)).sum())
    return LossSums((w * ce).sum(), (w * z_coef * lse.square()).sum(), float(w.sum()), correct)
