"""What the dataset adapters share: reading released rows, finding media, converting coordinates.

Rows come from local copies in the layouts the datasets are released or cached in:

* parquet shards (the Hugging Face hub layout, ``data/{split}-00000-of-00001.parquet``; needs ``pyarrow``);
* a ``datasets`` ``save_to_disk`` folder (Arrow IPC stream files ``data-*.arrow`` next to ``state.json``,
  or a ``DatasetDict`` with ``dataset_dict.json`` and one such folder per split), read with ``pyarrow``
  alone (the ``datasets`` package is not needed);
* JSON (a list of rows) or JSONL (one row per line), e.g. a ``Dataset.to_json`` export.

An adapter is a function ``(rows, ctx) -> iterator of Example | Bad``: it groups rows as the official
loader does (one example per image or video, one annotation per row), converts points to pixels and times
to seconds, and yields :class:`Bad` (where, what was wrong) for a row it cannot use, so a run over
millions of rows is never stopped by one bad row. A *schema* mismatch (a field the adapter needs is not in
the rows at all) is different: :func:`require` raises :class:`AdapterError` at once, naming the field and
the fields the rows do have.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from molmo2.data.schema import Example
from molmo2.errors import Molmo2Error

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".avi")


class AdapterError(Molmo2Error):
    """The source does not look like the dataset the adapter reads (a missing field or file)."""


@dataclass
class Bad:
    """A row (or the rows of one group) that could not be converted."""

    where: str  # e.g. "row 12" or "rows 3, 7 (video abc)"
    reason: str


Row = dict[str, Any]
Result = Example | Bad
Adapter = Callable[[Iterable[tuple[int, Row]], "Context"], Iterator[Result]]


@dataclass
class Context:
    """Where the manifest goes (media paths are written relative to it) and where media are found."""

    out_dir: Path
    media_root: Path | None = None
    source: str = ""  # the adapter name, stored in each Example.source
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)

    def media_path(self, path: Path) -> str:
        """``path`` relative to the manifest's folder when it lies under it, else absolute."""
        path = path.absolute()
        try:
            return path.relative_to(self.out_dir.absolute()).as_posix()
        except ValueError:
            return str(path)

    def root(self, what: str) -> Path:
        if self.media_root is None:
            raise AdapterError(f"{self.source}: finding the {what} needs --media-root DIR (the folder the "
                               "media were downloaded to)")
        return self.media_root

    def image_size(self, path: Path) -> tuple[int, int]:
        key = str(path)
        if key not in self.sizes:
            self.sizes[key] = _image_size(path)
        return self.sizes[key]

    def video_size(self, path: Path) -> tuple[int, int]:
        key = str(path)
        if key not in self.sizes:
            from molmo2.processing.video import probe_video

            meta = probe_video(path)
            self.sizes[key] = (int(meta.width), int(meta.height))
        return self.sizes[key]


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) after EXIF orientation (what the processor sees); reads the header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            orientation = im.getexif().get(0x0112, 1)
            w, h = im.size
    except (OSError, SyntaxError) as e:
        raise Molmo2Error(f"cannot read image {path}: {e}") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


# ------------------------------------------------------------------------------------------ reading rows


def _parquet_rows(paths: Sequence[Path]) -> tuple[int, Iterator[Row]]:
    pq = _pyarrow("parquet", paths[0]).parquet
    files = [pq.ParquetFile(p) for p in paths]
    total = sum(f.metadata.num_rows for f in files)

    def rows() -> Iterator[Row]:
        for f in files:
            for batch in f.iter_batches(batch_size=1024):
                yield from batch.to_pylist()

    return total, rows()


def _arrow_rows(paths: Sequence[Path]) -> tuple[int, Iterator[Row]]:
    pa = _pyarrow("arrow", paths[0])
    tables = []
    for p in paths:
        source = pa.memory_map(str(p))
        try:
            tables.append(pa.ipc.open_stream(source).read_all())
        except pa.ArrowInvalid:
            tables.append(pa.ipc.open_file(source).read_all())
    total = sum(t.num_rows for t in tables)

    def rows() -> Iterator[Row]:
        for t in tables:
            for batch in t.to_batches(max_chunksize=1024):
                yield from batch.to_pylist()

    return total, rows()


