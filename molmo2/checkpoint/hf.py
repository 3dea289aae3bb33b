"""Declarative key table between the hub checkpoint layout and this package's module tree.

The released repos store ``model.transformer.*`` / ``model.vision_backbone.*`` names (fused q|k|v and
up|gate projections, the extra-token embedding rows in a separate ``new_embedding`` table).
transformers 5.x writes the same names back when it saves, except that it splits the embedding table
into two equal halves. Both are accepted: the two tables are concatenated in order and the total row
count is checked.

``plan_load`` is pure and strict: every source key is mapped or explicitly dropped, every target
parameter is filled exactly once, shapes are checked, and anything left over raises a
``CheckpointError`` naming the tensors -- before any weight is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from molmo2.errors import CheckpointError

# (hub name, our name). "{i}" is a layer index.
KEY_TABLE: list[tuple[str, str]] = [
    ("lm_head.weight", "lm_head.weight"),
    ("model.transformer.ln_f.weight", "text.norm.weight"),
    ("model.transformer.blocks.{i}.attn_norm.weight", "text.blocks.{i}.attn_norm.weight"),
    ("model.transformer.blocks.{i}.ff_norm.weight", "text.blocks.{i}.ff_norm.weight"),
    ("model.transformer.blocks.{i}.self_attn.att_proj.weight", "text.blocks.{i}.attn.qkv.weight"),
    ("model.transformer.blocks.{i}.self_attn.att_proj.bias", "text.blocks.{i}.attn.qkv.bias"),
    ("model.transformer.blocks.{i}.self_attn.attn_out.weight", "text.blocks.{i}.attn.out.weight"),
    ("model.transformer.blocks.{i}.self_attn.q_norm.weight", "text.blocks.{i}.attn.q_norm.weight"),
    ("model.transformer.blocks.{i}.self_attn.k_norm.weight", "text.blocks.{i}.attn.k_norm.weight"),
    ("model.transformer.blocks.{i}.mlp.ff_proj.weight", "text.blocks.{i}.up_gate.weight"),
    ("model.transformer.blocks.{i}.mlp.ff_out.weight", "text.blocks.{i}.down.weight"),
    ("model.vision_backbone.image_vit.patch_embedding.weight", "vision.patch_embed.weight"),
    ("model.vision_backbone.image_vit.patch_embedding.bias", "vision.patch_embed.bias"),
    ("model.vision_backbone.image_vit.positional_embedding", "vision.pos_embed"),
]
for _w in ("weight", "bias"):
    _vit = "model.vision_backbone.image_vit.transformer.resblocks.{i}"
    KEY_TABLE += [
        (f"{_vit}.attention.wq.{_w}", f"vision.blocks.{{i}}.attn.q.{_w}"),
        (f"{_vit}.attention.wk.{_w}", f"vision.blocks.{{i}}.attn.k.{_w}"),
        (f"{_vit}.attention.wv.{_w}", f"vision.blocks.{{i}}.attn.v.{_w}"),
        (f"{_vit}.attention.wo.{_w}", f"vision.blocks.{{i}}.attn.o.{_w}"),
        (f"{_vit}.attention_norm.{_w}", f"vision.blocks.{{i}}.norm1.{_w}"),
        (f"{_vit}.ffn_norm.{_w}", f"vision.blocks.{{i}}.norm2.{_w}"),
        (f"{_vit}.feed_forward.w1.{_w}", f"vision.blocks.{{i}}.fc1.{_w}"),
        (f"{_vit}.feed_forward.w2.{_w}", f"vision.blocks.{{i}}.fc2.{_w}"),
    ]
    KEY_TABLE += [(f"model.vision_backbone.image_pooling_2d.w{p}.{_w}", f"connector.{p}.{_w}") for p in "qkvo"]
KEY_TABLE += [(f"model.vision_backbone.image_projector.{w}.weight", f"connector.{w}.weight") for w in ("w1", "w2", "w3")]

# The embedding table is stored in two row blocks that concatenate into ``text.embed``.
EMBED_PARTS = ("model.transformer.wte.embedding", "model.transformer.wte.new_embedding")
EMBED_TARGET = "text.embed"


def _compile(template: str) -> re.Pattern:
    return re.compile("^" + re.escape(template).replace(r"\{i\}", r"(\d+)") + "$")


_HUB_TO_OURS = [(_compile(h), o) for h, o in KEY_TABLE]
_OURS_TO_HUB = [(_compile(o), h) for h, o in KEY_TABLE]


def _translate(name: str, table) -> str | None:
    for pattern, template in table:
        m = pattern.match(name)
        if m:
            return template.replace("{i}", m.group(1)) if m.groups() else template
    return None


def hub_to_ours(name: str) -> str | None:
    return _translate(name, _HUB_TO_OURS)


def ours_to_hub(name: str) -> str | None:
    return _translate(name, _OURS_TO_HUB)


@dataclass(frozen=True)
class Copy:
    """Copy source tensor ``source`` into rows ``[row_start, row_start + rows)`` of ``target`` (all rows
    when ``row_start`` is None)."""

    source: str
    target: str
    row_start: int | None = None


def plan_load(
    source_shapes: dict[str, tuple[int, ...]],
    target_shapes: dict[str, tuple[int, ...]],
    num_vision_blocks: int,
    tie_word_embeddings: bool = False,
) -> list[Copy]:
    """Map every checkpoint tensor onto a model parameter, or raise naming what does not fit."""
    plan: list[Copy] = []
    unexpected, mismatched = [], []
    filled: set[str] = set()
    vit_block = re.compile(r"^model\.vision_backbone\.image_vit\.transformer\.resblocks\.(\d+)\.")
    for name, shape in source_shapes.items():
        if name in EMBED_PARTS:
            continue
        m = vit_block.match(name)
        if m and int(m.group(1)) >= num_vision_blocks:
            continue  # blocks past the deepest feature layer are never run: dropped on purpose
        target = hub_to_ours(name)
        if target is None or target not in target_shapes:
            unexpected.append(name)
            continue
        if tuple(shape) != tuple(target_shapes[target]):
            mismatched.append(f"{name}: checkpoint {tuple(shape)} vs model {tuple(target_shapes[target])}")
            continue
        plan.append(Copy(name, target))
        filled.add(target)

    # embedding: one or two row blocks, in order, must add up to the table
    embed_rows, dim = target_shapes[EMBED_TARGET]
    row = 0
    for part in EMBED_PARTS:
        if part not in source_shapes:
            continue
        rows, part_dim = source_shapes[part]
        if part_dim != dim:
            mismatched.append(f"{part}: checkpoint width {part_dim} vs model {dim}")
            continue
        plan.append(Copy(part, EMBED_TARGET, row))
        row += rows
    if row:
        if row != embed_rows:
            mismatched.append(
                f"{EMBED_PARTS[0]} + {EMBED_PARTS[1]}: {row} rows in the checkpoint vs "
                f"vocab_size + additional_vocab_size = {embed_rows} in config.json"
            )
        filled.add(EMBED_TARGET)

    missing = [t for t in target_shapes if t not in filled]
    if "lm_head.weight" in missing and tie_word_embeddings and EMBED_TARGET in filled:
        missing.remove("lm_head.weight")
        plan.append(Copy(EMBED_PARTS[0], "lm_head.weight"))
    problems = []
    if missing:
        problems.append("missing tensors: " + ", ".join(ours_to_hub(t) or t for t in missing[:20])
                        + (f" (+{len(missing) - 20} more)" if len(missing) > 20 else ""))
    if unexpected:
        problems.append("unexpected tensors: " + ", ".join(unexpected[:20])
                        + (f" (+{len(unexpected) - 20} more)" if len(unexpected) > 20 else ""))
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched[:20]))
    if problems:
        raise CheckpointError(
            "checkpoint does not match its config.json -- " + " | ".join(problems)
            + ". Check that the weights and config.json come from the same Molmo2 model."
        )
    return plan


def hub_state_names(our_name: str, shape: tuple[int, ...], vocab_size: int) -> list[tuple[str, slice | None]]:
    """Hub name(s) for one of our parameters; the embedding splits into base and extra rows."""
    if our_name == EMBED_TARGET:
        return [(EMBED_PARTS[0], slice(0, vocab_size)), (EMBED_PARTS[1], slice(vocab_size, shape[0]))]
    hub = ours_to_hub(our_name)
    assert hub is not None, f"no hub name for parameter {our_name}"
    return [(hub, None)]
