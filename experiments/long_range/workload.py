"""The long-range tasks' glue: config -> model, data and loss for the loop.

``long_range(config)``: the adding and copy tasks (and pixel-by-pixel
digits/MNIST) with any cell of the zoo. Config fields read here (besides the
loop's): task, seq_len, and the cell block (experiments/common.py).
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import optax

from experiments import common
from rnn_zoo import checks
from rnn_zoo.data import pixels
from rnn_zoo.data import synthetic
from rnn_zoo.errors import UserError
from rnn_zoo.models.sequence import BLOCKS, SequenceModel
from rnn_zoo.training.loop import Workload

TASKS = ("adding", "copy", "variable_copy", "digits", "permuted_digits",
         "mnist", "permuted_mnist")
MNIST_TASKS = ("mnist", "permuted_mnist")
PIXEL_TASKS = ("digits", "permuted_digits") + MNIST_TASKS
LONG_RANGE_SHAPE_FIELDS = ("task", "seq_len", "cell", "hidden_size", "num_layers",
                           "gru_variant", "block")


def _sequence_model_hooks(config, model: SequenceModel) -> dict:
  """The Workload hooks shared by every ``SequenceModel`` workload: gradient
  groups, the gradient-flow diagnostics (the model's own hook) and the
  config fields that change only the initial params."""

  def param_groups(grads):
    g = grads["params"]
    if config.block == "residual_glu":  # the recurrent layers, and the rest of the blocks
      return {"rnn": {k: v for k, v in g.items() if k.startswith("rnn_")},
              "blocks": {k: v for k, v in g.items()
                         if k.startswith(("norm_", "glu_", "encoder"))},
              "head": g["head"]}
    return {"rnn": g["rnn"], "head": g["head"]}

  return {"param_groups": param_groups, "diagnostics": model.diagnostics(),
          "init_only_fields": common.INIT_ONLY_CELL_FIELDS}


@functools.lru_cache(maxsize=2)
def _pixel_data(task: str, data_dir: str) -> dict:
  """The task's images, read once per process: a grid group builds one
  workload per run, and MNIST is 60,000 images."""
  permuted = task.startswith("permuted_")
  if task.endswith("digits"):
    return pixels.load_digits(permuted)
  return pixels.load_mnist(permuted, data_dir or None)


def _pixel_classification(config, cell) -> Workload:
  """Pixel-by-pixel classification (many-to-one); ``seq_len`` is the image's
  pixel count and is not read."""
  data = _pixel_data(config.task, config.data_dir)
  train_x, train_y = jnp.asarray(data["train_x"]), jnp.asarray(data["train_y"])
  test_x, test_y = jnp.asarray(data["test_x"]), jnp.asarray(data["test_y"])
  valid_batch = None
  if config.valid_fraction:
    # The last images of the training split, never trained on.
    n_valid = max(1, round(config.valid_fraction * len(train_y)))
    valid_x, valid_y = train_x[-n_valid:], train_y[-n_valid:]
    train_x, train_y = train_x[:-n_valid], train_y[:-n_valid]
    valid_batch = lambda key, i: pixels.sample_batch(key, valid_x, valid_y, B)
  model = SequenceModel(cell, output_size=10, num_layers=config.num_layers,
                        dropout_rate=config.dropout_rate, readout="last",
                        block=config.block, cudnn=config.cudnn)
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
      valid_batch=valid_batch,
      shape_fields=("task", "cell", "hidden_size", "num_layers", "gru_variant", "block"),
      **_sequence_model_hooks(config, model))


def long_range(config) -> Workload:
  """Adding (many-to-one regression) or copy (many-to-many classification)."""
  checks.choice("config.task", config.task, TASKS)
  for field in ("seq_len", "batch_size"):
    checks.positive_int(f"config.{field}", config[field])
  common.check_cell_fields(config)
  checks.choice("config.block", config.block, BLOCKS)
  if config.task == "adding" and config.seq_len < 2:
    raise UserError(f"config.seq_len must be >= 2 for adding, got {config.seq_len}")
  checks.fraction("config.valid_fraction", config.valid_fraction)
  if config.valid_fraction and config.task not in PIXEL_TASKS:
    raise UserError(f"config.valid_fraction is read by the pixel tasks only (the "
                    f"synthetic ones draw validation batches from the generator); "
                    f"task {config.task!r} got valid_fraction={config.valid_fraction!r}")
  if config.data_dir and config.task not in MNIST_TASKS:
    raise UserError(f"config.data_dir is read by the mnist tasks only; task "
                    f"{config.task!r} got data_dir={config.data_dir!r}")
  cell = common.make_cell(config)
  T, B = config.seq_len, config.batch_size
  if config.task in PIXEL_TASKS:
    return _pixel_classification(config, cell)
  if config.task == "adding":
    model = SequenceModel(cell, output_size=1, num_layers=config.num_layers,
                          dropout_rate=config.dropout_rate, readout="last",
                          block=config.block, cudnn=config.cudnn)
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
                          vocab_size=synthetic.COPY_VOCAB, block=config.block,
                          cudnn=config.cudnn)
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
      valid_batch=make_batch,  # fresh draws, from keys of their own
      shape_fields=LONG_RANGE_SHAPE_FIELDS, **_sequence_model_hooks(config, model))