def _pyarrow(what: str, path: Path):
    try:
        import pyarrow  # noqa: F401
        import pyarrow.ipc  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise AdapterError(f"reading {path} ({what}) needs pyarrow: pip install 'molmo2[data]' (or pyarrow); or "
                           "export the dataset as JSONL with datasets' Dataset.to_json and pass that") from None
    import pyarrow

    return pyarrow


def _json_rows(path: Path) -> tuple[int, Iterator[Row]]:
    if path.suffix == ".jsonl":
        rows = []
        for num, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise AdapterError(f"{path}:{num}: not a JSON line ({e})") from None
    else:
        try:
            rows = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise AdapterError(f"{path}: not valid JSON ({e})") from None
        if isinstance(rows, dict) and isinstance(rows.get("data"), list):
            rows = rows["data"]
        if not isinstance(rows, list):
            raise AdapterError(f"{path}: expected a JSON list of rows (or {{'data': [...]}})")
    return len(rows), iter(rows)


def _split_of(path: Path) -> str:
    """``train`` of ``train-00000-of-00002.parquet`` (the hub's shard names); else the file stem."""
    return path.name.split("-")[0] if "-of-" in path.name else path.stem


def open_rows(src: str | Path, split: str | None = None) -> tuple[int, Iterator[Row], str]:
    """(number of rows, the rows, a description of what was read) of a local dataset copy."""
    src = Path(src)
    if not src.exists():
        raise AdapterError(f"dataset source not found: {src}")
    if src.is_file():
        if src.suffix == ".parquet":
            return (*_parquet_rows([src]), str(src))
        if src.suffix == ".arrow":
            return (*_arrow_rows([src]), str(src))
        if src.suffix in (".json", ".jsonl"):
            return (*_json_rows(src), str(src))
        raise AdapterError(f"{src}: unknown file type; expected .parquet, .arrow, .json or .jsonl")
    if (src / "dataset_dict.json").is_file():  # DatasetDict.save_to_disk
        splits = json.loads((src / "dataset_dict.json").read_text()).get("splits", [])
        name = split or ("train" if "train" in splits else (splits[0] if len(splits) == 1 else None))
        if name is None or name not in splits:
            raise AdapterError(f"{src} is a saved DatasetDict with splits {splits}; pick one with --split")
        return open_rows(src / name)
    arrows = sorted(src.glob("*.arrow"))
    if arrows:  # Dataset.save_to_disk
        return (*_arrow_rows(arrows), str(src))
    shards = sorted(src.rglob("*.parquet"))
    if shards:
        by_split: dict[str, list[Path]] = {}
        for p in shards:
            by_split.setdefault(_split_of(p), []).append(p)
        if split is None and len(by_split) > 1:
            raise AdapterError(f"{src} holds parquet shards of several splits {sorted(by_split)}; pick one with "
                               "--split")
        name = split or next(iter(by_split))
        if name not in by_split:
            raise AdapterError(f"{src}: no parquet shards of split {name!r}; found {sorted(by_split)}")
        files = by_split[name]
        return (*_parquet_rows(files), ", ".join(str(p.relative_to(src)) for p in files))
    for name in ([f"{split}.jsonl", f"{split}.json"] if split else []) + sorted(
            p.name for p in src.iterdir() if p.suffix in (".jsonl", ".json") and p.name not in (
                "state.json", "dataset_info.json", "dataset_dict.json")):
        return (*_json_rows(src / name), str(src / name))
    raise AdapterError(f"{src}: no dataset files found; expected parquet shards (data/train-*.parquet), a "
                       "save_to_disk folder (data-*.arrow + state.json) or a .json/.jsonl file")


