"""Flax linen modules built on the zoo's cells and runner, and encoders."""

from rnn_zoo.nn.encoders import ConvEncoder
from rnn_zoo.nn.recurrent import RNN

__all__ = ["RNN", "ConvEncoder"]
