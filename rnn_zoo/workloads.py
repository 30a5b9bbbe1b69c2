"""Workloads: a config -> model, data and loss for the training loop.

``long_range(config)``: the adding and copy tasks with any cell of the zoo.
Config fields read here (besides the loop's): task, seq_len, cell,
hidden_size, num_layers, dropout_rate, forget_bias, chrono, gru_variant,
recurrent_init.

``char_rnn(config)``: a character-level language model trained with
char-rnn's stateful truncated BPTT (see :func:`char_rnn`).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_zoo import cells as cells_lib
from rnn_zoo import decoding
from rnn_zoo.data import pixels
from rnn_zoo.data import synthetic
from rnn_zoo.data import text as text_lib
from rnn_zoo.models.char_lm import CharLM
from rnn_zoo.models.sequence import SequenceModel
from rnn_zoo.training.loop import Workload

TASKS = ("adding", "copy", "variable_copy", "digits", "permuted_digits",
         "mnist", "permuted_mnist")
PIXEL_TASKS = ("digits", "permuted_digits", "mnist", "permuted_mnist")
CELL_NAMES = ("rnn", "irnn", "lstm", "gru")
LONG_RANGE_SHAPE_FIELDS = ("task", "seq_len", "cell", "hidden_size", "num_layers",
                           "gru_variant")


def _positive(config, field):
  v = config[field]
  if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
    raise ValueError(f"config.{field} must be a positive int, got {v!r}")


def make_cell_from_config(config) -> cells_lib.Cell:
  """The cell named by ``config.cell`` with its options from the config."""
  if config.cell not in CELL_NAMES:
    raise ValueError(f"config.cell must be one of {list(CELL_NAMES)}, got {config.cell!r}")
  _positive(config, "hidden_size")
  H = config.hidden_size
  if config.cell == "lstm":
    chrono = config.seq_len if config.chrono else None
    return cells_lib.LSTM(H, forget_bias=config.forget_bias, chrono_t_max=chrono)
  if config.cell == "gru":
    if config.gru_variant not in ("cudnn", "cho"):
      raise ValueError("config.gru_variant must be one of ['cudnn', 'cho'], "
                       f"got {config.gru_variant!r}")
    return cells_lib.GRU(H, variant=config.gru_variant)
  if config.cell == "irnn":
    return cells_lib.SimpleRNN.irnn(H)
  if config.recurrent_init not in ("uniform", "orthogonal", "identity", "glorot_uniform"):
    raise ValueError("config.recurrent_init must be one of ['uniform', 'orthogonal', "
                     f"'identity', 'glorot_uniform'], got {config.recurrent_init!r}")
  return cells_lib.SimpleRNN(H, recurrent_init=config.recurrent_init)


def _sequence_model_hooks(config, cell) -> dict:
  """The Workload hooks shared by every ``SequenceModel`` workload: gradient
  groups, probe shapes, and the recurrent layers' (cell, params)."""

  def param_groups(grads):
    return {"rnn": grads["params"]["rnn"], "head": grads["params"]["head"]}

  def hidden_shapes(batch):
    b, t = batch["inputs"].shape[:2]
    return ((b, t, config.hidden_size),) * config.num_layers

  def rnn_params(params):
    stack = params["params"]["rnn"]["stack"]
    return tuple((cell, stack[f"layer_{i}"]) for i in range(config.num_layers))

  return {"param_groups": param_groups, "hidden_shapes": hidden_shapes,
          "rnn_params": rnn_params}


def _pixel_classification(config, cell) -> Workload:
  """Pixel-by-pixel classification (many-to-one); ``seq_len`` is the image's
  pixel count and is not read."""
  permuted = config.task.startswith("permuted_")
  if config.task.endswith("digits"):
    data = pixels.load_digits(permuted)
  else:
    data = pixels.load_mnist(permuted)
  train_x, train_y = jnp.asarray(data["train_x"]), jnp.asarray(data["train_y"])
  test_x, test_y = jnp.asarray(data["test_x"]), jnp.asarray(data["test_y"])
  model = SequenceModel(cell, output_size=10, num_layers=config.num_layers,
                        dropout_rate=config.dropout_rate, readout="last")
  B = config.batch_size

  def loss_fn(params, batch, key, train, hidden_probes=None):
    logits = model.apply(params, batch["inputs"], deterministic=not train,
                         rngs={"dropout": key} if train else {},
                         hidden_probes=hidden_probes)
    loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
        logits, batch["targets"]))
    acc = jnp.mean(jnp.argmax(logits, -1) == batch["targets"])
    return loss, {"accuracy": acc}

  return Workload(
      init_params=lambda key: model.init(key, train_x[:1]),
      loss_fn=loss_fn,
      train_batch=lambda key, step: pixels.sample_batch(key, train_x, train_y, B),
      eval_batch=lambda key, i: pixels.sample_batch(key, test_x, test_y, B),
      shape_fields=("task", "cell", "hidden_size", "num_layers", "gru_variant"),
      **_sequence_model_hooks(config, cell))


