"""Recipes and the ``molmo2 train`` command."""

from __future__ import annotations

import pytest

from molmo2.cli import main
from molmo2.train.recipes import RECIPES, get_recipe


def test_debug_cpu_trains_end_to_end_and_exports_a_loadable_model(tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--recipe", "debug-cpu", "--run-dir", str(run), "--set", "steps=4", "--set", "save_every=2",
               "--set", "data.seq_len=384"])
    assert rc == 0
    from molmo2.checkpoint import load_model
    from molmo2.processing import Molmo2Processor

    model = load_model(run / "final")
    Molmo2Processor.from_pretrained(run / "final")
    assert sum(p.numel() for p in model.parameters()) > 0
    assert (run / "phase1" / "config.json").is_file()  # the resolved config is saved with the run
    assert len((run / "phase1" / "log.jsonl").read_text().splitlines()) >= 1


@pytest.mark.parametrize("name", sorted(n for n in RECIPES if n.split("-")[0] in ("pretrain", "sft", "long")))
def test_released_recipes_have_the_official_numbers(name):
    c = get_recipe(name).phases[0]
    assert c.global_batch_rows == 128 and c.precision == "bf16"
    # the official ft_embedding="lm_head": base embedding rows frozen; for the weight-tied 4B the head is
    # that frozen embedding, so it is frozen too (training.md §1.1)
    assert c.freeze_base_embedding and c.freeze_lm_head == name.endswith("-4b")
    if name.startswith("pretrain"):
        assert (c.steps, c.data.seq_len, c.optim.lr["connector"], c.optim.lr["vit"], c.optim.lr["llm"]) == \
            (31_000, 2536, 2e-4, 6e-6, 2e-5)
        assert c.optim.warmup == {"connector": 200, "vit": 2000, "llm": 2000}
    elif name.startswith("sft"):
        assert (c.data.seq_len, c.data.max_crops_per_row, c.data.weighting, c.optim.lr["llm"]) == \
            (16_384, 128, "sft", 1e-5)
    else:
        assert (c.steps, c.data.seq_len, c.data.max_crops_per_row) == (2000, 36_864, 384)


def test_dry_run_prints_the_plan(capsys):
    assert main(["train", "--recipe", "sft-8b", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "30000 steps" in out and "memory per GPU" in out


def test_bad_overrides_exit_2_with_the_valid_keys(capsys):
    assert main(["train", "--recipe", "sft-4b", "--dry-run", "--set", "optim.lr.bogus=1"]) == 2
    assert "['connector', 'llm', 'vit']" in capsys.readouterr().err
    assert main(["train", "--recipe", "nope"]) == 2
    assert main(["train", "--recipe", "debug-cpu", "--dry-run", "--set", "phase3.steps=1"]) == 2


def test_shapes_recipe_tokenizer_comes_from_the_named_phases_only(tmp_path):
    """A later phase's data must not change the tokenizer (else adding a phase to a recipe would
    change the vocabulary a from-scratch run trains, and the shipped model would not reproduce)."""
    from molmo2.train.recipes import _shapes_recipe

    def prepared(run, later_seed, tokenizer_phases):
        first = [{"name": "a", "preset": "single", "num": 4, "seed": 1, "kinds": ("pointing",)}]
        later = [{"name": f"b{later_seed}", "preset": "few", "num": 4, "seed": later_seed, "kinds": ("caption",)}]
        r = _shapes_recipe("t", [first, later], image_size=56, steps=[1, 1], rows=2, seq_len=256, lr=1e-3,
                           scale=4, tokenizer_phases=tokenizer_phases)
        for c in r.phases:
            c.run_dir = str(tmp_path / run)
        r.prepare(r.phases)
        return (tmp_path / run / "model-init" / "tokenizer.json").read_bytes()

    assert prepared("x", 2, 1) == prepared("y", 3, 1)
    assert prepared("z", 2, None) != prepared("w", 3, None)
