"""Answer text -> typed points, tracks and counts (the inverse of ``format``; model.md §7).

``parse(text, sizes)`` reads every grounding tag in a generated answer:

- html-v2 (what Molmo2 emits): ``<points coords="1 1 231 448 2 502 447">dogs</points>``,
  ``<points alt="red car" coords="...">the car</points>``, ``<tracks coords="0.0 1 259 340;0.5 ...">``.
  Coordinates are integers 0..1000 normalized by the media size: ``x_px = X / 1000 * W``. Groups are
  separated by ``;`` (html-v2) or a tab (html-v1); ``:`` and ``,`` are also accepted, like the official
  regex. Each group is ``key id X Y id X Y ...``; the key is the image (``1`` for a single image, the
  1-based index in a set) or the video timestamp in seconds (``2.5``).
- Molmo1 legacy formats, on a 0..100 scale: ``<point x="10.5" y="20" alt="...">label</point>``,
  ``<points x1="..." y1="..." x2="..." y2="..." alt="...">label</points>`` and, only when an answer has
  no tag at all, ``Click(10.5, 20.0)``.
- the stated count: ``Counting the ... shows a total of N.``, ``There are N ...``, ``There are none.``
  (0) or an answer that is just a number.

Telling video keys from image keys: with a list of sizes every key is a 1-based image index; with one
``(w, h)`` a key containing a ``.`` is a timestamp (training always writes ``str(round(t, 1))``, which has
one) and an integer key is an image index. ``video=True/False`` overrides the guess.

Model output is untrusted, often cut off by the token limit, and sometimes malformed, so parsing
**never raises on the text**: whatever parses is kept and everything else is described in
``GroundingResult.errors`` (including points outside the image, which are dropped, as in the official
parser). When the output stops inside ``coords="...`` the last number may be incomplete (``10`` of
``1000``), so a point ending exactly at the cut is dropped and reported. Only bad ``sizes`` (the
caller's input) raise ``ValueError``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from molmo2.grounding.types import Count, GroundingResult, Point, Size, Track, normalize_sizes

_TAG_OPEN = re.compile(r"<(points|tracks|point)(?=[\s/>]|$)")
_ATTR = re.compile(r'\s*([A-Za-z_][\w\-]*)\s*=\s*"([^"]*)(")?')
_TAG_END = re.compile(r"\s*(/?)>")
_TAG_CUT = re.compile(r"\s*(?:[A-Za-z_][\w\-]*\s*(?:=\s*)?)?/?")  # the text ends inside the tag
_GROUP_SEP = re.compile(r"[;\t:,]")
_KEY = re.compile(r"\d{1,7}(?:\.\d{0,6})?")
_ID = re.compile(r"\d{1,6}")
_XY = re.compile(r"\d{3,4}")  # official: ([0-9]{3,4}); 1000 is the largest valid value
_LEGACY_XN = re.compile(r"x(\d{1,4})")
_CLICK = re.compile(r"Click\(\s*(\d{1,6}(?:\.\d{1,6})?)\s*,\s*(\d{1,6}(?:\.\d{1,6})?)\s*\)")
_TOTAL = re.compile(r"shows a total of (\d{1,9})\b")
_NONE = re.compile(r"\bThere are none\b", re.IGNORECASE)
_THERE_ARE = re.compile(r"\bThere (?:are|is) (\d{1,9})\b", re.IGNORECASE)
_BARE = re.compile(r"\s*(\d{1,9})\s*\.?\s*")


@dataclass(frozen=True, slots=True)
class _Where:
    """Which image/frame a group key names: t (video) or image (0-based), and its size."""

    t: float | None
    image: int | None
    size: Size


class _Parser:
    def __init__(self, text: str, sizes: list[Size], is_set: bool, video: bool | None):
        self.text = text
        self.sizes = sizes
        self.is_set = is_set
        self.video = video
        self.points: list[Point] = []
        self.tracks: list[Track] = []
        self.errors: list[str] = []
        self.num_pointed = 0

    # -- keys and coordinates ------------------------------------------------------------------------

    def locate(self, key: str) -> _Where | str:
        """A group key -> where its points are, or an error message."""
        if not _KEY.fullmatch(key):
            return f"bad image/frame key {key!r}"
        value = float(key)
        as_time = self.video if self.video is not None else ("." in key and not self.is_set)
        if as_time and not self.is_set:
            return _Where(t=value, image=None, size=self.sizes[0])
        if not value.is_integer() or value < 1:
            return f"image key {key!r} is not a 1-based image index"
        image = int(value) - 1
        if not self.is_set:
            return _Where(t=None, image=image, size=self.sizes[0])
        if image >= len(self.sizes):
            return f"image key {key} but only {len(self.sizes)} image sizes were given"
        return _Where(t=None, image=image, size=self.sizes[image])

    def parse_coords(self, coords: str, cut: bool, where: str) -> list[tuple[_Where, int, int, int]]:
        """``coords="..."`` -> [(where, id, X, Y)] with X, Y in 0..1000 (out-of-range ones dropped)."""
        out: list[tuple[_Where, int, int, int]] = []
        chunks = _GROUP_SEP.split(coords)
        for chunk_index, chunk in enumerate(chunks):
            tokens = chunk.split()
            at_cut = cut and chunk_index == len(chunks) - 1
            if at_cut and tokens and coords[-1:].isdigit():
                tokens = tokens[:-1]  # the number the output stopped in may be incomplete
            if not tokens:
                if not at_cut:
                    self.errors.append(f"{where}: empty group between separators")
                continue
            located = self.locate(tokens[0])
            if isinstance(located, str):
                self.errors.append(f"{where}: {located}; dropped group {chunk.strip()!r}")
                continue
            if len(tokens) == 1 and not at_cut:
                self.errors.append(f"{where}: group {chunk.strip()!r} has no points")
            skipped: list[str] = []
            i = 1
            while i < len(tokens):
                ident, x, y = (tokens[i : i + 3] + ["", ""])[:3]
                if _ID.fullmatch(ident) and _XY.fullmatch(x) and _XY.fullmatch(y):
                    xi, yi = int(x), int(y)
                    if xi > 1000 or yi > 1000:
                        self.errors.append(
                            f"{where}: point {ident} ({x}, {y}) is outside the image (max 1000); dropped"
                        )
                    else:
                        out.append((located, int(ident), xi, yi))
                    i += 3
                else:  # resynchronize one token later, like the official regex scan
                    skipped.append(tokens[i])
                    i += 1
            if skipped and at_cut:
                self.errors.append(f"{where}: output cut off; dropped incomplete point {' '.join(skipped)!r}")
            elif skipped:
                self.errors.append(f"{where}: malformed coordinates, skipped {' '.join(skipped)!r}")
            elif at_cut and len(tokens) < len(chunk.split()):
                self.errors.append(f"{where}: output cut off; dropped the last, possibly incomplete number")
        return out

    # -- tags ----------------------------------------------------------------------------------------

    def scan(self) -> int:
        """Read every tag; returns how many tags were found."""
        text, pos, num_tags = self.text, 0, 0
        while (m := _TAG_OPEN.search(text, pos)) is not None:
            num_tags += 1
            name = m.group(1)
            where = f"<{name}> #{num_tags} at char {m.start()}"
            attrs, cut_attr, end, pos = self.scan_attrs(m.end(), where)
            label: str | None = None
            if end == ">":
                close = re.compile(rf"</{name}\s*>").search(text, pos)
                nxt = _TAG_OPEN.search(text, pos)
                if close is not None and (nxt is None or close.start() < nxt.start()):
                    label, pos = text[pos : close.start()].strip(), close.end()
                else:
                    rest = text[pos : nxt.start() if nxt else len(text)]
                    label = re.sub(r"<[^<>]*$", "", rest).strip() or None  # drop a cut-off "</poi"
                    self.errors.append(f"{where}: no closing </{name}>; label may be incomplete")
            elif end is None:
                self.errors.append(f"{where}: output cut off inside the tag")
            self.read_tag(name, attrs, cut_attr, end is None, label, where)
        return num_tags

    def scan_attrs(self, pos: int, where: str) -> tuple[dict[str, str], str | None, str | None, int]:
        """Attributes after ``<name`` -> (attrs, name of an attribute cut off, '>'/'/>'/None, new pos)."""
        attrs: dict[str, str] = {}
        while True:
            am = _ATTR.match(self.text, pos)
            if am is not None:
                attrs.setdefault(am.group(1), am.group(2))
                pos = am.end()
                if am.group(3) is None:  # no closing quote: the value runs to the end of the text
                    return attrs, am.group(1), None, pos
                continue
            em = _TAG_END.match(self.text, pos)
            if em is not None:
                return attrs, None, em.group(1) + ">", em.end()
            if _TAG_CUT.fullmatch(self.text, pos):
                return attrs, None, None, len(self.text)
            self.errors.append(f"{where}: malformed tag near {self.text[pos : pos + 20]!r}")
            return attrs, None, "malformed", pos

    def read_tag(
        self, name: str, attrs: dict[str, str], cut_attr: str | None, cut: bool, label: str | None, where: str
    ) -> None:
        alt = attrs.get("alt")
        if "coords" in attrs and name != "point":
            found = self.parse_coords(attrs["coords"], cut_attr == "coords", where)
            if name == "points":
                self.add_points(found, label, alt, where)
            else:
                self.add_tracks(found, label, alt, where)
        elif name == "point" and "x" in attrs:
            if cut_attr not in ("x", "y") and not (cut and "y" not in attrs):  # cut values may be incomplete
                self.add_legacy(where, [(None, attrs["x"], attrs.get("y", ""))], label, alt)
        elif name == "points" and "x1" in attrs:
            numbered = sorted((int(m.group(1)), m.group(1)) for a in attrs if (m := _LEGACY_XN.fullmatch(a)))
            xys = [
                (i, attrs[f"x{n}"], attrs.get(f"y{n}", ""))
                for i, n in numbered
                if cut_attr not in (f"x{n}", f"y{n}") and not (cut and f"y{n}" not in attrs)
            ]
            self.add_legacy(where, xys, label, alt)
        elif not cut:
            self.errors.append(f'{where}: no coordinates (expected coords="...")')

    def add_points(self, found: list[tuple[_Where, int, int, int]], label, alt, where: str) -> None:
        seen: set[int] = set()
        for w, ident, x, y in found:
            if ident in seen:
                self.errors.append(f"{where}: point id {ident} appears more than once")
            seen.add(ident)
            width, height = w.size
            self.points.append(Point(x / 1000 * width, y / 1000 * height, w.t, w.image, ident, label, alt))
        self.num_pointed += len(seen)

    def add_tracks(self, found: list[tuple[_Where, int, int, int]], label, alt, where: str) -> None:
        by_id: dict[int, dict[tuple[float | None, int | None], Point]] = {}
        for w, ident, x, y in found:
            frames = by_id.setdefault(ident, {})
            if (w.t, w.image) in frames:  # official: objects appear once per frame; keep the first
                at = f"t={w.t}" if w.t is not None else f"image {w.image}"
                self.errors.append(f"{where}: object {ident} appears twice at {at}; kept the first")
                continue
            width, height = w.size
            frames[(w.t, w.image)] = Point(
                x / 1000 * width, y / 1000 * height, w.t, w.image, ident, label, alt
            )
        for ident in sorted(by_id):
            pts = sorted(by_id[ident].values(), key=lambda p: (p.t or 0.0, p.image or 0))
            self.tracks.append(Track(ident, label, pts, alt))
        self.num_pointed += len(by_id)

    def add_legacy(self, where: str, xys: Sequence[tuple[int | None, str, str]], label, alt) -> None:
        """Molmo1 points on a 0..100 scale, on the first (or only) image."""
        width, height = self.sizes[0]
        for ident, xs, ys in xys:
            try:
                x, y = float(xs), float(ys)
            except ValueError:
                self.errors.append(f"{where}: bad legacy coordinates ({xs!r}, {ys!r}); dropped")
                continue
            if not (0 <= x <= 100 and 0 <= y <= 100):
                self.errors.append(f"{where}: legacy point ({xs}, {ys}) is outside 0..100; dropped")
                continue
            self.points.append(Point(x / 100 * width, y / 100 * height, None, 0, ident, label, alt))
            self.num_pointed += 1

    def add_clicks(self) -> None:
        for m in _CLICK.finditer(self.text):
            self.add_legacy(f"Click at char {m.start()}", [(None, m.group(1), m.group(2))], None, None)


def _stated_count(text: str) -> int | None:
    if (m := _TOTAL.search(text)) is not None:
        return int(m.group(1))
    if _NONE.search(text):
        return 0
    if (m := _THERE_ARE.search(text)) is not None:
        return int(m.group(1))
    if (m := _BARE.fullmatch(text)) is not None:
        return int(m.group(1))
    return None


def parse(text: str, sizes: Size | Sequence[Size], *, video: bool | None = None) -> GroundingResult:
    """Parse a generated answer into pixel points, tracks and counts. Never raises on the text.

    text: the decoded answer (special tokens removed).
    sizes: ``(width, height)`` in pixels of the original image or video frames, or a list with one
        ``(width, height)`` per image of an image set (keys in the text are 1-based indices into it).
    video: force group keys to be read as timestamps (True) or image indices (False); default: keys
        with a ``.`` are timestamps when ``sizes`` is a single size.
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be the decoded answer as a str, got {type(text).__name__}")
    size_list, is_set = normalize_sizes(sizes)
    if video and is_set:
        if len(size_list) != 1:
            raise ValueError("a video has one frame size: pass sizes=(width, height), not a list")
        is_set = False
    parser = _Parser(text, size_list, is_set, video)
    if parser.scan() == 0:
        parser.add_clicks()
    return GroundingResult(
        text=text,
        sizes=size_list,
        points=parser.points,
        tracks=parser.tracks,
        count=Count(stated=_stated_count(text), pointed=parser.num_pointed),
        errors=parser.errors,
    )
