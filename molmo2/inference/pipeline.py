"""``Molmo2``: the pipeline. Media + a question in, a typed answer out.

    m = Molmo2.from_pretrained("allenai/Molmo2-4B")
    m.point("dogs.jpg", "dogs").points          # [Point(x=231.0, y=448.0, ...), ...] in pixels
    m.count("dogs.jpg", "dogs").count           # 3 (the points are the evidence: .points)
    m.track("match.mp4", "the ball").tracks      # [Track(object_id=1, points=[...]), ...]
    m.ask("match.mp4", "Who scores?").text
    m.caption(["a.png", "b.png"]).text           # an image set
    m.chat([{"role": "user", "content": "What is this?"}, {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "What colour?"}], media="cat.png")

It composes the parts (STYLE habit 6): ``molmo2.inference.media`` says what the media is and decodes it,
the processor turns media and text into token ids, the model encodes the visual tokens, ``generate``
works on ids, ``molmo2.grounding.parse`` turns the answer into points / tracks / counts. Prompts are
the canonical ones of the released training templates (``PROMPTS``; training.md §5.4: demo styles such
as pointing, counting, tracking and captions carry no ``style:`` prefix).

Caching (why a second question about the same video is cheap): each media (keyed by
``molmo2.inference.media.media_key``: path + size + mtime, or a content hash, plus the video sampling
options) keeps, in a bounded LRU (``cache_size`` entries), its processed pixels, its encoded visual
features ``[num_visual_tokens, D]`` and the KV cache of the prompt prefix that ends with the last
visual token (BOS, the image/frame tokens and the timestamps between them). The chat template puts
all media before any turn, so every question about that media starts with that prefix and only its
own text is prefilled; reusing the prefix is exact because no prefix token attends past it.

Video options (per call, defaults from the pipeline, then from the model's preprocessor config):
``max_frames``, ``max_fps``, ``clip=(start, end)`` seconds, ``windows=(length, overlap)`` seconds
(point / count / track on a long video: one question per overlapping clip, answers merged with
object ids kept consistent; ``molmo2.inference.windows``), ``slowfast=K`` (full detail on every K-th
frame, coarser pooling between: fewer visual tokens for long videos; ``Answer.media.num_visual_tokens``
reports the count), ``subtitles`` (an .srt/.vtt path,
``"embedded"`` for the video file's own text subtitle stream, or ``(start, end, text)`` lines; given
to the model as the released chat template's ``subtitle`` message, windowed to the sampled frames).
Timestamps in results are on the video's own timeline (a clip's offset is added back).

Batches: ``chat_batch([ChatRequest(messages, media, options), ...])`` answers independent conversations
in one left-padded ``generate`` call (each row's visual features come from the media cache; its prompt is
prefilled whole, so the per-media prefix KV cache is not used there); greedy answers are exactly those of
``chat``, and each row is handed back (``on_answer``) as soon as it ends. ``molmo2 serve`` batches the
requests waiting in its queue with it.
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from molmo2.errors import MediaError, Molmo2Error
from molmo2.grounding import GroundingResult, Point, Track, parse
from molmo2.inference.generate import Generated, SamplingParams, generate, prefill_cache
from molmo2.inference.media import LoadedMedia, VideoOptions, load_media, media_key, media_kind
from molmo2.model import KVCache, Molmo2Model
from molmo2.processing import Molmo2Processor, PreparedMedia
from molmo2.processing.prompts import CAPTION_PROMPTS, COUNT_PROMPTS, POINT_PROMPTS, TRACK_PROMPTS
from molmo2.processing.tokens import VISUAL_TOKENS

DEFAULT_MODEL = "allenai/Molmo2-4B"

# The canonical prompt of each verb: the first template of each task in molmo2.processing.prompts,
# which training draws from too, so models trained here answer the verbs.
PROMPTS = {
    "point": POINT_PROMPTS[0].replace("{label}", "{query}"),
    "count": COUNT_PROMPTS[0].replace("{label}", "{query}"),
    "track": TRACK_PROMPTS[0].replace("{label}", "{query}"),
    "caption_image": CAPTION_PROMPTS["image"][0],
    "caption_video": CAPTION_PROMPTS["video"][0],
}
# Default answer budgets (model.md §8: the official eval defaults per task kind).
MAX_NEW_TOKENS = {
    ("ask", False): 448, ("ask", True): 448,
    ("point", False): 192, ("point", True): 2048,
    ("count", False): 192, ("count", True): 2048,
    ("track", True): 4096,
    ("caption", False): 448, ("caption", True): 2048,
}
MAX_QUERY_CHARS = 1000  # a point/count/track query names objects ("red cars"), it is not a document

Progress = Callable[[str, int, int], None]  # (stage, done, total); stages: "decode", "encode", "generate"


# ---------------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------------


@dataclass
class MediaInfo:
    """What the model saw. ``sizes``: (width, height) per image, or one for the video frames;
    ``timestamps``: seconds on the video's timeline of each sampled frame (video only)."""

    kind: str  # "image", "images", "video" or "none"
    sizes: list[tuple[int, int]]
    timestamps: list[float] | None = None
    num_visual_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "sizes": [list(s) for s in self.sizes], "timestamps": self.timestamps,
                "num_visual_tokens": self.num_visual_tokens}


