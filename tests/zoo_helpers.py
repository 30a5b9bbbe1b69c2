"""Helpers the tests import by name (a module, not conftest: several
conftest.py files exist, and `from conftest import` picks whichever one a
pytest-xdist worker loaded first)."""

import gzip
import struct

import jax
import numpy as np

import rnn_zoo as rz

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
    # Cells built for long memory (rnn_zoo.cells.memory).
    "exprnn": lambda h, **kw: rz.ExpRNN(h, **kw),
    "indrnn": lambda h, **kw: rz.IndRNN(h, t_max=10, **kw),
    "cornn": lambda h, **kw: rz.CoRNN(h, dt=0.3, **kw),
}


def make(name, hidden=5, **kw):
  return CELL_FACTORIES[name](hidden, **kw)


def randomize(params, key, scale=0.5):
  """Non-trivial params (zero biases would hide bias bugs)."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(tree, [
      l + scale * jax.random.normal(k, l.shape, l.dtype)
      for l, k in zip(leaves, keys)])


def write_idx(path, array, gz=True):
  """Writes ``array`` (uint8) in LeCun's IDX format, as MNIST ships."""
  array = np.asarray(array, np.uint8)
  data = bytes([0, 0, 0x08, array.ndim]) + struct.pack(
      f">{array.ndim}I", *array.shape) + array.tobytes()
  with (gzip.open if gz else open)(path, "wb") as f:
    f.write(data)


def write_tiny_mnist(folder, n_train=40, n_test=12, gz=True):
  """A tiny MNIST in its distributed form: each label's images have a bright
  column at x = 2 * label."""
  rng = np.random.default_rng(0)
  out = {}
  for split, n, prefix in (("train", n_train, "train"), ("test", n_test, "t10k")):
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 30, (n, 28, 28)).astype(np.uint8)
    images[np.arange(n), :, 2 * labels] = 255
    sfx = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images-idx3-ubyte{sfx}", images, gz)
    write_idx(folder / f"{prefix}-labels-idx1-ubyte{sfx}", labels, gz)
    out[split] = images, labels
  return out
