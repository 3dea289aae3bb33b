"""Text side of the processor: the tokenizer, the chat template, and the visual token layout.

Layout (model.md 6.5), with the released flags:

* image: ``<low_res_im_start> (<im_patch>*w)*h <im_end>`` for the global crop, then
  ``<im_start> (<im_patch>*W <im_col>)*H <im_end>`` for the high-res crops;
* video frame k at time t: ``("" if k == 0 else " ") + f"{t:.1f} " + <im_start> <im_patch>*81 <im_end>``
  (``<frame_start>``/``<frame_end>`` when ``use_frame_special_tokens``).

Prompts are tokenized as the reference does, as one string with the placeholders ``<|image|>`` and
``<|video|>`` expanded, except that runs of visual tokens are emitted as ids directly instead of being
written out and re-tokenized (the tokenizer splits at special tokens, so the ids are identical).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from molmo2.errors import CheckpointError

IMAGE_PLACEHOLDER = "<|image|>"
VIDEO_PLACEHOLDER = "<|video|>"
VISUAL_TOKENS = (
    "<im_start>", "<im_end>", "<im_patch>", "<im_col>", "<low_res_im_start>", "<|image|>", "<im_low>",
    "<frame_start>", "<frame_end>", "<|video|>",
)


@dataclass
class LayoutFlags:
    """``processor_config.json`` switches; defaults are the released models' values."""

    image_use_col_tokens: bool = True
    use_single_crop_col_tokens: bool | None = False
    use_single_crop_start_token: bool = True
    video_use_col_tokens: bool = False
    use_frame_special_tokens: bool = False

    @classmethod
    def from_dict(cls, d: dict) -> LayoutFlags:
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)


class Tokenizer:
    """A ``tokenizers.Tokenizer`` plus the ids Molmo2 needs. BOS is the tokenizer's bos token, else its
    EOS (``<|im_end|>`` for Qwen3), as the released processor does."""

    def __init__(self, tokenizer_json: Path, tokenizer_config: dict | None = None):
        from tokenizers import Tokenizer as HFTokenizer

        self.tok = HFTokenizer.from_file(str(tokenizer_json))
        tc = tokenizer_config or {}
        missing = [t for t in VISUAL_TOKENS if self.tok.token_to_id(t) is None]
        if missing:
            raise CheckpointError(
                f"{tokenizer_json} lacks Molmo2's special tokens {missing}; use the tokenizer shipped with "
                "the Molmo2 checkpoint"
            )
        self.ids = {t: self.tok.token_to_id(t) for t in VISUAL_TOKENS}

        def special(name: str, fallback: str | None) -> str | None:
            value = tc.get(name, fallback)
            return value.get("content") if isinstance(value, dict) else value

        eos = special("eos_token", "<|im_end|>")
        bos = special("bos_token", None) or eos
        self.eos_token, self.bos_token = eos, bos
        self.eos_id = self.tok.token_to_id(eos)
        self.bos_id = self.tok.token_to_id(bos)
        pad = special("pad_token", "<|endoftext|>")
        self.pad_id = self.tok.token_to_id(pad) if pad else None
        if self.pad_id is None:
            self.pad_id = self.eos_id
        self.special_ids = {self.tok.token_to_id(t.content) for t in self.tok.get_added_tokens_decoder().values()
                            if t.special}

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids if text else []

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.tok.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def __len__(self) -> int:
        return self.tok.get_vocab_size(with_added_tokens=True)


def image_token_ids(grid: tuple[int, int, int, int], ids: dict[str, int], flags: LayoutFlags) -> list[int]:
    low_h, low_w, high_h, high_w = grid
    patch, col = ids["<im_patch>"], ids["<im_col>"]
    low_col = flags.image_use_col_tokens if flags.use_single_crop_col_tokens is None else flags.use_single_crop_col_tokens
    low_row = [patch] * low_w + ([col] if low_col else [])
    high_row = [patch] * high_w + ([col] if flags.image_use_col_tokens else [])
    start = ids["<low_res_im_start>"] if flags.use_single_crop_start_token else ids["<im_start>"]
    return ([start] + low_row * low_h + [ids["<im_end>"]]
            + [ids["<im_start>"]] + high_row * high_h + [ids["<im_end>"]])