@dataclass
class Answer:
    """A generated answer: its text, what ``parse`` found in it, and how it was made.

    ``timings`` (seconds): ``media`` (decode + preprocess), ``vision`` (ViT + connector), ``prefill``
    and ``generate`` (token by token), ``total``; ``cached`` is True when the media's features and
    prompt prefix came from the cache."""

    text: str
    grounding: GroundingResult
    media: MediaInfo
    finish_reason: str  # "stop" or "length"
    prompt: str  # the last user turn as sent to the model
    timings: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    num_prompt_tokens: int = 0
    num_new_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "grounding": self.grounding.to_dict(), "media": self.media.to_dict(),
                "finish_reason": self.finish_reason, "prompt": self.prompt, "timings": dict(self.timings),
                "cached": self.cached, "num_prompt_tokens": self.num_prompt_tokens,
                "num_new_tokens": self.num_new_tokens}


@dataclass
class PointAnswer(Answer):
    """``point``: ``.points`` in pixels (``t`` set for a video, ``image`` for an image set)."""

    @property
    def points(self) -> list[Point]:
        return self.grounding.points


@dataclass
class CountAnswer(Answer):
    """``count``: ``.count`` (the number stated, else the number pointed at) with ``.points`` as evidence."""

    @property
    def count(self) -> int:
        return self.grounding.count.value

    @property
    def points(self) -> list[Point]:
        return self.grounding.points


@dataclass
class TrackAnswer(Answer):
    """``track``: one ``Track`` per object, its points sorted by time."""

    @property
    def tracks(self) -> list[Track]:
        return self.grounding.tracks


# ---------------------------------------------------------------------------------------------------
# The media cache
# ---------------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    """One media, processed and encoded; ``prefix_cache`` holds ``prefix_ids`` (built on first use)."""

    kind: str
    prepared: PreparedMedia
    sizes: list[tuple[int, int]]
    timestamps: list[float] | None  # on the video's timeline
    time_offset: float
    features: torch.Tensor | None  # [num_visual_tokens, D_text]
    prefix_ids: list[int] | None = None
    prefix_cache: KVCache | None = None


@dataclass
class CacheInfo:
    hits: int
    misses: int
    size: int
    max_size: int


class _LRU:
    def __init__(self, max_size: int):
        self.max_size = max_size
        self.items: OrderedDict[Hashable, _Entry] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> _Entry | None:
        entry = self.items.get(key)
        if entry is None:
            self.misses += 1
            return None
        self.hits += 1
        self.items.move_to_end(key)
        return entry

    def put(self, key: Hashable, entry: _Entry) -> None:
        if self.max_size <= 0:
            return
        self.items[key] = entry
        self.items.move_to_end(key)
        while len(self.items) > self.max_size:
            self.items.popitem(last=False)


class TextDeltas:
    """Turns the growing list of generated ids into text pieces for ``on_text`` whose concatenation is the
    final answer (``decode(ids).strip()``).

    Each step decodes all ids so far (a few microseconds per token with the Rust tokenizer) and sends what
    is new, holding back what may still change: leading and trailing whitespace (the answer is stripped)
    and a trailing U+FFFD (a character whose UTF-8 bytes are split over tokens). ``finish`` sends the rest.
    If a later decode ever disagreed with text already sent, nothing is sent until ``finish``; the answer's
    ``.text`` is always the exact one."""

    def __init__(self, decode: Callable[[list[int]], str], emit: Callable[[str], None]):
        self.decode, self.emit, self.sent = decode, emit, ""

    def update(self, ids: list[int]) -> None:
        text = self.decode(ids).strip()
        if text.endswith("\ufffd"):
            return
        self._send(text)

    def finish(self, text: str) -> None:
        self._send(text)

    def _send(self, text: str) -> None:
        if len(text) > len(self.sent) and text.startswith(self.sent):
            self.emit(text[len(self.sent):])
            self.sent = text


