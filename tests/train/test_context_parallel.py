"""Context parallelism (Ulysses) over 2 CPU processes (gloo, launched by torchrun): the all-to-all
layout changes are exact permutations with exact adjoints, CP attention over a packed SegmentMask
equals single-process attention (values and gradients), and training with context_parallel=2 on 2
processes gives the losses, gradient norms and weights of 1 process (also with activation
checkpointing, and with LoRA under bf16); a cp=2 run stopped and resumed continues bit for bit; 4
processes as 2 data-parallel groups x cp=2 train like 2 plain data-parallel processes; bad degrees are
clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_fsdp import HEAD, _launch

from molmo2.checkpoint import load_model
from molmo2.errors import ConfigError
from molmo2.train import parallel
from molmo2.train.batch import collate
from molmo2.train.trainer import Trainer

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")

ALL_TO_ALL = '''
import json
import torch
from molmo2.model.attention import SegmentMask, attend
from molmo2.train import parallel

rank, world = parallel.init_distributed("cpu")
cp = parallel.init_context_parallel(2)
assert (cp.rank, cp.size, cp.dp_rank, cp.dp_size) == (rank, 2, 0, 1)
g = torch.Generator().manual_seed(0)  # the same full tensors on both ranks
B, H, KV, S, D = 2, 4, 2, 12, 8
q, G = (torch.randn(B, H, S, D, generator=g, dtype=torch.float64) for _ in range(2))
k, v = (torch.randn(B, KV, S, D, generator=g, dtype=torch.float64) for _ in range(2))
mine = lambda t: t[:, rank * t.shape[1] // 2 : (rank + 1) * t.shape[1] // 2]  # this rank's heads

# 1. the layout change is the exact permutation, and heads_to_seq undoes it
ql, kl, vl = (cp.shard(t, 2).clone().requires_grad_() for t in (q, k, v))
qh, kh, vh = cp.seq_to_heads(ql, kl, vl)
assert qh.shape == (B, H // 2, S, D) and kh.shape == (B, KV // 2, S, D)
assert torch.equal(qh, mine(q)) and torch.equal(kh, mine(k)) and torch.equal(vh, mine(v))
back = cp.heads_to_seq(qh)
assert torch.equal(back, ql)

# 2. backward = the inverse permutation (exact); outputs without a gradient still join the exchange
(qh * mine(G)).sum().backward()
assert torch.equal(ql.grad, cp.shard(G, 2)) and torch.equal(kl.grad, torch.zeros_like(kl))
x = cp.shard(q, 2).clone().requires_grad_()
y = cp.heads_to_seq(cp.seq_to_heads(x)[0])
(y * cp.shard(G, 2)).sum().backward()
assert torch.equal(x.grad, cp.shard(G, 2))

# 3. Ulysses attention over a packed row (2 examples with visual prefixes, branches, padding) in
# float64 = single-process attention, values and gradients
ex = torch.tensor([[0] * 5 + [1] * 5 + [-1] * 2, [0] * 12])
br = torch.tensor([[0, 0, 1, 1, 2, 0, 0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]])
vis = torch.zeros(B, S, dtype=torch.bool)
vis[0, 1:2] = vis[0, 6:8] = vis[1, 1:3] = True
mask = SegmentMask(ex, br, vis, backend="segments")
qr, kr, vr = (t.clone().requires_grad_() for t in (q, k, v))
ref = attend(qr, kr, vr, mask)
ref.backward(G)
ql, kl, vl = (cp.shard(t, 2).clone().requires_grad_() for t in (q, k, v))
out = cp.heads_to_seq(attend(*cp.seq_to_heads(ql, kl, vl), mask))
out.backward(cp.shard(G, 2))
err = {"out": (out - cp.shard(ref, 2)).abs().max().item()}
for name, a, r in (("q", ql, qr), ("k", kl, kr), ("v", vl, vr)):
    err[name] = (a.grad - cp.shard(r.grad, 2)).abs().max().item()
# the FlexAttention rule (eager on CPU; compiled on CUDA) sees the same full-row mask
flex = cp.heads_to_seq(attend(*cp.seq_to_heads(*(cp.shard(t, 2) for t in (q, k, v))),
                              SegmentMask(ex, br, vis, backend="flex")))
real = cp.shard(ex >= 0)[:, None, :, None]  # padding rows differ by design (zeros / self-attention)
err["flex"] = ((flex - cp.shard(ref, 2)) * real).abs().max().item()
assert max(err.values()) < 1e-12, err
if rank == 0:
    json.dump(err, open(OUT, "w"))
torch.distributed.barrier()  # see RUNNER
torch.distributed.destroy_process_group()
'''

RUNNER = HEAD + '''
# 4 rows of 2 examples per step (micro-batches of 2 rows): visual blocks on both halves of the rows,
# some cut by the boundary between the ranks' slices
cfg = make_cfg({model!r}, {manifest!r}, {run!r}, context_parallel={cp}, global_batch_rows=4, micro_batch_rows=2,
               **{kw!r})
t = Trainer(cfg, log=lambda m: None)
if {cp} > 1:
    assert t.cp.size == {cp} and t.model.text.blocks[0].attn.context_parallel is t.cp
hist = t.fit()
if t.rank == 0:
    json.dump({{"loss": [m["loss"] for m in hist], "grad_norm": [m["grad_norm"] for m in hist]}}, open({out!r}, "w"))
if t.world > 1:  # leave together: a rank exiting with live gloo threads can abort ("terminate called ...")
    import torch
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
'''

# cp=2 with residual dropout (the restored random state matters): run "a" uninterrupted, run "b"
# stopped at step 2 and resumed by a fresh Trainer in the same run directory
RESUME_RUNNER = HEAD + '''
import torch
kw = dict(context_parallel=2, global_batch_rows=4, micro_batch_rows=2, steps=4, save_every=2, residual_dropout=0.1)
full = Trainer(make_cfg({model!r}, {manifest!r}, {run!r} + "/a", **kw), log=lambda m: None).fit()
Trainer(make_cfg({model!r}, {manifest!r}, {run!r} + "/b", stop_at=2, **kw), log=lambda m: None).fit()
t = Trainer(make_cfg({model!r}, {manifest!r}, {run!r} + "/b", **kw), log=lambda m: None)
assert t.step == 2 and t.cp.size == 2, t.step
resumed = t.fit()
if t.rank == 0:
    json.dump({{"a": [m["loss"] for m in full], "b": [m["loss"] for m in resumed]}}, open({out!r}, "w"))
torch.distributed.barrier()  # see RUNNER
torch.distributed.destroy_process_group()
'''


def test_all_to_all_is_exact_and_attention_matches_one_process(tmp_path):
    out = tmp_path / "a2a.json"
    _launch(tmp_path, "a2a", f"OUT = {str(out)!r}\n" + ALL_TO_ALL, 2)
    assert max(json.loads(out.read_text()).values()) < 1e-12


def _train(tmp_path: Path, model_dir, manifest, nproc: int, cp: int, **kw):
    """(losses and grad norms per step, final weights) of a run with ``make_cfg`` + the RUNNER's settings."""
    name = f"cp{cp}-n{nproc}"
    run, out = tmp_path / name, tmp_path / f"{name}.json"
    settings = {"steps": 4, "save_every": 4, "activation_checkpointing": False, **kw}
    code = RUNNER.format(here=str(Path(__file__).parent), model=str(model_dir), manifest=str(manifest), run=str(run),
                         out=str(out), cp=cp, kw=settings)
    _launch(tmp_path, name, code, nproc)
    step = f"step_{settings['steps']:06d}"
    return json.loads(out.read_text()), load_model(run / "checkpoints" / step / "model").state_dict()


