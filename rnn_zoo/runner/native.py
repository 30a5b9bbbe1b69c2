"""``impl="native"``: an ``rnn_zoo.LSTM`` or ``rnn_zoo.GRU`` through the C++
CPU kernels of :mod:`rnn_zoo.native`, in the caller's layout (no
transposes): the GRU's projection ``x W_ih`` here, the LSTM's inside its
kernel; the bias inside the kernel. No lengths or probes (the selection
rules them out), so reversal is a plain flip."""

from __future__ import annotations

import jax.numpy as jnp

from rnn_zoo import native as native_kernels
from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Carry, Cell, Params
from rnn_zoo.runner.inputs import Prepared, RunResult
from rnn_zoo.runner.select import native_kind


def run(cell: Cell, params: Params, prep: Prepared) -> RunResult:
  """The runner's contract (see :mod:`rnn_zoo.runner`)."""
  xs, carry0 = prep.xs, prep.carry0
  t_axis = 0 if prep.time_major else 1
  if prep.reverse:
    xs = jnp.flip(xs, t_axis)
  if native_kind(cell) == "lstm":
    ys, h, c = native_kernels.lstm_layer(
        params["w_ih"], params["w_hh"], params["b"], xs, carry0.h, carry0.c,
        not prep.time_major)
    carry: Carry = base.LSTMCarry(h=h, c=c)
  else:
    xp = base.matmul(xs, params["w_ih"], cell.dtype)
    ys, h = native_kernels.gru_recurrence(
        params["w_hh"], params["b"], params["b_hn"], xp, carry0.h,
        not prep.time_major)
    carry = base.HiddenCarry(h)
  if prep.reverse:
    ys = jnp.flip(ys, t_axis)
  return ys, carry, None
