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

# The oldest supported Ultralytics (yoloattn/compat.py), installed beside the venv without its
# dependencies (they are the venv's): `make test` runs the bridge, zoo-build and reload tests on it too.
ULTRALYTICS_OLDEST := $(shell sed -n 's/^ULTRALYTICS_OLDEST = "\([0-9.]*\)".*/\1/p' src/yoloattn/compat.py)
OLDEST := .compat/ultralytics-$(ULTRALYTICS_OLDEST)

.PHONY: install test test-oldest demo bench clean

install: $(STAMP)

# The Python floor is pyproject's requires-python (derived from the pins, see tests/test_environment.py).
PY_FLOOR := $(shell sed -n 's/^requires-python = ">=\([0-9.]*\)".*/\1/p' pyproject.toml)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; f = tuple(map(int, "$(PY_FLOOR)".split("."))); sys.exit(0 if sys.version_info[:2] >= f else "yoloattn needs Python >= $(PY_FLOOR) (the pinned numpy/scipy have no older builds); found " + sys.version.split()[0] + ": run make PYTHON=python3.11 (or newer)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

$(OLDEST)/.installed: src/yoloattn/compat.py | $(STAMP)
	rm -rf $(OLDEST)
	$(PY) -m pip install --quiet --no-deps --target $(OLDEST) "ultralytics==$(ULTRALYTICS_OLDEST)"
	rm -rf $(OLDEST)/tests $(OLDEST)/bin  # the wheel's own tests package would shadow ours on PYTHONPATH
	touch $@

test: $(STAMP) $(OLDEST)/.installed
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory test-oldest

test-oldest: $(STAMP) $(OLDEST)/.installed
	PYTHONPATH=$(CURDIR)/$(OLDEST) YOLO_CONFIG_DIR=$(CURDIR)/.yolo-config-oldest \
	YOLOATTN_EXPECT_ULTRALYTICS=$(ULTRALYTICS_OLDEST) $(PY) -m pytest -q -m bridge

demo: $(STAMP)
	$(VENV)/bin/yoloattn demo

bench: $(STAMP)
	$(PY) benchmarks/modules.py

clean:
	rm -rf $(VENV) .compat .yolo-config .yolo-config-oldest .pytest_cache build src/*.egg-info
