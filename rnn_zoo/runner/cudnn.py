"""``impl="cudnn"``: an ``rnn_zoo.LSTM`` through cuDNN (:mod:`rnn_zoo.cudnn`),
time-major, with lengths and reversal within them."""

from __future__ import annotations

from rnn_zoo import cudnn as cudnn_kernels
from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Cell, Params
from rnn_zoo.runner.inputs import Prepared, RunResult


def run(cell: Cell, params: Params, prep: Prepared) -> RunResult:
  """The runner's contract (see :mod:`rnn_zoo.runner`)."""
  del cell
  xs_t = prep.in_run_order(prep.inputs_t())
  ys_t, h, c = cudnn_kernels.lstm(params, xs_t, prep.carry0.h, prep.carry0.c,
                                  prep.lengths)
  ys = prep.finish(ys_t)
  return ys, base.LSTMCarry(h=h, c=c), None
