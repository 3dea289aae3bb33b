"""Batch inference over many videos (or images) through an OpenAI-compatible server: ``molmo2 serve`` on one
machine, or vLLM serving a released Molmo2 on GPUs (docs/vllm.md).

    python -m molmo2.serve.batch --endpoint http://gpu-box:8000 --verb track --query "the ball" \\
        --out tracks.jsonl --workers 8 videos/*.mp4

Each input becomes one line of ``--out`` (JSONL): ``{"media", "verb", "query", "answer"}`` with the answer's
``to_dict()`` (text, the parsed grounding in pixels and seconds, usage), or ``{"media", "verb", "query",
"error"}`` when that input failed (a corrupt file, a refusal by the server): one bad video does not stop the
batch, and its message says what was wrong. Why it is built this way:

* **Resumable.** Lines are appended as answers arrive (flushed each time); a rerun with the same ``--out``
  skips inputs that already have an answer (failed ones are retried), so a killed batch loses nothing.
* **Concurrency is the server's business.** ``--workers`` requests are kept in flight (threads, one
  ``RemoteModel`` each); vLLM batches them on the GPU, ``molmo2 serve`` queues them (keep ``--workers`` at
  or under its ``--max-concurrency``; a 503 is retried anyway).
* **Same answers as the local pipeline**: ``RemoteModel`` sends the verbs' prompts and parses the text with
  the media's sizes (``molmo2.serve.client``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from molmo2.errors import Molmo2Error

VERBS = ("ask", "point", "count", "track", "caption")


def done_inputs(out: Path) -> set[str]:
    """Inputs that already have an answer in ``out`` (a partly written last line is ignored)."""
    done = set()
    if out.exists():
        for line in out.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "answer" in record:
                done.add(record["media"])
    return done


def run_batch(endpoint: str, inputs: Iterable[str | Path], verb: str, query: str | None, out: str | Path, *,
              workers: int = 4, model: str | None = None, api_key: str | None = None,
              options: dict | None = None, progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Ask ``verb`` (with ``query``; none for caption) about every input; append JSONL records to ``out``.
    Returns ``{"answered", "failed", "skipped"}`` (skipped: already answered in ``out``)."""
    from molmo2.serve.client import RemoteModel

    if verb not in VERBS:
        raise Molmo2Error(f"unknown verb {verb!r}; use one of {', '.join(VERBS)}")
    if (query is None) != (verb == "caption"):
        raise Molmo2Error("caption takes no query; ask, point, count and track need one (--query)")
    if workers < 1:
        raise Molmo2Error(f"workers must be at least 1, got {workers}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = done_inputs(out)
    todo = [str(p) for p in inputs if str(p) not in done]
    counts = {"answered": 0, "failed": 0, "skipped": len(done)}
    lock = threading.Lock()
    local = threading.local()
    clients: list[RemoteModel] = []

    def one(media: str) -> None:
        if not hasattr(local, "remote"):
            local.remote = RemoteModel(endpoint, model=model, api_key=api_key)
            with lock:
                clients.append(local.remote)
        record: dict = {"media": media, "verb": verb, "query": query}
        try:
            args = [] if verb == "caption" else [query]
            answer = getattr(local.remote, verb)(media, *args, **(options or {}))
            record["answer"] = answer.to_dict()
        except Molmo2Error as e:  # RemoteError, MediaError: recorded, the batch goes on
            record["error"] = str(e)
        with lock:
            with out.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
            counts["answered" if "answer" in record else "failed"] += 1
            if progress is not None:
                progress(counts["answered"] + counts["failed"], len(todo))

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="molmo2-batch") as pool:
            list(pool.map(one, todo))
    finally:
        for remote in clients:
            remote.close()
    return counts


def main(argv: list[str] | None = None) -> int:
    import os

    ap = argparse.ArgumentParser(prog="python -m molmo2.serve.batch", description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="video or image files")
    ap.add_argument("--endpoint", required=True, help="the server's URL, e.g. http://127.0.0.1:8000")
    ap.add_argument("--verb", choices=VERBS, required=True)
    ap.add_argument("--query", help="what to point at / count / track, or the question (ask)")
    ap.add_argument("--out", required=True, help="JSONL file, appended to; a rerun skips answered inputs")
    ap.add_argument("--workers", type=int, default=4, help="requests in flight (default 4)")
    ap.add_argument("--model", help="model id on the server (default: the first it lists)")
    ap.add_argument("--api-key", help="the server's API key (or set MOLMO2_API_KEY)")
    ap.add_argument("--max-new-tokens", type=int)
    ap.add_argument("--max-frames", type=int, help="video frames to sample (molmo2 serve; vLLM ignores it)")
    args = ap.parse_args(argv)
    options = {k: v for k, v in {"max_new_tokens": args.max_new_tokens, "max_frames": args.max_frames}.items()
               if v is not None}

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total}", end="", file=sys.stderr, flush=True)

    try:
        counts = run_batch(args.endpoint, args.inputs, args.verb, args.query, args.out, workers=args.workers,
                           model=args.model, api_key=args.api_key or os.environ.get("MOLMO2_API_KEY"),
                           options=options, progress=progress)
    except Molmo2Error as e:
        print(f"molmo2 batch: error: {e}", file=sys.stderr)
        return 2
    print(f"\nmolmo2 batch: {counts['answered']} answered, {counts['failed']} failed (see 'error' in {args.out}), "
          f"{counts['skipped']} already done", file=sys.stderr)
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
