"""Data: synthetic long-range tasks generated in jit (``synthetic``),
pixel-by-pixel images (``pixels``), character-level text (``text``), and
for captioning synthetic shape scenes (``shapes``) with the word vocabulary,
the tfds builder, COCO-format files and grain pipelines (``captions``)."""

from rnn_zoo.data import captions
from rnn_zoo.data import pixels
from rnn_zoo.data import shapes
from rnn_zoo.data import text

from rnn_zoo.data.synthetic import (ADDING_BASELINE_MSE, COPY_VOCAB, adding_batch,
                                    copy_baseline_loss, copy_batch)

__all__ = ["captions", "pixels", "shapes", "text", "adding_batch", "copy_batch", "copy_baseline_loss",
           "ADDING_BASELINE_MSE", "COPY_VOCAB"]
