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
  # Model.
  c.cell = "lstm"             # rnn | irnn | lstm | gru
  c.hidden_size = 128         # H of every layer.
  c.num_layers = 2            # Stacked recurrent layers.
  c.embed_size = 0            # Character embedding size (0: one-hot inputs).
  c.dropout_rate = 0.0        # Dropout between layers.
  c.forget_bias = 1.0         # LSTM forget-gate bias at init.
  c.chrono = False            # LSTM chrono init (T_max = seq_len).
  c.gru_variant = "cudnn"     # GRU: cudnn | cho.
  c.recurrent_init = "uniform"  # rnn: uniform | orthogonal | identity | glorot_uniform.
  # Optimization.
  c.batch_size = 64           # Parallel streams (divides over all devices).
  c.num_steps = 7000          # Training steps (about 13 minutes on 2 CPU cores).
  c.optimizer = "adam"        # sgd | momentum | rmsprop | adam | adamw | adagrad
  c.learning_rate = 3e-3      # Peak learning rate.
  c.schedule = "cosine"       # constant | cosine | step
  c.warmup_steps = 100        # Linear warm-up steps.
  c.decay_every = 1000        # step schedule: decay period.
  c.decay_factor = 0.97       # step schedule: factor per period.
  c.momentum = 0.0            # momentum / rmsprop momentum (0: none).
  c.weight_decay = 0.0        # adamw weight decay.
  c.clip_norm = 5.0           # Clip by global norm (0: off).
  c.clip_value = 0.0          # Clip each entry to [-v, v] (0: off).
  c.nonfinite = "stop"        # NaN/Inf loss or grad: stop | skip (the update).
  # Sampling during training.
  c.sample_every = 1000       # Steps between printed samples (0: never).
  c.sample_length = 200       # Characters per sample.
  c.sample_temperature = 0.8  # Softmax temperature (0: argmax).
  c.sample_top_k = 0          # Sample among the k likeliest (0: all).
  c.sample_prime = "The "     # Start string.
  # Logging, evaluation, checkpoints.
  c.log_every = 100           # Steps between metric logs.
  c.eval_every = 1000         # Steps between validations (on the whole split).
  c.checkpoint_every = 500    # Steps between checkpoints.
  c.keep_checkpoints = 3      # Checkpoints kept.
  c.async_checkpoint = True   # Save in the background.

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
    raise ValueError(f"unknown preset {preset!r}: use '', 'smoke' or 'karpathy'")
  return c
