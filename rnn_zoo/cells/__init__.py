"""Pure-function recurrent cells."""

from rnn_zoo.cells.base import HiddenCarry, LSTMCarry
from rnn_zoo.cells.cell import Cell
from rnn_zoo.cells.gru import GRU
from rnn_zoo.cells.lstm import LSTM
from rnn_zoo.cells.simple_rnn import SimpleRNN

CELLS = {"rnn": SimpleRNN, "lstm": LSTM, "gru": GRU}


def make_cell(name: str, hidden_size: int, **kwargs) -> Cell:
  """Builds a cell by name (``"rnn"``, ``"irnn"``, ``"lstm"``, ``"gru"``)."""
  if name == "irnn":
    return SimpleRNN.irnn(hidden_size, **kwargs)
  if name not in CELLS:
    raise ValueError(
        f"cell must be one of {sorted(CELLS) + ['irnn']}, got {name!r}")
  return CELLS[name](hidden_size, **kwargs)


__all__ = ["Cell", "SimpleRNN", "LSTM", "GRU", "HiddenCarry", "LSTMCarry",
           "CELLS", "make_cell"]
