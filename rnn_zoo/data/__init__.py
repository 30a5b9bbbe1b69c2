"""Data: synthetic long-range tasks generated in jit (``synthetic``),
pixel-by-pixel images (``pixels``) and character-level text (``text``)."""

from rnn_zoo.data import pixels
from rnn_zoo.data import text

from rnn_zoo.data.synthetic import (ADDING_BASELINE_MSE, COPY_VOCAB, adding_batch,
                                    copy_baseline_loss, copy_batch)

__all__ = ["pixels", "text","adding_batch", "copy_batch", "copy_baseline_loss",
           "ADDING_BASELINE_MSE", "COPY_VOCAB"]
