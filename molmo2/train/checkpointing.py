"""Run checkpoints: weights in the hub layout + optimizer + trainer state, written atomically.

``run_dir/checkpoints/step_000100/``:

- ``model/``: a normal model directory (``save_pretrained``: config, safetensors, tokenizer and
  processor files), loadable by ``Molmo2.from_pretrained`` and by ``molmo2 train`` as a start;
- ``optimizer.safetensors`` + ``optimizer.json``: AdamW moments and steps as tensors, group settings
  as JSON (no pickle anywhere);
- ``trainer.json``: step, data stream and packer state, skip counters, the resolved config.

Everything is written to ``step_N.tmp`` and renamed, so a killed run never leaves a half checkpoint;
only the newest ``keep_last`` are kept. Resuming restores all of it, so the run continues bit for bit.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch

from molmo2.checkpoint import save_pretrained

STEP_RE = re.compile(r"^step_(\d+)$")


def optimizer_to_files(state: dict, out: Path) -> None:
    from safetensors.torch import save_file

    tensors = {}
    scalars: dict[str, dict] = {}
    for pid, s in state["state"].items():
        for k, v in s.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{pid}/{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    save_file(tensors, out / "optimizer.safetensors")
    groups = [{k: v for k, v in g.items()} for g in state["param_groups"]]
    (out / "optimizer.json").write_text(json.dumps({"param_groups": groups, "scalars": scalars}))


def optimizer_from_files(src: Path, keys_are_ints: bool) -> dict:
    from safetensors.torch import load_file

    tensors = load_file(src / "optimizer.safetensors")
    meta = json.loads((src / "optimizer.json").read_text())
    state: dict = {}
    for name, t in tensors.items():
        pid, k = name.rsplit("/", 1)
        key = int(pid) if keys_are_ints else pid
        state.setdefault(key, {})[k] = t
    for pid, s in meta["scalars"].items():
        state.setdefault(int(pid) if keys_are_ints else pid, {}).update(s)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path, step: int, model_state: dict, cfg_model, source_dir: Path,
                    optim_state: dict, trainer_state: dict, keep_last: int,
                    extra_tensors: dict[str, dict[str, torch.Tensor]] | None = None) -> Path:
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:06d}"
    tmp = ckpt_root / f"step_{step:06d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_pretrained(model_state, tmp / "model", source_dir=source_dir, cfg=cfg_model)
    optimizer_to_files(optim_state, tmp)
    for fname, tensors in (extra_tensors or {}).items():
        if tensors:
            from safetensors.torch import save_file

            save_file({k: v.contiguous().cpu() for k, v in tensors.items()}, tmp / f"{fname}.safetensors")
    (tmp / "trainer.json").write_text(json.dumps(trainer_state, indent=1))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and STEP_RE.match(p.name)]
    return sorted(found, key=lambda p: int(STEP_RE.match(p.name).group(1)))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None
