"""Shared fixtures: small shapes, float64 where finite differences need it."""

import os

# Tests compile many small programs; optimizations cost more than they save.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

import rnn_zoo as rz  # noqa: E402

# Every cell configuration the runner tests are parameterized over.
CELL_FACTORIES = {
    "rnn_tanh": lambda h, **kw: rz.SimpleRNN(h, **kw),
    "rnn_relu_orth": lambda h, **kw: rz.SimpleRNN(
        h, activation="relu", recurrent_init="orthogonal", **kw),
    "irnn": lambda h, **kw: rz.SimpleRNN.irnn(h, **kw),
    "lstm": lambda h, **kw: rz.LSTM(h, **kw),
    "lstm_chrono": lambda h, **kw: rz.LSTM(h, chrono_t_max=30, **kw),
    "gru_cudnn": lambda h, **kw: rz.GRU(h, **kw),
    "gru_cho": lambda h, **kw: rz.GRU(h, variant="cho", **kw),
    # Linear recurrences: the runner's default for them is the parallel scan.
    "mingru": lambda h, **kw: rz.MinGRU(h, **kw),
    "minlstm": lambda h, **kw: rz.MinLSTM(h, **kw),
}


@pytest.fixture(params=sorted(CELL_FACTORIES))
def cell_name(request):
  return request.param


def make(name, hidden=5, **kw):
  return CELL_FACTORIES[name](hidden, **kw)


def randomize(params, key, scale=0.5):
  """Non-trivial params (zero biases would hide bias bugs)."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(tree, [
      l + scale * jax.random.normal(k, l.shape, l.dtype)
      for l, k in zip(leaves, keys)])


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield
