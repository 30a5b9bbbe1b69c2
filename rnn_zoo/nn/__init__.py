"""Flax linen modules built on the zoo's cells and runner."""

from rnn_zoo.nn.recurrent import RNN

__all__ = ["RNN"]
