"""Shared fixtures: small shapes, float64 where finite differences need it."""

import os
import sys

# Tests compile many small programs; optimizations cost more than they save.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
# Many tests, and the binaries they start as subprocesses (which inherit
# this environment), compile the same programs: one compilation cache for
# all of them compiles each program once per checkout (JAX keys entries by
# the program, the XLA flags and the JAX version). A smoke run of the
# captioning binary took 1.6x less time with it.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(_ROOT, ".cache", "jax_tests"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

import jax  # noqa: E402
import pytest  # noqa: E402

# Make tests/zoo_helpers.py importable from every test folder.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from zoo_helpers import CELL_FACTORIES  # noqa: E402


@pytest.fixture(params=sorted(CELL_FACTORIES))
def cell_name(request):
  return request.param


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield
