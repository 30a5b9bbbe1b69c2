"""rnn_zoo: a JAX/Flax model zoo of recurrent networks.

Pure-function cells (:class:`SimpleRNN`, :class:`LSTM`, :class:`GRU`), one
runner (:func:`unroll`, :mod:`rnn_zoo.runner`) and what is built on it
(:func:`bidirectional`, :class:`StackedRNN`, :func:`truncated_bptt`), a Flax
module (:class:`rnn_zoo.nn.RNN`) and Flax NNX modules (:mod:`rnn_zoo.nnx`,
imported on first use of ``rz.nnx``), PyTorch interop (:mod:`rnn_zoo.interop`),
gradient-flow diagnostics (:mod:`rnn_zoo.gradflow`), models and tasks
(:mod:`rnn_zoo.models`, :mod:`rnn_zoo.data`). The training loop is
:mod:`rnn_zoo.training` (imported on demand: it brings in orbax).

  >>> import jax, jax.numpy as jnp, rnn_zoo as rz
  >>> cell = rz.LSTM(32)
  >>> params = cell.init(jax.random.key(0), input_size=8)
  >>> ys, carry = rz.unroll(cell, params, jnp.zeros((4, 20, 8)))
  >>> ys.shape
  (4, 20, 32)
"""

from rnn_zoo import cudnn
from rnn_zoo import data
from rnn_zoo import decoding
from rnn_zoo import gradflow
from rnn_zoo import interop
from rnn_zoo import metrics
from rnn_zoo import models
from rnn_zoo import nn
from rnn_zoo import parallel
from rnn_zoo.cells import (CELL_NAMES, CELLS, GRU, LSTM, AttentionCarry, AttentionCell,
                           Cell, GRUCho, HiddenCarry, LinearRecurrentCell,
                           LSTMCarry, LRU, MinGRU, MinLSTM, PointwiseCell, ProjectedCell, SimpleRNN,
                           ExpRNN, IndRNN, CoRNN, OscillatorCarry, make_cell)
from rnn_zoo.errors import UserError
from rnn_zoo import runner
from rnn_zoo.runner import (IMPLS, StackedRNN, bidirectional, explain_impl,
                            python_unroll, python_unroll_with_carries,
                            reverse_within_lengths, truncated_bptt, unroll,
                            unroll_with_carries)

__version__ = "0.1.0"

__all__ = [
    "Cell", "ProjectedCell", "PointwiseCell", "SimpleRNN", "LSTM", "GRU",
    "GRUCho", "LinearRecurrentCell", "MinGRU", "MinLSTM", "LRU", "ExpRNN", "IndRNN",
    "CoRNN", "OscillatorCarry", "AttentionCell", "AttentionCarry", "HiddenCarry", "LSTMCarry", "CELLS", "CELL_NAMES", "make_cell",
    "UserError", "unroll", "unroll_with_carries", "explain_impl", "IMPLS", "python_unroll",
    "python_unroll_with_carries", "bidirectional", "StackedRNN",
    "truncated_bptt", "reverse_within_lengths", "nn", "interop", "gradflow",
    "models", "data", "decoding", "metrics", "parallel", "cudnn", "runner", "nnx",
]


def __getattr__(name: str):
  """``rz.nnx`` is imported on first use (it brings in Flax NNX)."""
  if name == "nnx":
    import importlib
    return importlib.import_module("rnn_zoo.nnx")
  raise AttributeError(f"module 'rnn_zoo' has no attribute {name!r}")