def long_range(config) -> Workload:
  """Adding (many-to-one regression) or copy (many-to-many classification)."""
  if config.task not in TASKS:
    raise ValueError(f"config.task must be one of {list(TASKS)}, got {config.task!r}")
  for field in ("seq_len", "num_layers", "batch_size"):
    _positive(config, field)
  if not 0.0 <= config.dropout_rate < 1.0:
    raise ValueError(f"config.dropout_rate must be in [0, 1), got {config.dropout_rate!r}")
  if config.task == "adding" and config.seq_len < 2:
    raise ValueError(f"config.seq_len must be >= 2 for adding, got {config.seq_len}")
  cell = make_cell_from_config(config)
  T, B = config.seq_len, config.batch_size
  if config.task in PIXEL_TASKS:
    return _pixel_classification(config, cell)
  if config.task == "adding":
    model = SequenceModel(cell, output_size=1, num_layers=config.num_layers,
                          dropout_rate=config.dropout_rate, readout="last")
    make_batch = lambda key, step: synthetic.adding_batch(key, B, T)
    example = jnp.zeros((1, T, 2))
    baseline = synthetic.ADDING_BASELINE_MSE["le"]

    def loss_fn(params, batch, key, train, hidden_probes=None):
      pred = model.apply(params, batch["inputs"], deterministic=not train,
                         rngs={"dropout": key} if train else {},
                         hidden_probes=hidden_probes)[:, 0]
      loss = jnp.mean((pred - batch["targets"]) ** 2)
      return loss, {"loss_over_baseline": loss / baseline}
  else:
    variable = config.task == "variable_copy"
    model = SequenceModel(cell, output_size=synthetic.COPY_VOCAB,
                          num_layers=config.num_layers,
                          dropout_rate=config.dropout_rate, readout="all",
                          vocab_size=synthetic.COPY_VOCAB)
    make_batch = lambda key, step: synthetic.copy_batch(key, B, T, variable=variable)
    example = jnp.zeros((1, T + 2 * synthetic.COPY_LENGTH), jnp.int32)
    baseline = synthetic.copy_baseline_loss(T)

    def loss_fn(params, batch, key, train, hidden_probes=None):
      logits = model.apply(params, batch["inputs"], deterministic=not train,
                           rngs={"dropout": key} if train else {},
                           hidden_probes=hidden_probes)
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
      loss = jnp.mean(ce)
      recall = batch["targets"] > 0
      acc = jnp.sum((jnp.argmax(logits, -1) == batch["targets"]) & recall) / jnp.sum(recall)
      return loss, {"loss_over_baseline": loss / baseline, "recall_accuracy": acc}

  return Workload(
      init_params=lambda key: model.init(key, example),
      loss_fn=loss_fn, train_batch=make_batch, eval_batch=make_batch,
      shape_fields=LONG_RANGE_SHAPE_FIELDS, **_sequence_model_hooks(config, cell))


CHAR_RNN_SHAPE_FIELDS = ("corpus", "max_chars", "val_fraction", "val_block", "cell", "hidden_size",
                         "num_layers", "embed_size", "gru_variant", "batch_size")


def make_char_lm(config, vocab_size: int) -> CharLM:
  """The char-rnn model a config describes (``embed_size`` 0: one-hot)."""
  _positive(config, "num_layers")
  if isinstance(config.embed_size, bool) or not isinstance(config.embed_size, int) \
      or config.embed_size < 0:
    raise ValueError(f"config.embed_size must be an int >= 0 (0: one-hot), "
                     f"got {config.embed_size!r}")
  if not 0.0 <= config.dropout_rate < 1.0:
    raise ValueError(f"config.dropout_rate must be in [0, 1), got {config.dropout_rate!r}")
  return CharLM(vocab_size=vocab_size, cell=make_cell_from_config(config),
                num_layers=config.num_layers, embed_size=config.embed_size or None,
                dropout_rate=config.dropout_rate)


def check_prime(prime) -> None:
  if not isinstance(prime, str) or not prime:
    raise ValueError(f"prime must be a non-empty string, got {prime!r}")


