"""Module boundaries of STYLE.md: a forbidden import edge fails here."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).parents[1] / "molmo2"
FORBIDDEN = {
    "config": {"torch", "molmo2.model", "molmo2.processing", "molmo2.checkpoint"},
    "grounding": {"torch", "molmo2.model", "molmo2.processing", "molmo2.checkpoint", "molmo2.inference"},
    "model": {"molmo2.processing", "molmo2.checkpoint", "molmo2.train", "molmo2.serve", "torch.distributed",
              "transformers"},
    "checkpoint": {"molmo2.processing", "molmo2.train", "molmo2.serve", "transformers"},
    "processing": {"molmo2.model", "molmo2.train", "transformers"},
    "inference": {"molmo2.train", "molmo2.eval", "molmo2.serve", "transformers"},
    "data": {"torch", "molmo2.model", "molmo2.checkpoint", "molmo2.inference", "molmo2.train", "molmo2.eval",
             "molmo2.serve", "transformers"},
    "train": {"molmo2.inference", "molmo2.eval", "molmo2.serve", "transformers"},
    "eval": {"molmo2.train", "molmo2.serve", "transformers"},
    "viz": {"molmo2.train", "molmo2.eval", "molmo2.model", "molmo2.checkpoint", "transformers"},
    "serve": {"molmo2.train", "molmo2.eval", "molmo2.model", "molmo2.checkpoint", "transformers"},
}


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_no_forbidden_imports():
    bad = []
    for part, forbidden in FORBIDDEN.items():
        files = [PKG / f"{part}.py"] if (PKG / f"{part}.py").exists() else list((PKG / part).rglob("*.py"))
        for f in files:
            for name in _imports(f):
                if any(name == x or name.startswith(x + ".") for x in forbidden):
                    bad.append(f"{f.relative_to(PKG.parent)} imports {name}")
    assert not bad, bad


def test_transformers_never_imported_by_the_package():
    hits = [str(f) for f in PKG.rglob("*.py") if any(n.split(".")[0] == "transformers" for n in _imports(f))]
    assert not hits


def test_import_molmo2_is_cheap():
    code = "import sys, molmo2, molmo2.grounding, molmo2.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
