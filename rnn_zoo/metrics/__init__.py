"""Measurements of what the models produce: attention maps
(:mod:`~rnn_zoo.metrics.attention_maps`) and generated text
(:mod:`~rnn_zoo.metrics.text`)."""

from rnn_zoo.metrics import attention_maps
from rnn_zoo.metrics import text

__all__ = ["attention_maps", "text"]
