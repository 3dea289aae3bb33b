"""Molmo2 video datasets: VideoPoint, Cap, AskModelAnything, CapQA, SubtitleQA -> Examples per video.

=========================== ==================================================================================
adapter                     rows (fields used) -> examples
=========================== ==================================================================================
molmo2-video-point          ``allenai/Molmo2-VideoPoint`` (any of its 8 configs): ``video_id``,
                            ``video_source``, ``video_duration``, ``clip_start``, ``clip_end``, ``label``,
                            ``count``, ``points`` (one list of {x, y} per timestamp, percent of the frame),
                            ``two_fps_timestamps`` (seconds of the original video, on the 0.5 s grid). One
                            example per (video, clip) with one ``counting`` annotation per label (count 0:
                            "There are none."); media clip = (clip_start, clip_end) when the video is longer
                            than 63 s, as the official loader's ``use_clips_from_metadata``
molmo2-cap                  ``allenai/Molmo2-Cap``: ``video_id``, ``annotation_score`` (rows under
                            ``MIN_CAPTION_SCORE`` = 3 are left out, as the SFT mixture does),
                            ``video_frame_merged_caption`` (-> ``caption``), ``video_caption`` (-> a short-caption
                            conversation), ``merged_caption`` (-> a ``video_merged_caption:`` conversation)
molmo2-ask-model-anything   ``allenai/Molmo2-AskModelAnything`` (split ``HumanQA``): ``video_id``,
                            ``question``, ``answer``; one ``qa`` per row (empty answers skipped), per video
molmo2-cap-qa               ``allenai/Molmo2-VideoCapQA`` (split ``CapQA``): ``video_id``, ``Question``,
                            ``Answer``, ``NegativeAnswers``; one multiple-choice ``qa`` per row, per video
molmo2-subtitle-qa          ``allenai/Molmo2-VideoSubtitleQA`` (split ``SubtitleQA``): as CapQA plus
                            ``subtitle`` [{start, end, text}] (seconds), shared by the rows of a video
=========================== ==================================================================================

Sources: ``Molmo2VideoPoint``, ``Molmo2Captions``, ``Molmo2HumanQA``, ``Molmo2SynCaptionsQA``,
``Molmo2SynCaptionsSubtitleQA`` and the ``_find_video*`` helpers in ``olmo/data/molmo2_datasets.py``;
``format_video_points`` in ``olmo/preprocessing/data_formatter.py`` (video points use scale 100) —
allenai/molmo2 at f3cb108. The hub cards of these datasets were not available to check against; the field
names are the loader's, and a source without one fails naming it.

Video points: pixels = percent x the video's size (probed from the file); times: the official loader
moves each timestamp onto the clip's timeline and floors it to the 0.5 s grid
(``floor((t - clip_start) / 0.5) * 0.5``); we store ``clip_start`` + that, since our ``Point.t`` is on the
video's own timeline and the trainer subtracts the clip start. Points of one timestamp are sorted by (x, y).

Multiple choice: the correct answer is inserted among ``NegativeAnswers`` at a position drawn from a hash
of (video, question) — deterministic, unlike the official loader's unseeded ``random.randint``.

Subtitles: our example schema has no subtitle field yet, so SubtitleQA writes them into the question, in
the text the released model reads (``subtitle`` then ``"{start:.1f} - {end:.1f} {text}"`` per line, see
``molmo2.processing.subtitles``), followed by the question; the raw lines are kept in
``ground_truth["subtitles"]``. Unlike the released format the lines are not windowed to sampled frames.

Videos (``--media-root`` = the official ``VIDEO_DATA_HOME``, or the ``youtube-cc`` folder itself):

* VideoPoint: ``youtube-cc/youtube-cc-{exist,kw,temporal}-2fps/{id}_2fps.mp4`` (video_source youtube),
  ``MammalNet/trimmed_video-2fps/{id}_2fps.mp4``, ``generated_videos/{id}_2fps.mp4``; an id ``a/b`` is
  ``<dir>/a-2fps/b_2fps.mp4`` (the 2 fps re-encodes the dataset card asks for).
* QA sets: ``youtube-cc/youtube-cc-{exist,kw,temporal}/{id}/<the video file>``.
* Cap: as the QA sets, plus ``{youtube_temporal,intern,kw_youtube}/batch_1/{id}.<ext>`` and a flat
  ``{id}.<ext>`` under the root. The Koala and LLaVA-Video sources (found through Koala metadata and
  per-source prefixes in the official code) are not searched: put those files flat under the root.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from molmo2.data.adapters._base import (
    Bad,
    Context,
    Result,
    Row,
    RowError,
    columns,
    find_video,
    group_rows,
    peek,
    percent_to_pixels,
    where,
    with_exts,
    xy_list,
)
from molmo2.data.schema import Annotation, Example, Media
from molmo2.grounding.types import Point

MAX_CLIP_SECONDS = 63.0  # the official loader's pre-computed clips are at most 63 s
MIN_CAPTION_SCORE = 3  # vixmo3_top_level_captions_min_3
TIME_STEP = 0.5  # VideoPoint timestamps are on the 2 fps grid
YOUTUBE_SUBDIRS = ("youtube-cc-exist", "youtube-cc-kw", "youtube-cc-temporal")
VIDEO_POINT_SUBDIRS = {
    "youtube": [f"youtube-cc/{d}-2fps" for d in YOUTUBE_SUBDIRS],
    "MammalNet": ["MammalNet/trimmed_video-2fps"],
    "generated": ["generated_videos"],
}
CAP_FLAT_SUBDIRS = ("youtube_temporal/batch_1", "intern/batch_1", "kw_youtube/batch_1")
SHORT_CAPTION_PROMPT = "Caption the video with 1 or two sentences"  # first video_short_caption template
MERGED_CAPTION_PROMPT = "video_merged_caption:"  # the style has no template: the prompt is the style tag
LETTERS = "ABCDEFGHIJ"


def _youtube_dirs(root: Path) -> list[Path]:
    base = root / "youtube-cc" if (root / "youtube-cc").is_dir() else root
    return [base / d for d in YOUTUBE_SUBDIRS]


def find_point_video(root: Path, video_id: str, source: str | None) -> Path:
    subdirs = VIDEO_POINT_SUBDIRS.get(source or "") or [s for g in VIDEO_POINT_SUBDIRS.values() for s in g]
    if "/" in video_id:
        prefix, name = video_id.rsplit("/", 1)
        cands = [root / s / f"{prefix}-2fps" / f"{name}_2fps.mp4" for s in subdirs]
    else:
        cands = [root / s / f"{video_id}_2fps.mp4" for s in subdirs]
    return find_video(cands, f"{video_id!r} (video_source {source!r}, 2 fps re-encode)")


def find_qa_video(root: Path, video_id: str) -> Path:
    return find_video([d / video_id for d in _youtube_dirs(root)] + with_exts(root / video_id), repr(video_id))


def find_cap_video(root: Path, video_id: str) -> Path:
    cands = [d / video_id for d in _youtube_dirs(root)]
    for sub in CAP_FLAT_SUBDIRS:
        cands += with_exts(root / sub / video_id)
    return find_video(cands + with_exts(root / video_id), repr(video_id))


def _video_example(ctx: Context, key: str, path: Path, anns: list[Annotation],
                   clip: tuple[float, float] | None = None, ground_truth: dict | None = None) -> Example:
    return Example(key, Media("video", [ctx.media_path(path)], clip), anns, source=ctx.source,
                   ground_truth=ground_truth or {})


def _text(row: Row, key: str, num: int) -> str:
    v = row.get(key)
    if not isinstance(v, str) or not v.strip():
        raise RowError(f"row {num} has an empty {key!r}")
    return v.strip()


# ------------------------------------------------------------------------------------------- pointing


def _clip_of(row: Row) -> tuple[float, float] | None:
    duration = row.get("video_duration")
    a, b = row.get("clip_start"), row.get("clip_end")
    if duration is not None and float(duration) <= MAX_CLIP_SECONDS:
        return None
    if a is None or b is None:
        raise RowError(f"the video is {duration} s long (over {MAX_CLIP_SECONDS:.0f} s) but the row has no "
                       "clip_start/clip_end")
    return float(a), float(b)


def video_point(rows: Iterable[tuple[int, Row]], ctx: Context) -> Iterator[Result]:
    fields = ["video_id", "label", "points", "two_fps_timestamps"]
    rows = peek(rows, fields, "Molmo2-VideoPoint")

    def key(row: Row) -> Any:
        return (row.get("video_id"), row.get("video_source"), row.get("clip_start"), row.get("clip_end"))

    for (video_id, source, _, _), group in group_rows(rows, key).items():
        nums = [n for n, _ in group]
        try:
            clip = _clip_of(group[0][1])
            path = find_point_video(ctx.root("videos"), str(video_id), source)
            size = ctx.video_size(path)
            anns = [_point_annotation(row, num, clip, size) for num, row in group]
            yield _video_example(ctx, f"{ctx.source}/{nums[0]}", path, anns, clip)
        except RowError as e:
            yield Bad(where(nums, f"video {video_id}"), str(e))


def _point_annotation(row: Row, num: int, clip, size) -> Annotation:
    label = _text(row, "label", num)
    frames, times = row["points"] or [], row["two_fps_timestamps"] or []
    if len(frames) != len(times):
        raise RowError(f"row {num} has {len(frames)} point lists but {len(times)} two_fps_timestamps")
    start = clip[0] if clip else 0.0
    points = []
    for pts, t in zip(frames, times):
        t = float(t)
        if abs(t / TIME_STEP - round(t / TIME_STEP)) > 1e-6:
            raise RowError(f"row {num}: timestamp {t} is not on the 0.5 s grid of two_fps_timestamps")
        if clip and not (clip[0] - 1e-6 <= t <= clip[1] + 1e-6):
            raise RowError(f"row {num}: timestamp {t} lies outside the clip {clip}")
        rel = math.floor((t - start) / TIME_STEP + 1e-9) * TIME_STEP
        px = percent_to_pixels(xy_list(pts, f"points at {t} s"), size, f"row {num} points at {t} s")
        points += [Point(x, y, t=start + rel) for x, y in sorted(px)]
    count = row.get("count")
    if count is not None and int(count) != len(points):
        raise RowError(f"row {num} has count {count} but {len(points)} points")
    return Annotation("counting", label=label, points=points)


# ------------------------------------------------------------------------------------------- captions


def video_cap(rows: Iterable[tuple[int, Row]], ctx: Context) -> Iterator[Result]:
    rows = peek(rows, ["video_id", "video_frame_merged_caption", "video_caption", "merged_caption"], "Molmo2-Cap")
    for num, row in rows:
        try:
            score = row.get("annotation_score")
            if score is not None and score < MIN_CAPTION_SCORE:
                continue  # filtered as the SFT mixture does, not an error
            anns = []
            long_cap, short_cap, merged = (row.get(k) for k in (
                "video_frame_merged_caption", "video_caption", "merged_caption"))
            if isinstance(long_cap, str) and long_cap.strip():
                anns.append(Annotation("caption", answer=long_cap.strip()))
            for prompt, text in ((SHORT_CAPTION_PROMPT, short_cap), (MERGED_CAPTION_PROMPT, merged)):
                if isinstance(text, str) and text.strip():
                    anns.append(Annotation("caption", messages=[{"role": "user", "content": prompt},
                                                                {"role": "assistant", "content": text.strip()}]))
            if not anns:
                raise RowError("all three captions are empty")
            path = find_cap_video(ctx.root("videos"), str(row["video_id"]))
            yield _video_example(ctx, f"{ctx.source}/{num}", path, anns)
        except RowError as e:
            yield Bad(where([num], f"video {row.get('video_id')}"), str(e))


# ------------------------------------------------------------------------------------------------- QA


def ask_model_anything(rows: Iterable[tuple[int, Row]], ctx: Context) -> Iterator[Result]:
    rows = peek(rows, ["video_id", "question", "answer"], "Molmo2-AskModelAnything")
    for video_id, group in group_rows(rows, lambda r: r.get("video_id")).items():
        nums = [n for n, _ in group]
        try:
            anns = [Annotation("qa", question=_text(row, "question", n), answer=row["answer"].strip())
                    for n, row in group if isinstance(row.get("answer"), str) and row["answer"].strip()]
            if not anns:
                raise RowError("every answer is empty")
            path = find_qa_video(ctx.root("videos"), str(video_id))
            yield _video_example(ctx, f"{ctx.source}/{nums[0]}", path, anns)
        except RowError as e:
            yield Bad(where(nums, f"video {video_id}"), str(e))


def mc_options(video_id: str, question: str, answer: str, negatives: Sequence[str]) -> list[str]:
    """The answer inserted among the negatives at a position fixed by (video, question)."""
    digest = hashlib.sha256(f"{video_id}\n{question}".encode()).digest()
    pos = int.from_bytes(digest[:4], "little") % (len(negatives) + 1)
    return [*negatives[:pos], answer, *negatives[pos:]]


def _mc_annotation(row: Row, num: int, video_id: str, prefix: str = "") -> Annotation:
    q, a = _text(row, "Question", num), _text(row, "Answer", num)
    negs = [str(x).strip() for x in (row.get("NegativeAnswers") or [])]
    if not negs:
        raise RowError(f"row {num} has no NegativeAnswers")
    options = mc_options(video_id, q, a, negs)
    if len(options) > len(LETTERS) or len(set(options)) != len(options):
        raise RowError(f"row {num} has {len(options)} options ({'repeated' if len(set(options)) != len(options) else 'too many'}); "
                       f"at most {len(LETTERS)} distinct ones are supported")
    return Annotation("qa", question=prefix + q, answer=a, options=options)


def _cap_qa(rows: Iterable[tuple[int, Row]], ctx: Context, dataset: str, subtitles: bool) -> Iterator[Result]:
    fields = ["video_id", "Question", "Answer", "NegativeAnswers"] + (["subtitle"] if subtitles else [])
    rows = peek(rows, fields, dataset)
    for video_id, group in group_rows(rows, lambda r: r.get("video_id")).items():
        nums = [n for n, _ in group]
        try:
            prefix, gt = "", {}
            if subtitles:
                lines = columns(group[0][1]["subtitle"], ("start", "end", "text"), "subtitle")
                gt["subtitles"] = [[float(x["start"]), float(x["end"]), str(x["text"])] for x in lines]
                prefix = subtitle_block(gt["subtitles"])
            anns = [_mc_annotation(row, n, str(video_id), prefix) for n, row in group]
            path = find_qa_video(ctx.root("videos"), str(video_id))
            yield _video_example(ctx, f"{ctx.source}/{nums[0]}", path, anns, ground_truth=gt)
        except RowError as e:
            yield Bad(where(nums, f"video {video_id}"), str(e))


def subtitle_block(lines: Sequence[Sequence[Any]]) -> str:
    """The released subtitle text (``molmo2.processing.subtitles``), all lines, then a newline."""
    if not lines:
        return ""
    return "subtitle\n" + "".join(f"{float(s):.1f} - {float(e):.1f} {' '.join(str(t).split())}\n"
                                  for s, e, t in lines) + "\n"


def cap_qa(rows: Iterable[tuple[int, Row]], ctx: Context) -> Iterator[Result]:
    yield from _cap_qa(rows, ctx, "Molmo2-VideoCapQA", subtitles=False)


def subtitle_qa(rows: Iterable[tuple[int, Row]], ctx: Context) -> Iterator[Result]:
    yield from _cap_qa(rows, ctx, "Molmo2-VideoSubtitleQA", subtitles=True)


ADAPTERS = {
    "molmo2-video-point": video_point,
    "molmo2-cap": video_cap,
    "molmo2-ask-model-anything": ask_model_anything,
    "molmo2-cap-qa": cap_qa,
    "molmo2-subtitle-qa": subtitle_qa,
}
