"""A small byte-level BPE tokenizer in the Molmo2 layout, for models trained from scratch here.

Ids: ``<|endoftext|> <|im_start|> <|im_end|>`` first, then bytes and merges up to ``vocab_size``,
then Molmo2's ten visual tokens at ``vocab_size ...`` in the released order (so they index the extra
embedding rows, as in the real checkpoints). bos = eos = ``<|im_end|>``, pad = ``<|endoftext|>``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from molmo2.processing.tokens import VISUAL_TOKENS

BASE_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def train_tokenizer(lines: Iterable[str], vocab_size: int, out_dir: str | Path) -> Path:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # digits one by one (as Qwen's tokenizer does): coordinates are predicted coarse to fine and
    # every number is spelled with the same ten tokens
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=0, show_progress=False,
                                  special_tokens=BASE_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(lines), trainer=trainer)
    n = tok.get_vocab_size()
    if n < vocab_size:  # a small corpus: pad so the Molmo2 tokens still land at vocab_size...
        tok.add_special_tokens([AddedToken(f"|<EXTRA_TOKENS_{i}>|", special=True, normalized=False)
                                for i in range(vocab_size - n)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in VISUAL_TOKENS])
    for k, t in enumerate(VISUAL_TOKENS):
        assert tok.token_to_id(t) == vocab_size + k, (t, tok.token_to_id(t))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<|im_end|>", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "image_token": "<|image|>", "video_token": "<|video|>", "tokenizer_class": "TokenizersBackend"}, indent=2))
    return out
