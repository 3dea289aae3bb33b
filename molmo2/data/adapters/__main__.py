"""``python -m molmo2.data.adapters NAME SRC OUT [--media-root DIR] [--split S] [--limit N]``."""

from __future__ import annotations

import argparse
import sys

from molmo2.data.adapters import ADAPTERS, convert
from molmo2.errors import Molmo2Error


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m molmo2.data.adapters",
                                 description="Convert a local copy of a released Molmo2/PixMo dataset to a JSONL "
                                             "training manifest.")
    ap.add_argument("name", choices=sorted(ADAPTERS), metavar="NAME", help=f"one of: {', '.join(sorted(ADAPTERS))}")
    ap.add_argument("src", help="parquet file/folder, save_to_disk folder, or .json/.jsonl file")
    ap.add_argument("out", help="the manifest to write (.jsonl); media paths are relative to its folder when "
                                "they lie under it")
    ap.add_argument("--media-root", help="folder the dataset's images/videos were downloaded to")
    ap.add_argument("--split", help="split to read when the source holds several (e.g. train, CapQA)")
    ap.add_argument("--limit", type=int, help="read only the first N rows")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        convert(args.name, args.src, args.out, args.media_root, args.split, args.limit,
                progress=not args.no_progress)
    except Molmo2Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
