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


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                  # Seeds init, dropout and the data stream.
  # Task.
  c.task = "adding"           # adding | copy | variable_copy | digits |
                              # permuted_digits | mnist | permuted_mnist
  c.seq_len = 100             # T: adding length / copy delay (pixel tasks: unused).
  # Model.
  c.cell = "lstm"             # rnn | irnn | lstm | gru
  c.hidden_size = 128         # H of every layer.
  c.num_layers = 1            # Stacked recurrent layers.
  c.dropout_rate = 0.0        # Dropout between layers.
  c.forget_bias = 1.0         # LSTM forget-gate bias at init.
  c.chrono = False            # LSTM chrono init with T_max = seq_len.
  c.gru_variant = "cudnn"     # GRU: cudnn (reset after matmul) | cho.
  c.recurrent_init = "uniform"  # rnn: uniform | orthogonal | identity | glorot_uniform.
  # Optimization.
  c.batch_size = 64           # Global batch (divides over all devices).
  c.num_steps = 4000          # Training steps.
  c.optimizer = "adam"        # sgd | momentum | rmsprop | adam | adamw | adagrad
  c.learning_rate = 1e-3      # Peak learning rate.
  c.schedule = "constant"     # constant | cosine | step
  c.warmup_steps = 0          # Linear warm-up steps.
  c.decay_every = 1000        # step schedule: decay period.
  c.decay_factor = 0.5        # step schedule: factor per period.
  c.momentum = 0.9            # momentum / rmsprop momentum (0: none).
  c.weight_decay = 0.0        # adamw weight decay.
  c.clip_norm = 1.0           # Clip by global norm (0: off).
  c.clip_value = 0.0          # Clip each entry to [-v, v] (0: off).
  c.nonfinite = "stop"        # NaN/Inf loss or grad: stop | skip (the update).
  # Logging, evaluation, checkpoints.
  c.log_every = 100           # Steps between metric logs.
  c.eval_every = 1000         # Steps between evaluations.
  c.eval_batches = 8          # Held-out batches per evaluation.
  c.checkpoint_every = 500    # Steps between checkpoints.
  c.keep_checkpoints = 3      # Checkpoints kept.
  c.async_checkpoint = True   # Save in the background.

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
    raise ValueError(
        f"unknown preset {preset!r}: use '', 'smoke', 'copy' or 'digits'")
  return c