@dataclass
class ChatRequest:
    """One conversation of ``Molmo2.chat_batch``: what ``chat(messages, media=media, **options)`` takes."""

    messages: Sequence[dict]
    media: Any = None
    options: dict[str, Any] = field(default_factory=dict)


def _batch_key(params: SamplingParams, index: int) -> Hashable:
    """Rows with equal keys can share one batch: greedy rows whatever their top-p / top-k / seed (unused),
    sampled rows with the same parameters and no seed (one generator serves the batch); a seeded sampled
    row only with itself. The budget (``max_new_tokens``) is per row."""
    stops = (tuple(params.stop_token_ids), tuple(params.stop_strings))
    if params.temperature == 0:
        return ("greedy", stops)
    if params.seed is not None:
        return ("seeded", index)
    return ("sampled", params.temperature, params.top_p, params.top_k, stops)


@dataclass
class _Row:
    """One conversation made ready for generation (``Molmo2._prepare``) and its state while generating."""

    result_cls: type
    kind: str | None
    turns: list[dict]
    entry: _Entry | None
    cached: bool
    ids: list[int]  # the prompt
    params: SamplingParams  # max_new_tokens: this row's budget, fitted to the context
    timings: dict[str, float]
    t_start: float
    deltas: TextDeltas | None  # on_text
    should_stop: Callable[[], bool] | None
    report: Callable[[str, int, int], None]
    capped: bool = False  # ended by its own budget (in a batch that may run longer)

    @property
    def max_new_tokens(self) -> int:
        return self.params.max_new_tokens

    def stop_check(self, out: list[int]) -> bool:
        """After each token of this row: progress, streaming, then its budget and ``should_stop``."""
        self.report("generate", len(out), self.max_new_tokens)
        if self.deltas is not None:
            self.deltas.update(out)
        if len(out) >= self.max_new_tokens:
            self.capped = True
            return True
        return self.should_stop is not None and bool(self.should_stop())


# ---------------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------------


