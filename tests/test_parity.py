"""Number-for-number parity with transformers' native Molmo2 (the oracle), per component and end to end,
for both backbones, on checkpoints in the transformers layout and in the released hub layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from molmo2.checkpoint import load_model, save_pretrained
from molmo2.inference import SamplingParams, generate
from molmo2.model import VisualInputs
from molmo2.model.vision import normalize_pixels
from molmo2.processing import Molmo2Processor

ATOL = 1e-4


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(100, 40), (56, 56), (20, 300)]]


def _frames():
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (5, 48, 64, 3), dtype=np.uint8), [0.0, 0.5, 1.0, 1.5, 1.9]


def _message(n_images=0, video=False, text="Point to the dogs."):
    content = [{"type": "image"} for _ in range(n_images)] + ([{"type": "video"}] if video else [])
    return [{"role": "user", "content": content + [{"type": "text", "text": text}]}]


CASES = {
    "text": dict(n_images=0),
    "one_image": dict(n_images=1),
    "three_images": dict(n_images=3),
    "video": dict(video=True),
}


def _encode(proc: Molmo2Processor, case: str):
    spec = CASES[case]
    prompt = proc.render(_message(**spec))
    if spec.get("video"):
        frames, ts = _frames()
        return proc.encode(prompt, video_frames=frames, timestamps=ts)
    return proc.encode(prompt, _images()[: spec.get("n_images", 0)])


def _float_pixels(enc, cfg):
    """The normalized float32 pixels transformers takes (our processor returns uint8)."""
    return normalize_pixels(enc.pixel_values, cfg.vision.pixel_mean, cfg.vision.pixel_std)


def _reference_inputs(enc, cfg, video: bool):
    ids = enc.input_ids[None]
    kwargs = {"input_ids": ids, "mm_token_type_ids": torch.isin(ids, torch.tensor(cfg.visual_token_ids)).long()}
    if enc.pixel_values is not None:
        grids = torch.tensor([[enc.num_visual_tokens, 1, 0, 0]])  # transformers uses grids only to split
        pixels = _float_pixels(enc, cfg)
        if video:
            kwargs.update(pixel_values_videos=pixels, video_token_pooling=enc.pooling,
                          video_grids=torch.tensor([[enc.num_visual_tokens, 1, 1]]))
        else:
            kwargs.update(pixel_values=pixels, image_token_pooling=enc.pooling, image_grids=grids)
    return kwargs


@pytest.fixture(scope="module")
def loaded(reference):
    backbone, ref, ckpt = reference
    return backbone, ref, load_model(ckpt), Molmo2Processor.from_pretrained(ckpt)


def test_vision_features_match(loaded):
    _, ref, ours, proc = loaded
    enc = _encode(proc, "three_images")
    with torch.no_grad():
        out = ref.model.vision_tower(_float_pixels(enc, ours.cfg), output_hidden_states=True)
        layers = ref.config.adapter_config.vision_feature_layer
        want = torch.cat([out.hidden_states[i + 1 if i >= 0 else i] for i in layers], -1)
        got = ours.vision_features(enc.pixel_values)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_connector_output_matches(loaded):
    _, ref, ours, proc = loaded
    enc = _encode(proc, "three_images")
    with torch.no_grad():
        feats = ours.vision_features(enc.pixel_values)
        want = ref.model.multi_modal_projector(feats, enc.pooling).last_hidden_state
        got = ours.connector(feats.reshape(-1, feats.shape[-1]), enc.pooling)
    assert got.shape == want.shape == (enc.num_visual_tokens, ours.cfg.text.hidden_size)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("case", list(CASES))
def test_logits_and_greedy_tokens_match(loaded, case):
    _, ref, ours, proc = loaded
    enc = _encode(proc, case)
    video = CASES[case].get("video", False)
    kwargs = _reference_inputs(enc, ours.cfg, video)
    visual = VisualInputs(enc.pixel_values, enc.pooling) if enc.pixel_values is not None else None
    with torch.no_grad():
        want = ref(**kwargs).logits
        got = ours(enc.input_ids[None], visual)
    assert got.shape == want.shape
    assert (got - want).abs().max().item() <= ATOL
    assert want.std() > 0.1  # the random model is not degenerate: logits actually vary

    ref_tokens = ref.generate(**kwargs, max_new_tokens=32, min_new_tokens=32, do_sample=False)[0, enc.input_ids.shape[0]:]
    ours_tokens = generate(ours, enc.input_ids[None], visual=visual, params=SamplingParams(max_new_tokens=32))[0]
    assert ours_tokens.token_ids == ref_tokens.tolist()


@pytest.fixture(scope="module")
def decode_layout(reference):
    _, _, ckpt = reference
    return load_model(ckpt, decode_layout=True)


def test_decode_layout_stores_decoder_weights_column_major(loaded, decode_layout):
    """Same values as the default load; the decoder's and the head's Linear weights have transposed
    strides, everything else is untouched; saving writes the same checkpoint."""
    _, _, ours, _ = loaded
    linears = {f"text.{n}.weight" for n, m in decode_layout.text.named_modules() if isinstance(m, torch.nn.Linear)}
    linears.add("lm_head.weight")
    assert len(linears) > 2
    sa, sb = ours.state_dict(), decode_layout.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
        if k in linears:
            assert sb[k].stride() == (1, sb[k].shape[0]), k
        else:
            assert sb[k].is_contiguous(), k


@pytest.mark.parametrize("case", list(CASES))
def test_decode_layout_matches_reference(loaded, decode_layout, case):
    _, ref, _, proc = loaded
    enc = _encode(proc, case)
    kwargs = _reference_inputs(enc, decode_layout.cfg, CASES[case].get("video", False))
    visual = VisualInputs(enc.pixel_values, enc.pooling) if enc.pixel_values is not None else None
    with torch.no_grad():
        want = ref(**kwargs).logits
        got = decode_layout(enc.input_ids[None], visual)
    assert (got - want).abs().max().item() <= ATOL
    ref_tokens = ref.generate(**kwargs, max_new_tokens=32, min_new_tokens=32, do_sample=False)[0, enc.input_ids.shape[0]:]
    ours_tokens = generate(decode_layout, enc.input_ids[None], visual=visual, params=SamplingParams(max_new_tokens=32))[0]
    assert ours_tokens.token_ids == ref_tokens.tolist()


def test_decode_layout_round_trip(reference, decode_layout, tmp_path):
    _, _, ckpt = reference
    out = save_pretrained(decode_layout, tmp_path / "again", source_dir=ckpt)
    b = load_model(out)
    sa, sb = decode_layout.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_decode_layout_is_float32_cpu_only(reference):
    _, _, ckpt = reference
    b16 = load_model(ckpt, dtype=torch.bfloat16, decode_layout=True)
    assert all(p.is_contiguous() for p in b16.parameters())


@pytest.mark.parametrize("case", ["three_images", "video"])
def test_uint8_and_float_pixels_give_identical_outputs(loaded, case):
    """The processor's uint8 pixels, normalized inside the ViT, give exactly what the reference's float32
    pixels give: the same normalized values, so bit-identical features and logits."""
    _, _, ours, proc = loaded
    enc = _encode(proc, case)
    assert enc.pixel_values.dtype == torch.uint8
    floats = _float_pixels(enc, ours.cfg)
    assert floats.dtype == torch.float32
    with torch.no_grad():
        assert torch.equal(ours.vision_features(enc.pixel_values), ours.vision_features(floats))
        a = ours(enc.input_ids[None], VisualInputs(enc.pixel_values, enc.pooling))
        b = ours(enc.input_ids[None], VisualInputs(floats, enc.pooling))
    assert torch.equal(a, b)


def test_visual_features_change_the_answer(loaded):
    """Guards the parity tests against a model that ignores pixels."""
    _, _, ours, proc = loaded
    enc = _encode(proc, "one_image")
    with torch.no_grad():
        a = ours(enc.input_ids[None], VisualInputs(enc.pixel_values, enc.pooling))
        b = ours(enc.input_ids[None], VisualInputs(torch.zeros_like(enc.pixel_values), enc.pooling))
    assert (a - b).abs().max() > 1e-2


def test_batched_generation_matches_single(loaded):
    _, _, ours, proc = loaded
    encs = [_encode(proc, c) for c in ("text", "one_image", "three_images")]
    batch = proc.collate(encs)
    visual = VisualInputs(batch.pixel_values, batch.pooling)
    together = generate(ours, batch.input_ids, batch.attention_mask, visual, SamplingParams(max_new_tokens=12))
    for enc, got in zip(encs, together):
        v = VisualInputs(enc.pixel_values, enc.pooling) if enc.pixel_values is not None else None
        alone = generate(ours, enc.input_ids[None], visual=v, params=SamplingParams(max_new_tokens=12))[0]
        assert got.token_ids == alone.token_ids


def _to_hub_layout(src, dst, cfg) -> None:
    """Rewrite a transformers-saved checkpoint the way the released repos store it: the embedding split
    into [vocab] + [extra] rows, two shards with an index, and the remote-code config.json."""
    tensors = load_file(src / "model.safetensors")
    emb = torch.cat([tensors.pop("model.transformer.wte.embedding"), tensors.pop("model.transformer.wte.new_embedding")])
    V = cfg.text.vocab_size
    tensors["model.transformer.wte.embedding"] = emb[:V].clone()
    tensors["model.transformer.wte.new_embedding"] = emb[V:].clone()
    names = sorted(tensors)
    half = len(names) // 2
    dst.mkdir()
    weight_map = {}
    for i, part in enumerate([names[:half], names[half:]]):
        fname = f"model-0000{i + 1}-of-00002.safetensors"
        save_file({k: tensors[k] for k in part}, dst / fname)
        weight_map.update({k: fname for k in part})
    (dst / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    hub = cfg.to_hf_config()
    assert "vit_config" in hub and "vit_layers" in hub["adapter_config"] and "qkv_bias" in hub["text_config"]
    (dst / "config.json").write_text(json.dumps(hub))
    for f in src.iterdir():
        if f.suffix != ".safetensors" and f.name != "config.json":
            (dst / f.name).write_bytes(f.read_bytes())


def test_hub_layout_checkpoint_matches_reference(reference, tmp_path):
    backbone, ref, ckpt = reference
    from reference import tiny_config

    hub_dir = tmp_path / "hub"
    _to_hub_layout(ckpt, hub_dir, tiny_config(backbone))
    ours = load_model(hub_dir)
    proc = Molmo2Processor.from_pretrained(hub_dir)
    for case in ("text", "one_image"):
        enc = _encode(proc, case)
        kwargs = _reference_inputs(enc, ours.cfg, False)
        visual = VisualInputs(enc.pixel_values, enc.pooling) if enc.pixel_values is not None else None
        with torch.no_grad():
            assert (ours(enc.input_ids[None], visual) - ref(**kwargs).logits).abs().max() <= ATOL
    # saving writes the hub layout back exactly
    out = save_pretrained(ours, tmp_path / "resaved", source_dir=hub_dir)
    orig = {}
    for f in hub_dir.glob("*.safetensors"):
        orig.update(load_file(f))
    again = load_file(out / "model.safetensors")
    assert sorted(orig) == sorted(again)
    for k in orig:
        assert torch.equal(orig[k], again[k]), k
    assert json.loads((out / "config.json").read_text()) == json.loads((hub_dir / "config.json").read_text())


def test_round_trip_and_sharding(reference, tmp_path):
    _, _, ckpt = reference
    a = load_model(ckpt)
    out = save_pretrained(a, tmp_path / "sharded", source_dir=ckpt, max_shard_bytes=20_000)
    assert (out / "model.safetensors.index.json").is_file() and len(list(out.glob("*.safetensors"))) > 2
    b = load_model(out)
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_bf16_load_runs_close_to_fp32(reference):
    _, _, ckpt = reference
    f32, b16 = load_model(ckpt), load_model(ckpt, dtype=torch.bfloat16)
    assert b16.dtype == torch.bfloat16
    proc = Molmo2Processor.from_pretrained(ckpt)
    enc = _encode(proc, "one_image")
    v = VisualInputs(enc.pixel_values, enc.pooling)
    with torch.no_grad():
        a, b = f32(enc.input_ids[None], v), b16(enc.input_ids[None], v).float()
    assert torch.isfinite(b).all()
    assert (a - b).abs().max() < 0.15 * a.abs().max()


def test_model_normalizes_with_the_processors_mean_and_std(reference, tmp_path):
    """The model reads image_mean / image_std from preprocessor_config.json, as the processor does, and
    the pipeline refuses a model and a processor that disagree."""
    import shutil

    from molmo2.errors import Molmo2Error
    from molmo2.inference import Molmo2

    _, _, ckpt = reference
    d = shutil.copytree(ckpt, tmp_path / "ckpt")
    pre = json.loads((d / "preprocessor_config.json").read_text()) if (d / "preprocessor_config.json").is_file() else {}
    pre.update(image_mean=[0.25, 0.5, 0.75], image_std=[0.2, 0.3, 0.4])
    (d / "preprocessor_config.json").write_text(json.dumps(pre))
    model, proc = load_model(d), Molmo2Processor.from_pretrained(d)
    assert model.cfg.vision.pixel_mean == (0.25, 0.5, 0.75) and model.cfg.vision.pixel_std == (0.2, 0.3, 0.4)
    enc = _encode(proc, "one_image")
    floats = normalize_pixels(enc.pixel_values, proc.image.image_mean, proc.image.image_std)
    with torch.no_grad():
        assert torch.equal(model.vision_features(enc.pixel_values), model.vision_features(floats))
    Molmo2(model, proc)  # consistent: fine
    with pytest.raises(Molmo2Error, match="same model directory"):
        Molmo2(model, Molmo2Processor.from_pretrained(ckpt))


@pytest.mark.parametrize("shape", [(1, 1, 768), (2, 37, 64), (3, 5, 4, 16), (300, 2560)])
def test_fused_rms_norm_is_bitwise_the_explicit_formula(shape):
    """fp32 RMSNorm takes torch's fused kernel (or, for a few rows without grad on the CPU, seven small
    kernels); both must equal x * rsqrt(mean(x^2) + eps) * w exactly, the formula the reference uses (the
    bf16 path computes it step by step)."""
    from molmo2.model.text import RMSNorm

    torch.manual_seed(0)
    norm = RMSNorm(shape[-1], 1e-6)
    with torch.no_grad():
        norm.weight.normal_()
        for scale in (1e-3, 1.0, 1e3):
            x = torch.randn(shape) * scale
            want = norm.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))
            assert torch.equal(norm(x), want)
            with torch.enable_grad():
                assert torch.equal(norm(x), want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_query_and_key_heads_normalized_in_one_call_equal_two_norms(dtype):
    """``rms_norm`` over the query|key heads side by side, with each side's weights, gives bitwise
    what the two per-head RMSNorms give (the decoder normalizes both in one call)."""
    from molmo2.model.text import RMSNorm, rms_norm

    torch.manual_seed(0)
    H, KV, D = 8, 2, 64
    qn, kn = RMSNorm(D, 1e-6).to(dtype), RMSNorm(D, 1e-6).to(dtype)
    with torch.no_grad():
        qn.weight.normal_(), kn.weight.normal_()
        for B, T in ((2, 5), (1, 1)):  # a prefill, a decode step
            qkv = torch.randn(B, T, (H + 2 * KV) * D).to(dtype)
            qk = qkv[..., : (H + KV) * D].view(B, T, H + KV, D)  # a strided view, as in the decoder
            w = torch.cat((qn.weight.expand(H, D), kn.weight.expand(KV, D)))
            got = rms_norm(qk, w, 1e-6)
            assert torch.equal(got[:, :, :H], qn(qk[:, :, :H].contiguous()))
            assert torch.equal(got[:, :, H:], kn(qk[:, :, H:].contiguous()))


@pytest.mark.parametrize("scaled", [False, True])
def test_rope_table_and_rolled_rotation_equal_the_explicit_formula(scaled):
    """Looked-up cos/sin with the rotation as one roll give bitwise the reference's rotate-half RoPE
    computed from the positions (plain and YaRN), for positions that grow the table."""
    from molmo2.config import TextConfig
    from molmo2.model.text import RopeTable, apply_rope, rope_inv_freq

    cfg = TextConfig(hidden_size=64, num_layers=1, num_heads=4, num_kv_heads=2, head_dim=16, intermediate_size=64,
                     vocab_size=32, rope_theta=10_000.0, max_position_embeddings=8192,
                     rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048})
    inv_freq, factor = rope_inv_freq(cfg, scaled)
    table = RopeTable(inv_freq, factor)
    torch.manual_seed(0)
    for pos in (torch.arange(7)[None], torch.tensor([[3, 900, 5000]]), torch.tensor([[0, 1], [250, 251]])):
        x = torch.randn(pos.shape[0], 3, pos.shape[1], 16)
        freqs = pos[..., None].float() * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos() * factor, emb.sin() * factor
        want = x * cos[:, None] + torch.cat((-x[..., 8:], x[..., :8]), dim=-1) * sin[:, None]
        for bound in (None, int(pos.max()) + 1):
            assert torch.equal(apply_rope(x, *table.lookup(pos, bound)), want)
            xb = x.bfloat16()  # rotated in fp32, rounded back
            rolled = torch.cat((-xb[..., 8:], xb[..., :8]), dim=-1).float()
            want_b = (xb.float() * cos[:, None] + rolled * sin[:, None]).bfloat16()
            assert torch.equal(apply_rope(xb, *table.lookup(pos, bound)), want_b)
        if pos.shape[0] == 1 and bool((pos[0] == torch.arange(pos.shape[1])).all()):  # contiguous: a view
            assert torch.equal(apply_rope(x, *table.span(0, pos.shape[1], x.device)), want)


@pytest.mark.parametrize("k,n", [(128, 64), (768, 1280), (2048, 768), (100, 32)])
@pytest.mark.parametrize("bias", [False, True])
def test_blocked_single_row_linear_matches_f_linear(k, n, bias):
    """The decode-step product over a column-major fp32 weight (blocked bmm, up to 16 rows) equals F.linear
    to float rounding; more rows, row-major weights and sizes not divisible by the block take F.linear."""
    from molmo2.model.linear import Linear

    torch.manual_seed(0)
    lin = Linear(k, n, bias=bias)
    with torch.no_grad():
        lin.weight.data = lin.weight.data.t().contiguous().t()
        x = torch.randn(1, 1, k)
        want = torch.nn.functional.linear(x, lin.weight, lin.bias)
        got = lin(x)
        assert got.shape == want.shape == (1, 1, n)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
        for m in (3, 16):  # a few rows take the blocked product too
            rows = torch.randn(m, k)
            torch.testing.assert_close(lin(rows), torch.nn.functional.linear(rows, lin.weight, lin.bias),
                                       rtol=1e-5, atol=1e-5)  # sums of 2048 products, other order
        rows = torch.randn(2, 17, k)  # more rows: F.linear itself
        assert torch.equal(lin(rows), torch.nn.functional.linear(rows, lin.weight, lin.bias))
