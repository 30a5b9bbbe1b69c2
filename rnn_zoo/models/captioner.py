"""Image captioning: CNN features -> recurrent decoder -> words.

Three decoders on one interface (pure functions, like :class:`CharLM`):

* ``"plain"`` — Show and Tell (Vinyals et al. 2015; cs231n's
  CaptioningRNN): the image's mean feature -> affine -> initial state; word
  embedding; the stack of zoo cells; affine to the vocabulary.
* ``"soft"`` — Show, Attend and Tell (Xu et al. 2015): the first layer is
  :class:`rnn_zoo.AttentionCell` over the spatial features, the output layer
  reads ``[h_t, z_t]``; the doubly stochastic penalty weighs ``alpha_c``.
* ``"hard"`` — the same with one location sampled per step, trained with
  REINFORCE (reward ``log p(caption | locations)``, a moving-average
  baseline, an entropy bonus).

Images are encoded by :class:`rnn_zoo.nn.encoders.ConvEncoder` trained end
to end (``encoder="cnn"``), or given as precomputed features
(``encoder="features"``: ``[B, D]`` vectors or ``[B, L, D]`` maps, as COCO
feature files ship them).

Captions are int ``[B, T + 1]``: ``<START>`` w_1 ... w_n ``<END>`` ``<NULL>``
padding; the decoder reads ``captions[:, :-1]`` and predicts
``captions[:, 1:]``; the loss is masked where the target is ``<NULL>``
(summed over time, averaged over the batch, as in cs231n).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_zoo import checks
from rnn_zoo.cells import base
from rnn_zoo.cells.attention import AttentionCell
from rnn_zoo.cells.cell import Cell, Params
from rnn_zoo.data.captions import NULL
from rnn_zoo.errors import UserError
from rnn_zoo.models import attention_losses
from rnn_zoo.models import protocol
from rnn_zoo.nn.encoders import ConvEncoder, num_locations, with_coordinates
from rnn_zoo.runner import StackedRNN

MODES = ("plain", "soft", "hard")
ENCODERS = ("cnn", "features")
INIT_STATES = ("mean", "zeros")
REINFORCE_REWARDS = ("caption", "to_go")


@dataclasses.dataclass(frozen=True)
class Captioner:
  """A captioning model (see the module doc).

  Attributes:
    vocab_size: V (with the four special tokens).
    cell: the decoder's cell (any zoo cell), in every layer.
    mode: ``"plain"``, ``"soft"`` or ``"hard"``.
    num_layers: decoder layers (attention wraps the first).
    embed_size: word embedding size.
    encoder: ``"cnn"`` (images ``[B, S, S, 3]``) or ``"features"``.
    image_size: S, for the CNN.
    channels: the CNN's channels per block.
    feature_shape: ``(L, D)`` of precomputed features (L = 1 for vectors).
    alpha_c: weight of the doubly stochastic penalty (soft).
    entropy_bonus: weight of the attention entropy (hard; 0.002 in the paper).
    baseline_decay: the REINFORCE baseline's moving average (0.9 in the paper).
    expectation_prob: hard: probability of the soft context at a step (0.5).
    attention_query: ``"before"`` (attend with ``h_{t-1}``, the paper) or
      ``"after"`` (step the cell, then attend with ``h_t``; see
      :class:`rnn_zoo.AttentionCell`).
    entropy_penalty: soft/hard: weight of the attention maps' entropy, summed
      over the caption's words like the cross-entropy (0: off, the paper):
      > 0 pushes each step's map towards few locations.
    init_state: ``"mean"`` (the paper: ``h0``, ``c0`` affine maps of the mean
      annotation) or ``"zeros"`` (soft/hard: the decoder starts blank and sees
      the image only through attention).
    local_features: the CNN's locations see only their own cell of the
      image (:class:`~rnn_zoo.nn.encoders.ConvEncoder` ``local``), and each
      annotation gets its cell's (x, y) in [-1, 1] appended (D + 2).
    feed_context: soft/hard: the decoder's cell reads ``[word, z_t]`` (the
      paper); False: the word alone, the context reaching only the output
      layer (with ``init_state="zeros"`` the decoder then keeps no memory of
      the image: it must look at each word it names).
    reinforce_reward: hard: ``"caption"`` (the paper: every sampled location
      gets ``log p(caption | locations)``, against a scalar baseline) or
      ``"to_go"`` (the location of step t gets the log-probability of words
      t..T, the ones it can change, against a per-step baseline: the same
      expected gradient with less variance).
  """
  vocab_size: int
  cell: Cell
  mode: str = "soft"
  num_layers: int = 1
  embed_size: int = 64
  encoder: str = "cnn"
  image_size: int = 64
  channels: Sequence[int] = (16, 32, 64, 128)
  feature_shape: tuple = (1, 1)
  alpha_c: float = 1.0
  entropy_bonus: float = 0.002
  baseline_decay: float = 0.9
  expectation_prob: float = 0.5
  attention_query: str = "before"
  entropy_penalty: float = 0.0
  init_state: str = "mean"
  local_features: bool = False
  reinforce_reward: str = "caption"
  feed_context: bool = True

  def __post_init__(self):
    checks.positive_int("vocab_size", self.vocab_size)
    if self.vocab_size <= 4:
      raise UserError(f"vocab_size must exceed the 4 special tokens (at least one word), "
                      f"got {self.vocab_size}")
    checks.choice("mode", self.mode, MODES)
    checks.choice("encoder", self.encoder, ENCODERS)
    checks.positive_int("num_layers", self.num_layers)
    checks.positive_int("embed_size", self.embed_size)
    checks.positive_int("image_size", self.image_size)
    object.__setattr__(self, "channels", tuple(self.channels))
    object.__setattr__(self, "feature_shape", tuple(self.feature_shape))
    if self.encoder == "features":
      if len(self.feature_shape) != 2:
        raise UserError(f"feature_shape must be (L, D), got {self.feature_shape}")
      for name, v in zip(("L", "D"), self.feature_shape):
        checks.positive_int(f"feature_shape {name}", v)
    for c in self.channels:
      checks.positive_int("channels", c)
    checks.choice("init_state", self.init_state, INIT_STATES)
    checks.choice("reinforce_reward", self.reinforce_reward, REINFORCE_REWARDS)
    if self.init_state == "zeros" and self.mode == "plain":
      raise UserError("init_state='zeros' needs attention (mode 'soft' or 'hard'): "
                      "mode='plain' would never see the image")
    if not (isinstance(self.entropy_penalty, (int, float)) and self.entropy_penalty >= 0):
      raise UserError(f"entropy_penalty must be a number >= 0, got {self.entropy_penalty!r}")

  # -- structure ---------------------------------------------------------------
  # The submodules are built (and validated) once per model, on first use.
  @property
  def locations(self) -> int:
    if self.encoder == "cnn":
      return num_locations(self.image_size, len(self.channels))
    return self.feature_shape[0]

  @property
  def feature_size(self) -> int:
    if self.encoder == "features":
      return self.feature_shape[1]
    return self.channels[-1] + (2 if self.local_features else 0)

  @functools.cached_property
  def cnn(self) -> ConvEncoder:
    return ConvEncoder(channels=self.channels, local=self.local_features)

  @functools.cached_property
  def attention_cell(self) -> AttentionCell | None:
    if self.mode == "plain":
      return None
    return AttentionCell.wrap(self.cell, num_locations=self.locations,
                              feature_size=self.feature_size, mode=self.mode,
                              expectation_prob=self.expectation_prob,
                              query=self.attention_query,
                              feed_context=self.feed_context)

  @functools.cached_property
  def stack(self) -> StackedRNN:
    first = self.attention_cell or self.cell
    return StackedRNN((first,) + (self.cell,) * (self.num_layers - 1))

  @protocol.keyword_key
  def init(self, *, key: jax.Array) -> dict:
    k_cnn, k_stack, k_emb, k_h, k_c, k_out = jax.random.split(key, 6)
    D, H, V = self.feature_size, self.cell.hidden_size, self.vocab_size
    params = {"stack": self.stack.init(k_stack, self.embed_size),
              "embed": jax.random.normal(k_emb, (V, self.embed_size)) / np.sqrt(self.embed_size),
              "init_h": {"w": jax.random.normal(k_h, (D, H)) / np.sqrt(D), "b": jnp.zeros((H,))},
              "init_c": {"w": jax.random.normal(k_c, (D, H)) / np.sqrt(D), "b": jnp.zeros((H,))}}
    out_in = H + (D if self.mode != "plain" else 0)
    params["out"] = {"w": 0.01 * jax.random.normal(k_out, (out_in, V)), "b": jnp.zeros((V,))}
    if self.encoder == "cnn":
      S = self.image_size
      params["cnn"] = self.cnn.init(k_cnn, jnp.zeros((1, S, S, 3)))
    return params

  # -- encoding ----------------------------------------------------------------
  def encode(self, params: Params, images: jax.Array) -> jax.Array:
    """Images (or precomputed features) -> annotations ``[B, L, D]``."""
    if self.encoder == "cnn":
      S = self.image_size
      if getattr(images, "ndim", None) != 4 or tuple(images.shape[1:]) != (S, S, 3):
        raise UserError(f"images must be [batch, {S}, {S}, 3], got shape "
                        f"{tuple(getattr(images, 'shape', ()))}")
      feats = cast(jax.Array, self.cnn.apply(params["cnn"], images))
      return with_coordinates(feats) if self.local_features else feats
    feats = images
    if not hasattr(feats, "ndim") or not jnp.issubdtype(feats.dtype, jnp.floating):
      raise UserError("features must be a floating array [batch, D] or [batch, L, D], "
                      f"got {getattr(feats, 'dtype', type(feats).__name__)}")
    if feats.ndim == 2:
      feats = feats[:, None, :]
    if feats.ndim != 3 or tuple(feats.shape[1:]) != self.feature_shape:
      raise UserError(f"features must have shape [batch, {self.feature_shape[0]}, "
                      f"{self.feature_shape[1]}], got {tuple(images.shape)}")
    return feats

  def initial_carry(self, params: Params, images: jax.Array, *,
                    key: jax.Array | None = None) -> tuple:
    """The decoder's carry for a batch of images: ``h0`` (and ``c0``) an
    affine map of the mean annotation, the annotations in the attention
    layer's carry. Hard attention needs ``key``."""
    feats = self.encode(params, images)
    B = feats.shape[0]
    mean = feats.mean(axis=1)
    carry = list(self.stack.initial_carry((B,)))
    h0 = base.affine(mean, params["init_h"]["w"], params["init_h"]["b"])
    c0 = base.affine(mean, params["init_c"]["w"], params["init_c"]["b"])

    def seed(c):
      if self.init_state == "zeros":
        return c
      c = c._replace(h=h0.astype(c.h.dtype))
      return c._replace(c=c0.astype(c.c.dtype)) if "c" in c._fields else c

    if self.mode == "plain":
      carry[0] = seed(carry[0])
    else:
      att = self.attention_cell
      assert att is not None  # modes soft and hard have one
      first = att.with_features(params["stack"]["layer_0"], carry[0], feats, key=key)
      inner = seed(first.inner)
      carry[0] = first._replace(h=inner.h, inner=inner)
    return tuple(carry)

  # -- decoding ----------------------------------------------------------------
  def _logits(self, params, h, carry0):
    if self.mode == "plain":
      x = h
    else:
      x = jnp.concatenate([h, carry0.context], axis=-1)
    return base.affine(x, params["out"]["w"], params["out"]["b"])

  def _check_tokens(self, tokens, name):
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise UserError(f"{name} must be integer word ids, got dtype {tokens.dtype}")
    checks.ids_in_range(name, tokens, self.vocab_size)

  def step(self, params: dict, carry: tuple, tokens: jax.Array) -> tuple[tuple, jax.Array]:
    """One word per caption: ``tokens [B] -> (carry, logits [B, V])`` (for
    :mod:`rnn_zoo.decoding`: greedy, sampling, beam search)."""
    self._check_tokens(tokens, "tokens")
    x = checks.take_rows(params["embed"], tokens)
    carry, h = self.stack.step(params["stack"], carry, x)
    return carry, self._logits(params, h, carry[0])

  def apply(self, params: dict, images: jax.Array, captions: jax.Array, *,
            key: jax.Array | None = None, deterministic: bool | None = None,
            carry: tuple | None = None) -> tuple[jax.Array, Any]:
    """Teacher forcing: ``(logits [B, T, V], carries of the first layer for
    every step)`` for captions ``[B, T + 1]``. ``carry``: the
    :meth:`initial_carry` of these images when the caller has it already
    (the images are then not encoded again; ``key`` is not used). ``key``
    samples hard attention's locations (required for ``mode="hard"``); the
    model has no dropout, so ``deterministic`` (the protocol's,
    :mod:`rnn_zoo.models.protocol`) changes nothing."""
    protocol.check_no_randomness(key, deterministic)
    if getattr(captions, "ndim", None) != 2 or captions.shape[1] < 2:
      raise UserError(f"captions must be int [batch, time >= 2] (<START> ... <END>), "
                      f"got shape {tuple(getattr(captions, 'shape', ()))}")
    self._check_tokens(captions, "captions")
    if carry is None:
      carry = self.initial_carry(params, images, key=key)
    if captions.shape[0] != jax.tree.leaves(carry)[0].shape[0]:
      raise UserError(f"images and captions disagree on the batch: "
                      f"{jax.tree.leaves(carry)[0].shape[0]} vs {captions.shape[0]}")
    xs = checks.take_rows(params["embed"], captions[:, :-1])     # [B, T, E]

    def body(c, x):
      c, h = self.stack.step(params["stack"], c, x)
      return c, (self._logits(params, h, c[0]), c[0])

    _, (logits, firsts) = jax.lax.scan(body, carry, jnp.swapaxes(xs, 0, 1))
    return jnp.swapaxes(logits, 0, 1), jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), firsts)

  def loss(self, params: dict, images: jax.Array, captions: jax.Array, *,
           key: jax.Array | None = None, baseline: Any = None) -> tuple[jax.Array, dict]:
    """``(loss, metrics)``: masked cross-entropy summed over time and averaged
    over the batch, plus the attention terms of the mode.

    For ``"hard"``, ``baseline`` is the REINFORCE baseline: a scalar, the
    metrics carry ``reward`` to update it by ``baseline_decay``; with
    ``reinforce_reward="to_go"`` one per step (``[T]``), the metrics carry
    ``reward_to_go`` ``[T]`` (the mean over the captions still running).
    """
    logits, firsts = self.apply(params, images, captions, key=key)
    targets = captions[:, 1:]
    mask = (targets != NULL).astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets) * mask
    nll = ce.sum(axis=1)                                  # -log p(caption | image)
    words = jnp.maximum(mask.sum(), 1.0)
    metrics = {"nll_per_word": ce.sum() / words,
               "accuracy": jnp.sum((jnp.argmax(logits, -1) == targets) * mask) / words}
    loss = nll.mean()
    if self.mode != "plain":
      penalty = attention_losses.doubly_stochastic_penalty(firsts.alpha, mask).mean()
      metrics["attention_penalty"] = penalty
      loss = loss + self.alpha_c * penalty
      entropy = -jnp.sum(firsts.alpha * jnp.log(firsts.alpha + 1e-12), -1) * mask
      metrics["attention_entropy"] = jnp.sum(entropy) / words
      if self.entropy_penalty:
        loss = loss + self.entropy_penalty * entropy.sum(axis=1).mean()
    if self.mode == "hard":
      if baseline is None:
        raise UserError("mode='hard' needs the REINFORCE baseline, got baseline=None")
      reward = -nll                                       # log p(caption | locations)
      lp = attention_losses.location_log_probs(firsts.alpha, firsts.location) * mask
      if self.reinforce_reward == "to_go":
        if jnp.ndim(baseline) not in (0, 1) or jnp.size(baseline) not in (1, mask.shape[1]):
          raise UserError(f"reinforce_reward='to_go' needs a baseline per step "
                          f"[{mask.shape[1]}] (or a scalar), got shape {jnp.shape(baseline)}")
        to_go = attention_losses.rewards_to_go(-ce)          # log p(words t.. | locations)
        surrogate = attention_losses.reinforce_surrogate(lp, to_go, baseline).mean()
        metrics["reward_to_go"] = (jnp.sum(to_go * mask, 0)
                                   / jnp.maximum(jnp.sum(mask, 0), 1.0))
      else:
        surrogate = attention_losses.reinforce_surrogate(lp, reward, baseline).mean()
      loss = loss + surrogate - self.entropy_bonus * metrics["attention_entropy"]
      metrics["reward"] = reward.mean()
    return loss, metrics

  def attention_maps(self, params: Params, images: jax.Array, captions: jax.Array, *,
                     key: jax.Array | None = None, carry: Any = None) -> jax.Array:
    """``[B, T, L]`` attention weights while reading ``captions`` (soft/hard;
    ``carry`` as in :meth:`apply`)."""
    if self.mode == "plain":
      raise UserError("mode='plain' has no attention")
    return self.apply(params, images, captions, key=key, carry=carry)[1].alpha


__all__ = ["Captioner", "MODES", "ENCODERS", "INIT_STATES", "REINFORCE_REWARDS"]

