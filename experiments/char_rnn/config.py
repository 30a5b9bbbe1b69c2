"""Config for the character-level language model (char-rnn).

Launch:
  python -m experiments.char_rnn --workdir=/tmp/char_rnn          # the default preset
  python -m experiments.char_rnn --workdir=/tmp/cr_smoke \
      --config=experiments/char_rnn/config.py:smoke
  python -m experiments.char_rnn --workdir=/tmp/cr_file --config.corpus=input.txt
  python -m experiments.char_rnn.sample --workdir=/tmp/char_rnn --prime="The " \
      --temperature=0.8
Presets: "" (default: 2-layer LSTM-128 on the embedded 1 MB "stdlib" corpus;
about 15 minutes on 2 CPU cores), "karpathy" (char-rnn's own settings:
RMSprop 2e-3, batch 50, sequence 50, 50 epochs-worth of steps), "smoke"
(seconds, a tiny model on the first 20,000 characters).
"""

import ml_collections

from experiments import common
from rnn_zoo.errors import UserError

PRESETS = ("", "smoke", "karpathy")


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                  # Seeds init, dropout and sampling.
  # Data.
  c.corpus = "stdlib"         # stdlib | pydoc_topics | tiny_shakespeare | path/to/file.txt
  c.max_chars = 0             # Keep the first max_chars characters (0: all).
  c.val_fraction = 0.05       # 5% of the text is the validation split:
  c.val_block = 10_000        # every 20th block of this many characters (0: the last 5%).
  c.seq_len = 50              # Truncated-BPTT window (characters per step).
  c.stateful = True           # Carry the hidden state from window to window.
  # Model (cell block: experiments/common.py).
  common.add_cell_fields(c, num_layers=2)
  c.embed_size = 0            # Character embedding size (0: one-hot inputs).
  # Optimization, logging, checkpoints (experiments/common.py).
  common.add_training_fields(
      c, num_steps=7000, learning_rate=3e-3, schedule="cosine", warmup_steps=100,
      decay_factor=0.97, momentum=0.0, clip_norm=5.0)
  # Sampling during training.
  c.sample_every = 1000       # Steps between printed samples (0: never).
  c.sample_length = 200       # Characters per sample.
  c.sample_temperature = 0.8  # Softmax temperature (0: argmax).
  c.sample_top_k = 0          # Sample among the k likeliest (0: all).
  c.sample_prime = "The "     # Start string.

  if preset == "smoke":
    c.max_chars = 20_000
    c.val_fraction = 0.1
    c.val_block = 1_000
    c.seq_len = 20
    c.hidden_size = 32
    c.batch_size = 8
    c.num_steps = 30
    c.warmup_steps = 0
    c.log_every = 10
    c.eval_every = 15
    c.sample_every = 15
    c.sample_length = 40
    c.checkpoint_every = 10
  elif preset == "karpathy":
    c.batch_size = 50
    c.optimizer = "rmsprop"
    c.learning_rate = 2e-3
    c.schedule = "constant"
    c.warmup_steps = 0
    c.num_steps = 20000
  elif preset not in (None, ""):
    raise UserError(f"unknown preset {preset!r}: use one of {list(PRESETS)}")
  return c
