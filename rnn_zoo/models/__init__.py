"""Models built from the zoo's modules."""

from rnn_zoo.models.sequence import SequenceModel

__all__ = ["SequenceModel"]