def video_frame_ids(rows: int, cols: int, ids: dict[str, int], flags: LayoutFlags) -> list[int]:
    start = ids["<frame_start>"] if flags.use_frame_special_tokens else ids["<im_start>"]
    end = ids["<frame_end>"] if flags.use_frame_special_tokens else ids["<im_end>"]
    row = [ids["<im_patch>"]] * cols + ([ids["<im_col>"]] if flags.video_use_col_tokens else [])
    return [start] + row * rows + [end]


def build_input_ids(
    tokenizer: Tokenizer,
    prompt: str,
    image_blocks: list[list[int]],
    video_frames: list[tuple[str, list[int]]] | None,
) -> list[int]:
    """Tokenize ``prompt``, expanding each ``<|image|>`` into the next image's id block and the
    ``<|video|>`` into ``[(timestamp text, frame ids), ...]``, then prepend BOS if absent. Text between
    visual runs is merged before tokenizing, exactly as if the expansion had been written out."""
    n_img = prompt.count(IMAGE_PLACEHOLDER)
    n_vid = prompt.count(VIDEO_PLACEHOLDER)
    if n_img != len(image_blocks):
        raise ValueError(f"the prompt has {n_img} {IMAGE_PLACEHOLDER} placeholders but {len(image_blocks)} images were given")
    if n_vid != (1 if video_frames is not None else 0):
        raise ValueError(f"the prompt has {n_vid} {VIDEO_PLACEHOLDER} placeholders; exactly one is needed per video "
                         "(at most one video per prompt)")
    pieces: list[str | list[int]] = []  # text or id runs
    images = iter(image_blocks)
    for k, chunk in enumerate(prompt.split(IMAGE_PLACEHOLDER)):
        if k:
            pieces.append(next(images))
        vparts = chunk.split(VIDEO_PLACEHOLDER)
        for j, part in enumerate(vparts):
            if j:
                for text, frame in video_frames:
                    pieces += [text, frame]
            pieces.append(part)
    ids: list[int] = []
    text = ""
    for piece in pieces:
        if isinstance(piece, str):
            text += piece
        else:
            ids += tokenizer.encode(text) + piece
            text = ""
    ids += tokenizer.encode(text)
    if not ids or ids[0] != tokenizer.bos_id:
        ids = [tokenizer.bos_id] + ids
    return ids


@lru_cache(maxsize=8)
def _compile_template(source: str):
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    return env.from_string(source)


def default_chat_template() -> str:
    return resources.files("molmo2.processing").joinpath("chat_template.jinja").read_text()


def find_chat_template(model_dir: Path) -> str | None:
    """The template shipped in a model directory, in the places the ecosystem puts it."""
    if (model_dir / "chat_template.jinja").is_file():
        return (model_dir / "chat_template.jinja").read_text()
    for fname in ("chat_template.json", "processor_config.json", "tokenizer_config.json"):
        path = model_dir / fname
        if path.is_file():
            template = json.loads(path.read_text()).get("chat_template")
            if isinstance(template, str):
                return template
    return None


def render_chat(template: str, messages: list[dict], add_generation_prompt: bool = True, **extra) -> str:
    """Render messages with a Jinja chat template, with Hugging Face's Jinja settings."""
    from jinja2.exceptions import TemplateError

    try:
        return _compile_template(template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                  **extra)
    except TemplateError as e:
        raise ValueError(f"could not render the chat: {e}") from e


def extend_base_tokenizer(base_tokenizer_json: str | Path, pad_to: int):
    """A Molmo2 tokenizer from a base LLM tokenizer: pad with ``|<EXTRA_TOKENS_i>|`` up to ``pad_to``
    (the LLM's vocab_size), then append Molmo2's tokens so they get ids ``pad_to, pad_to + 1, ...`` in
    the released order. Returns a ``tokenizers.Tokenizer``."""
    from tokenizers import AddedToken
    from tokenizers import Tokenizer as HFTokenizer

    tok = HFTokenizer.from_file(str(base_tokenizer_json))
    n = tok.get_vocab_size(with_added_tokens=True)
    if n > pad_to:
        raise ValueError(f"the base tokenizer has {n} tokens, more than pad_to={pad_to}")
    tok.add_special_tokens([AddedToken(f"|<EXTRA_TOKENS_{i}>|", special=True, normalized=False)
                            for i in range(pad_to - n)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in VISUAL_TOKENS])
    for k, t in enumerate(VISUAL_TOKENS):
        assert tok.token_to_id(t) == pad_to + k, (t, tok.token_to_id(t))
    return tok
