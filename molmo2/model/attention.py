"""The one attention entry point: PyTorch SDPA, with grouped-query heads handled inside the kernel.

Every attention in the model (ViT self-attention, connector pooling, LLM self-attention) goes through
``attend`` so that a faster kernel, or a block-mask path for packed training, has one place to go.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def attend(
    q_BHQD: torch.Tensor,
    k_BKvSD: torch.Tensor,
    v_BKvSD: torch.Tensor,
    mask: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention. ``mask`` is boolean (True = may attend), broadcastable to
    ``[B, H, Q, S]``. Key/value heads may be fewer than query heads (GQA). Returns ``[B, H, Q, D]``."""
    num_heads, num_kv = q_BHQD.shape[1], k_BKvSD.shape[1]
    return F.scaled_dot_product_attention(
        q_BHQD, k_BKvSD, v_BKvSD, attn_mask=mask, scale=scale, enable_gqa=num_heads != num_kv
    )
