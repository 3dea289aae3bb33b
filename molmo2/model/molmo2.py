"""Molmo2: ViT features -> connector -> added onto ``<im_patch>`` token embeddings -> decoder -> logits.

Visual features are *added to* the embeddings of the ``<im_patch>`` tokens (not substituted), in
sequence order. At prefill the attention mask is causal plus one global bidirectional block over all
visual tokens (patch, column, start and end tokens of every image and frame); decoded tokens are text
and attend causally through the KV cache. Position ids are ``cumsum(attention_mask) - 1`` so padded
rows (left padding for batched generation) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from molmo2.config import Molmo2Config
from molmo2.model.attention import SegmentMask
from molmo2.model.connector import Connector
from molmo2.model.linear import Linear
from molmo2.model.text import KVCache, TextModel
from molmo2.model.vision import VisionTransformer


@dataclass
class VisualInputs:
    """Everything the vision side needs for one batch.

    ``pixel_values``: ``[num_crops, num_patches, patch_dim]`` of every image crop / video frame of the
    batch, in order: uint8 as the processor gives them (the ViT normalizes them), or normalized floats.
    ``pooling``: ``[num_tokens, K]`` indices into the flattened ``num_crops * num_patches`` patch axis,
    one row per ``<im_patch>`` token of the batch in (batch, sequence) order; -1 marks an empty slot
    (rows of different K are padded with -1).
    """

    pixel_values: torch.Tensor
    pooling: torch.Tensor

    def to(self, device: torch.device | str) -> VisualInputs:
        return VisualInputs(self.pixel_values.to(device), self.pooling.to(device))


class Molmo2Model(nn.Module):
    context_parallel = None  # training only: see ``molmo2.train.parallel.apply_context_parallel``

    def __init__(self, cfg: Molmo2Config):
        super().__init__()
        self.cfg = cfg.validate()
        self.feature_blocks = cfg.vision_feature_blocks
        self.vision = VisionTransformer(cfg.vision, cfg.num_vision_blocks_built)
        pool_dim = cfg.vision.hidden_size * len(self.feature_blocks)
        self.connector = Connector(cfg.connector, pool_dim, cfg.text.hidden_size)
        self.text = TextModel(cfg.text)
        self.lm_head = Linear(cfg.text.hidden_size, cfg.text.vocab_size, bias=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.lm_head.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.lm_head.weight.device

    # ----------------------------------------------------------------------------- components
    def vision_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[N, P, patch_dim]`` -> concatenated features of the chosen ViT blocks ``[N, P, C]``."""
        return self.vision(pixel_values, self.feature_blocks)

    def encode_visual(self, visual: VisualInputs) -> torch.Tensor:
        """Pooled, projected visual tokens ``[num_tokens, D_text]`` in ``<im_patch>`` order."""
        feats = self.vision_features(visual.pixel_values)
        return self.connector(feats.reshape(-1, feats.shape[-1]), visual.pooling.to(feats.device))

    def embed(self, input_ids_BT: torch.Tensor, visual_features: torch.Tensor | None,
              check_patches: bool = True) -> torch.Tensor:
        x = self.text.embed_tokens(input_ids_BT)
        if not check_patches and visual_features is None:
            return x
        is_patch = input_ids_BT == self.cfg.image_patch_id
        n_patch = int(is_patch.sum())
        n_feat = 0 if visual_features is None else visual_features.shape[0]
        if n_patch != n_feat:
            raise ValueError(
                f"the prompt has {n_patch} <im_patch> tokens but the images give {n_feat} visual features; "
                "build inputs with the molmo2 processor so that tokens and pixels match"
            )
        if n_feat:
            x = x.clone()
            x[is_patch] = x[is_patch] + visual_features.to(x.dtype)
        return x

    def attention_mask(
        self, input_ids_BT: torch.Tensor, pad_mask_BS: torch.Tensor | None, past: int
    ) -> torch.Tensor | None:
        """Boolean ``[B, 1, T, past+T]`` mask, or None when plain causal attention without padding
        would do (a single decode step with no padding)."""
        B, T = input_ids_BT.shape
        S = past + T
        device = input_ids_BT.device
        if T == 1 and pad_mask_BS is None:
            return None
        q_pos = torch.arange(past, S, device=device)
        k_pos = torch.arange(S, device=device)
        allowed = (k_pos[None, :] <= q_pos[:, None])[None].expand(B, T, S)
        if past == 0 and T > 1:
            is_vis = torch.isin(input_ids_BT, torch.tensor(self.cfg.visual_token_ids, device=device))
            allowed = allowed | (is_vis[:, :, None] & is_vis[:, None, :])
        if pad_mask_BS is not None:
            allowed = allowed & pad_mask_BS[:, None, :].bool()
            # a padded query row would see no key at all; let it see itself so SDPA stays finite
            allowed = allowed | (k_pos[None, None, :] == q_pos[None, :, None])
        return allowed[:, None]

    # -------------------------------------------------------------------------------- forward
    def forward(
        self,
        input_ids: torch.Tensor,
        visual: VisualInputs | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
        visual_features: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        segments: SegmentMask | None = None,
        select: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``[B, T, V]`` (or the last ``logits_to_keep`` positions).

        ``attention_mask``: ``[B, past+T]`` 1 for real tokens, 0 for padding (None = no padding).
        ``visual_features``: precomputed ``encode_visual`` output (skips the vision tower).
        ``segments``: packed training rows (message trees, several examples per row); then
        ``position_ids`` are required and ``attention_mask``/``cache`` must be None.
        ``select``: boolean ``[B, T]``; return logits ``[N, V]`` of the selected positions only (training
        applies the LM head to supervised positions only, training.md §1.1 ``response_logits_only``); they
        are also where response dropout applies (``TextModel.set_dropout``).

        With context parallelism (``context_parallel`` set, packed rows only) the inputs are the full
        rows and the output covers this rank's contiguous slice of them: logits ``[B, T/cp, V]``, or
        those of the selected positions in the slice.
        """
        if segments is not None:
            if position_ids is None or cache is not None or attention_mask is not None:
                raise ValueError("packed rows need explicit position_ids and no cache or attention_mask")
            x = self.embed(input_ids, self.encode_visual(visual) if visual_features is None and visual is not None
                           else visual_features)
            cp = self.context_parallel
            if cp is not None:  # this rank's slice of every row; the attention layers exchange the rest
                x, position_ids = cp.shard(x), cp.shard(position_ids)
                select = None if select is None else cp.shard(select)
            h = self.text(x, position_ids, segments, None, drop_mask=select)
            return self.lm_head(h if select is None else h[select])
        past = 0 if cache is None else cache.length
        if visual_features is None and visual is not None:
            visual_features = self.encode_visual(visual)
        # decode steps (after the prompt) carry no media: a generated <im_patch> is embedded like any token
        x = self.embed(input_ids, visual_features, check_patches=not (past and input_ids.shape[1] == 1))
        bound = None
        if position_ids is None:  # derived here: every position is below past + T
            bound = past + input_ids.shape[1]
            if attention_mask is not None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, past:]
            else:
                position_ids = past  # past, past + 1, ... in every row
        mask = self.attention_mask(input_ids, attention_mask, past)
        h = self.text(x, position_ids, mask, cache, position_bound=bound)
        if logits_to_keep:
            h = h[:, -logits_to_keep:]
        return self.lm_head(h)
