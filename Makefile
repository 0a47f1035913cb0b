# Every target installs what it needs first, so each works on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
export HF_HUB_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: install test test-fast demo bench lint clean

install: $(VENV)/.installed

# torch is pinned here (not in pyproject) so pip takes the CPU wheel on this disk
# instead of a multi-GB CUDA build; pyproject asks only for torch>=2.6.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev,ray]'
	touch $@

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
	rm -rf $(VENV) demo-out bench/work bench/results.json
