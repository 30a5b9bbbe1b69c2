"""Pure-function recurrent cells."""

from typing import Any

from rnn_zoo.cells.attention import AttentionCarry, AttentionCell
from rnn_zoo.cells.base import HiddenCarry, LSTMCarry
from rnn_zoo.cells.cell import Cell, PointwiseCell, ProjectedCell
from rnn_zoo.cells.gru import GRU, GRUCho
from rnn_zoo.cells.linear import LRU, LinearRecurrentCell, MinGRU, MinLSTM
from rnn_zoo.cells.lstm import LSTM
from rnn_zoo.cells.memory import CoRNN, ExpRNN, IndRNN, OscillatorCarry
from rnn_zoo.cells.simple_rnn import SimpleRNN
from rnn_zoo.errors import UserError

CELLS = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU, "mingru": MinGRU,
         "minlstm": MinLSTM, "lru": LRU, "exprnn": ExpRNN, "indrnn": IndRNN,
         "cornn": CoRNN}
CELL_NAMES = ("rnn", "irnn", "lstm", "gru", "mingru", "minlstm", "lru", "exprnn",
              "indrnn", "cornn")


def make_cell(name: str, hidden_size: int, **kwargs: Any) -> Cell:
  """The one cell factory: a cell by name and its options.

  Args:
    name: ``"rnn"`` (:class:`SimpleRNN`), ``"irnn"`` (:meth:`SimpleRNN.irnn`),
      ``"lstm"``, ``"gru"`` (``variant="cho"`` gives a :class:`GRUCho`),
      ``"mingru"``, ``"minlstm"`` or ``"lru"`` (:class:`MinGRU`,
      :class:`MinLSTM`, :class:`LRU`: linear recurrences that
      :func:`rnn_zoo.unroll` runs with a parallel scan), ``"exprnn"``,
      ``"indrnn"`` or ``"cornn"`` (:class:`ExpRNN`, :class:`IndRNN`,
      :class:`CoRNN`: cells designed for long memory).
    hidden_size: H.
    **kwargs: the cell's own options (e.g. ``forget_bias`` for an LSTM); an
      option the cell does not have is an error naming it.

  Example:
    >>> import rnn_zoo as rz
    >>> rz.make_cell("lstm", 8, forget_bias=0.0) == rz.LSTM(8, forget_bias=0.0)
    True
  """
  if name not in CELL_NAMES:
    raise UserError(f"cell must be one of {list(CELL_NAMES)}, got {name!r}")
  try:
    if name == "irnn":
      return SimpleRNN.irnn(hidden_size, **kwargs)
    return CELLS[name](hidden_size, **kwargs)
  except TypeError as e:  # an unknown keyword
    raise UserError(f"cell {name!r} does not take the options "
                    f"{sorted(kwargs)}: {e}") from None


__all__ = ["Cell", "ProjectedCell", "PointwiseCell", "SimpleRNN", "LSTM", "GRU",
           "GRUCho", "LinearRecurrentCell", "MinGRU", "MinLSTM", "LRU", "ExpRNN", "IndRNN",
           "CoRNN", "OscillatorCarry", "AttentionCell", "AttentionCarry", "HiddenCarry", "LSTMCarry", "CELLS", "CELL_NAMES",
           "make_cell"]
