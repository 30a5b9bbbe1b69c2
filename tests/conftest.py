"""Shared fixtures: small shapes, float64 where finite differences need it."""

import os
import sys

# Tests compile many small programs; optimizations cost more than they save.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

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
