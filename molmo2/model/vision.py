"""SigLIP2-style vision transformer over pre-patchified square crops.

Input is ``[num_crops, num_patches, patch_dim]`` (patches already flattened in (row, col, channel)
order by the processor), so the patch embedding is a Linear rather than a Conv2d. There is no CLS token
and no final norm; the connector reads the outputs of chosen blocks, so only blocks up to the deepest
chosen one are built (25 of SigLIP's 27 for the released models).

Pixels come as uint8 (what the processor returns), normalized here by ``normalize_pixels`` in float32
and then cast to the model's dtype, or as floats already normalized. Normalizing at the last moment
means a video's float32 patches (4x the uint8 bytes) never exist all at once; the pipeline feeds the ViT
a few frames at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from molmo2.config import VisionConfig
from molmo2.model.attention import attend


def normalize_pixels(pixels_NPC: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 patches ``[..., patch_dim]`` (channel last within each pixel) -> float32
    ``(x - 255*mean) / (255*std)``, the exact float32 values of the reference processor."""
    C = len(mean)
    mean255 = torch.tensor(mean, dtype=torch.float32, device=pixels_NPC.device) * 255.0
    std255 = torch.tensor(std, dtype=torch.float32, device=pixels_NPC.device) * 255.0
    x = pixels_NPC.to(torch.float32).unflatten(-1, (-1, C))
    return ((x - mean255) / std255).flatten(-2)


class VisionAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, head_dim: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.q = nn.Linear(dim, num_heads * head_dim)
        self.k = nn.Linear(dim, num_heads * head_dim)
        self.v = nn.Linear(dim, num_heads * head_dim)
        self.o = nn.Linear(num_heads * head_dim, dim)

    def forward(self, x_BTD: torch.Tensor) -> torch.Tensor:
        B, T, _ = x_BTD.shape
        q, k, v = (p(x_BTD).view(B, T, self.num_heads, self.head_dim).transpose(1, 2) for p in (self.q, self.k, self.v))
        out = attend(q, k, v).transpose(1, 2).reshape(B, T, -1)
        return self.o(out)


class VisionBlock(nn.Module):
    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.attn = VisionAttention(cfg.hidden_size, cfg.num_heads, cfg.head_dim)
        self.norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))


class VisionTransformer(nn.Module):
    def __init__(self, cfg: VisionConfig, num_blocks: int):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = nn.Linear(cfg.patch_dim, cfg.hidden_size)
        self.pos_embed = nn.Parameter(torch.zeros(cfg.num_positions, cfg.hidden_size))
        self.blocks = nn.ModuleList(VisionBlock(cfg) for _ in range(num_blocks))

    def forward(self, patches_NPC: torch.Tensor, feature_blocks: list[int]) -> torch.Tensor:
        """Returns the outputs of ``feature_blocks`` concatenated on channels: ``[N, P, len*D]``.
        ``patches_NPC``: uint8 pixels, or float pixels already normalized."""
        if patches_NPC.dtype == torch.uint8:
            patches_NPC = normalize_pixels(patches_NPC, self.cfg.pixel_mean, self.cfg.pixel_std)
        x = self.patch_embed(patches_NPC.to(self.patch_embed.weight.dtype)) + self.pos_embed
        wanted = {b: None for b in feature_blocks}
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in wanted:
                wanted[i] = x
        return torch.cat([wanted[b] for b in feature_blocks], dim=-1)
