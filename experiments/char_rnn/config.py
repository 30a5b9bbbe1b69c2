"""Config for the character-level language model (char-rnn).

Launch:
  python -m experiments.char_rnn --workdir=/tmp/char_rnn          # the default preset
  python -m experiments.char_rnn --workdir=/tmp/cr_smoke \
      --config=experiments/char_rnn/config.py:smoke
  python -m experiments.char_rnn --workdir=/tmp/cr_file --config.corpus=input.txt
  python -m experiments.char_rnn.sample --workdir=/tmp/char_rnn --prime="The " \
      --temperature=0.8
Presets:
  "" (default): a 2-layer LSTM-256 with dropout 0.2 on the embedded 1 MB
     "stdlib" corpus, trained for 14 minutes of wall clock: the steps are
     chosen at the start from this machine's measured step rate
     (time_budget_minutes; at most num_steps = 20,000) and the cosine
     schedule is sized from them, so a slower machine trains fewer steps in
     the same time instead of running longer. Why: LSTM-128 for a fixed
     7,000 steps underfit held-out prose (1.577 nats/char, training 1.517)
     and took 2.3 of its 15 minutes on a fast machine; twice the width needs
     dropout (without it the 465 KB pydoc_topics text overfit by step 4,000).
     Measured on two corpora in docs/char_lm.md.
  "karpathy": char-rnn's own settings (2-layer LSTM-128, RMSprop 2e-3,
     batch 50, sequence 50, 20,000 steps).
  "smoke": seconds, a tiny model on the first 20,000 characters.
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
  common.add_cell_fields(c, num_layers=2, hidden_size=256, dropout_rate=0.2)
  c.embed_size = 0            # Character embedding size (0: one-hot inputs).
  # Optimization, logging, checkpoints (experiments/common.py).
  common.add_training_fields(
      c, num_steps=20_000, time_budget_minutes=14.0, learning_rate=3e-3,
      schedule="cosine", warmup_steps=100, decay_factor=0.97, momentum=0.0,
      clip_norm=5.0)
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
    c.dropout_rate = 0.0
    c.batch_size = 8
    c.num_steps = 30
    c.time_budget_minutes = 0.0
    c.warmup_steps = 0
    c.log_every = 10
    c.eval_every = 15
    c.sample_every = 15
    c.sample_length = 40
    c.checkpoint_every = 10
  elif preset == "karpathy":
    c.hidden_size = 128
    c.dropout_rate = 0.0
    c.time_budget_minutes = 0.0
    c.batch_size = 50
    c.optimizer = "rmsprop"
    c.learning_rate = 2e-3
    c.schedule = "constant"
    c.warmup_steps = 0
    c.num_steps = 20000
  elif preset not in (None, ""):
    raise UserError(f"unknown preset {preset!r}: use one of {list(PRESETS)}")
  return c
