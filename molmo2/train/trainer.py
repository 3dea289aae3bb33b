"""The training loop: packed message trees -> weighted loss -> per-part AdamW, resumable bit for bit.

One optimizer step consumes ``global_batch_rows`` packed rows (split over data-parallel ranks, then
into micro-batches of ``micro_batch_rows``). The loss of every micro-batch is ``(sum w*CE + sum w*z) /
(total weight of the global batch / world size)``, so gradient accumulation and data parallelism give
the weighted token mean over the whole global batch (training.md §2.2). With context parallelism
(``context_parallel`` ranks share each row, one slice each) the sums and the total weight cover each
rank's own slice, and the same formula holds: FSDP averages over all ranks, and the ranks' gradients
add up to the gradient of the global sum (``parallel``). Then per-part clipping, the per-part
learning rates of this step, and ``optimizer.step()``.

Progress: a tqdm bar with loss, tokens/s and ETA; ``run_dir/log.jsonl`` gets one JSON line per
logged step (losses, accuracy, learning rates, grad norms, packing fill, skipped examples); with
``wandb_project`` set, rank 0 logs the same rows to Weights & Biases (checked at start-up).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from pathlib import Path

import torch

from molmo2.checkpoint import load_model, read_config
from molmo2.errors import ConfigError, Molmo2Error
from molmo2.model import Molmo2Model
from molmo2.processing import Molmo2Processor
from molmo2.train import parallel
from molmo2.train.batch import collate, loss_sums
from molmo2.train.checkpointing import (
    latest_checkpoint,
    optimizer_from_files,
    save_checkpoint,
)
from molmo2.train.config import TrainConfig
from molmo2.train.data import DataSettings, Mixture, Preparer, Source, Stream, TrainItem
from molmo2.train.optim import build_optimizer, clip_per_group, set_lrs, zero_frozen_rows
from molmo2.train.packing import Packer, PackItem


def tune_malloc() -> bool:
    """Keep freed memory in the process (glibc ``mallopt``) so that every step reuses the previous
    step's activation buffers instead of mapping fresh pages: large tensors are otherwise ``mmap``ed
    and returned on free, and the page faults of first touch cost more than the math on CPU (measured
    on the tiny-shapes model: forward+backward 26 s -> 5.4 s per 8k-token batch). No effect elsewhere."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    ok = libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20) == 1
    ok &= libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    ok &= libc.mallopt(M_TOP_PAD, 256 * 2**20) == 1
    return bool(ok)