# ----------------------------------------------------------------------------------------- row helpers


def require(row: Mapping[str, Any], fields: Sequence[str], dataset: str) -> None:
    """Fail at once when the rows lack a field the adapter needs (the source is not this dataset)."""
    missing = [f for f in fields if f not in row]
    if missing:
        raise AdapterError(f"{dataset}: the rows have no field {', '.join(repr(m) for m in missing)} (they have "
                           f"{', '.join(sorted(row))}); is this a copy of {dataset}?")


class RowError(Exception):
    """Raised inside an adapter for one bad row or group; turned into a :class:`Bad`."""


def xy_list(value: Any, what: str = "points") -> list[tuple[float, float]]:
    """Points as ``[(x, y)]`` from either layout ``datasets`` produces: a list of ``{"x", "y"}`` (or of
    ``[x, y]``), or a ``Sequence`` feature's ``{"x": [...], "y": [...]}``."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        if "x" not in value or "y" not in value:
            raise RowError(f"{what} has keys {sorted(value)}; expected 'x' and 'y'")
        xs, ys = value["x"] or [], value["y"] or []
        if len(xs) != len(ys):
            raise RowError(f"{what} has {len(xs)} x values but {len(ys)} y values")
        pts = list(zip(xs, ys))
    else:
        pts = []
        for p in value:
            if isinstance(p, Mapping):
                if "x" not in p or "y" not in p:
                    raise RowError(f"a point of {what} has keys {sorted(p)}; expected 'x' and 'y'")
                pts.append((p["x"], p["y"]))
            elif isinstance(p, (list, tuple)) and len(p) == 2:
                pts.append((p[0], p[1]))
            else:
                raise RowError(f"a point of {what} is {p!r}; expected {{'x', 'y'}} or [x, y]")
    out = []
    for x, y in pts:
        if x is None or y is None or not (math.isfinite(float(x)) and math.isfinite(float(y))):
            raise RowError(f"{what} has a point ({x}, {y}) that is not a number")
        out.append((float(x), float(y)))
    return out


def percent_to_pixels(pts: Iterable[tuple[float, float]], size: tuple[int, int], what: str) -> list[tuple[float, float]]:
    """Percent-of-image points (0-100) -> pixels. Values a hair outside [0, 100] are clipped, as the official
    loaders do (``clip_points=True``); values far outside mean the coordinates are not percent."""
    w, h = size
    out = []
    for x, y in pts:
        if not (-1 <= x <= 101 and -1 <= y <= 101):
            raise RowError(f"{what} has a point ({x}, {y}) outside 0-100; this dataset's points are percent of "
                           "the image (official loaders use point_scale=100)")
        out.append((min(max(x, 0.0), 100.0) * w / 100, min(max(y, 0.0), 100.0) * h / 100))
    return out


def columns(value: Any, keys: Sequence[str], what: str) -> list[dict[str, Any]]:
    """A list of records from a list of dicts or a ``Sequence`` feature's dict of lists."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        missing = [k for k in keys if k not in value]
        if missing:
            raise RowError(f"{what} has keys {sorted(value)}; expected {', '.join(keys)}")
        lists = [value[k] or [] for k in keys]
        if len({len(x) for x in lists}) > 1:
            raise RowError(f"{what}: the lists {', '.join(keys)} differ in length")
        return [dict(zip(keys, vals)) for vals in zip(*lists)]
    out = []
    for rec in value:
        if not isinstance(rec, Mapping) or any(k not in rec for k in keys):
            raise RowError(f"{what} has an entry {rec!r}; expected keys {', '.join(keys)}")
        out.append(dict(rec))
    return out


def peek(rows: Iterable[tuple[int, Row]], fields: list[str], dataset: str) -> Iterator[tuple[int, Row]]:
    """``rows``, after checking that the first one has ``fields``."""
    it = iter(rows)
    first = next(it, None)
    if first is None:
        return
    require(first[1], fields, dataset)
    yield first
    yield from it


