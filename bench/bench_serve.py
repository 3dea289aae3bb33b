"""Load test of ``molmo2 serve``: 16 concurrent clients for 60 s against the tiny model.

The server runs as its own process (``python -m molmo2 serve`` on a free 127.0.0.1 port, a random ``tiny``
checkpoint written by our ``save_pretrained`` with the test tokenizer), so its memory is measured alone:
RSS (``/proc/PID/status`` VmRSS) is sampled every second; reported at the start of the load, its middle
and its end, plus the peak. Each client is a thread with its own HTTP connection that sends requests back
to back, cycling through a mix of what users send:

* ``point-image``: an image (data URL, 90x70 PNG) with "Point to the dogs.", plain;
* ``ask-image-stream``: the same image, a question, ``"stream": true`` (the latency is to ``[DONE]``);
* ``track-video``: a 2.5 s 64x48 video by path under ``--media-dir``, 4 frames, "Track the square.";
* ``text``: a text-only question.

Each asks for ``--max-tokens`` (16) new tokens. The server admits up to 32 requests (``--max-concurrency``)
and runs one model call at a time; a call answers up to ``--max-batch`` (8) of the queued greedy text and
image requests together (the video track runs alone), so latency is queueing plus the batch. The batch
sizes are read from the server's ``/metrics`` at the end. A failed request is any non-200 status, a stream
without ``[DONE]``, or a connection error.

    .venv/bin/python bench/bench_serve.py                  # 16 clients, 60 s (+ ~10 s start-up)
    .venv/bin/python bench/bench_serve.py --max-batch 1    # no batching (the server before batching)
    .venv/bin/python bench/bench_serve.py --seconds 10     # smoke run
    .venv/bin/python bench/bench_serve.py --append         # also append the section to BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, ForeignLoad, append_section, cpu_model, log, mem_total_gib, today  # noqa: E402

sys.path.insert(0, str(ROOT / "tests"))
from reference import write_side_files  # noqa: E402


def write_tiny_checkpoint(out: Path) -> Path:
    import torch

    from molmo2.checkpoint import save_pretrained
    from molmo2.config import Molmo2Config
    from molmo2.model import Molmo2Model

    torch.manual_seed(0)
    model = Molmo2Model(Molmo2Config.from_name("tiny"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.normal_(0, 0.5 / p.shape[-1] ** 0.5 if p.dim() > 1 else 0.05)
    save_pretrained(model, out)
    write_side_files(out, num_frames=8)
    return out


def write_media(d: Path) -> tuple[str, str]:
    """(PNG data URL, the video's file name under ``d``)."""
    import av
    from PIL import Image

    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(buf, "PNG")
    with av.open(str(d / "clip.mp4"), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(25):
            arr = np.full((48, 64, 3), (i * 10) % 256, np.uint8)
            arr[10:18, (i * 2) % 56:(i * 2) % 56 + 8] = (255, 0, 0)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(), "clip.mp4"


def requests(image_url: str, video: str, max_tokens: int) -> list[tuple[str, dict]]:
    def user(*parts):
        return [{"role": "user", "content": list(parts)}]

    image = {"type": "image_url", "image_url": {"url": image_url}}
    return [
        ("point-image", {"messages": user(image, {"type": "text", "text": "Point to the dogs."})}),
        ("ask-image-stream", {"messages": user(image, {"type": "text", "text": "What is in the picture?"}),
                              "stream": True}),
        ("track-video", {"messages": user({"type": "video_url", "video_url": {"url": video}},
                                          {"type": "text", "text": "Track the square."}), "max_frames": 4}),
        ("text", {"messages": [{"role": "user", "content": "Say something about squares."}]}),
    ]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid``."""
    return sum(float(x) for x in Path(f"/proc/{pid}/stat").read_text().split()[13:15]) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q / 100 * (len(xs) - 1))))]


def one_request(http, body: dict) -> str | None:
    """None when answered in full, else what went wrong."""
    if body.get("stream"):
        with http.stream("POST", "/v1/chat/completions", json=body) as r:
            if r.status_code != 200:
                r.read()
                return f"status {r.status_code}: {r.text[:200]}"
            done = False
            for line in r.iter_lines():
                if line == "data: [DONE]":
                    done = True
                elif line.startswith("data: ") and '"error"' in line[:20]:
                    return f"stream error: {line[:200]}"
            return None if done else "stream ended without [DONE]"
    r = http.post("/v1/chat/completions", json=body)
    if r.status_code != 200:
        return f"status {r.status_code}: {r.text[:200]}"
    r.json()["choices"][0]["message"]["grounding"]
    return None


def main() -> None:
    import httpx

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--max-batch", type=int, default=8, help="the server's --max-batch (1: no batching)")
    ap.add_argument("--append", action="store_true", help="append the section to BENCHMARKS.md")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        tmp = Path(tmp)
        ckpt = write_tiny_checkpoint(tmp / "tiny")
        (tmp / "media").mkdir()
        image_url, video = write_media(tmp / "media")
        port = free_port()
        cmd = [sys.executable, "-m", "molmo2", "serve", "--model", str(ckpt), "--port", str(port),
               "--media-dir", str(tmp / "media"), "--max-concurrency", "32", "--served-model-name", "tiny",
               "--max-batch", str(args.max_batch)]
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "w"),
                                  env={**os.environ, "PYTHONUNBUFFERED": "1"})
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the server did not start:\n{(tmp / 'server.log').read_text()[-3000:]}")
                time.sleep(0.2)
            mix = [(k, {**b, "max_tokens": args.max_tokens}) for k, b in requests(image_url, video, args.max_tokens)]
            with httpx.Client(base_url=base, timeout=600) as http:  # warm-up: each kind once
                for _, body in mix:
                    assert one_request(http, body) is None
            log(f"server pid {server.pid} up; {args.clients} clients for {args.seconds:.0f} s")

            results: list[tuple[str, float, str | None]] = []
            lock = threading.Lock()
            stop_at = time.monotonic() + args.seconds

            def client(k: int) -> None:
                with httpx.Client(base_url=base, timeout=600) as http:
                    i = k
                    while time.monotonic() < stop_at:
                        kind, body = mix[i % len(mix)]
                        i += 1
                        t0 = time.perf_counter()
                        try:
                            error = one_request(http, body)
                        except Exception as e:  # a connection error is a failed request
                            error = f"{type(e).__name__}: {e}"
                        with lock:
                            results.append((kind, time.perf_counter() - t0, error))

            rss: list[tuple[float, float]] = []
            threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
            busy0, own0, server0 = ForeignLoad._busy_s(), sum(os.times()[:2]), cpu_s(server.pid)
            t_start = time.monotonic()
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                rss.append((time.monotonic() - t_start, rss_mb(server.pid)))
                time.sleep(1.0)
            for t in threads:
                t.join()
            wall = time.monotonic() - t_start
            server_cpu = cpu_s(server.pid) - server0
            own_cpu = sum(os.times()[:2]) - own0
            others = (ForeignLoad._busy_s() - busy0 - server_cpu - own_cpu) / wall  # cores used by other processes
            metrics = httpx.get(base + "/metrics", timeout=30).text
            batches = {int(k): int(n) for k, n in re.findall(r'molmo2_batches_total\{size="(\d+)"\} (\d+)', metrics)}
        finally:
            server.terminate()
            server.wait(30)

    ok = [r for r in results if r[2] is None]
    failed = [r for r in results if r[2] is not None]
    lat = [r[1] for r in ok]
    mid = min(rss, key=lambda s: abs(s[0] - wall / 2))[1]
    # (the warm-up calls before the load ran alone: batches of one)
    calls = sum(batches.values())
    batched = sum(k * n for k, n in batches.items())
    lines = [
        "## Serving under load (`bench/bench_serve.py`)",
        "",
        f"Machine: {cpu_model()} ({os.cpu_count()} cores), {mem_total_gib():.0f} GiB RAM; other processes used "
        f"{max(others, 0):.2f} cores on average during the run" + (", so the machine was shared and these numbers "
                                                                    "are pessimistic.  " if others > 0.25 else ".  "),
        f"Date: {today()}; command: `.venv/bin/python bench/bench_serve.py --max-batch {args.max_batch}`  ",
        f"`molmo2 serve` on the `tiny` preset (random weights, fp32, CPU) in its own process, "
        f"`--max-concurrency 32 --max-batch {args.max_batch}`; {args.clients} client threads, each sending requests "
        f"back to back for {args.seconds:.0f} s, cycling through a mix (image point, image question streamed, 4-frame "
        f"video track by path, text), {args.max_tokens} new tokens each. One model call at a time; "
        + ("each answers one request." if args.max_batch == 1 else
           f"a call answers up to {args.max_batch} queued greedy text / image requests (the video track alone)."),
        "",
        "| requests | failed | throughput (req/s) | p50 latency (s) | p99 latency (s) | max latency (s) | "
        "server RSS start / middle / end (MB) | RSS peak (MB) |",
        "|---:|---:|---:|---:|---:|---:|---|---:|",
        f"| {len(results)} | {len(failed)} | {len(ok) / wall:.2f} | {statistics.median(lat):.2f} | "
        f"{pct(lat, 99):.2f} | {max(lat):.2f} | {rss[0][1]:.0f} / {mid:.0f} / {rss[-1][1]:.0f} | "
        f"{max(r for _, r in rss):.0f} |",
        "",
        "| request kind | count | p50 (s) | p99 (s) |",
        "|---|---:|---:|---:|",
    ]
    for kind, _ in mix:
        ks = [r[1] for r in ok if r[0] == kind]
        if ks:
            lines.append(f"| {kind} | {len(ks)} | {statistics.median(ks):.2f} | {pct(ks, 99):.2f} |")
    lines += ["", f"During the load the server used {server_cpu:.0f} s of CPU in {wall:.0f} s ({server_cpu / wall:.2f} "
                  f"cores), the {args.clients} client threads {own_cpu:.0f} s ({own_cpu / wall:.2f} cores). "
                  f"Model calls (warm-up included): {calls}, answering {batched} requests "
                  f"({batched / max(calls, 1):.1f} per call); by batch size: "
                  + ", ".join(f"{k}: {n}" for k, n in sorted(batches.items()) if n) + "."]
    if failed:
        lines.append("Failures: " + "; ".join(sorted({r[2] for r in failed}))[:1000])
    text = "\n".join(lines)
    print(text)
    print(json.dumps({"rss_mb": rss}), file=sys.stderr)
    if args.append:
        append_section(ROOT / "BENCHMARKS.md", text)


if __name__ == "__main__":
    main()
