# One entry point for humans and CI. `make test` and `make demo` (re)create the virtual
# environment whenever pyproject.toml changes.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: venv test fuzz demo bench lint dist docs clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,bench,docs]"
	touch $@

venv: $(VENV)/.installed

# One test worker per core. A third worker on two cores kept cores busy while others
# waited on pools, SLURM or PostgreSQL, but cost more CPU than it saved once the tests'
# interpreters ran one BLAS thread each (alternated full runs on 2 cores: -n 2 146.8 s
# and 130.3 s, 217 s and 191 s of CPU; -n 3 166.6 s and 155.2 s, 270 s and 253 s).
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 1)

# Bytecode is cached as on any user's machine, even where PYTHONDONTWRITEBYTECODE is set:
# otherwise each of the suite's ~170 Python processes compiles smttask again, and each
# worker rewrites every test module's asserts.
# The suite's temporary folders (projects, git repositories, record stores, the test
# PostgreSQL and SLURM) live in memory when /dev/shm has a GiB free, as /tmp does on
# Debian 13 and Fedora: a run makes ~30,000 small files and thousands of fsyncs, which
# cost this machine's disk (ext4, mounted with discard) 10-19 s per run (alternated full
# runs: 183.4 s on disk, 164.5 s in memory; system CPU 47 s and 37 s). The newest two
# runs' folders stay there (about 130 MB each), as pytest keeps them, until the next run
# or a reboot. TMPDIR, when set, is used instead.
TEST_TMPDIR ?= $(or $(TMPDIR),$(shell df -k --output=avail /dev/shm 2>/dev/null | \
	awk 'NR == 2 && $$1 > 1048576 { print "/dev/shm/smttask-tests-'"$$(id -u)"'" }'))

test: venv
	$(if $(TEST_TMPDIR),install -d -m 711 $(TEST_TMPDIR))
	env -u PYTHONDONTWRITEBYTECODE $(if $(TEST_TMPDIR),TMPDIR=$(TEST_TMPDIR)) \
		$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

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

# The docs site in site/ (mkdocs.yml): the pages, the API reference from the docstrings and
# the command reference from the click commands; a warning (a broken link) fails it.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -q -d site

clean:
	rm -rf $(VENV) .pytest_cache build dist site
