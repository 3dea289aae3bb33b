"""Packing and message trees change nothing but speed.

- The attention structure: no token attends across packed examples or across branches; visual tokens
  attend both ways within their own example only; the per-example (CPU) path and FlexAttention give
  what a dense mask gives.
- A packed row gives the same weighted loss and gradients as its examples one by one (1e-5).
- A message tree gives each branch the loss that branch gets when run alone, as a plain sequence
  through the inference path (causal + visual block).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F

from molmo2.checkpoint import read_config
from molmo2.model import Molmo2Model
from molmo2.model.attention import SegmentMask, attend
from molmo2.train.batch import collate, loss_sums
from molmo2.train.trainer import init_weights


@pytest.fixture(scope="module")
def model(model_dir):
    m = Molmo2Model(read_config(model_dir))
    init_weights(m, seed=0, std=0.2)  # large weights: differences would show
    return m.double().train()


def test_mask_rules(items):
    batch = collate([items[:3]])
    dense = batch.segment_mask().dense()[0, 0]
    ex, br, vis = batch.example_ids[0], batch.branch_ids[0], batch.is_visual[0]
    S = len(ex)
    q, k = torch.meshgrid(torch.arange(S), torch.arange(S), indexing="ij")
    off_diag = q != k
    assert not (dense & (ex[q] != ex[k]) & off_diag).any(), "attends across packed examples"
    cross_branch = (br[q] > 0) & (br[k] > 0) & (br[q] != br[k])
    assert not (dense & cross_branch).any(), "attends across branches"
    prefix_to_branch = (br[q] == 0) & (br[k] > 0)
    assert not (dense & prefix_to_branch).any(), "the shared prefix sees a branch"
    future = (k > q) & ~(vis[q] & vis[k])
    assert not (dense & future).any(), "non-visual token sees the future"
    both_vis_same = vis[q] & vis[k] & (ex[q] == ex[k])
    assert dense[both_vis_same].all(), "visual tokens of one example are not bidirectional"
    assert vis.sum() > 0 and (br > 1).any()


def test_segment_path_and_flex_equal_the_dense_mask(items):
    batch = collate([items[:2], items[2:5]])
    seg = batch.segment_mask("segments")
    B, S = batch.input_ids.shape
    g = torch.Generator().manual_seed(0)
    q = torch.randn(B, 4, S, 8, generator=g)
    k, v = torch.randn(B, 2, S, 8, generator=g), torch.randn(B, 2, S, 8, generator=g)
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=seg.dense(), enable_gqa=True)
    real = batch.example_ids >= 0
    out = attend(q, k, v, seg)
    torch.testing.assert_close(out.transpose(1, 2)[real], dense.transpose(1, 2)[real], atol=1e-5, rtol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eager flex on CPU: correct, unfused (CUDA compiles it)
        flex = attend(q, k, v, SegmentMask(batch.example_ids, batch.branch_ids, batch.is_visual, backend="flex"))
    torch.testing.assert_close(flex.transpose(1, 2)[real], dense.transpose(1, 2)[real], atol=1e-5, rtol=1e-5)


def _loss_and_grads(model, rows):
    model.zero_grad()
    batch = collate(rows)
    for f in ("weights",):
        setattr(batch, f, getattr(batch, f).double())
    s = loss_sums(model, batch, z_coef=1e-4)
    (s.ce + s.z).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return float((s.ce + s.z).detach()), s.weight, grads


def test_packed_loss_and_gradients_equal_unpacked(model, items):
    row = items[:4]
    packed, w_packed, g_packed = _loss_and_grads(model, [row])
    total, w_total, g_total = 0.0, 0.0, {}
    for it in row:
        l_, w_, g_ = _loss_and_grads(model, [[it]])
        total += l_
        w_total += w_
        for n, g in g_.items():
            g_total[n] = g_total.get(n, 0) + g
    assert w_packed == pytest.approx(w_total)
    assert packed / w_packed == pytest.approx(total / w_total, rel=1e-5, abs=1e-8)
    assert g_packed.keys() == g_total.keys()
    for n in g_packed:
        torch.testing.assert_close(g_packed[n], g_total[n], atol=1e-5, rtol=1e-5, msg=n)


def test_tree_branch_loss_equals_branch_run_alone(model, items):
    item = next(it for it in items if it.tree.num_branches >= 3)
    t = item.tree
    batch = collate([[item]])
    batch.weights = batch.weights.double()
    sel = batch.weights > 0
    with torch.no_grad():
        logits = model(batch.input_ids, visual=batch.visual, position_ids=batch.position_ids,
                       segments=batch.segment_mask(), select=sel)
    ce_tree = F.cross_entropy(logits, batch.targets[sel], reduction="none")
    branch_of = batch.branch_ids[sel]
    P = int((t.branch_ids == 0).sum())
    for k in range(1, t.num_branches + 1):
        idx = (t.branch_ids == k).nonzero()[0]
        ids = torch.tensor(list(t.input_ids[:P]) + list(t.input_ids[idx]))[None]
        targets = torch.tensor(list(t.targets[:P]) + list(t.targets[idx]))
        weights = torch.tensor(list(t.weights[:P]) + list(t.weights[idx]))
        with torch.no_grad():
            alone = copy.copy(model)(ids, visual=batch.visual)[0]  # inference path: causal + visual block
        m = weights > 0
        ce_alone = F.cross_entropy(alone[m], targets[m], reduction="none")
        torch.testing.assert_close(ce_tree[branch_of == k], ce_alone, atol=1e-8, rtol=1e-7)


def test_activation_checkpointing_changes_nothing(model_dir, items):
    from molmo2.train.parallel import apply_activation_checkpointing

    plain = Molmo2Model(read_config(model_dir))
    init_weights(plain, seed=1, std=0.2)
    plain = plain.double().train()
    ckpt = copy.deepcopy(plain)
    apply_activation_checkpointing(ckpt)
    assert sorted(n for n, _ in ckpt.named_parameters()) == sorted(n for n, _ in plain.named_parameters())
    a, _, ga = _loss_and_grads(plain, [items[:3]])
    b, _, gb = _loss_and_grads(ckpt, [items[:3]])
    assert a == pytest.approx(b, rel=1e-12)
    for n in ga:
        torch.testing.assert_close(ga[n], gb[n], atol=1e-10, rtol=1e-9, msg=n)
