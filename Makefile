# Everything a fresh machine needs, from Python 3.11 and make alone.
#   make demo   create .venv, install, run the main job on embedded defaults
#   make test   create .venv, install with test extras, run the suite (CI)
#   make check  the fast tier for the edit-test loop (no binaries,
#               subprocesses or benchmark runs; under 3 minutes on 2 cores)
#   make api    the API reference (pdoc) into build/api/
# make test installs the "test" extra (pytest, PyTorch CPU, scikit-learn),
# so nothing is skipped but the GPU (cuDNN) tests; CI (.ci/run) runs exactly `make test`.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
EXTRAS ?= dev
TEST_EXTRAS ?= test
PYTEST_ARGS ?= -n 2 --dist worksteal
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),_,$(EXTRAS))

.PHONY: demo test check native venv benchmark api clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --upgrade pip setuptools wheel

$(STAMP): $(VENV)/bin/python setup.cfg pyproject.toml
	$(VENV)/bin/python -m pip install -e ".[$(EXTRAS)]"
	-$(VENV)/bin/python -m rnn_zoo.native build
	touch $@

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/python -m benchmarks.gradient_flow --preset=quick

benchmark: $(STAMP)
	$(VENV)/bin/python -m benchmarks.throughput

TEST_STAMP := $(VENV)/.installed-$(subst $(comma),_,$(TEST_EXTRAS))

$(TEST_STAMP): $(VENV)/bin/python setup.cfg pyproject.toml
	$(VENV)/bin/python -m pip install -e ".[$(TEST_EXTRAS)]"
	-$(VENV)/bin/python -m rnn_zoo.native build
	touch $@

test: $(TEST_STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) --durations=15 tests

check: $(TEST_STAMP)
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS) -m "not slow" tests

# The API reference (pdoc) of the installed package, into build/api/.
api: $(TEST_STAMP)
	$(VENV)/bin/python -m pdoc rnn_zoo rnn_zoo.training -o build/api

# The native CPU kernels (rnn_zoo.native): built by the install steps above
# (a failure there leaves the scan runner, with the reason printed); again
# on demand, e.g. after changing rnn.cc.
native: $(STAMP)
	$(VENV)/bin/python -m rnn_zoo.native build

clean:
	rm -rf $(VENV) build *.egg-info