def make_sampler(lm: CharLM, vocab: text_lib.Vocab, *, length: int,
                 temperature: float, top_k: int = 0):
  """``(params, prime: str, key, num_samples=1) -> list[str]``: the prime's
  continuations, generated in one jit-compiled scan per call. ``<unk>`` is
  never generated (its logit is masked): it stands for characters the
  training text lacks, so it has no spelling to print."""
  decoding.check_options(temperature, top_k, length)

  def step(params, carry, tokens):
    carry, logits = lm.step(params, carry, tokens)
    return carry, logits.at[:, 0].set(-jnp.inf)

  @jax.jit
  def gen(params, prompt, key):
    carry = lm.initial_carry(prompt.shape[0])
    return decoding.generate(step, params, carry, prompt, length=length, key=key,
                             temperature=temperature, top_k=top_k)[0]

  def sample(params, prime, key, num_samples=1):
    check_prime(prime)
    prompt = jnp.asarray(np.tile(vocab.encode(prime)[None], (num_samples, 1)))
    toks = np.asarray(gen(params, prompt, key))
    return [vocab.decode(row) for row in toks]
  return sample


def _stream_split(ids, config, name: str, n_chars: int):
  try:
    return text_lib.stream_windows(ids, config.batch_size, config.seq_len)
  except ValueError:
    raise ValueError(
        f"the {name} split ({n_chars:,} characters; config.val_fraction="
        f"{config.val_fraction}) is too short for config.batch_size="
        f"{config.batch_size} streams of at least one config.seq_len="
        f"{config.seq_len} window: use a longer corpus or smaller values") from None


def char_rnn(config) -> Workload:
  """Character-level language modelling as char-rnn does it.

  The corpus (``config.corpus``: an embedded name or a file; cut to
  ``config.max_chars`` when > 0) is split into train and ``val_fraction``
  for validation (every k-th block of ``val_block`` characters, or the tail
  when ``val_block`` is 0: :func:`rnn_zoo.data.text.split`); the vocabulary is built from the training
  text (``<unk>`` for the rest) and saved beside every checkpoint. Each split
  is cut into ``batch_size`` contiguous streams; batch s is window
  ``s mod n`` of every stream. With ``config.stateful`` the final carry of a
  window is the initial carry of the next (the gradient stopped there), reset
  to zeros when the streams start over; otherwise every window starts from
  zeros. Loss: cross-entropy in nats/char, also logged as bits/char.
  """
  for field in ("seq_len", "batch_size"):
    _positive(config, field)
  text, description = text_lib.get_corpus(config.corpus, config.max_chars)
  train_text, val_text = text_lib.split(text, config.val_fraction, config.val_block)
  vocab = text_lib.Vocab.build(train_text)
  tr_in, tr_tg = _stream_split(vocab.encode(train_text), config, "training", len(train_text))
  va_in, va_tg = _stream_split(vocab.encode(val_text), config, "validation", len(val_text))
  lm = make_char_lm(config, vocab.size)
  B, stateful = config.batch_size, bool(config.stateful)
  n_train, n_val = tr_in.shape[0], va_in.shape[0]
  tr_in, tr_tg, va_in, va_tg = map(jnp.asarray, (tr_in, tr_tg, va_in, va_tg))
  sampler = make_sampler(lm, vocab, length=config.sample_length,
                         temperature=config.sample_temperature,
                         top_k=config.sample_top_k)
  check_prime(config.sample_prime)

  def windows(inputs, targets, k, n):
    k = k % n
    reset = (k == 0) | (not stateful)
    return {"inputs": inputs[k], "targets": targets[k],
            "reset": jnp.broadcast_to(reset, (B,))}

  def loss_fn(params, batch, key, train, carry):
    reset = batch["reset"]
    carry = jax.tree.map(
        lambda c: jnp.where(reset.reshape((-1,) + (1,) * (c.ndim - 1)), 0, c), carry)
    logits, carry = lm.apply(params, batch["inputs"], carry, key=key,
                             deterministic=not train)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    loss = jnp.mean(ce)
    acc = jnp.mean(jnp.argmax(logits, -1) == batch["targets"])
    return loss, ({"nats_per_char": loss, "bits_per_char": loss / math.log(2),
                   "accuracy": acc}, carry)

  def param_groups(grads):
    return {"embed_head": {k: v for k, v in grads.items() if k != "stack"},
            **{f"layer_{i}": grads["stack"][f"layer_{i}"]
               for i in range(config.num_layers)}}

  return Workload(
      init_params=lm.init,
      loss_fn=loss_fn,
      train_batch=lambda key, step: windows(tr_in, tr_tg, step, n_train),
      eval_batch=lambda key, i: windows(va_in, va_tg, i, n_val),
      shape_fields=CHAR_RNN_SHAPE_FIELDS,
      vocab=vocab.to_json(),
      param_groups=param_groups,
      init_carry=lm.initial_carry,
      eval_batches=n_val,
      sample=lambda params, key: sampler(params, config.sample_prime, key)[0],
      info={"corpus": description, "train_chars": len(train_text),
            "val_chars": len(val_text), "vocab_size": vocab.size,
            "train_windows_per_epoch": n_train, "val_windows": n_val})