def _assert_same_run(want, got) -> None:
    """Two runs' (history, final weights) agree: losses, per-part gradient norms before clipping (the
    gradients themselves, not only AdamW's nearly scale-free updates) and weights."""
    (h1, w1), (h2, w2) = want, got
    assert len(h1["loss"]) == 4 and h1["loss"][-1] < h1["loss"][0]
    assert h2["loss"] == pytest.approx(h1["loss"], rel=1e-5)
    for g1, g2 in zip(h1["grad_norm"], h2["grad_norm"]):
        assert g2 == pytest.approx(g1, rel=1e-4)
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], atol=1e-5, rtol=1e-4, msg=name)


def test_two_process_context_parallel_matches_one_process(model_dir, manifest, tmp_path):
    """2 ranks share every row (dp=1, cp=2; FSDP2 over both), activation checkpointing on (the
    recomputed forward repeats the all-to-alls)."""
    _assert_same_run(_train(tmp_path, model_dir, manifest, 1, 1),
                     _train(tmp_path, model_dir, manifest, 2, 2, activation_checkpointing=True))


def _trainer_state(run: Path, step: int) -> dict:
    return json.loads((run / "checkpoints" / f"step_{step:06d}" / "trainer.json").read_text())


def test_context_parallel_resumes_bit_for_bit(model_dir, manifest, tmp_path):
    """cp=2 on 2 processes, stopped at step 2 and resumed by a fresh Trainer: the same losses as the
    uninterrupted run, `==`; the checkpoint holds one data and random state per rank (the two ranks of
    the group draw the same rows)."""
    run, out = tmp_path / "resume", tmp_path / "resume.json"
    _launch(tmp_path, "resume", RESUME_RUNNER.format(here=str(Path(__file__).parent), model=str(model_dir),
                                                      manifest=str(manifest), run=str(run), out=str(out)), 2)
    losses = json.loads(out.read_text())
    assert len(losses["a"]) == 4 and len(losses["b"]) == 2
    assert losses["b"] == losses["a"][2:]
    for name in ("a", "b"):
        state = _trainer_state(run / name, 2)
        assert state["step"] == 2 and len(state["data"]) == len(state["rng"]) == 2
        assert state["data"][0] == state["data"][1]  # one CP group: one data stream
        assert all("cpu" in r for r in state["rng"])
    assert _trainer_state(run / "b", 2)["data"] == _trainer_state(run / "a", 2)["data"]
    assert _trainer_state(run / "b", 4)["data"] == _trainer_state(run / "a", 4)["data"]
    a = load_model(run / "a" / "checkpoints" / "step_000004" / "model").state_dict()
    b = load_model(run / "b" / "checkpoints" / "step_000004" / "model").state_dict()
    assert all(torch.equal(b[k], a[k]) for k in a)


