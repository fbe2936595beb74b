# Quick start: `make demo` and `make test`. Both create or reuse .venv and install everything.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.yoloattn-installed

# Ultralytics must never touch the network or the user's home: see docs/offline.md.
export YOLO_OFFLINE := 1
export YOLO_AUTOINSTALL := False
export YOLO_CONFIG_DIR := $(CURDIR)/.yolo-config
export MPLBACKEND := Agg

.PHONY: install test demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(VENV)/bin/yoloattn demo

bench: $(STAMP)
	$(PY) benchmarks/modules.py

clean:
	rm -rf $(VENV) .yolo-config .pytest_cache build src/*.egg-info
