"""Config for the long-range tasks (adding, copy) with any cell of the zoo.

Launch:
  python -m experiments.long_range --workdir=/tmp/long_range \
      --config=experiments/long_range/config.py
  python -m experiments.long_range --workdir=/tmp/lr_smoke \
      --config=experiments/long_range/config.py:smoke --config.num_steps=100
Presets: "" (default, minutes on 2 CPU cores: LSTM on adding T=100),
"smoke" (seconds), "copy" (copy task, T=20), "digits" (pixel-by-pixel 8x8
digits, T=64; needs the digits extra).
"""

import ml_collections

from experiments import common
from rnn_zoo.errors import UserError

PRESETS = ("", "smoke", "copy", "digits")


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                  # Seeds init, dropout and the data stream.
  # Task.
  c.task = "adding"           # adding | copy | variable_copy | digits | permuted_digits | mnist | permuted_mnist
  c.seq_len = 100             # T: adding length / copy delay (pixel tasks: unused).
  c.data_dir = ""             # mnist: a folder with MNIST's four IDX files, or
                              # tfds's data dir with mnist prepared ("": tfds's default).
  # Model: cell, hidden_size, num_layers, dropout_rate, forget_bias, chrono,
  # gru_variant, recurrent_init (experiments/common.py).
  common.add_cell_fields(c)
  c.block = "none"            # none | residual_glu: each layer in a pre-norm residual block with a GLU (the LRU paper's).
  # Optimization, logging, checkpoints (experiments/common.py).
  common.add_training_fields(c)
  c.eval_batches = 8          # Held-out batches per evaluation.
  c.valid_fraction = 0.0      # Pixel tasks: this share of the training images
                              # becomes validation data (what a grid sweep
                              # chooses a learning rate by; 0: none). The
                              # synthetic tasks draw theirs from the generator.

  if preset == "smoke":
    c.seq_len = 20
    c.hidden_size = 16
    c.batch_size = 16
    c.num_steps = 40
    c.log_every = 10
    c.eval_every = 20
    c.eval_batches = 2
    c.checkpoint_every = 10
  elif preset == "copy":
    c.task = "copy"
    c.seq_len = 20
    c.num_steps = 3000
  elif preset == "digits":
    c.task = "digits"
    c.num_steps = 3000
    c.learning_rate = 3e-3
  elif preset not in (None, ""):
    raise UserError(f"unknown preset {preset!r}: use one of {list(PRESETS)}")
  return c
