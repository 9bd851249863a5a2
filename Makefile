# One entry point for humans and CI. `make test` and `make demo` (re)create the virtual
# environment whenever pyproject.toml changes.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: venv test fuzz demo bench lint dist clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,bench]"
	touch $@

venv: $(VENV)/.installed

test: venv
	$(PY) -m pytest -q -n auto --dist loadgroup

# The loaders' fuzz suite at twenty times its CI size (about 200,000 cases; docs/security.md).
fuzz: venv
	SMTTASK_FUZZ_SCALE=20 $(PY) -m pytest -q -n auto -p no:cacheprovider tests/test_fuzz.py

demo: venv
	PATH="$(abspath $(VENV))/bin:$$PATH" bash demo/demo.sh

bench: venv
	$(PY) benchmarks/bench_runtime.py
	$(PY) benchmarks/bench_cli.py
	$(PY) benchmarks/bench_runner.py
	$(PY) benchmarks/bench_store.py
	$(PY) benchmarks/bench_recording.py
	$(PY) benchmarks/bench_slurm.py

lint: venv
	$(PY) -m ruff check smttask tests benchmarks
	$(PY) -m mypy smttask

# A wheel of this smttask in dist/ (install it with `pip install dist/smttask-*.whl`).
dist: venv
	rm -rf dist
	$(PY) -m pip wheel --no-deps -q -w dist .
	@ls dist/*.whl

clean:
	rm -rf $(VENV) .pytest_cache build dist
