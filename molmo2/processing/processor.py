"""The processor: messages + media -> token ids and visual inputs, exactly as the released model expects.

``Molmo2Processor.from_pretrained(dir)`` reads ``tokenizer.json``, ``tokenizer_config.json``,
``preprocessor_config.json`` (images), ``video_preprocessor_config.json`` (frames, sampling),
``processor_config.json`` (layout flags) and the chat template of a model directory; missing files
fall back to the released models' values.

``prepare`` processes the media of a prompt once (reusable with any prompt text); ``encode`` turns one
rendered prompt plus its media (raw or prepared) into an ``Encoded`` example; ``collate`` left-pads
several into a batch whose visual pooling indices are offset into the concatenated crops.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from molmo2.errors import CheckpointError, MediaError
from molmo2.processing import tokens
from molmo2.processing.image import ImageSettings, frames_to_patches, image_to_patches, pool_windows
from molmo2.processing.media import ImageLike, load_image


@dataclass
class VideoSettings:
    max_frames: int = 384
    max_fps: float = 2.0


@dataclass
class Encoded:
    """One example. ``pixel_values``: uint8 ``[N, P, patch_dim]`` (the model normalizes them); ``pooling
    [tokens, K]`` local to this example; ``media_sizes``: (width, height) of each original image / the
    video frame."""

    input_ids: torch.Tensor
    pixel_values: torch.Tensor | None = None
    pooling: torch.Tensor | None = None
    media_sizes: list[tuple[int, int]] = field(default_factory=list)
    timestamps: list[float] | None = None

    @property
    def num_visual_tokens(self) -> int:
        return 0 if self.pooling is None else int(self.pooling.shape[0])


@dataclass
class PreparedMedia:
    """The media of one prompt, processed (``Molmo2Processor.prepare``) and independent of its text.

    ``image_blocks``: the token ids of each image; ``video_frames``: per frame, the timestamp text and
    the frame's token ids."""

    pixel_values: torch.Tensor | None  # uint8 [N, P, patch_dim]
    pooling: torch.Tensor | None  # [tokens, K]
    image_blocks: list[list[int]] = field(default_factory=list)
    video_frames: list[tuple[str, list[int]]] | None = None
    media_sizes: list[tuple[int, int]] = field(default_factory=list)
    timestamps: list[float] | None = None

    @property
    def num_visual_tokens(self) -> int:
        return 0 if self.pooling is None else int(self.pooling.shape[0])


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T], left-padded
    attention_mask: torch.Tensor  # [B, T], 1 = real token
    pixel_values: torch.Tensor | None  # [N, P, patch_dim]
    pooling: torch.Tensor | None  # [M, K] offset into the batch's crops


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e


def _pair(v: Any, default: tuple[int, int]) -> tuple[int, int]:
    if v is None:
        return default
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


