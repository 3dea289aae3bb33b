"""Reading and writing Molmo2 model directories (config.json + sharded safetensors).

Loading is built so that weights exist once in memory: the model is created on the meta device,
given empty storage in the target dtype, and each tensor is read from its shard and copied into place
one at a time. Before any weight is read, every shard header is parsed and checked (a truncated shard
is caught by comparing its declared data size with the file size) and the full key plan is validated,
so a bad checkpoint fails with a clear message and nothing half-loaded.

Weights are safetensors only; pickles are never loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import torch

from molmo2.checkpoint import hf
from molmo2.config import Molmo2Config
from molmo2.errors import CheckpointError, ConfigError
from molmo2.model import Molmo2Model

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
# Files that travel with the weights (tokenizer, processor settings, chat template, generation defaults).
SIDE_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "preprocessor_config.json", "video_preprocessor_config.json", "processor_config.json",
    "chat_template.jinja", "chat_template.json", "generation_config.json",
)
_DTYPES = {
    "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
    "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8, "BOOL": torch.bool,
}


# Models that ship inside the package, by name (``Molmo2.from_pretrained("tiny-shapes")``).
SHIPPED_MODELS = {"tiny-shapes": Path(__file__).resolve().parents[1] / "assets" / "tiny-shapes"}


def resolve_model_dir(name_or_path: str | os.PathLike) -> Path:
    """A local directory as is; a shipped model's name (``SHIPPED_MODELS``); otherwise a Hugging Face
    repo id, downloaded (or found in the local cache when offline) through ``huggingface_hub``."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if name in SHIPPED_MODELS and SHIPPED_MODELS[name].is_dir():
        return SHIPPED_MODELS[name]
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise CheckpointError(
            f"model directory {name!r} not found. Pass a local directory holding config.json and "
            "*.safetensors, or a Hugging Face repo id such as allenai/Molmo2-4B."
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:
        raise CheckpointError(
            f"{name!r} is not a local directory and huggingface_hub is not installed; "
            "pip install 'molmo2[hub]' to download it, or pass a local model directory"
        ) from e
    patterns = ["*.json", "*.safetensors", "*.jinja", "*.txt"]
    try:
        return Path(snapshot_download(name, allow_patterns=patterns))
    except Exception as online_error:  # offline, unknown repo, no permission ...
        try:
            return Path(snapshot_download(name, allow_patterns=patterns, local_files_only=True))
        except Exception:
            raise CheckpointError(
                f"could not download {name!r} ({type(online_error).__name__}: {online_error}) and it is not "
                "in the local Hugging Face cache. On a machine with network run "
                f"`huggingface-cli download {name}` (or set HF_HOME to a cache that has it), "
                "or pass --model with a local model directory."
            ) from online_error


def read_config(model_dir: Path) -> Molmo2Config:
    path = model_dir / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{model_dir} has no config.json; is it a Molmo2 model directory?")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from e
    try:
        cfg = Molmo2Config.from_hf_config(raw)
    except ConfigError as e:
        raise CheckpointError(f"{path}: {e}") from e
    # The model normalizes uint8 pixels itself, with the processor's mean / std (not in config.json).
    pre = model_dir / "preprocessor_config.json"
    if pre.is_file():
        try:
            ip = json.loads(pre.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{pre} is not valid JSON: {e}") from e
        cfg.vision.pixel_mean = tuple(float(x) for x in ip.get("image_mean", cfg.vision.pixel_mean))
        cfg.vision.pixel_std = tuple(float(x) for x in ip.get("image_std", cfg.vision.pixel_std))
    return cfg


def _shard_files(model_dir: Path) -> list[Path]:
    index = model_dir / INDEX_FILE
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        files = sorted({model_dir / f for f in weight_map.values()})
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            raise CheckpointError(f"{model_dir}: shards listed in {INDEX_FILE} are missing: {absent}")
        return files
    if (model_dir / SINGLE_FILE).is_file():
        return [model_dir / SINGLE_FILE]
    if list(model_dir.glob("*.bin")) or list(model_dir.glob("*.pt")):
        raise CheckpointError(
            f"{model_dir} holds only pickle weights (*.bin/*.pt); molmo2 loads safetensors only, "
            "never pickles. Convert them with a trusted tool first."
        )
    raise CheckpointError(f"{model_dir} has no {SINGLE_FILE} or {INDEX_FILE}")


def read_header(path: Path) -> dict[str, tuple[str, tuple[int, ...], int]]:
    """``{name: (dtype, shape, file offset of the data)}`` from a safetensors header, checking that the
    file is whole."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > size - 8:
                raise ValueError("header longer than file")
            header = json.loads(f.read(n))
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path} is not a valid safetensors file ({e}); re-download it") from e
    header.pop("__metadata__", None)
    end = max((info["data_offsets"][1] for info in header.values()), default=0)
    if 8 + n + end > size:
        raise CheckpointError(
            f"{path} is truncated: its header declares {8 + n + end} bytes but the file has {size}; "
            "the download or copy was interrupted -- fetch this shard again"
        )
    unknown = {info["dtype"] for info in header.values()} - set(_DTYPES)
    if unknown:
        raise CheckpointError(f"{path} holds tensors of unsupported dtypes {sorted(unknown)}")
    return {name: (info["dtype"], tuple(info["shape"]), 8 + n + info["data_offsets"][0])
            for name, info in header.items()}


_CHUNK_BYTES = 16 * 2**20


def _fill(f, buf: torch.Tensor) -> None:
    """``readinto`` until ``buf`` is full (one read(2) returns at most ~2 GiB)."""
    view = memoryview(buf.view(-1).view(torch.uint8).numpy())
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            raise CheckpointError(f"{f.name} ended early while reading weights; fetch this shard again")
        got += n


def _read_into(f, offset: int, src_dtype: torch.dtype, shape: tuple[int, ...], dst: torch.Tensor) -> None:
    """Read one tensor from an open shard straight into ``dst`` (no mmap, so no resident copy of the
    shard); a dtype change goes through a bounded scratch buffer."""
    f.seek(offset)
    if dst.dtype == src_dtype and dst.is_contiguous():
        _fill(f, dst)
        return
    rows = shape[0] if shape else 1
    row_elems = max(1, dst.numel() // max(rows, 1))
    step = max(1, _CHUNK_BYTES // (row_elems * torch.empty((), dtype=src_dtype).element_size()))
    flat = dst.reshape(rows, row_elems) if shape else dst.reshape(1, 1)
    for r in range(0, rows, step):
        scratch = torch.empty((min(step, rows - r), row_elems), dtype=src_dtype)
        _fill(f, scratch)
        flat[r : r + scratch.shape[0]].copy_(scratch)


def load_model(
    model_dir: str | os.PathLike,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
    decode_layout: bool = False,
) -> Molmo2Model:
    """Build a ``Molmo2Model`` from a model directory (hub or transformers layout), strictly.

    ``decode_layout``: for inference in float32 on the CPU, store the text decoder's and the LM head's
    Linear weights column-major (same values and shape, transposed strides), read straight into that
    layout. A decode step multiplies one row by every weight; over a column-major weight that product runs
    as a blocked ``bmm`` on all threads (``molmo2.model.linear.Linear``), which makes fp32 decode ~1.7x
    faster on this kind of CPU (``bench/bench_model.py``); prefill matrix products run equally fast
    either way. Ignored for other dtypes and devices (bf16's
    single-row kernel is fastest row-major). Not for training: parameters stay non-contiguous."""
    model_dir = resolve_model_dir(model_dir)
    cfg = read_config(model_dir)
    shards = _shard_files(model_dir)
    where: dict[str, tuple[Path, str, int]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for shard in shards:
        for name, (dtype_name, shape, offset) in read_header(shard).items():
            where[name], shapes[name] = (shard, dtype_name, offset), shape

    with torch.device("meta"):
        model = Molmo2Model(cfg)
    targets = dict(model.named_parameters())
    plan = hf.plan_load(
        shapes, {k: tuple(v.shape) for k, v in targets.items()}, cfg.num_vision_blocks_built,
        cfg.tie_word_embeddings,
    )
    model = model.to_empty(device=device).to(dtype)
    if decode_layout and dtype == torch.float32 and torch.device(device).type == "cpu":
        _column_major_linears(model)
    targets = dict(model.named_parameters())

    by_shard: dict[Path, list[hf.Copy]] = {}
    for step in plan:
        by_shard.setdefault(where[step.source][0], []).append(step)
    done = 0
    with torch.no_grad():
        for shard, steps in by_shard.items():
            with open(shard, "rb", buffering=0) as f:
                for step in sorted(steps, key=lambda st: where[st.source][2]):
                    _, dtype_name, offset = where[step.source]
                    shape = shapes[step.source]
                    dst = targets[step.target]
                    if step.row_start is not None:
                        dst = dst[step.row_start : step.row_start + shape[0]]
                    elif step.target == "lm_head.weight" and step.source == hf.EMBED_PARTS[0]:
                        dst = dst[: shape[0]]  # tied head: base rows of the embedding
                    _read_into(f, offset, _DTYPES[dtype_name], shape, dst)
                    done += 1
                    if progress:
                        progress(done, len(plan))
    return model.eval()


def _column_major_linears(model: Molmo2Model) -> None:
    """Re-allocate (uninitialized) the decoder's and LM head's Linear weights with column-major strides."""
    for module in [*model.text.modules(), model.lm_head]:
        if isinstance(module, torch.nn.Linear):
            w = module.weight
            out_features, in_features = w.shape
            module.weight = torch.nn.Parameter(
                torch.empty_strided((out_features, in_features), (1, out_features), dtype=w.dtype, device=w.device),
                requires_grad=w.requires_grad,
            )


def save_pretrained(
    model: Molmo2Model | dict[str, torch.Tensor],
    out_dir: str | os.PathLike,
    source_dir: str | os.PathLike | None = None,
    max_shard_bytes: int = 5 * 2**30,
    dtype: torch.dtype | None = None,
    cfg: Molmo2Config | None = None,
) -> Path:
    """Write ``model`` in the hub layout: config.json, safetensors shards (+ index when sharded), and the
    tokenizer / processor files copied from ``source_dir`` if given. Written to a temporary directory
    and renamed, so a crash never leaves a half-written checkpoint.

    ``model`` may also be a state dict with our parameter names (e.g. gathered from a sharded
    training model); then ``cfg`` is required."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if isinstance(model, dict):
        if cfg is None:
            raise ValueError("save_pretrained(state_dict, ...) needs cfg=")
        named = model.items()
    else:
        cfg = model.cfg
        named = model.named_parameters()
    tensors: dict[str, torch.Tensor] = {}
    for name, param in named:
        for hub_name, rows in hf.hub_state_names(name, tuple(param.shape), cfg.text.vocab_size):
            t = param.detach() if rows is None else param.detach()[rows]
            tensors[hub_name] = (t.to(dtype) if dtype else t).contiguous().cpu()
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name in sorted(tensors):
        nbytes = tensors[name].numel() * tensors[name].element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = tensors[name]
        size += nbytes
    if len(shards) == 1:
        save_file(shards[0], tmp / SINGLE_FILE, metadata={"format": "pt"})
    else:
        weight_map = {}
        for i, shard in enumerate(shards):
            fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file(shard, tmp / fname, metadata={"format": "pt"})
            weight_map.update({k: fname for k in shard})
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
        (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    (tmp / "config.json").write_text(json.dumps(cfg.to_hf_config(), indent=2) + "\n")
    if source_dir is not None:
        for fname in SIDE_FILES:
            src = Path(source_dir) / fname
            if src.is_file():
                shutil.copy2(src, tmp / fname)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