def test_data_parallel_groups_with_context_parallel_match_plain_data_parallel(model_dir, manifest, tmp_path):
    """4 processes as 2 data-parallel groups x cp=2 against 2 processes without CP: both have 2
    data-parallel ranks, 2 rows each per step (global_batch_rows=4, micro_batch_rows=2), so the
    same rows, losses and weights."""
    _assert_same_run(_train(tmp_path, model_dir, manifest, 2, 1), _train(tmp_path, model_dir, manifest, 4, 2))
    # the data state per rank: ranks 0, 1 (group 0) and 2, 3 (group 1) draw as dp ranks 0 and 1 of the plain run
    plain, grouped = (_trainer_state(tmp_path / name, 4)["data"] for name in ("cp1-n2", "cp2-n4"))
    assert len(grouped) == 4 and grouped[0] == grouped[1] and grouped[2] == grouped[3]
    assert grouped[0] != grouped[2] and [grouped[0], grouped[2]] == plain


def test_context_parallel_with_lora_and_bf16_matches_one_process(model_dir, manifest, tmp_path):
    """LoRA adapters (sharded with their frozen weights) and bf16 autocast (the all-to-alls carry bf16):
    the same losses as 1 process up to bf16 rounding."""
    kw = {"lora.rank": 4, "lora.alpha": 8.0, "precision": "bf16", "steps": 3, "save_every": 3}
    one, a = _train(tmp_path, model_dir, manifest, 1, 1, **kw)
    two, b = _train(tmp_path, model_dir, manifest, 2, 2, **kw)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-3)
    assert a.keys() == b.keys()


def test_context_parallel_config_errors_are_clear(model_dir, manifest, tmp_path):
    from test_trainer import make_cfg

    parallel.check_context_parallel(2, 4, num_heads=4, num_kv_heads=2, seq_len=384)  # fine
    with pytest.raises(ConfigError, match="world size divisible"):
        parallel.check_context_parallel(2, 3, 4, 2, 384)
    with pytest.raises(ConfigError, match="num_heads=6 is not divisible"):
        parallel.check_context_parallel(4, 4, 6, 2, 384)
    with pytest.raises(ConfigError, match="num_kv_heads=2 is not divisible"):
        parallel.check_context_parallel(4, 4, 8, 2, 384)
    with pytest.raises(ConfigError, match="data.seq_len=385"):
        parallel.check_context_parallel(2, 2, 4, 2, 385)
    with pytest.raises(ConfigError, match=">= 1"):
        parallel.check_context_parallel(0, 1, 4, 2, 384)
    # the typed override reaches the trainer, which refuses a degree its world size cannot hold
    with pytest.raises(ConfigError, match="got 1 process"):
        Trainer(make_cfg(model_dir, manifest, tmp_path / "r", context_parallel=2), log=lambda m: None)


def test_collate_pads_rows_to_a_multiple_of_the_degree(items):
    rows = [items[:2], items[2:3]]
    S = max(sum(it.num_tokens for it in r) for r in rows)
    b = collate(rows, multiple=4)
    assert b.input_ids.shape[1] == -(-S // 4) * 4 and b.num_tokens == collate(rows).num_tokens
    assert (b.example_ids[:, S:] == -1).all() and (b.weights[:, S:] == 0).all()
