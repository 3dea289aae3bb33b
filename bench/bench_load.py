"""Peak memory of loading a checkpoint, molmo2 vs transformers' Molmo2 (the reference), CPU.

Writes a random ~180M-parameter checkpoint (~0.7 GB fp32) with transformers' ``save_pretrained``, sharded
into 3 safetensors files (the target case) and, for comparison, as one file; then for each loader and target dtype starts a FRESH Python process
that

1. imports its libraries (``torch`` + ``molmo2``; ``torch`` + ``transformers.Molmo2ForConditionalGeneration``)
   and reads ``VmHWM`` from ``/proc/self/status`` (the baseline),
2. loads the checkpoint (``molmo2.checkpoint.load_model(dir, dtype=...)`` /
   ``Molmo2ForConditionalGeneration.from_pretrained(dir, dtype=...)``),
3. reads ``VmHWM`` again (the peak resident set, anonymous + file-backed pages, e.g. mmapped shards),
4. reads every weight once (transformers keeps fp32 weights as lazy views of the mmapped shards) and
   reads ``VmHWM`` a last time: the "ready to run" peak.

The figure of merit is (ready peak - baseline) / bytes of the loaded weights in the target dtype; the
ideal is 1.0 (every weight resident exactly once, nothing else). Target for molmo2: <= 1.3 on the
sharded checkpoint (``--strict``: exit status 1 when missed).

    .venv/bin/python bench/bench_load.py            # ~2-3 min
    .venv/bin/python bench/bench_load.py --quick    # 1 run per row, sharded checkpoint only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(loader: str, model_dir: str, dtype_name: str) -> None:
    """Runs in a fresh interpreter; prints one JSON line."""
    import torch

    import molmo2  # noqa: F401
    from molmo2.checkpoint import load_model

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    if loader == "ref":
        import transformers
        from transformers import Molmo2ForConditionalGeneration

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    base_hwm, base_rss = _status_kb("VmHWM"), _status_kb("VmRSS")
    t0 = time.perf_counter()
    if loader == "ours":
        model = load_model(model_dir, dtype=dtype)
    else:
        model = Molmo2ForConditionalGeneration.from_pretrained(model_dir, dtype=dtype)
    load_s = time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    # transformers leaves fp32 weights as lazy views of the mmapped shards (pages fault in on first
    # use); touch every weight once so both loaders are measured "ready to run"
    with torch.no_grad():
        for p in model.parameters():
            p.sum()
    peak_touched = _status_kb("VmHWM")
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    weights += sum(b.numel() * b.element_size() for b in model.buffers())
    assert all(p.dtype == dtype for p in model.parameters())
    print(json.dumps({
        "base_hwm_kb": base_hwm, "base_rss_kb": base_rss, "peak_kb": peak, "peak_touched_kb": peak_touched,
        "rss_after_kb": _status_kb("VmRSS"), "rss_anon_after_kb": _status_kb("RssAnon"),
        "rss_file_after_kb": _status_kb("RssFile"), "weights_bytes": weights, "load_s": load_s,
    }))


def run_child(loader: str, model_dir: Path, dtype_name: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", loader, "--dir", str(model_dir), "--dtype", dtype_name],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


LAYOUTS = {"sharded": "300MB", "single": "4GB"}  # transformers' max_shard_size for each layout


def make_checkpoints(root: Path) -> None:
    """One random model, written by transformers twice: 3 shards of <= 300 MB, and one file."""
    from common import bench_config, reference_model, save_reference

    model = reference_model(bench_config(text_layers=24))
    for layout, max_shard in LAYOUTS.items():
        save_reference(model, root / layout, max_shard_size=max_shard)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=["ours", "ref"])
    ap.add_argument("--dir")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--quick", action="store_true", help="1 run per row, sharded checkpoint only")
    ap.add_argument("--reps", type=int, default=None, help="runs per row (default 3; memory is near-deterministic)")
    ap.add_argument("--layouts", default=None, help="comma list of sharded,single (default both; --quick: sharded)")
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="reuse/keep the random checkpoints in this folder (sub-folders sharded/ and single/)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when molmo2 misses the 1.3x target")
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.dir, args.dtype)
        return 0

    import warnings

    warnings.filterwarnings("ignore")
    import transformers
    from common import bench_config, config_summary, log, machine_description, today

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    reps = args.reps or (1 if args.quick else 3)
    layouts = (args.layouts or ("sharded" if args.quick else "sharded,single")).split(",")
    tmp = tempfile.TemporaryDirectory(prefix="molmo2-bench-load-")
    root = args.checkpoint or Path(tmp.name)
    if not all((root / layout / "config.json").is_file() for layout in LAYOUTS):
        log(f"writing the random checkpoints to {root} ...")
        make_checkpoints(root)
    desc = {}
    for layout in layouts:
        shards = sorted((root / layout).glob("*.safetensors"))
        desc[layout] = (len(shards), sum(p.stat().st_size for p in shards))

    rows = []
    for layout in layouts:
        for dtype_name in ("fp32", "bf16"):
            for loader in ("ours", "ref"):
                runs = [run_child(loader, root / layout, dtype_name) for _ in range(reps)]
                touched = [(r["peak_touched_kb"] - r["base_hwm_kb"]) * 1024 for r in runs]
                i = sorted(range(reps), key=lambda k: touched[k])[reps // 2]  # the median run
                r = runs[i]
                r["extra_load"] = (r["peak_kb"] - r["base_hwm_kb"]) * 1024
                r["extra_touched"] = touched[i]
                log(f"{layout} {loader} {dtype_name}: extra peak after load {r['extra_load'] / 2**20:.0f} MiB, "
                    f"ready {[round(e / 2**20) for e in touched]} MiB, weights {r['weights_bytes'] / 2**20:.0f} MiB, "
                    f"load {r['load_s']:.2f} s")
                rows.append((layout, dtype_name, loader, r, sorted(touched), [x["load_s"] for x in runs]))

    out = []
    out.append(f"Machine: {machine_description()}  ")
    cmd = " ".join(["bench/bench_load.py", *(sys.argv[1:] if argv is None else argv)])
    out.append(f"Date: {today()}; command: `.venv/bin/python {cmd}`  ")
    out.append(f"Model: {config_summary(bench_config(text_layers=24))}; random weights written by transformers' "
               "`save_pretrained` as " + " and as ".join(
                   f"{n} safetensors file{'s' if n > 1 else ''} ({b / 2**20:.0f} MiB fp32 in all, `{lay}`)"
                   for lay, (n, b) in desc.items()) + ".  ")
    out.append(f"Each row: a fresh process per run, median of {reps} run(s). Baseline = VmHWM after the imports; "
               "'after load' = VmHWM when the loader returns; 'ready' = VmHWM after also reading every weight once "
               "(transformers keeps fp32 weights as lazy views of the mmapped shards, so their pages are only "
               "resident once used); ratio = (peak - baseline) / bytes of the loaded weights (parameters + "
               "buffers in the target dtype). VmHWM counts anonymous and file-backed (mmapped shard) pages.\n")
    out.append("| checkpoint | load | loader | weights (MiB) | peak - baseline after load (MiB) | ratio after load "
               "| peak - baseline ready (MiB) | ratio ready | load time (s) |")
    out.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for layout, dtype_name, loader, r, _, load_s in rows:
        name = "molmo2 `load_model`" if loader == "ours" else "transformers `from_pretrained`"
        what = "fp32 -> fp32" if dtype_name == "fp32" else "fp32 -> bf16"
        n_files = desc[layout][0]
        w = r["weights_bytes"]
        out.append(
            f"| {n_files} file{'s' if n_files > 1 else ''} | {what} | {name} | {w / 2**20:.0f} | "
            f"{r['extra_load'] / 2**20:.0f} | {r['extra_load'] / w:.2f}x | "
            f"{r['extra_touched'] / 2**20:.0f} | **{r['extra_touched'] / w:.2f}x** | "
            f"{sorted(load_s)[len(load_s) // 2]:.2f} |"
        )
    ours = [(lay, d, r) for lay, d, loader, r, _, _ in rows if loader == "ours"]
    ok = all(r["extra_touched"] / r["weights_bytes"] <= 1.3 for lay, _, r in ours if lay == "sharded")
    verdict = ", ".join(f"{lay} {d}: {r['extra_touched'] / r['weights_bytes']:.2f}x" for lay, d, r in ours)
    out.append(f"\nTarget molmo2 <= 1.30x the weights (sharded checkpoint): {'MET' if ok else 'NOT MET'} ({verdict}).")
    print("\n".join(out))
    tmp.cleanup()
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
