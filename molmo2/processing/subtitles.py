"""Subtitles for video QA: read SRT / WebVTT files or a video's own text subtitle stream, and write them
the way the released model reads them.

Format (model.md §6.4, training.md §5.6): after the video tokens, the text
``"subtitle\\n" + "{start:.1f} - {end:.1f} {text}\\n"`` per line, times in seconds on the prompt's
timeline (a clip starts at 0.0, like its frame timestamps). The released chat template emits a first
message with role ``subtitle`` verbatim right after the ``<|video|>`` placeholder, so that message's
content is exactly this text. Windowing follows the training default ``subtitle_mode="frame_1"``: a
line is kept when some sampled frame lies within 1 s of it (so lines outside a clip, or between
sparse frames of a long video, are left out).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from molmo2.errors import MediaError

WINDOW_S = 1.0  # subtitle_mode="frame_1"
_TIME = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2})[,.](\d{1,3})")
_CUE = re.compile(rf"({_TIME.pattern})\s*-->\s*({_TIME.pattern})")
_TAGS = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # <i>, <c.red>, {\an8}
_TEXT_CODECS = ("subrip", "srt", "webvtt", "text", "mov_text", "ass", "ssa")


@dataclass(frozen=True)
class SubtitleLine:
    start: float  # seconds on the video's timeline
    end: float
    text: str


def _seconds(match: re.Match) -> float:
    h, m, s, ms = match.groups()
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + int(ms.ljust(3, "0")) / 1000


def _clean(text: str) -> str:
    return " ".join(_TAGS.sub("", text).split())


def parse_subtitles(text: str) -> list[SubtitleLine]:
    """The cues of an SRT or WebVTT document, in file order (tags stripped, lines of a cue joined)."""
    lines = []
    blocks = re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff"))
    for block in blocks:
        rows = block.strip().split("\n")
        for k, row in enumerate(rows):
            cue = _CUE.search(row)
            if cue is None:
                continue
            start = _seconds(_TIME.fullmatch(cue.group(1)))
            end = _seconds(_TIME.fullmatch(cue.group(6)))
            body = _clean(" ".join(rows[k + 1:]))
            if body:
                lines.append(SubtitleLine(start, max(start, end), body))
            break
    return lines


def read_subtitle_file(path: str | os.PathLike) -> list[SubtitleLine]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise MediaError(f"subtitle file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    lines = parse_subtitles(text)
    if not lines:
        raise MediaError(f"{path} has no subtitle cues ('00:00:01,000 --> 00:00:02,000' lines); "
                         "pass an SRT or WebVTT file")
    return lines


def read_embedded_subtitles(video: str | os.PathLike) -> list[SubtitleLine]:
    """The first text subtitle stream of a video file (mkv/mp4/webm), read without decoding video."""
    from molmo2.processing.video import _import_av

    av = _import_av()
    path = Path(video).expanduser()
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError) as e:
        raise MediaError(f"could not open {path} to read its subtitles ({e})") from e
    with container:
        streams = [s for s in container.streams.subtitles if s.codec_context.name in _TEXT_CODECS]
        if not streams:
            kinds = [s.codec_context.name for s in container.streams.subtitles]
            raise MediaError(f"{path} has no text subtitle stream" + (f" (only bitmap ones: {kinds})" if kinds else "")
                             + "; pass the subtitles as an .srt or .vtt file")
        stream = streams[0]
        codec, tb = stream.codec_context.name, float(stream.time_base)
        lines = []
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            raw = bytes(packet)
            if codec == "mov_text":
                raw = raw[2:2 + int.from_bytes(raw[:2], "big")]
            text = raw.decode("utf-8", errors="replace")
            if codec in ("ass", "ssa"):
                text = text.split(",", 8)[-1].replace("\\N", " ")
            text = _clean(text)
            if text:
                start = packet.pts * tb
                lines.append(SubtitleLine(start, start + (packet.duration or 0) * tb, text))
    return lines


def load_subtitles(source, video: str | os.PathLike | None = None) -> list[SubtitleLine]:
    """``source``: an .srt/.vtt path, ``"embedded"`` (the video file's own stream) or ``(start, end, text)``s."""
    if isinstance(source, str) and source == "embedded":
        if not isinstance(video, (str, os.PathLike)):
            raise MediaError("subtitles='embedded' reads the video file's subtitle stream; the video is not a file")
        return read_embedded_subtitles(video)
    if isinstance(source, (str, os.PathLike)):
        return read_subtitle_file(source)
    try:
        return [s if isinstance(s, SubtitleLine) else SubtitleLine(float(s[0]), float(s[1]), _clean(str(s[2])))
                for s in source]
    except (TypeError, ValueError, IndexError) as e:
        raise MediaError("subtitles must be an .srt/.vtt path, 'embedded', or a list of (start, end, text)") from e


def subtitle_text(lines: Sequence[SubtitleLine], frame_times: Sequence[float], time_offset: float = 0.0) -> str:
    """The ``subtitle`` message: lines within ``WINDOW_S`` of a sampled frame (``frame_times`` on the
    video's timeline), written relative to ``time_offset`` (the clip start). Empty when none is kept."""
    kept = []
    for line in sorted(lines, key=lambda s: (s.start, s.end)):
        if any(line.start - WINDOW_S <= t <= line.end + WINDOW_S for t in frame_times):
            start, end = max(0.0, line.start - time_offset), max(0.0, line.end - time_offset)
            kept.append(f"{start:.1f} - {end:.1f} {line.text}\n")
    return "subtitle\n" + "".join(kept) if kept else ""
