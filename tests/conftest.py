"""Shared fixtures: small shapes, float64 where finite differences need it."""

import os

# Tests compile many small programs; optimizations cost more than they save.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
# Many tests, and the binaries they start as subprocesses (which inherit
# this environment), compile the same programs: one compilation cache for
# all of them compiles each program once per checkout (JAX keys entries by
# the program, the XLA flags and the JAX version). A smoke run of the
# captioning binary took 1.6x less time with it.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(_ROOT, ".cache", "jax_tests"))
# Every program the binaries compile is cached (most subprocesses start a
# binary the suite has started before: a warm smoke run of the captioning
# binary took 11.6 s with every program cached, 13.4 s with those over
# 0.2 s); the pytest processes themselves keep only those over 0.2 s (they
# compile thousands of tiny eager programs once each).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

# Implicit rank promotion (adding a [T] to a [B, T] by broadcasting) hides
# shape bugs: an error in the suite and in the binaries it starts, as in
# Equinox's and big_vision's suites.
os.environ.setdefault("JAX_NUMPY_RANK_PROMOTION", "raise")

# The suite's processes compile thousands of small programs (eagerly, every
# jnp operation on a new shape is one): XLA:CPU's classic emitters compile
# them about twice as fast as its newer fusion emitters (backend compile
# 26 -> 12 ms per tiny op; tests/runner/test_unroll.py and
# tests/cells/test_linear.py 157 -> 102 s on 2 cores). The binaries set the
# same flag for speed: rnn_zoo.xla_config's recommended flags, added to
# XLA_FLAGS before any backend starts (a flag already set is left alone).
import jax  # noqa: E402
import pytest  # noqa: E402

from rnn_zoo import xla_config  # noqa: E402

xla_config.use_recommended_cpu_flags()

jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)

# tests/ and tests/training/ are on the path through setup.cfg's
# [tool:pytest] pythonpath (zoo_helpers, helpers).
from zoo_helpers import CELL_FACTORIES  # noqa: E402


@pytest.fixture(params=sorted(CELL_FACTORIES))
def cell_name(request):
  return request.param


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """A tfds data dir for the generated datasets, one per test module."""
  return tmp_path_factory.mktemp("tfds")


_SLOW_LIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slow_tests.txt")


def pytest_collection_modifyitems(config, items):
  """Marks the measured-slow tests of tests/slow_tests.txt slow (make check
  leaves them out; make test runs them)."""
  del config
  with open(_SLOW_LIST, encoding="utf-8") as f:
    slow = {line.strip() for line in f if line.strip() and not line.startswith("#")}
  for item in items:
    if item.nodeid in slow:
      item.add_marker(pytest.mark.slow)


@pytest.fixture
def binary_module():
  """``load(name)`` imports an absl binary's module in-process; after the
  test the module and the flags it defined are forgotten, so that another
  binary defining the same flag names (``--workdir``) can be imported later
  in the same worker: absl's flags are process-global, and two sample
  binaries in one xdist worker were a DuplicateFlagError."""
  import importlib  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  before, loaded = set(flags.FLAGS), []

  def load(name):
    loaded.append(name)
    return importlib.import_module(name)

  yield load
  for flag in set(flags.FLAGS) - before:
    delattr(flags.FLAGS, flag)
  for name in loaded:
    sys.modules.pop(name, None)
