"""The captioning glue: config -> data, vocabulary, model and loss.

``captioning(config)`` returns a :class:`Task`: the training loop's
:class:`~rnn_zoo.training.Workload` (host-side grain batches, a pure
function of the step), and what evaluation needs (model, vocabulary, the
sources of every split).
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp

from experiments import common
from rnn_zoo import checks
from rnn_zoo.data import captions as captions_lib
from rnn_zoo.errors import UserError
from rnn_zoo.models.captioner import Captioner
from rnn_zoo.training import loop
from rnn_zoo.training.loop import Workload

SHAPE_FIELDS = ("dataset", "data_config", "coco_train", "image_size", "max_length",
                "min_count", "mode", "cell", "hidden_size", "num_layers", "gru_variant",
                "embed_size", "channels", "attention_query", "init_state", "reinforce_reward",
                "local_features", "feed_context")
DEFAULT_DATA_DIR = os.path.join("~", ".cache", "rnn_zoo", "tfds")


@dataclasses.dataclass(frozen=True)
class Task:
  workload: Workload
  model: Captioner
  vocab: captions_lib.WordVocab
  sources: dict          # split -> random-access source
  info: dict


def _texts(source) -> list[str]:
  """Every caption of ``source`` (no image decoded where the source can
  say its captions alone, as COCO files can)."""
  out = []
  for i in range(len(source)):
    out += captions_lib.captions_of(source, i)[1]
  return out


def load_sources(config) -> tuple[dict, str]:
  """``({split: source}, description)`` for ``config.dataset``."""
  checks.choice("config.dataset", config.dataset, ("shapes", "coco", "coco_tfds"))
  if config.dataset == "shapes":
    if config.image_size != 64:
      raise UserError(f"config.image_size must be 64 for the shapes data, got "
                      f"{config.image_size}")
    data_dir = os.path.expanduser(config.data_dir or DEFAULT_DATA_DIR)
    sources = captions_lib.shape_captions(data_dir, config.data_config)
    return sources, f"shapes/{config.data_config} in {data_dir}"
  if config.dataset == "coco_tfds":
    sources = captions_lib.tfds_coco_captions(config.data_dir or None,
                                              image_size=config.image_size)
    return sources, f"tfds coco_captions (Karpathy splits) in {config.data_dir or '~'}"
  for field in ("coco_train", "coco_val", "coco_images"):
    if not config[field]:
      raise UserError(f"config.{field} is required with config.dataset='coco'")
  sources = {"train": captions_lib.load_coco_captions(
                 config.coco_train, config.coco_images, image_size=config.image_size),
             "validation": captions_lib.load_coco_captions(
                 config.coco_val, config.coco_images, image_size=config.image_size)}
  return sources, f"COCO-format {config.coco_train} / {config.coco_val}"


def eval_splits(config, sources: dict) -> list[str]:
  """The splits ``config.eval_splits`` names (COCO data: validation)."""
  if config.dataset != "shapes":
    return ["validation"]
  splits = [s.strip() for s in config.eval_splits.split(",") if s.strip()]
  for split in splits:
    if split not in sources:
      raise UserError(f"config.eval_splits names {split!r}; the data has "
                      f"{sorted(sources)}")
  if not splits:
    raise UserError("config.eval_splits must name at least one split, got ''")
  return splits


def make_model(config, vocab_size: int) -> Captioner:
  common.check_cell_fields(config)
  if config.cudnn:
    raise UserError("config.cudnn=True: the captioning decoder steps its LSTM one "
                    "token at a time (attention reads each step), and cuDNN runs "
                    "whole sequences; leave it False")
  for field in ("embed_size", "max_length", "image_size"):
    checks.positive_int(f"config.{field}", config[field])
  return Captioner(
      vocab_size=vocab_size, cell=common.make_cell(config, t_max=config.max_length + 1),
      mode=config.mode, num_layers=config.num_layers, embed_size=config.embed_size,
      encoder="cnn", image_size=config.image_size, channels=tuple(config.channels),
      alpha_c=config.alpha_c, entropy_bonus=config.entropy_bonus,
      expectation_prob=config.expectation_prob, baseline_decay=config.baseline_decay,
      attention_query=config.attention_query, entropy_penalty=config.entropy_penalty,
      init_state=config.init_state, local_features=config.local_features,
      reinforce_reward=config.reinforce_reward, feed_context=config.feed_context)


def test_model(config, model: Captioner) -> Captioner:
  """The model that decodes at test time: for hard attention with
  ``config.hard_decoding == "expectation"``, the expected context at every
  step instead of a sampled location."""
  checks.choice("config.hard_decoding", config.hard_decoding, ("sample", "expectation"))
  if model.mode == "hard" and config.hard_decoding == "expectation":
    return dataclasses.replace(model, expectation_prob=1.0)
  return model


def captioning(config) -> Task:
  checks.choice("config.mode", config.mode, ("plain", "soft", "hard"))
  checks.positive_int("config.batch_size", config.batch_size)
  checks.positive_int("config.min_count", config.min_count)
  checks.fraction("config.expectation_prob", config.expectation_prob)
  checks.fraction("config.baseline_decay", config.baseline_decay)
  checks.choice("config.hard_decoding", config.hard_decoding, ("sample", "expectation"))
  sources, description = load_sources(config)
  eval_splits(config, sources)  # fail before training, not after
  vocab = captions_lib.WordVocab.build(_texts(sources["train"]), config.min_count)
  model = make_model(config, vocab.size)
  B = config.batch_size
  train = captions_lib.batches(sources["train"], vocab, batch_size=B,
                               max_length=config.max_length, seed=config.seed)
  val_source = sources["validation"]
  if len(val_source) < B:
    raise UserError(f"the validation split has {len(val_source)} images, fewer than "
                    f"config.batch_size={B}")
  val = captions_lib.batches(val_source, vocab, batch_size=B, max_length=config.max_length,
                             seed=config.seed, train=False)
  n_val = len(val_source) // B   # full batches only (they shard over devices)
  hard = config.mode == "hard"
  to_go = hard and config.reinforce_reward == "to_go"
  baseline_shape = (config.max_length + 1,) if to_go else ()

  def strip(batch):
    return {"image": batch["image"], "tokens": batch["tokens"]}

  def loss_fn(params, batch, key, train, carry=None):
    # No key (a caller outside the loop): the loop's evaluation key.
    kw = {"key": key if key is not None else loop.eval_key()}
    if hard:   # the carry: the baseline on every example ([B], or [B, T] to go)
      kw["baseline"] = jnp.mean(carry, axis=0)
    loss, metrics = model.loss(params, batch["image"], batch["tokens"], **kw)
    if not hard:
      return loss, metrics
    reward = metrics.pop("reward_to_go") if to_go else metrics["reward"]
    decay = config.baseline_decay
    # The same moving average on every example's row ([T] to go: per step).
    reward = jnp.broadcast_to(jax.lax.stop_gradient(reward), carry.shape)
    new = decay * carry + (1.0 - decay) * reward
    return loss, (metrics, new if train else carry)

  def param_groups(grads):
    groups = {"decoder": grads["stack"], "embed_out": {k: grads[k] for k in ("embed", "out")},
              "init": {k: grads[k] for k in ("init_h", "init_c")}}
    if "cnn" in grads:
      groups["cnn"] = grads["cnn"]
    return groups

  info = {"data": description, "vocab_size": vocab.size,
          **{f"{k}_images": len(v) for k, v in sources.items()}}
  workload = Workload(
      init_params=lambda key: model.init(key=key), loss_fn=loss_fn,
      train_batch=lambda key, step: strip(train[int(step)]),
      eval_batch=lambda key, i: strip(val[int(i) % n_val]),
      shape_fields=SHAPE_FIELDS, vocab=vocab.to_json(), param_groups=param_groups,
      init_carry=((lambda batch: jnp.zeros((batch,) + baseline_shape, jnp.float32))
                  if hard else None),
      eval_batches=min(config.eval_batches, n_val), info=info, host_data=True)
  return Task(workload=workload, model=model, vocab=vocab, sources=sources, info=info)
