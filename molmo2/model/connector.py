"""Vision-to-language connector: attention pooling over patch windows, then a SwiGLU projector.

Each output visual token pools a window of ViT patches (2x2 for images, 3x3 for video frames) chosen
by an index tensor from the processor (-1 marks an empty slot). The query is the masked mean of the
window; keys and values are the window's patches. The same weights serve images and video; windows of
different sizes can share a batch by padding the index rows with -1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from molmo2.config import ConnectorConfig
from molmo2.model.attention import attend


class Connector(nn.Module):
    def __init__(self, cfg: ConnectorConfig, input_dim: int, text_hidden_size: int):
        super().__init__()
        self.cfg = cfg
        inner = cfg.num_heads * cfg.head_dim
        self.q = nn.Linear(input_dim, inner)
        self.k = nn.Linear(input_dim, inner)
        self.v = nn.Linear(input_dim, inner)
        self.o = nn.Linear(inner, cfg.hidden_size)
        self.w1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)  # gate
        self.w3 = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)  # up
        self.w2 = nn.Linear(cfg.intermediate_size, text_hidden_size, bias=False)

    def forward(self, features_PC: torch.Tensor, pooling_idx_MK: torch.Tensor) -> torch.Tensor:
        """``features_PC``: all crops' patches flattened ``[P, C]``; ``pooling_idx_MK``: ``[M, K]``.
        Returns ``[M', D_text]`` for the M' rows with at least one valid index, in order."""
        valid_MK = pooling_idx_MK >= 0
        keep_M = valid_MK.any(-1)
        if not bool(keep_M.all()):
            pooling_idx_MK, valid_MK = pooling_idx_MK[keep_M], valid_MK[keep_M]
        M, K = pooling_idx_MK.shape
        to_pool_MKC = features_PC[pooling_idx_MK.clamp(min=0)] * valid_MK[..., None].to(features_PC.dtype)
        if self.cfg.pooling_attention_mask:
            n_valid = valid_MK.sum(-1, keepdim=True).clamp(min=1).to(features_PC.dtype)
            query_M1C = to_pool_MKC.sum(1, keepdim=True) / n_valid[..., None]
            mask = valid_MK[:, None, None, :]  # [M, 1, 1, K]
        else:
            query_M1C, mask = to_pool_MKC.mean(1, keepdim=True), None
        H, hd = self.cfg.num_heads, self.cfg.head_dim
        q = self.q(query_M1C).view(M, 1, H, hd).transpose(1, 2)
        k = self.k(to_pool_MKC).view(M, K, H, hd).transpose(1, 2)
        v = self.v(to_pool_MKC).view(M, K, H, hd).transpose(1, 2)
        pooled_MC = self.o(attend(q, k, v, mask).transpose(1, 2).reshape(M, H * hd))
        return self.w2(F.silu(self.w1(pooled_MC)) * self.w3(pooled_MC))