class Molmo2Processor:
    def __init__(
        self,
        tokenizer: tokens.Tokenizer,
        image: ImageSettings | None = None,
        video: VideoSettings | None = None,
        flags: tokens.LayoutFlags | None = None,
        chat_template: str | None = None,
    ):
        self.tokenizer = tokenizer
        self.image = image or ImageSettings()
        self.video = video or VideoSettings()
        self.flags = flags or tokens.LayoutFlags()
        self.chat_template = chat_template or tokens.default_chat_template()

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> Molmo2Processor:
        d = Path(model_dir)
        if not (d / "tokenizer.json").is_file():
            raise CheckpointError(f"{d} has no tokenizer.json; copy the tokenizer files into the model directory")
        tok = tokens.Tokenizer(d / "tokenizer.json", _read_json(d / "tokenizer_config.json"))
        ip = _read_json(d / "preprocessor_config.json")
        vp = _read_json(d / "video_preprocessor_config.json")
        pc = _read_json(d / "processor_config.json")
        size = ip.get("size", {"height": 378, "width": 378})
        crop = size["height"] if isinstance(size, dict) else int(size)
        if isinstance(size, dict) and size.get("width", crop) != crop:
            raise CheckpointError(f"{d}/preprocessor_config.json: Molmo2 needs a square size, got {size}")
        image = ImageSettings(
            crop_size=crop,
            patch_size=ip.get("patch_size", 14),
            max_crops=ip.get("max_crops", 8),
            overlap_margins=_pair(ip.get("overlap_margins"), (4, 4)),
            pooling_size=_pair(ip.get("pooling_size"), (2, 2)),
            video_pooling_size=_pair(vp.get("pooling_size"), (3, 3)),
            image_mean=tuple(ip.get("image_mean", (0.5, 0.5, 0.5))),
            image_std=tuple(ip.get("image_std", (0.5, 0.5, 0.5))),
        )
        video = VideoSettings(max_frames=vp.get("num_frames", 384), max_fps=float(vp.get("max_fps", 2.0)))
        flags = tokens.LayoutFlags.from_dict(pc)
        return cls(tok, image, video, flags, tokens.find_chat_template(d))

    # --------------------------------------------------------------------------------- text
    def render(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return tokens.render_chat(self.chat_template, messages, add_generation_prompt)

    def decode(self, ids: Sequence[int] | torch.Tensor, skip_special_tokens: bool = True) -> str:
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        return self.tokenizer.decode(list(ids), skip_special_tokens)

    # ------------------------------------------------------------------------------ encoding
    def prepare(
        self,
        images: Sequence[ImageLike] | None = None,
        video_frames: np.ndarray | None = None,
        timestamps: Sequence[float] | None = None,
        slowfast: int | None = None,
        fast_pooling: tuple[int, int] | None = None,
        frame_size: tuple[int, int] | None = None,
    ) -> PreparedMedia:
        """Process the media of one prompt once: pixels, pooling and the token runs standing for them.

        The result does not depend on the prompt text, so it can be encoded with many prompts
        (``encode(prompt, prepared=...)``) without re-running the image pipeline.
        ``video_frames``: uint8 ``[T, H, W, 3]`` already sampled, with one timestamp (seconds) each; frames
        already resized to the crop (``load_video(resize_to=...)``) are only patchified, and then
        ``frame_size=video.size`` gives the (width, height) that points map back to.

        ``slowfast=K`` (video, K >= 2): SlowFast token budget for long videos. Every K-th frame (0, K,
        2K, ...) keeps the model's pooling (3x3: 81 tokens per 378 px frame); the frames between are
        pooled ``fast_pooling`` (default 3x the normal window: 9x9, 9 tokens per frame). Every frame
        keeps its timestamp and its own ``<im_start> ... <im_end>`` run. The released models were not
        trained this way, so answers move (bench/bench_pipeline.py measures how far)."""
        images = list(images or [])
        if images and video_frames is not None:
            raise MediaError("images and a video cannot be mixed in one prompt; ask about them separately")
        pixel_parts, pool_parts, blocks, sizes = [], [], [], []
        offset = 0
        for image in images:
            arr = load_image(image)
            ip = image_to_patches(arr, self.image)
            pixel_parts.append(ip.patches)
            pool_parts.append(torch.where(ip.pooling >= 0, ip.pooling + offset, -1))
            offset += ip.patches.shape[0] * ip.patches.shape[1]
            blocks.append(tokens.image_token_ids(ip.grid, self.tokenizer.ids, self.flags))
            sizes.append((arr.shape[1], arr.shape[0]))
        frames = None
        if video_frames is not None:
            video_frames = np.asarray(video_frames)
            if video_frames.ndim != 4 or video_frames.shape[-1] != 3 or video_frames.shape[0] == 0:
                raise MediaError(f"video frames must be a non-empty uint8 [T, H, W, 3] array, got {video_frames.shape}")
            if timestamps is None or len(timestamps) != video_frames.shape[0]:
                raise MediaError("give one timestamp (seconds) per video frame")
            vp = frames_to_patches(video_frames, self.image)
            pixel_parts.append(vp.patches)
            frame_ids = tokens.video_frame_ids(vp.grid[1], vp.grid[2], self.tokenizer.ids, self.flags)
            per_frame = [frame_ids] * len(timestamps)
            if slowfast is None:
                pool_parts.append(vp.pooling)
            else:
                pooling, per_frame = self._slowfast(vp, slowfast, fast_pooling)
                pool_parts.append(pooling)
            frames = [(("" if k == 0 else " ") + f"{t:.1f} ", ids) for k, (t, ids) in enumerate(zip(timestamps,
                                                                                                   per_frame))]
            sizes.append(tuple(frame_size) if frame_size is not None else (video_frames.shape[2], video_frames.shape[1]))
        return PreparedMedia(
            pixel_values=torch.cat(pixel_parts) if pixel_parts else None,
            pooling=torch.cat(pool_parts) if pool_parts else None,
            image_blocks=blocks,
            video_frames=frames,
            media_sizes=sizes,
            timestamps=list(map(float, timestamps)) if timestamps is not None else None,
        )

    def _slowfast(self, vp, every: int, fast: tuple[int, int] | None) -> tuple[torch.Tensor, list[list[int]]]:
        """Pooling rows ``[tokens, K]`` and per-frame token ids with every ``every``-th frame slow."""
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise MediaError(f"slowfast must be a positive integer K (every K-th frame at full detail), got {every!r}")
        T, rows, cols = vp.grid[0], vp.grid[1], vp.grid[2]
        n = self.image.patches_per_side
        sh, sw = self.image.video_pooling_size
        fh, fw = fast or (3 * sh, 3 * sw)
        if fh < 1 or fw < 1:
            raise MediaError(f"fast_pooling must be two positive window sizes, got {fast!r}")
        fast_win = pool_windows(torch.arange(n * n, dtype=torch.int32).reshape(n, n), fh, fw)
        frows, fcols = fast_win.shape[:2]
        fast_win = fast_win.reshape(frows * fcols, fh * fw).long()
        slow_KM = vp.pooling.reshape(T, rows * cols, sh * sw)
        width = max(sh * sw, fh * fw)
        slow_ids = tokens.video_frame_ids(rows, cols, self.tokenizer.ids, self.flags)
        fast_ids = tokens.video_frame_ids(frows, fcols, self.tokenizer.ids, self.flags)
        parts, ids = [], []
        for t in range(T):
            if t % every == 0:
                rows_t = slow_KM[t]
                ids.append(slow_ids)
            else:
                rows_t = torch.where(fast_win >= 0, fast_win + t * n * n, -1)
                ids.append(fast_ids)
            parts.append(torch.nn.functional.pad(rows_t, (0, width - rows_t.shape[1]), value=-1))
        return torch.cat(parts), ids

    def encode(
        self,
        prompt: str,
        images: Sequence[ImageLike] | None = None,
        video_frames: np.ndarray | None = None,
        timestamps: Sequence[float] | None = None,
        prepared: PreparedMedia | None = None,
    ) -> Encoded:
        """One rendered prompt (with ``<|image|>`` / ``<|video|>`` placeholders) and its media, given
        as ``images`` / ``video_frames`` + ``timestamps`` or already ``prepared``.

        ``video_frames``: uint8 ``[T, H, W, 3]`` already sampled, with one timestamp (seconds) each."""
        if prepared is None:
            prepared = self.prepare(images, video_frames, timestamps)
        elif images or video_frames is not None:
            raise ValueError("pass the media either raw (images / video_frames) or prepared, not both")
        ids = tokens.build_input_ids(self.tokenizer, prompt, prepared.image_blocks, prepared.video_frames)
        return Encoded(
            input_ids=torch.tensor(ids, dtype=torch.long),
            pixel_values=prepared.pixel_values,
            pooling=prepared.pooling,
            media_sizes=list(prepared.media_sizes),
            timestamps=None if prepared.timestamps is None else list(prepared.timestamps),
        )

    def collate(self, examples: Sequence[Encoded]) -> Batch:
        """Left-pad a list of examples; pooling indices are offset into the concatenated crops and
        padded with -1 to the widest window (2x2 image and 3x3 video rows can share a batch)."""
        T = max(len(e.input_ids) for e in examples)
        ids = torch.full((len(examples), T), self.tokenizer.pad_id, dtype=torch.long)
        mask = torch.zeros((len(examples), T), dtype=torch.long)
        for b, e in enumerate(examples):
            n = len(e.input_ids)
            ids[b, T - n :] = e.input_ids
            mask[b, T - n :] = 1
        pixels, pools = [], []
        offset = 0
        K = max((e.pooling.shape[1] for e in examples if e.pooling is not None), default=0)
        for e in examples:
            if e.pixel_values is None:
                continue
            pool = torch.where(e.pooling >= 0, e.pooling + offset, -1)
            if pool.shape[1] < K:
                pool = torch.nn.functional.pad(pool, (0, K - pool.shape[1]), value=-1)
            pixels.append(e.pixel_values)
            pools.append(pool)
            offset += e.pixel_values.shape[0] * e.pixel_values.shape[1]
        return Batch(ids, mask, torch.cat(pixels) if pixels else None, torch.cat(pools) if pools else None)