class Molmo2:
    """Ask, point, count, track and caption on images, image sets and videos. See the module docstring.

    ``cache_size``: how many media to keep encoded (0 turns the cache off); ``max_frames`` /
    ``max_fps``: video sampling defaults (else the model's); ``progress(stage, done, total)``: called
    while decoding media, encoding frames and generating tokens (the CLI draws bars with it)."""

    def __init__(
        self,
        model: Molmo2Model,
        processor: Molmo2Processor,
        *,
        cache_size: int = 4,
        max_frames: int | None = None,
        max_fps: float | None = None,
        progress: Progress | None = None,
        vision_batch: int = 16,
    ):
        v, im = model.cfg.vision, processor.image
        if [tuple(map(float, x)) for x in (v.pixel_mean, v.pixel_std)] != \
                [tuple(map(float, x)) for x in (im.image_mean, im.image_std)]:
            raise Molmo2Error(f"the processor's pixel mean / std are {im.image_mean} / {im.image_std} but the model "
                              f"normalizes pixels with {v.pixel_mean} / {v.pixel_std}; load both from the same "
                              "model directory (Molmo2.from_pretrained)")
        self.model = model.eval()
        self.processor = processor
        self.max_frames = max_frames
        self.max_fps = max_fps
        self.progress = progress
        self.vision_batch = vision_batch
        self._cache = _LRU(cache_size)
        special = set(VISUAL_TOKENS) | {"<|im_start|>", "<|im_end|>", "<|endoftext|>"}
        self._special_strings = sorted(special)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = DEFAULT_MODEL,
        *,
        device: str | torch.device = "cpu",
        dtype: str | torch.dtype = "float32",
        cache_size: int = 4,
        max_frames: int | None = None,
        max_fps: float | None = None,
        progress: Progress | None = None,
        decode_layout: bool = True,
    ) -> Molmo2:
        """Load a model directory or Hugging Face repo id (default ``allenai/Molmo2-4B``).

        ``decode_layout`` (float32 on the CPU): store the decoder's weights column-major for the blocked
        few-row product that uses every core (``molmo2.model.linear``; ~1.7x faster decode on a quiet
        machine). Pass False when other processes keep the cores busy: torch's own single-threaded
        product then slows down less."""
        from molmo2.checkpoint import load_model, resolve_model_dir

        if isinstance(dtype, str):
            names = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                     "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
            if dtype not in names:
                raise Molmo2Error(f"unknown dtype {dtype!r}; use one of {sorted(names)}")
            dtype = names[dtype]
        model_dir = resolve_model_dir(name_or_path)
        processor = Molmo2Processor.from_pretrained(model_dir)
        load_progress = None if progress is None else (lambda done, total: progress("load", done, total))
        model = load_model(model_dir, dtype=dtype, device=device, progress=load_progress, decode_layout=decode_layout)
        return cls(model, processor, cache_size=cache_size, max_frames=max_frames, max_fps=max_fps,
                   progress=progress)

    # ------------------------------------------------------------------------------------ verbs
    def ask(self, media: Any, question: str, **options: Any) -> Answer:
        """Answer a free-form ``question`` about ``media`` (see ``chat`` for ``options``)."""
        self._check_text(question, "question")
        return self._answer(Answer, "ask", media, [{"role": "user", "content": question}], **options)

    def point(self, media: Any, query: str, **options: Any) -> PointAnswer:
        """Point to every ``query`` (e.g. ``"dogs"``): ``.points`` in pixels."""
        prompt = PROMPTS["point"].format(query=self._check_query(query))
        return self._answer(PointAnswer, "point", media, [{"role": "user", "content": prompt}], **options)

    def count(self, media: Any, query: str, **options: Any) -> CountAnswer:
        """Count the ``query`` objects: ``.count``, with the ``.points`` the model counted."""
        prompt = PROMPTS["count"].format(query=self._check_query(query))
        return self._answer(CountAnswer, "count", media, [{"role": "user", "content": prompt}], **options)

    def track(self, video: Any, query: str, **options: Any) -> TrackAnswer:
        """Track the ``query`` objects through a video: ``.tracks``, one per object."""
        if video is not None and media_kind(video) != "video":
            raise MediaError("track needs a video (a video file, a Video or (frames, timestamps)); "
                             "use point() for images")
        prompt = PROMPTS["track"].format(query=self._check_query(query))
        return self._answer(TrackAnswer, "track", video, [{"role": "user", "content": prompt}], **options)

    def caption(self, media: Any, **options: Any) -> Answer:
        """Describe ``media``."""
        kind = media_kind(media)
        prompt = PROMPTS["caption_video" if kind == "video" else "caption_image"]
        return self._answer(Answer, "caption", media, [{"role": "user", "content": prompt}], **options)

    def chat(self, messages: Sequence[dict], media: Any = None, **options: Any) -> Answer:
        """Continue a conversation about ``media``: ``messages`` alternate ``{"role": "user" |
        "assistant", "content": str}``, starting and ending with a user turn.

        Options (every verb takes them): ``max_new_tokens``, ``sampling`` (a ``SamplingParams``; greedy
        by default), ``max_frames``, ``max_fps``, ``clip=(start, end)``, ``windows=(length, overlap)``
        (point / count / track), ``slowfast=K``, ``subtitles`` (a list of
        ``(start, end, text)``, an ``.srt``/``.vtt`` path or ``"embedded"``; video only), ``on_text``
        (called with each new piece of the answer while it is generated; the pieces join to ``.text``;
        not with ``windows``), ``should_stop`` (polled after each generated token; True ends the answer
        there, finish reason "stop"). Several independent conversations at once: ``chat_batch``."""
        turns = self._check_messages(messages)
        return self._answer(Answer, "ask", media, turns, **options)

    def chat_batch(self, requests: Sequence[ChatRequest],
                   on_answer: Callable[[int, Answer | Exception], None] | None = None) -> list[Answer | Exception]:
        """Answer several independent conversations together: their prompts run as one left-padded batch
        per kind of sampling (all greedy requests together; sampled ones with the same parameters and no
        seed together; a seeded sampled request alone, so that its seed reproduces ``chat``), which costs
        little more than the longest of them on hardware with cores to spare.

        Returns one result per request, in order: the ``Answer`` that ``chat(r.messages, media=r.media,
        **r.options)`` gives (greedy: the same text; tested), or the exception that request raised (bad
        text or media, a prompt too long), which does not fail the others. ``on_answer(i, result)`` is
        called as soon as request ``i`` is final: a short answer does not wait for its batch mates.
        Options are ``chat``'s (``on_text`` streams each row) plus ``should_stop`` (polled after every
        token of that row; True ends it there); ``windows`` is refused (use ``chat``). An error of the
        batched generation itself (out of memory, a raising ``progress``) is raised; requests answered
        before it have had their ``on_answer``."""
        results: list[Any] = [None] * len(requests)

        def deliver(i: int, result: Any) -> None:
            results[i] = result
            if on_answer is not None:
                on_answer(i, result)

        groups: dict[Hashable, list[tuple[int, _Row]]] = {}  # by _batch_key, in order of first appearance
        for i, req in enumerate(requests):
            try:
                if "windows" in req.options:
                    raise Molmo2Error("windows=(length, overlap) asks several questions per video; pass it to "
                                      "chat() or the verbs, not to chat_batch()")
                row = self._prepare(Answer, "ask", req.media, self._check_messages(req.messages), **req.options)
            except Exception as e:  # this request's own error: the others go on
                deliver(i, e)
                continue
            groups.setdefault(_batch_key(row.params, i), []).append((i, row))
        for group in groups.values():
            self._generate_batch(group, deliver)
        return results

    # -------------------------------------------------------------------------------- cache API
    def cache_info(self) -> CacheInfo:
        c = self._cache
        return CacheInfo(c.hits, c.misses, len(c.items), c.max_size)

    def clear_cache(self) -> None:
        self._cache.items.clear()

    # ---------------------------------------------------------------------------------- checks
    def _check_text(self, text: Any, what: str) -> str:
        if not isinstance(text, str):
            raise Molmo2Error(f"the {what} must be a string, got {type(text).__name__}")
        if not text.strip():
            raise Molmo2Error(f"the {what} is empty; say what you want to know")
        bad = [s for s in self._special_strings if s in text]
        if bad:
            raise Molmo2Error(f"the {what} contains the model's special token(s) {bad}; remove them "
                              "(media are passed separately, not as placeholders in the text)")
        return text

    def _check_query(self, query: Any) -> str:
        query = self._check_text(query, "query")
        if len(query) > MAX_QUERY_CHARS:
            raise Molmo2Error(f"the query is {len(query)} characters long; a point/count/track query names what "
                              f"to find (e.g. 'red cars') in at most {MAX_QUERY_CHARS} characters. "
                              "Use ask() for long questions")
        return query.strip().rstrip(".")

    def _check_messages(self, messages: Sequence[dict]) -> list[dict]:
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or not messages:
            raise Molmo2Error("messages must be a non-empty list of {'role': 'user'|'assistant', 'content': str}")
        turns = []
        for k, m in enumerate(messages):
            role = m.get("role") if isinstance(m, dict) else None
            expected = "user" if k % 2 == 0 else "assistant"
            if role != expected:
                raise Molmo2Error(f"message {k} has role {role!r}, expected {expected!r}: turns alternate user / "
                                  "assistant, starting with user (pass media with media=, subtitles with subtitles=)")
            turns.append({"role": role, "content": self._check_text(m.get("content"), f"content of message {k}")})
        if turns[-1]["role"] != "user":
            raise Molmo2Error("the last message must be a user turn (the model answers it)")
        return turns

    # ------------------------------------------------------------------------------------- core
    def _report(self, stage: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(stage, done, total)

    def _video_options(self, max_frames, max_fps, clip, slowfast) -> VideoOptions:
        if max_frames is None:
            max_frames = self.max_frames if self.max_frames is not None else self.processor.video.max_frames
        if max_fps is None:
            max_fps = self.max_fps if self.max_fps is not None else self.processor.video.max_fps
        return VideoOptions(max_frames, max_fps, None if clip is None else tuple(clip), slowfast).validate()

    def _entry(self, media: Any, kind: str, options: VideoOptions | None, timings: dict) -> tuple[_Entry, bool]:
        key = media_key(media, kind, options)
        entry = self._cache.get(key)
        if entry is not None:
            return entry, True
        t0 = time.perf_counter()
        self._report("decode", 0, 1)
        # video files are resized to the crop while decoding (the processor then only patchifies)
        loaded: LoadedMedia = load_media(media, kind, options, resize_to=self.processor.image.crop_size)
        if loaded.is_video:
            video = loaded.video
            prepared = self.processor.prepare(video_frames=video.frames, timestamps=video.timestamps,
                                              slowfast=options.slowfast, frame_size=video.size)
            timestamps = [float(t) for t in video.absolute_timestamps]
            offset = float(video.time_offset)
        else:
            prepared = self.processor.prepare(images=loaded.images)
            timestamps, offset = None, 0.0
        self._report("decode", 1, 1)
        timings["media"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        features = self._encode(prepared)
        timings["vision"] = time.perf_counter() - t0
        entry = _Entry(kind, prepared, list(prepared.media_sizes), timestamps, offset, features)
        self._cache.put(key, entry)
        return entry, False

    @torch.inference_mode()
    def _encode(self, prepared: PreparedMedia) -> torch.Tensor | None:
        """Visual features ``[num_visual_tokens, D]``: the ViT in batches of crops (for progress and
        memory), then the connector over all of them (its pooling indices span crops)."""
        if prepared.pixel_values is None:
            return None
        model, device = self.model, self.model.device
        pixels_NPC = prepared.pixel_values
        N = pixels_NPC.shape[0]
        parts = []
        self._report("encode", 0, N)
        for start in range(0, N, self.vision_batch):
            parts.append(model.vision_features(pixels_NPC[start:start + self.vision_batch].to(device)))
            self._report("encode", min(N, start + self.vision_batch), N)
        feats_NPC = torch.cat(parts)
        return model.connector(feats_NPC.reshape(-1, feats_NPC.shape[-1]), prepared.pooling.to(device))

    @staticmethod
    def _messages(entry: _Entry | None, turns: list[dict], subtitle_text: str | None) -> list[dict]:
        items = []
        if entry is not None and entry.kind == "video":
            items = [{"type": "video"}]
        elif entry is not None:
            # the template counts image items; their position in the turn does not matter
            items = [{"type": "image"}] * len(entry.sizes)
        first = turns[0]
        messages = [{"role": "user", "content": items + [{"type": "text", "text": first["content"]}]}]
        messages += [{"role": m["role"], "content": [{"type": "text", "text": m["content"]}]} for m in turns[1:]]
        if subtitle_text:
            messages.insert(0, {"role": "subtitle", "content": subtitle_text})
        return messages

    def _answer(
        self,
        result_cls: type,
        verb: str,
        media: Any,
        turns: list[dict],
        *,
        windows: tuple[float, float] | None = None,
        **options: Any,
    ) -> Answer:
        if windows is not None:
            if options.get("on_text") is not None:
                raise Molmo2Error("on_text streams one answer; with windows the answer is merged from several, "
                                  "so it cannot be streamed (leave out on_text or windows)")
            options.pop("on_text", None)
            return self._windowed(result_cls, verb, media, turns, windows, **options)
        row = self._prepare(result_cls, verb, media, turns, **options)
        return self._finish(row, self._generate_row(row))

    def _generate_row(self, row: _Row) -> Generated:
        """One row on its own, reusing (or building) its media's prompt-prefix KV cache."""
        self._report("generate", 0, row.max_new_tokens)
        if row.entry is None or row.entry.features is None:
            tok = self.processor.tokenizer
            out = generate(self.model, torch.tensor([row.ids]), params=row.params, eos_token_id=tok.eos_id,
                           pad_token_id=tok.pad_id, stop_check=row.stop_check)[0]
        else:
            out = self._generate_with_prefix(row.entry, row.ids, row.params, row.stop_check, row.cached, row.timings)
        self._report("generate", row.max_new_tokens, row.max_new_tokens)
        return out

    def _generate_batch(self, group: list[tuple[int, _Row]], deliver: Callable[[int, Any], None]) -> None:
        """Rows of one sampling kind as one left-padded batch (visual features concatenated in row order,
        as the model adds them onto the ``<im_patch>`` tokens of the batch in order); each row is delivered
        as soon as it ends. The batch runs to its longest budget; rows stop at their own."""
        if len(group) == 1:
            i, row = group[0]
            deliver(i, self._finish(row, self._generate_row(row)))
            return
        tok = self.processor.tokenizer
        T = max(len(row.ids) for _, row in group)
        ids_BT = torch.full((len(group), T), tok.pad_id, dtype=torch.long)
        mask_BT = torch.zeros_like(ids_BT)
        for b, (_, row) in enumerate(group):
            ids_BT[b, T - len(row.ids):] = torch.tensor(row.ids)
            mask_BT[b, T - len(row.ids):] = 1
        features = [row.entry.features for _, row in group if row.entry is not None and row.entry.features is not None]
        params = dataclasses.replace(group[0][1].params, max_new_tokens=max(row.max_new_tokens for _, row in group))

        def row_done(b: int, out: Generated) -> None:
            i, row = group[b]
            try:
                answer: Any = self._finish(row, out)
            except Exception as e:  # (a bug in one row's answer must not take its batch mates with it)
                answer = e
            deliver(i, answer)

        self._report("generate", 0, params.max_new_tokens)
        generate(self.model, ids_BT, attention_mask=mask_BT, params=params, eos_token_id=tok.eos_id,
                 pad_token_id=tok.pad_id, stop_check=[row.stop_check for _, row in group],
                 visual_features=torch.cat(features) if features else None, on_row_done=row_done)
        self._report("generate", params.max_new_tokens, params.max_new_tokens)

    def _prepare(
        self,
        result_cls: type,
        verb: str,
        media: Any,
        turns: list[dict],
        *,
        max_new_tokens: int | None = None,
        sampling: SamplingParams | None = None,
        max_frames: int | None = None,
        max_fps: float | None = None,
        clip: tuple[float, float] | None = None,
        subtitles: Any = None,
        slowfast: int | None = None,
        on_text: Callable[[str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> _Row:
        """Everything before generation: options checked, the media decoded and encoded (or from the cache),
        the prompt rendered and tokenized, the answer budget fitted to the context."""
        t_start = time.perf_counter()
        timings: dict[str, float] = {"media": 0.0, "vision": 0.0}
        kind = None if media is None else media_kind(media)
        is_video = kind == "video"
        if (max_frames is not None or clip is not None or slowfast is not None) and kind is not None \
                and not is_video:
            raise MediaError("max_frames, clip and slowfast apply to videos; this media is not one")
        if subtitles is not None and not is_video:
            raise MediaError("subtitles go with a video; this media is not one")
        options = self._video_options(max_frames, max_fps, clip, slowfast) if is_video else None
        if max_new_tokens is None:
            max_new_tokens = sampling.max_new_tokens if sampling is not None else MAX_NEW_TOKENS.get(
                (verb, is_video), 448)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise Molmo2Error(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        params = dataclasses.replace(sampling or SamplingParams(), max_new_tokens=max_new_tokens)
        try:
            params.validate()
        except ValueError as e:
            raise Molmo2Error(str(e)) from e

        entry, cached = (None, False) if kind is None else self._entry(media, kind, options, timings)
        subtitle_text = None
        if subtitles is not None:
            from molmo2.processing.subtitles import load_subtitles
            from molmo2.processing.subtitles import subtitle_text as window

            subtitle_text = window(load_subtitles(subtitles, media), entry.timestamps, entry.time_offset)
        prompt = self.processor.render(self._messages(entry, turns, subtitle_text))
        enc = self.processor.encode(prompt, prepared=entry.prepared if entry is not None else _NO_MEDIA)
        ids = enc.input_ids.tolist()
        limit = self.model.cfg.text.max_position_embeddings
        if len(ids) >= limit:
            raise Molmo2Error(
                f"the prompt is {len(ids)} tokens, as long as the model's context of {limit} tokens or longer; "
                "shorten the question" + (", sample fewer frames (max_frames) or a shorter clip" if is_video else ""))
        if len(ids) + max_new_tokens > limit:  # an upper bound: generate at most what fits the context
            max_new_tokens = limit - len(ids)
            params = dataclasses.replace(params, max_new_tokens=max_new_tokens)
        return _Row(result_cls, kind, turns, entry, cached, ids, params, timings, t_start,
                    None if on_text is None else TextDeltas(self.processor.decode, on_text), should_stop, self._report)

    def _finish(self, row: _Row, out: Generated) -> Answer:
        """The answer of a generated row: its text (the last streamed piece sent), grounding and timings."""
        text = self.processor.decode(out.token_ids).strip()
        if row.deltas is not None:
            row.deltas.finish(text)
        timings = dict(row.timings, prefill=out.stats["prefill_s"], generate=out.stats["decode_s"])
        timings["total"] = time.perf_counter() - row.t_start
        entry = row.entry
        info = MediaInfo(row.kind or "none", [] if entry is None else entry.sizes,
                         None if entry is None else entry.timestamps,
                         0 if entry is None else entry.prepared.num_visual_tokens)
        return row.result_cls(text=text, grounding=self._parse(text, entry), media=info,
                              finish_reason="length" if row.capped else out.finish_reason,
                              prompt=row.turns[-1]["content"], timings=timings,
                              cached=row.cached, num_prompt_tokens=len(row.ids), num_new_tokens=len(out.token_ids))

    def _windowed(self, result_cls: type, verb: str, media: Any, turns: list[dict], windows, *, clip=None,
                  **options: Any) -> Answer:
        """Ask about overlapping clips of a long video and merge the points / tracks (``windows.py``)."""
        from molmo2.inference.windows import merge_windows, window_clips
        from molmo2.processing.video import Video, probe_video

        if verb not in ("point", "count", "track"):
            raise Molmo2Error("windows=(length, overlap) merges points, counts and tracks; for questions and "
                              "captions use clip=(start, end) or more frames (max_frames)")
        if media is None or media_kind(media) != "video":
            raise MediaError("windows=(length, overlap) splits a video; this media is not one")
        if clip is not None:
            raise MediaError("pass windows or clip, not both")
        try:
            length, overlap = (float(x) for x in windows)
        except (TypeError, ValueError) as e:
            raise MediaError(f"windows must be (length, overlap) in seconds, got {windows!r}") from e
        if isinstance(media, Video):
            duration = float(media.timestamps[-1])
        elif isinstance(media, tuple):
            duration = float(media[1][-1])
        else:
            duration = probe_video(media, upright=False).duration
        clips = window_clips(duration, length, overlap)
        parts = [self._answer(result_cls, verb, media, turns, clip=c, **options) for c in clips]
        grounding = merge_windows(clips, [a.grounding for a in parts])
        timings: dict[str, float] = {}
        for a in parts:
            for k, v in a.timings.items():
                timings[k] = timings.get(k, 0.0) + v
        info = MediaInfo("video", parts[0].media.sizes, [t for a in parts for t in a.media.timestamps or []],
                         sum(a.media.num_visual_tokens for a in parts))
        return result_cls(text=grounding.text, grounding=grounding, media=info,
                          finish_reason="length" if any(a.finish_reason == "length" for a in parts) else "stop",
                          prompt=turns[-1]["content"], timings=timings, cached=all(a.cached for a in parts),
                          num_prompt_tokens=sum(a.num_prompt_tokens for a in parts),
                          num_new_tokens=sum(a.num_new_tokens for a in parts))

    def _generate_with_prefix(self, entry: _Entry, ids: list[int], params: SamplingParams, stop_check, cached: bool,
                              timings: dict):
        """Generate reusing (or first building) the KV cache of the media prefix of ``ids``."""
        visual_ids = set(self.model.cfg.visual_token_ids)
        P = max(i for i, t in enumerate(ids) if t in visual_ids) + 1  # the prefix ends at the last visual token
        needed = len(ids) + params.max_new_tokens
        tok = self.processor.tokenizer
        ids_1T = torch.tensor([ids], dtype=torch.long)
        if self._cache.max_size <= 0:  # no cache: one plain prefill
            return generate(self.model, ids_1T, params=params, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id,
                            stop_check=stop_check, visual_features=entry.features)[0]
        t0 = time.perf_counter()
        if entry.prefix_cache is None or entry.prefix_ids != ids[:P]:
            entry.prefix_ids = ids[:P]
            entry.prefix_cache = prefill_cache(self.model, ids_1T[:, :P], entry.features, max_len=needed)
        elif entry.prefix_cache.max_len < needed:
            entry.prefix_cache = self._grow(entry.prefix_cache, P, needed)
        t_prefix = time.perf_counter() - t0
        cache = entry.prefix_cache
        cache.length = P
        try:
            if P == len(ids):  # nothing after the media (cannot happen with the chat template)
                raise Molmo2Error("the prompt has no text after the media")
            out = generate(self.model, ids_1T, params=params, eos_token_id=tok.eos_id, pad_token_id=tok.pad_id,
                           stop_check=stop_check, cache=cache)[0]
        finally:
            cache.length = P  # the prefix stays valid for the next question
        out.stats["prefill_s"] += t_prefix
        return out

    def _grow(self, cache: KVCache, length: int, max_len: int) -> KVCache:
        """A larger cache holding the first ``length`` positions of ``cache``."""
        bigger = KVCache(self.model.cfg.text, cache.k.shape[1], max_len, cache.k.dtype, cache.k.device)
        bigger.k[:, :, :, :length] = cache.k[:, :, :, :length]
        bigger.v[:, :, :, :length] = cache.v[:, :, :, :length]
        bigger.length = length
        return bigger

    def _parse(self, text: str, entry: _Entry | None) -> GroundingResult:
        if entry is None:
            return GroundingResult(text=text, sizes=[])
        if entry.kind == "video":
            result = parse(text, entry.sizes[0], video=True)
            if entry.time_offset:  # clip timestamps start at 0: put them back on the video's timeline
                result.shift_times(entry.time_offset)
            return result
        return parse(text, entry.sizes if entry.kind == "images" else entry.sizes[0], video=False)


_NO_MEDIA = PreparedMedia(pixel_values=None, pooling=None)