def init_weights(model: Molmo2Model, seed: int, std: float = 0.02) -> None:
    """Random init for training from scratch: zero biases, unit norm weights, normal(0, ``std``) LLM
    matrices and embeddings; unit-gain normal(0, 1/sqrt(fan_in)) matrices in the ViT and connector; a
    2D sin-cos table for the ViT's (learned) positional embedding.

    Unit gain on the visual side matters: at 0.02 every Linear of the ViT -> pooling -> SwiGLU chain
    shrinks the signal (SwiGLU quadratically), so the visual features reach the LLM ~1e-3 of their
    size and the ViT's gradients are ~1e-7 per element, below AdamW's eps: the ViT never trains and
    the model cannot learn where things are. The ViT's residual branches (attention output, fc2) stay
    small, though: at unit gain their near-uniform attention adds the same vector to every patch and
    the features start 0.95 cosine-similar, so after the LLM's RMSNorm all patches look alike. Small,
    the features start as patch content + position. The sin-cos start gives every patch a readable
    position from step 0 (as MAE's fixed table does). A tied model (``tie_word_embeddings``) starts
    with its head equal to the base rows of the embedding."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            parts = name.split(".")
            if len(parts) >= 2 and "norm" in parts[-2] and parts[-1] == "weight":
                p.fill_(1.0)
            elif name.endswith(".bias"):
                p.zero_()
            elif name.endswith("pos_embed") and p.ndim == 2:
                p.copy_(sincos_2d(p.shape[0], p.shape[1]))
            elif name.startswith("vision.blocks.") and name.endswith(("attn.o.weight", "fc2.weight")):
                p.copy_(torch.randn(p.shape, generator=g) * std)  # small residual branches
            elif name.startswith(("vision.", "connector.")) and p.ndim == 2:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
            else:
                p.copy_(torch.randn(p.shape, generator=g) * std)
        if model.cfg.tie_word_embeddings:
            model.lm_head.weight.copy_(model.text.embed[: model.cfg.text.vocab_size])


def sincos_2d(num_positions: int, dim: int) -> torch.Tensor:
    """``[num_positions, dim]`` 2D sine-cosine position table of a square row-major grid: the first
    half of the channels encode the row, the second half the column."""
    side = math.isqrt(num_positions)
    if side * side != num_positions or dim % 4:
        raise ValueError(f"sin-cos table needs a square grid and dim % 4 == 0, got {num_positions} x {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    coord = torch.arange(side, dtype=torch.float64)
    ang = coord[:, None] * omega[None]  # [side, dim/4]
    axis = torch.cat([ang.sin(), ang.cos()], dim=1)  # [side, dim/2]
    rows = axis[:, None, :].expand(side, side, dim // 2)
    cols = axis[None, :, :].expand(side, side, dim // 2)
    return torch.cat([rows, cols], dim=-1).reshape(num_positions, dim).float()


class RowSource:
    """Prepared items -> packed rows, with the state needed to rebuild the buffer on resume."""

    def __init__(self, stream: Stream, packer: Packer):
        self.stream = stream
        self.packer = packer
        self.items: dict[tuple, TrainItem] = {}
        self.iter: Iterator[TrainItem] = iter(stream)

    def next_row(self) -> list[TrainItem]:
        while True:
            item = next(self.iter)
            key = tuple(item.key)
            self.items[key] = item
            row = self.packer.add(PackItem(list(key), item.num_tokens, item.num_crops))
            if row is not None:
                return [self.items.pop(tuple(it.key)) for it in row]

    def state_dict(self) -> dict:
        return {"mixture": self.stream.mixture.state_dict(), "packer": self.packer.state_dict(),
                "skipped": dict(self.stream.skipped)}

    def load_state_dict(self, state: dict) -> None:
        self.stream.mixture.load_state_dict(state["mixture"])
        self.packer.load_state_dict(state["packer"])
        self.stream.skipped.update(state.get("skipped", {}))
        self.items = {}
        for it in self.packer.buffer:
            item = self.stream.prepare(tuple(it.key), self.stream.mixture.example(it.key[1], it.key[2]))
            self.items[tuple(it.key)] = item


def _import_wandb():
    try:
        import wandb
    except ImportError:
        raise ConfigError("wandb_project is set but wandb is not installed: pip install wandb (and log in), or "
                          "leave wandb_project empty to log to the console and log.jsonl only") from None
    return wandb


def _rng_state(device: torch.device) -> dict:
    """torch's random state (CPU, and this rank's GPU) as JSON-ready byte lists (no pickle)."""
    state = {"cpu": torch.get_rng_state().tolist()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device).tolist()
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(torch.tensor(state["cpu"], dtype=torch.uint8))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(torch.tensor(state["cuda"], dtype=torch.uint8), device)


class Trainer:
    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = print):
        self.cfg = cfg
        self.log = log
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if not cfg.device.startswith("cuda"):
            tune_malloc()
        self.rank, self.world = parallel.init_distributed(cfg.device)
        self.device = torch.device(cfg.device if not cfg.device.startswith("cuda") or self.world == 1
                                   else f"cuda:{torch.cuda.current_device()}")
        self.model_dir = Path(cfg.model)
        if not (self.model_dir / "config.json").is_file():
            raise ConfigError(f"model directory {self.model_dir} has no config.json; pass --set model=DIR "
                              "(a model directory with config, tokenizer and processor files)")
        text_cfg = read_config(self.model_dir).text
        parallel.check_context_parallel(cfg.context_parallel, self.world, text_cfg.num_heads, text_cfg.num_kv_heads,
                                        cfg.data.seq_len)
        self.dp_world = self.world // cfg.context_parallel  # ranks drawing different rows
        if cfg.global_batch_rows % (self.dp_world * cfg.micro_batch_rows):
            cp = f" / context_parallel {cfg.context_parallel}" if cfg.context_parallel > 1 else ""
            raise ConfigError(f"global_batch_rows={cfg.global_batch_rows} must be a multiple of world size "
                              f"{self.world}{cp} x micro_batch_rows {cfg.micro_batch_rows}")
        self.cp = parallel.init_context_parallel(cfg.context_parallel)
        self.dp_rank = self.cp.dp_rank if self.cp is not None else self.rank
        self.run_dir = Path(cfg.run_dir)
        self.wandb = _import_wandb() if cfg.wandb_project else None
        self.processor = Molmo2Processor.from_pretrained(self.model_dir)
        self.step = 0
        resume = latest_checkpoint(self.run_dir)
        self.model = self._build_model(resume)
        self.model_cfg = self.model.cfg
        self.model.text.set_dropout(cfg.residual_dropout, cfg.response_residual_dropout)
        if cfg.lora.rank:
            from molmo2.train.lora import apply_lora, load_adapters

            apply_lora(self.model, cfg.lora.rank, cfg.lora.alpha, cfg.lora.targets, seed=cfg.seed)
            if resume is not None:
                load_adapters(self.model, resume / "lora.safetensors")  # full tensors, before sharding
        if cfg.activation_checkpointing:
            parallel.apply_activation_checkpointing(self.model)
        if self.cp is not None:
            parallel.apply_context_parallel(self.model, self.cp)
        if self.world > 1:
            parallel.apply_fsdp2(self.model)
        self.optimizer = build_optimizer(self.model, cfg.optim, set(cfg.freeze), cfg.freeze_base_embedding,
                                         cfg.freeze_lm_head)
        self.rows = self._build_rows()
        if resume is not None:
            self._resume(resume)
        self.history: list[dict] = []

    # ------------------------------------------------------------------------------ set-up
    def _build_model(self, resume: Path | None) -> Molmo2Model:
        torch.manual_seed(self.cfg.seed)
        if resume is not None:
            self.log(f"resuming from {resume}")
            model = load_model(resume / "model", dtype=torch.float32, device=self.device)
        elif self.cfg.init == "checkpoint":
            model = load_model(self.model_dir, dtype=torch.float32, device=self.device)
        elif self.cfg.init == "random":
            model = Molmo2Model(read_config(self.model_dir))
            init_weights(model, self.cfg.seed)
            model = model.to(self.device)
        else:
            raise ConfigError(f"init must be 'checkpoint' or 'random', got {self.cfg.init!r}")
        return model.train()

    def _build_rows(self) -> RowSource:
        d = self.cfg.data
        if not d.manifests:
            raise ConfigError("no training data: set data.manifests to a list of JSONL manifests")
        sources = [Source(m, group=d.groups.get(m, "default")) for m in d.manifests]
        mixture = Mixture(sources, d.group_rates or None, seed=d.seed)
        settings = DataSettings(max_seq_len=d.seq_len, max_frames=d.max_frames, max_fps=d.max_fps,
                                weighting=d.weighting)
        prep = Preparer(self.processor, self.model.cfg, settings, seed=d.seed)
        packer = Packer(max_tokens=d.seq_len, max_crops=d.max_crops_per_row, buffer_size=d.buffer_size,
                        image_weight=d.image_weight)
        stream = Stream(mixture, prep, fits=lambda it: packer.fits(it.num_tokens, it.num_crops),
                        log=self.log if self.rank == 0 else (lambda m: None), rank=self.dp_rank, world=self.dp_world)
        return RowSource(stream, packer)

    def _resume(self, ckpt: Path) -> None:
        state = json.loads((ckpt / "trainer.json").read_text())
        self.step = int(state["step"])
        opt = optimizer_from_files(ckpt, keys_are_ints=self.world == 1)
        parallel.load_optimizer_state(self.model, self.optimizer, opt)
        self.rows.load_state_dict(state["data"][self.rank] if isinstance(state["data"], list) else state["data"])
        if "rng" in state:  # dropout draws continue where they stopped
            _set_rng_state(state["rng"][self.rank] if isinstance(state["rng"], list) else state["rng"], self.device)

    # -------------------------------------------------------------------------------- loop
    def _autocast(self):
        if self.cfg.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        if self.cfg.precision != "fp32":
            raise ConfigError(f"precision must be fp32 or bf16, got {self.cfg.precision!r}")
        return nullcontext()

    def train_step(self) -> dict:
        cfg = self.cfg
        rows_here = cfg.global_batch_rows // self.dp_world
        rows = [self.rows.next_row() for _ in range(rows_here)]
        micro = [collate(rows[i : i + cfg.micro_batch_rows], self.processor.tokenizer.pad_id or 0,
                         multiple=cfg.context_parallel) for i in range(0, rows_here, cfg.micro_batch_rows)]
        # the weight of the tokens this rank computes the loss of (its slice under CP): every token of
        # the global batch is counted once
        local_w = sum(float((self.cp.shard(b.weights) if self.cp else b.weights).sum()) for b in micro)
        total_w = parallel.all_reduce_sum(local_w, self.device)
        norm = max(total_w / self.world, 1e-8)
        ce = z = correct = 0.0
        n_tokens = 0
        for b in micro:
            b = b.to(self.device)
            with self._autocast():
                sums = loss_sums(self.model, b, cfg.optim.z_loss)
            ((sums.ce + sums.z) / norm).backward()
            ce += float(sums.ce.detach())
            z += float(sums.z.detach())
            correct += sums.correct
            n_tokens += b.num_tokens
        self.step += 1
        zero_frozen_rows(self.optimizer)
        grad_norms = clip_per_group(self.optimizer, cfg.optim.max_grad_norm)
        lrs = set_lrs(self.optimizer, self.step, cfg.steps, cfg.optim.alpha_f)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        ce, z, correct = (parallel.all_reduce_sum(v, self.device) for v in (ce, z, correct))
        crops = sum(it.num_crops for r in rows for it in r)
        return {
            "step": self.step, "loss": (ce + z) / max(total_w, 1e-8), "ce": ce / max(total_w, 1e-8),
            "z": z / max(total_w, 1e-8), "accuracy": correct / max(total_w, 1e-8), "lr": lrs,
            "grad_norm": grad_norms, "tokens": n_tokens,
            "token_fill": n_tokens / (rows_here * cfg.data.seq_len),
            "crop_fill": crops / max(1, rows_here * cfg.data.max_crops_per_row),
            "examples": sum(len(r) for r in rows), "skipped": sum(self.rows.stream.skipped.values()),
        }

    def save(self) -> Path | None:
        model_state = parallel.full_state_dict(self.model)
        adapters = {}
        if self.cfg.lora.rank:
            from molmo2.train.lora import split_state

            model_state, adapters = split_state(model_state.items())
        optim_state = parallel.full_optimizer_state(self.model, self.optimizer)
        data_state, rng_state = self.rows.state_dict(), _rng_state(self.device)
        if self.world > 1:  # one list entry per rank (one gather for both)
            data_state, rng_state = map(list, zip(*parallel.all_gather_objects((data_state, rng_state))))
        path = None
        if self.rank == 0:
            state = {"step": self.step, "data": data_state, "rng": rng_state, "config": self.cfg.to_dict()}
            path = save_checkpoint(self.run_dir, self.step, model_state, self.model_cfg, self.model_dir,
                                   optim_state, state, self.cfg.keep_last, extra_tensors={"lora": adapters})
        parallel.barrier()
        return path

    def fit(self, on_step: Callable[[dict], None] | None = None) -> list[dict]:
        from tqdm import tqdm

        cfg = self.cfg
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        log_f = (self.run_dir / "log.jsonl").open("a") if self.rank == 0 else None
        wandb_run = None
        if self.wandb is not None and self.rank == 0:
            wandb_run = self.wandb.init(project=cfg.wandb_project, name=self.run_dir.name, dir=str(self.run_dir),
                                        config=cfg.to_dict())
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", disable=self.rank != 0, dynamic_ncols=True)
        t0, tokens = time.perf_counter(), 0
        try:
            end = min(cfg.steps, cfg.stop_at) if cfg.stop_at else cfg.steps
            while self.step < end:
                m = self.train_step()
                if not math.isfinite(m["loss"]):
                    raise Molmo2Error(f"the loss became {m['loss']} at step {self.step}; lower the learning rates "
                                      "or use precision=fp32")
                tokens += m["tokens"]
                m["tokens_per_s"] = tokens / max(time.perf_counter() - t0, 1e-9)
                self.history.append(m)
                bar.update(1)
                bar.set_postfix(loss=f"{m['loss']:.3f}", acc=f"{m['accuracy']:.2f}", tok_s=f"{m['tokens_per_s']:.0f}")
                if log_f and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                    log_f.write(json.dumps(m) + "\n")
                    log_f.flush()
                    if wandb_run is not None:
                        wandb_run.log(m, step=self.step)
                if on_step:
                    on_step(m)
                if cfg.save_every and (self.step % cfg.save_every == 0 or self.step == end):
                    self.save()
        finally:
            bar.close()
            if log_f:
                log_f.close()
            if wandb_run is not None:
                wandb_run.finish()
        return self.history
