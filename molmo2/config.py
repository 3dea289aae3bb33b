"""One config tree for the whole system: vision encoder, connector, text backbone, special tokens.

The tree is plain dataclasses (no torch import), the single source of truth that the model, the
checkpoint loader and the processor read. It converts from and to the two ``config.json`` dialects a
Molmo2 model directory can hold:

* the *hub* layout written by the released repos (remote-code field names: ``vit_config``,
  ``adapter_config.vit_layers``, ``qkv_bias``, ``layer_norm_eps``, ``rope_theta`` ...);
* the layout transformers 5.x writes (``vision_config``, ``vision_feature_layer``,
  ``rope_parameters`` ...).

``to_hf_config()`` writes the hub layout back. Presets include the released models and a ``tiny`` one
for tests.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from molmo2.errors import ConfigError


@dataclass
class VisionConfig:
    """SigLIP2-style ViT run on fixed-size square crops (no CLS token, no final norm)."""

    hidden_size: int = 1152
    intermediate_size: int = 4304
    num_layers: int = 27  # as configured; only the blocks up to the deepest feature layer are built
    num_heads: int = 16
    head_dim: int = 72
    layer_norm_eps: float = 1e-6
    image_size: int = 378
    patch_size: int = 14
    num_channels: int = 3
    hidden_act: str = "gelu_pytorch_tanh"
    # uint8 pixels are normalized as (x - 255*mean) / (255*std) per channel. Not in config.json: the
    # checkpoint loader reads them from preprocessor_config.json (image_mean / image_std), as the processor does.
    pixel_mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    pixel_std: tuple[float, ...] = (0.5, 0.5, 0.5)

    @property
    def num_patches_per_side(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_positions(self) -> int:
        return self.num_patches_per_side**2

    @property
    def patch_dim(self) -> int:
        return self.patch_size * self.patch_size * self.num_channels


@dataclass
class ConnectorConfig:
    """Attention pooling over ViT feature windows, then a SwiGLU projector into the LLM width."""

    feature_layers: list[int] = field(default_factory=lambda: [-3, -9])  # as configured (may be negative)
    hidden_size: int = 1152
    num_heads: int = 16
    head_dim: int = 72
    intermediate_size: int = 12288
    pooling_attention_mask: bool = True
    hidden_act: str = "silu"


@dataclass
class TextConfig:
    """Decoder-only LLM: Qwen3-style (pre-norm, per-head QK-norm) or OLMo-style (post-norm, flat QK-norm)."""

    hidden_size: int = 4096
    num_layers: int = 36
    num_heads: int = 32
    num_kv_heads: int = 8
    head_dim: int = 128
    intermediate_size: int = 12288
    vocab_size: int = 151936
    additional_vocab_size: int = 128
    qkv_bias: bool = False
    qk_norm_type: str = "qwen3"  # "qwen3": per head over head_dim; "olmo": over the full projection
    norm_after: bool = False  # True: OLMo-2/3 post-norm blocks
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    rope_scaling: dict[str, Any] | None = None  # e.g. {"rope_type": "yarn", "factor": 8.0, ...}
    rope_scaling_layers: list[int] | None = None  # None: every layer uses rope_scaling
    max_position_embeddings: int = 36864
    hidden_act: str = "silu"


@dataclass
class Molmo2Config:
    vision: VisionConfig = field(default_factory=VisionConfig)
    connector: ConnectorConfig = field(default_factory=ConnectorConfig)
    text: TextConfig = field(default_factory=TextConfig)
    image_start_token_id: int = 151936
    image_end_token_id: int = 151937
    image_patch_id: int = 151938
    image_col_id: int = 151939
    low_res_image_start_token_id: int = 151940
    image_low_res_id: int = 151942
    frame_start_token_id: int = 151943
    frame_end_token_id: int = 151944
    use_frame_special_tokens: bool = False
    tie_word_embeddings: bool = False

    # ----------------------------------------------------------------------------------- derived
    @property
    def vision_feature_blocks(self) -> list[int]:
        """Feature layers resolved to 0-based block indices of the configured ViT, in concat order."""
        n = self.vision.num_layers
        blocks = []
        for layer in self.connector.feature_layers:
            if not -n <= layer < n:
                raise ConfigError(
                    f"connector feature layer {layer} does not index the {n} configured ViT layers; "
                    "fix adapter_config.vit_layers (or vision_feature_layer) in config.json"
                )
            blocks.append(layer % n)
        return blocks

    @property
    def num_vision_blocks_built(self) -> int:
        """Only blocks up to the deepest feature layer are built and stored (25 of 27 for the release)."""
        return max(self.vision_feature_blocks) + 1

    @property
    def visual_token_ids(self) -> list[int]:
        """Ids that form the bidirectional visual block of the attention mask."""
        return [
            self.image_patch_id,
            self.image_col_id,
            self.image_start_token_id,
            self.low_res_image_start_token_id,
            self.frame_start_token_id,
            self.image_end_token_id,
            self.frame_end_token_id,
            self.image_low_res_id,
        ]

    def validate(self) -> Molmo2Config:
        t = self.text
        if t.qk_norm_type not in ("qwen3", "olmo"):
            raise ConfigError(f"text qk_norm_type must be 'qwen3' or 'olmo', got {t.qk_norm_type!r}")
        if t.num_heads % t.num_kv_heads:
            raise ConfigError(f"num_heads {t.num_heads} is not a multiple of num_kv_heads {t.num_kv_heads}")
        if self.vision.image_size % self.vision.patch_size:
            raise ConfigError("vision image_size must be a multiple of patch_size")
        if t.rope_scaling is not None and t.rope_scaling.get("rope_type", "default") not in ("default", "yarn"):
            raise ConfigError(f"unsupported rope_scaling type {t.rope_scaling.get('rope_type')!r}")
        self.vision_feature_blocks  # noqa: B018 (raises on bad layers)
        return self

    # ------------------------------------------------------------------------- conversions
    @classmethod
    def from_hf_config(cls, cfg: dict[str, Any]) -> Molmo2Config:
        """Build from a ``config.json`` dict in the hub layout or the transformers 5.x layout."""
        model_type = cfg.get("model_type")
        if model_type != "molmo2":
            raise ConfigError(
                f"config.json has model_type {model_type!r}; molmo2 loads only 'molmo2' checkpoints "
                "(allenai/Molmo2-4B, -8B, -O-7B or checkpoints written by this package or transformers)"
            )
        hub = "vit_config" in cfg
        v = cfg.get("vit_config") or cfg.get("vision_config") or {}
        a = cfg.get("adapter_config") or {}
        t = cfg.get("text_config") or {}
        if not t:
            raise ConfigError("config.json has no text_config; is this a Molmo2 model directory?")

        size = v.get("image_default_input_size", v.get("image_size", [378, 378]))
        size = size if isinstance(size, int) else size[0]
        vision = VisionConfig(
            hidden_size=v.get("hidden_size", 1152),
            intermediate_size=v.get("intermediate_size", 4304),
            num_layers=v.get("num_hidden_layers", 27 if hub else 25),
            num_heads=v.get("num_attention_heads", 16),
            head_dim=v.get("head_dim", 72),
            layer_norm_eps=v.get("layer_norm_eps", 1e-6),
            image_size=size,
            patch_size=v.get("image_patch_size", v.get("patch_size", 14)),
            num_channels=v.get("num_channels", 3),
            hidden_act=v.get("hidden_act", "gelu_pytorch_tanh"),
        )
        connector = ConnectorConfig(
            feature_layers=list(a.get("vit_layers", a.get("vision_feature_layer", [24, 18]))),
            hidden_size=a.get("hidden_size", 1152),
            num_heads=a.get("num_attention_heads", 16),
            head_dim=a.get("head_dim", 72),
            intermediate_size=a.get("intermediate_size", 12288),
            pooling_attention_mask=a.get("pooling_attention_mask", True),
            hidden_act=a.get("hidden_act", "silu"),
        )
        if "rope_parameters" in t and t["rope_parameters"] is not None:
            rp = dict(t["rope_parameters"])
            theta = rp.pop("rope_theta", 1_000_000.0)
            rope_scaling = rp if rp.get("rope_type", "default") != "default" else None
        else:
            theta = t.get("rope_theta", 1_000_000.0)
            rope_scaling = copy.deepcopy(t.get("rope_scaling"))
        if rope_scaling is not None and "type" in rope_scaling and "rope_type" not in rope_scaling:
            rope_scaling["rope_type"] = rope_scaling.pop("type")
        num_layers = t.get("num_hidden_layers", 36)
        scaling_layers = t.get("rope_scaling_layers")
        if scaling_layers is not None and sorted(scaling_layers) == list(range(num_layers)):
            scaling_layers = None  # transformers writes "all layers" explicitly
        text = TextConfig(
            hidden_size=t.get("hidden_size", 4096),
            num_layers=num_layers,
            num_heads=t.get("num_attention_heads", 32),
            num_kv_heads=t.get("num_key_value_heads", 8),
            head_dim=t.get("head_dim", 128),
            intermediate_size=t.get("intermediate_size", 12288),
            vocab_size=t.get("vocab_size", 151936),
            additional_vocab_size=t.get("additional_vocab_size", 128),
            qkv_bias=t.get("qkv_bias", t.get("attention_bias", False)),
            qk_norm_type=t.get("qk_norm_type", "qwen3"),
            norm_after=t.get("norm_after", False),
            rms_norm_eps=t.get("layer_norm_eps", t.get("rms_norm_eps", 1e-6)),
            rope_theta=float(theta),
            rope_scaling=rope_scaling,
            rope_scaling_layers=scaling_layers,
            max_position_embeddings=t.get("max_position_embeddings", 36864),
            hidden_act=t.get("hidden_act", "silu"),
        )
        cfg_ids = {f.name: cfg[f.name] for f in dataclasses.fields(cls) if f.name in cfg and f.type == "int"}
        out = cls(vision=vision, connector=connector, text=text, **cfg_ids)
        if "image_col_id" not in cfg:
            # transformers' config omits these; they follow the fixed order of Molmo2's extra tokens
            base = out.image_start_token_id
            out.image_col_id, out.image_low_res_id = base + 3, base + 6
        out.use_frame_special_tokens = bool(cfg.get("use_frame_special_tokens", False))
        out.tie_word_embeddings = bool(cfg.get("tie_word_embeddings", False))
        return out.validate()

    def to_hf_config(self) -> dict[str, Any]:
        """The hub-layout ``config.json`` (remote-code field names, as the released repos ship it)."""
        v, a, t = self.vision, self.connector, self.text
        return {
            "architectures": ["Molmo2ForConditionalGeneration"],
            "model_type": "molmo2",
            "vit_config": {
                "model_type": "molmo2",
                "hidden_size": v.hidden_size,
                "intermediate_size": v.intermediate_size,
                "num_hidden_layers": v.num_layers,
                "num_attention_heads": v.num_heads,
                "num_key_value_heads": v.num_heads,
                "head_dim": v.head_dim,
                "hidden_act": v.hidden_act,
                "layer_norm_eps": v.layer_norm_eps,
                "image_default_input_size": [v.image_size, v.image_size],
                "image_patch_size": v.patch_size,
                "image_num_pos": v.num_positions,
                "float32_attention": True,
                "attention_dropout": 0.0,
                "residual_dropout": 0.0,
                "initializer_range": 0.02,
            },
            "adapter_config": {
                "model_type": "molmo2",
                "vit_layers": list(a.feature_layers),
                "hidden_size": a.hidden_size,
                "num_attention_heads": a.num_heads,
                "num_key_value_heads": a.num_heads,
                "head_dim": a.head_dim,
                "intermediate_size": a.intermediate_size,
                "text_hidden_size": t.hidden_size,
                "hidden_act": a.hidden_act,
                "pooling_attention_mask": a.pooling_attention_mask,
                "float32_attention": True,
                "attention_dropout": 0.0,
                "residual_dropout": 0.0,
                "image_feature_dropout": 0.0,
                "initializer_range": 0.02,
            },
            "text_config": {
                "model_type": "molmo2_text",
                "hidden_size": t.hidden_size,
                "num_hidden_layers": t.num_layers,
                "num_attention_heads": t.num_heads,
                "num_key_value_heads": t.num_kv_heads,
                "head_dim": t.head_dim,
                "intermediate_size": t.intermediate_size,
                "vocab_size": t.vocab_size,
                "additional_vocab_size": t.additional_vocab_size,
                "qkv_bias": t.qkv_bias,
                "use_qk_norm": True,
                "qk_norm_type": t.qk_norm_type,
                "norm_after": t.norm_after,
                "layer_norm_eps": t.rms_norm_eps,
                "rope_theta": t.rope_theta,
                "rope_scaling": copy.deepcopy(t.rope_scaling),
                "rope_scaling_layers": t.rope_scaling_layers,
                "max_position_embeddings": t.max_position_embeddings,
                "hidden_act": t.hidden_act,
                "attention_dropout": 0.0,
                "residual_dropout": 0.0,
                "embedding_dropout": 0.0,
                "initializer_range": 0.02,
                "use_cache": True,
            },
            "image_start_token_id": self.image_start_token_id,
            "image_end_token_id": self.image_end_token_id,
            "image_patch_id": self.image_patch_id,
            "image_high_res_id": self.image_patch_id,
            "image_col_id": self.image_col_id,
            "low_res_image_start_token_id": self.low_res_image_start_token_id,
            "image_low_res_id": self.image_low_res_id,
            "frame_start_token_id": self.frame_start_token_id,
            "frame_end_token_id": self.frame_end_token_id,
            "use_frame_special_tokens": self.use_frame_special_tokens,
            "tie_word_embeddings": self.tie_word_embeddings,
            "use_cache": True,
            "dtype": "float32",
        }

    @classmethod
    def from_name(cls, name: str) -> Molmo2Config:
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return copy.deepcopy(PRESETS[name]).validate()


def _released(hidden: int, layers: int, heads: int, kv: int, inter: int, vocab: int, **text: Any) -> Molmo2Config:
    base = vocab  # Molmo2's extra tokens follow the (padded) base vocabulary
    return Molmo2Config(
        connector=ConnectorConfig(intermediate_size=inter),
        text=TextConfig(
            hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv,
            intermediate_size=inter, vocab_size=vocab, **text,
        ),
        image_start_token_id=base, image_end_token_id=base + 1, image_patch_id=base + 2,
        image_col_id=base + 3, low_res_image_start_token_id=base + 4, image_low_res_id=base + 6,
        frame_start_token_id=base + 7, frame_end_token_id=base + 8,
    )


PRESETS: dict[str, Molmo2Config] = {
    "molmo2-4b": _released(2560, 36, 32, 8, 9728, 151936, rope_theta=5_000_000.0),
    "molmo2-8b": _released(4096, 36, 32, 8, 12288, 151936, rope_theta=1_000_000.0),
    "molmo2-o-7b": _released(
        4096, 32, 32, 32, 11008, 100278, rope_theta=500_000.0, qk_norm_type="olmo", norm_after=True,
        max_position_embeddings=65536,
        rope_scaling={
            "rope_type": "yarn", "factor": 8.0, "attention_factor": 1.2079441541679836,
            "beta_fast": 32.0, "beta_slow": 1.0, "original_max_position_embeddings": 8192,
        },
        rope_scaling_layers=[3, 7, 11, 15, 19, 23, 27, 31],
    ),
    # Tiny: same code paths, milliseconds per forward. Token ids follow the test tokenizer (vocab 1024).
    "tiny": Molmo2Config(
        vision=VisionConfig(hidden_size=32, intermediate_size=64, num_layers=3, num_heads=2, head_dim=16,
                            image_size=56),
        connector=ConnectorConfig(feature_layers=[-1, -3], hidden_size=32, num_heads=2, head_dim=16,
                                  intermediate_size=64),
        text=TextConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=16,
                        intermediate_size=128, vocab_size=1024, additional_vocab_size=16,
                        rope_theta=10_000.0, max_position_embeddings=8192),
        image_start_token_id=1024, image_end_token_id=1025, image_patch_id=1026, image_col_id=1027,
        low_res_image_start_token_id=1028, image_low_res_id=1030, frame_start_token_id=1031,
        frame_end_token_id=1032,
    ),
}
