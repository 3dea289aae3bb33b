"""``molmo2 train``: resolve a recipe, apply ``--set`` overrides, prepare, then run each phase.

``--set key=value`` applies to every phase; ``--set phase2.key=value`` to one phase. Each phase
starts from the previous phase's last checkpoint unless its ``model`` is set (after a LoRA phase: its
adapters merged into the weights, ``<phase run_dir>/merged``). The final weights are
exported as a plain model directory, ``<run_dir>/final`` (LoRA adapters merged in), by rank 0 when
launched under torchrun while the other ranks wait.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from molmo2.errors import ConfigError
from molmo2.train.checkpointing import latest_checkpoint
from molmo2.train.config import apply_overrides
from molmo2.train.recipes import get_recipe, plan


def run(recipe_name: str, sets: list[str], dry_run: bool = False, run_dir: str | None = None, log=print) -> Path | None:
    recipe = get_recipe(recipe_name)
    phases = recipe.phases
    if run_dir:
        for c in phases:
            c.run_dir = run_dir
    common = [s for s in sets if not s.startswith("phase")]
    for c in phases:
        apply_overrides(c, common)
    for s in sets:
        if s.startswith("phase"):
            head, _, rest = s.partition(".")
            try:
                k = int(head[len("phase"):])
            except ValueError:
                raise ConfigError(f"--set {s!r}: use phaseN.key=value with N a phase number") from None
            if not 1 <= k <= len(phases):
                raise ConfigError(f"--set {s!r}: recipe {recipe_name} has {len(phases)} phase(s)")
            apply_overrides(phases[k - 1], [rest])
    if dry_run:
        log(plan(recipe))
        return None
    root = Path(phases[0].run_dir)
    from molmo2.train import parallel
    from molmo2.train.trainer import Trainer

    if recipe.prepare:
        # under torchrun one writer (rank 0) generates the data and model directory; the other ranks
        # wait, then run the same preparation, which finds everything written and only fills in paths
        rank, _ = parallel.init_distributed(phases[0].device)
        if rank == 0:
            log(f"preparing data and model for {recipe_name} under {root}")
            recipe.prepare(phases)
        parallel.barrier()
        if rank != 0:
            recipe.prepare(phases)

    last = None
    for i, c in enumerate(phases, 1):
        if not c.model:
            if last is None:
                raise ConfigError(f"phase {i} has no model; set --set model=DIR")
            c.model = str(last / "model")
            if phases[i - 2].lora.rank:  # start from the previous phase's adapters merged in, not the bare base
                c.model = str(Path(phases[i - 2].run_dir) / "merged")
                if parallel.get_rank() == 0:
                    export_final(last, Path(c.model), phases[i - 2].lora)
                parallel.barrier()
            c.init = "checkpoint"
        log(f"phase {i}/{len(phases)}: {c.steps} steps -> {c.run_dir}")
        if c.save_every <= 0:
            c.save_every = c.steps  # a phase always ends with a checkpoint the next one can start from
        Trainer(c, log=log).fit()
        last = latest_checkpoint(Path(c.run_dir))
    final = root / "final"
    if last is not None:
        if parallel.get_rank() == 0:  # under torchrun: one writer, from the checkpoint's full tensors
            export_final(last, final, phases[-1].lora)
            log(f"final model: {final}")
        parallel.barrier()
    return final


def export_final(ckpt: Path, final: Path, lora) -> None:
    """The last checkpoint's weights as a plain model directory (LoRA adapters merged in)."""
    if lora.rank:
        from molmo2.train.lora import export_merged

        export_merged(ckpt, final, lora.rank, lora.alpha, lora.targets)  # atomic (save_pretrained)
        return
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(ckpt / "model", tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