def entries(row: Row, keys: tuple[str, ...]) -> list[tuple]:
    """The annotations of a row: one tuple of ``keys`` (released layout), or zipped lists (grouped copy)."""
    vals = [row.get(k) for k in keys]
    if isinstance(vals[0], list):
        if any(not isinstance(v, list) or len(v) != len(vals[0]) for v in vals):
            raise RowError(f"grouped row: the lists {', '.join(keys)} differ in length")
        return list(zip(*vals))
    return [tuple(vals)]


def where(rows: Sequence[int], extra: str = "") -> str:
    shown = ", ".join(map(str, rows[:5])) + (f", ... ({len(rows)} rows)" if len(rows) > 5 else "")
    return f"row{'s' if len(rows) > 1 else ''} {shown}" + (f" ({extra})" if extra else "")


def group_rows(rows: Iterable[tuple[int, Row]], key: Callable[[Row], Any]) -> dict[Any, list[tuple[int, Row]]]:
    """Rows grouped by ``key`` in first-seen order (one example per image or video, as the official loaders)."""
    groups: dict[Any, list[tuple[int, Row]]] = {}
    for num, row in rows:
        groups.setdefault(key(row), []).append((num, row))
    return groups


# ------------------------------------------------------------------------------------------------ media


def url_hash(url: str) -> str:
    """The official download cache's file name of an image URL (``download_pixmo_urls``: sha256 of the URL)."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


@lru_cache(maxsize=8)
def _listing(folder: str) -> dict[str, str]:
    """stem -> file name of a folder's files (for cached images stored with an extension)."""
    p = Path(folder)
    return {f.stem: f.name for f in p.iterdir() if f.is_file()} if p.is_dir() else {}


def find_pixmo_image(ctx: Context, row: Row, url_key: str = "image_url", path_key: str = "image") -> Path:
    """A PixMo image: the row's ``image`` path (official local copies store the cached file's path), else
    ``<media root>/<basename of that path>``, else ``<media root>/<sha256 of the URL>[.ext]``."""
    looked = []
    path = row.get(path_key)
    if isinstance(path, str) and path:
        p = Path(path)
        if p.is_file():
            return p
        looked.append(str(p))
        if ctx.media_root is not None:
            for cand in (ctx.media_root / path, ctx.media_root / p.name):
                if cand.is_file():
                    return cand
                looked.append(str(cand))
    url = row.get(url_key)
    if isinstance(url, str) and url and ctx.media_root is not None:
        return find_by_url(ctx.media_root, url, looked)
    if not looked and ctx.media_root is None:
        raise AdapterError(f"{ctx.source}: images are named by the sha256 of their URL under the download "
                           "folder; pass it as --media-root DIR")
    raise RowError(f"image not found; looked for {', '.join(looked) or 'nothing (the row has no image path or URL)'}")


def find_by_url(root: Path, url: str, looked: list[str] | None = None) -> Path:
    name = url_hash(url)
    cand = root / name
    if cand.is_file():
        return cand
    alt = _listing(str(root)).get(name)
    if alt:
        return root / alt
    raise RowError(f"image of {url} not found: expected {cand} (files are named by the sha256 of their URL, as "
                   "the official download_pixmo_urls stores them)" + (f"; also looked for {', '.join(looked)}"
                                                                     if looked else ""))


def find_video(candidates: Sequence[Path], what: str) -> Path:
    """The first existing file among ``candidates``; a folder candidate holds the video as its only file."""
    for c in candidates:
        if c.is_file():
            return c
        if c.is_dir():
            vids = sorted(f for f in c.iterdir() if f.suffix.lower() in VIDEO_EXTS)
            if vids:
                return vids[0]
    shown = ", ".join(str(c) for c in candidates[:6]) + (" ..." if len(candidates) > 6 else "")
    raise RowError(f"video {what} not found; looked for {shown}")


def with_exts(base: Path) -> list[Path]:
    return [base.with_name(base.name + ext) for ext in VIDEO_EXTS]
