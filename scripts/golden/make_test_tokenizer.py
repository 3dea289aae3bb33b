"""Build the tiny byte-level BPE test tokenizer in tests/fixtures/tokenizer_tiny/.

Rerun (from the repository root; needs `tokenizers` and `transformers`, e.g. the project venv):

    .venv/bin/python scripts/golden/make_test_tokenizer.py

The tokenizer is trained on the fixed English corpus below, so its ids are reproducible: the script
prints every special-token id and checks the expected ones. Layout:

    0..2       <|endoftext|> <|im_start|> <|im_end|>   (trainer special tokens)
    3..1023    byte alphabet (256) + BPE merges
    1024..1033 <im_start> <im_end> <im_patch> <im_col> <low_res_im_start> <|image|> <im_low>
               <frame_start> <frame_end> <|video|>     (Molmo2 tokens, same order as the released ids
                                                         151936..151945)

bos = eos = <|im_end|>, pad = <|endoftext|> (as for the released Qwen3-based Molmo2 models).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "tokenizer_tiny"

VOCAB_SIZE = 1024
BASE_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MOLMO2_EXTRA = [
    "<im_start>",
    "<im_end>",
    "<im_patch>",
    "<im_col>",
    "<low_res_im_start>",
    "<|image|>",
    "<im_low>",
    "<frame_start>",
    "<frame_end>",
    "<|video|>",
]
EXPECTED_IDS = {t: i for i, t in enumerate(BASE_SPECIALS)} | {
    t: VOCAB_SIZE + i for i, t in enumerate(MOLMO2_EXTRA)
}

# Fixed training corpus (written for this project; no third-party text).
CORPUS = """\
The quick brown fox jumps over the lazy dog. A small dog runs across the green field while two cats
watch from the old stone wall. Point to the dogs. Point to the cats. Count the birds in the sky.
Describe this image in detail. What is happening in this video? Where is the red ball at the end?
The user asks a question and the assistant answers it with care, in short and clear sentences.
Image 1 shows a kitchen with a white table, four chairs and a bowl of fresh fruit. Image 2 shows
a busy street at night, with cars, buses, bicycles and people walking under bright lights.
A video is a sequence of frames. Each frame has a timestamp such as 0.0, 0.5, 1.0, 1.5 or 2.0
seconds. The model looks at every frame and tracks the objects as they move from left to right.
Points are written as coordinates between 0 and 1000, for example x=512 y=384, and each object gets
its own index so that it can be followed through time. Boxes have four numbers: left, top, right
and bottom. The answer should mention how many objects there are and where they are located.
In the morning the market opens early. Farmers bring apples, pears, carrots, potatoes, onions and
bread. Children play near the fountain, and an old man feeds the pigeons with crumbs from his bag.
The river flows slowly under the bridge; boats carry wood, stone and grain to the harbour town.
Mountains rise behind the village, their tops covered with snow for most of the year. In summer
the valley turns green and yellow, and the sound of cow bells can be heard from far away.
Please read the following instructions carefully before you start. First, open the box and check
that every part is there. Second, place the base on a flat surface. Third, attach the legs using
the screws provided. Finally, tighten everything and make sure the table does not wobble.
Numbers: zero one two three four five six seven eight nine ten eleven twelve twenty hundred.
Digits: 0 1 2 3 4 5 6 7 8 9 10 11 12 16 24 25 30 32 48 50 64 99 100 128 256 378 512 1024 2048.
Colours: red orange yellow green blue purple pink brown black white grey silver golden.
Shapes: circle square triangle rectangle ellipse line curve arc star polygon diamond cross.
Questions: who what when where why which how much many long often far is are was were do does did.
She said that the weather would change in the afternoon, so we packed umbrellas and warm coats.
They were waiting at the station for almost an hour before the delayed train finally arrived.
He writes code every day, reads papers at night, and sometimes plays the piano on weekends.
Scientists measure the temperature, pressure and humidity of the air several times each hour.
The library holds thousands of books about history, geography, mathematics, music and art.
<|im_start|>user
Point to the dogs.<|im_end|>
<|im_start|>assistant
There are two dogs in the picture.<|im_end|>
"""


def build(out_dir: Path) -> dict[str, int]:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=0,
        show_progress=False,
        special_tokens=BASE_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    # Fixed lines in a fixed order; the special-token strings in the corpus are just text here.
    tok.train_from_iterator(CORPUS.splitlines(keepends=True), trainer=trainer)
    if tok.get_vocab_size() != VOCAB_SIZE:
        raise SystemExit(f"trained vocab has {tok.get_vocab_size()} entries, expected {VOCAB_SIZE}")
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in MOLMO2_EXTRA])

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_end|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image|>", "video_token": "<|video|>"},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(str(out_dir))

    ids = {t: hf.convert_tokens_to_ids(t) for t in BASE_SPECIALS + MOLMO2_EXTRA}
    bad = {t: (ids[t], EXPECTED_IDS[t]) for t in ids if ids[t] != EXPECTED_IDS[t]}
    if bad:
        raise SystemExit(f"unexpected special-token ids (got, expected): {bad}")
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    ids = build(args.out)

    tj = args.out / "tokenizer.json"
    raw = Tokenizer.from_file(str(tj))
    print(f"wrote {args.out}")
    for f in sorted(args.out.iterdir()):
        print(
            f"  {f.name:24s} {f.stat().st_size:8d} bytes  sha256={hashlib.sha256(f.read_bytes()).hexdigest()[:16]}"
        )
    print(f"vocab size (with added tokens): {raw.get_vocab_size()}")
    print("special-token ids:", json.dumps(ids))
    sample = "<|im_end|><|image|><|im_start|>user\nPoint to the dogs.<|im_end|>\n<|im_start|>assistant\n"
    print("sample:", repr(sample), "->", raw.encode(sample, add_special_tokens=False).ids)


if __name__ == "__main__":
    main()
