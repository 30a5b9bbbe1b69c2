"""Flax linen wrapper: any zoo cell + the runner, params in the Flax tree."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax

from rnn_zoo import checks
from rnn_zoo.cells.cell import Cell
from rnn_zoo.runner import StackedRNN


class RNN(nn.Module):
  """A (stacked, optionally bidirectional) recurrent layer as a linen module.

  The parameters are the zoo's own params dicts, stored under
  ``params["stack"]["layer_<k>"]`` so they can be read, ported
  (:mod:`rnn_zoo.interop`) or analysed with the pure functions.

  Attributes:
    cell: the cell of every layer (e.g. ``rz.LSTM(128)``).
    num_layers: number of stacked layers.
    bidirectional: run each layer both ways.
    merge: ``"concat"`` or ``"sum"`` of the two directions.
    dropout_rate: dropout between layers, from the ``"dropout"`` RNG stream
      (``deterministic=None``, the default: exactly when that stream is
      given; True: never; False: always, the stream required).
    time_major: layout of inputs and outputs.
    unroll: ``lax.scan`` unroll factor.
    remat: gradient checkpointing (see :func:`rnn_zoo.unroll`).
    impl: the runner's implementation (see :func:`rnn_zoo.unroll`:
      ``"auto"``, ``"scan"`` (e.g. for ``jax.linearize``), ``"fused"``,
      ``"native"``, ``"cudnn"``, ``"parallel"``, ``"parallel_log"``).
    fused, native, cudnn: deprecated aliases of ``impl`` (see
      :func:`rnn_zoo.unroll`); None: not given.
    return_carry: also return the final carries.
    learn_initial_carry: a learned initial state per layer (see
      :class:`rnn_zoo.StackedRNN`), used when no ``initial_carry`` is given.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> layer = rz.nn.RNN(rz.GRU(16), num_layers=2)
    >>> xs = jnp.ones((4, 9, 3))
    >>> variables = layer.init(jax.random.key(0), xs)
    >>> layer.apply(variables, xs).shape
    (4, 9, 16)
  """
  cell: Cell
  num_layers: int = 1
  bidirectional: bool = False
  merge: str = "concat"
  dropout_rate: float = 0.0
  time_major: bool = False
  unroll: int = 1
  remat: Any = False
  impl: str = "auto"
  fused: bool | None = None
  native: bool | None = None
  cudnn: bool | None = None
  return_carry: bool = False
  learn_initial_carry: bool = False

  def _stack(self) -> StackedRNN:
    return StackedRNN.of(self.cell, self.num_layers,
                         bidirectional=self.bidirectional, merge=self.merge,
                         dropout_rate=self.dropout_rate,
                         learn_initial_carry=self.learn_initial_carry)

  def _legacy_flags(self) -> dict:
    return {k: v for k, v in (("fused", self.fused), ("native", self.native),
                              ("cudnn", self.cudnn)) if v is not None}

  @nn.compact
  def __call__(self, xs: jax.Array, *, initial_carry: Any = None,
               lengths: jax.Array | None = None, deterministic: bool | None = None,
               hidden_probes: Any = None) -> Any:
    stack = self._stack()
    if self.has_variable("params", "stack"):
      # Read, not declared again: a mismatch with xs is then the runner's
      # one-line error, not Flax's parameter-shape exception.
      params: Any = self.get_variable("params", "stack")
    else:
      params = self.param("stack", lambda key: stack.init(key, xs.shape[-1]))
    use_dropout = checks.use_dropout(self.dropout_rate, deterministic,
                                     has_key=self.has_rng("dropout"))
    key = self.make_rng("dropout") if use_dropout else None
    ys, carries = stack.apply(params, xs, initial_carry=initial_carry,
                              lengths=lengths, key=key,
                              deterministic=not use_dropout,
                              hidden_probes=hidden_probes,
                              time_major=self.time_major, unroll=self.unroll,
                              remat=self.remat, impl=self.impl,
                              **self._legacy_flags())
    return (ys, carries) if self.return_carry else ys
