"""Data: synthetic long-range tasks generated in jit."""

from rnn_zoo.data.synthetic import (ADDING_BASELINE_MSE, COPY_VOCAB, adding_batch,
                                    copy_baseline_loss, copy_batch)

__all__ = ["adding_batch", "copy_batch", "copy_baseline_loss",
           "ADDING_BASELINE_MSE", "COPY_VOCAB"]
