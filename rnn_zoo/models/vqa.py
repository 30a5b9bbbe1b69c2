"""Visual question answering: a CNN reads the image, a recurrent network
reads the question, and the two are fused to pick an answer.

The image: :class:`rnn_zoo.nn.encoders.ConvEncoder` (every block stride 2:
a 75x75 image gives a 5x5 map) -> ``[B, L, D]`` region features, each with
its (x, y) grid coordinates in [-1, 1] appended (positions matter to "is it
on the left?" once features are pooled); with ``skip`` each region also
gets the CNN's first block max-pooled over it (``ConvEncoder(skip=True)``:
the colour that binds a question to an object, which every fusion fails to
learn through the strided blocks alone). The question: word embedding ->
any zoo cell over the words (``lengths`` from the ``<NULL>`` padding) ->
the final hidden state ``q`` (``bidirectional``: forward and backward final
states, concatenated). Fusions:

* ``"concat"`` — the flattened map and ``q`` concatenated -> MLP (Santoro et
  al.'s CNN+MLP baseline);
* ``"product"`` — both projected to ``fusion_size``, multiplied elementwise
  -> MLP;
* ``"attention"`` — stacked attention (Yang et al. 2016): ``u_0 = W q``;
  per hop, ``p = softmax(w_p tanh(W_I v_i + W_u u))`` over regions,
  ``u_{k+1} = u_k + sum_i p_i W_v v_i``; ``u`` -> MLP; ``hops`` 1 or 2;
* ``"relation"`` — a relation network (Santoro et al. 2017): ``g`` (an MLP)
  over every ordered pair of regions with ``q``, summed (``g_pool="sum"``,
  the paper's) or averaged (``"mean"``: the sum divided by the L^2 pairs,
  which puts f's input and the first logits 625 times lower), then ``f`` (an MLP)
  -> answers.

Every fusion ends in the same answer MLP (``mlp_size``, ReLU, dropout-free)
and a softmax over the closed answer vocabulary; the loss is the mean
cross-entropy.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnn_zoo import checks
from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Cell, Params
from rnn_zoo.errors import UserError
from rnn_zoo.models import protocol
from rnn_zoo.nn.encoders import ConvEncoder, num_locations, with_coordinates
from rnn_zoo.runner import bidirectional, unroll

FUSIONS = ("concat", "product", "attention", "relation")
G_POOLS = ("sum", "mean")


def _dense(key, n_in: int, n_out: int, scale: float = 1.0) -> dict:
  return {"w": scale * jax.random.normal(key, (n_in, n_out)) * np.sqrt(2.0 / n_in),
          "b": jnp.zeros((n_out,))}


def _mlp_init(key, sizes: Sequence[int]) -> list:
  keys = jax.random.split(key, len(sizes) - 1)
  return [_dense(k, a, b) for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def _mlp(layers: list, x, final_relu: bool = False):
  for i, layer in enumerate(layers):
    x = base.affine(x, layer["w"], layer["b"])
    if i < len(layers) - 1 or final_relu:
      x = jax.nn.relu(x)
  return x


@dataclasses.dataclass(frozen=True)
class VQA:
  """A VQA model (see the module doc).

  Attributes:
    num_answers: size of the closed answer vocabulary.
    question_vocab: size of the question word vocabulary (0 = ``<NULL>``).
    cell: the question reader (any zoo cell).
    fusion: ``"concat"``, ``"product"``, ``"attention"`` or ``"relation"``.
    image_size: S of the square ``[B, S, S, 3]`` images (floats in [0, 1]).
    channels: the CNN's channels per block.
    skip: append the first block's map, max-pooled over each region, to the
      region's features (``ConvEncoder(skip=True)``).
    embed_size: question word embedding size.
    bidirectional: read the question both ways.
    fusion_size: ``product``'s and ``attention``'s common size.
    hops: ``attention``'s hops (1 or 2).
    mlp_size: the answer MLP's width (``relation``: f's).
    g_layers: ``relation``: layers of g.
    g_size: ``relation``: the width of g (it runs on every pair of regions of
      every question: its cost is L^2 g_size^2 per question and layer).
    g_pool: ``relation``: ``"sum"`` (Santoro et al.) or ``"mean"`` over the
      pairs.
    cudnn: read the question with an LSTM through cuDNN on an NVIDIA GPU
      (:mod:`rnn_zoo.cudnn`).
  """
  num_answers: int
  question_vocab: int
  cell: Cell
  fusion: str = "attention"
  image_size: int = 75
  channels: Sequence[int] = (24, 24, 24, 24)
  skip: bool = False
  embed_size: int = 32
  bidirectional: bool = False
  fusion_size: int = 128
  hops: int = 2
  mlp_size: int = 256
  g_layers: int = 3
  g_size: int = 256
  g_pool: str = "sum"
  cudnn: bool = False

  def __post_init__(self):
    checks.positive_int("num_answers", self.num_answers)
    checks.positive_int("question_vocab", self.question_vocab)
    checks.choice("fusion", self.fusion, FUSIONS)
    for name in ("image_size", "embed_size", "fusion_size", "mlp_size", "g_layers",
                 "g_size"):
      checks.positive_int(name, getattr(self, name))
    checks.choice("hops", self.hops, (1, 2))
    checks.choice("g_pool", self.g_pool, G_POOLS)
    object.__setattr__(self, "channels", tuple(self.channels))
    for c in self.channels:
      checks.positive_int("channels", c)

  # -- structure ---------------------------------------------------------------
  @functools.cached_property
  def cnn(self) -> ConvEncoder:
    return ConvEncoder(channels=self.channels, first_stride=2, skip=self.skip)

  @property
  def locations(self) -> int:
    return num_locations(self.image_size, len(self.channels), first_stride=2)

  @property
  def region_size(self) -> int:
    # features (+ the first block's, pooled) + (x, y)
    return self.channels[-1] + (self.channels[0] if self.skip else 0) + 2

  @property
  def question_size(self) -> int:
    return self.cell.hidden_size * (2 if self.bidirectional else 1)

  @protocol.keyword_key
  def init(self, *, key: jax.Array) -> dict:
    ks = iter(jax.random.split(key, 12))
    S, R, L, Q = self.image_size, self.region_size, self.locations, self.question_size
    F, M = self.fusion_size, self.mlp_size
    params = {"cnn": self.cnn.init(next(ks), jnp.zeros((1, S, S, 3))),
              "embed": jax.random.normal(next(ks), (self.question_vocab, self.embed_size))
                       / np.sqrt(self.embed_size),
              "reader": self.cell.init(next(ks), self.embed_size)}
    if self.bidirectional:
      params["reader_back"] = self.cell.init(next(ks), self.embed_size)
    if self.fusion == "concat":
      fused = L * R + Q
    elif self.fusion == "product":
      params["image_proj"] = _dense(next(ks), L * R, F)
      params["question_proj"] = _dense(next(ks), Q, F)
      fused = F
    elif self.fusion == "attention":
      params["question_proj"] = _dense(next(ks), Q, F)
      params["value_proj"] = _dense(next(ks), R, F)
      params["hops"] = [{"image": _dense(k1, R, F), "query": _dense(k2, F, F),
                         "score": _dense(k3, F, 1)}
                        for k1, k2, k3 in (jax.random.split(next(ks), 3)
                                           for _ in range(self.hops))]
      fused = F
    else:
      params["g"] = _mlp_init(next(ks), [2 * R + Q] + [self.g_size] * self.g_layers)
      fused = self.g_size
    params["answer"] = _mlp_init(next(ks), [fused, M, M, self.num_answers])
    return params

  # -- encoders ----------------------------------------------------------------
  def regions(self, params: Params, images: jax.Array) -> jax.Array:
    """``[B, L, D + 2]``: CNN features per region with grid coordinates."""
    S = self.image_size
    if getattr(images, "ndim", None) != 4 or tuple(images.shape[1:]) != (S, S, 3):
      raise UserError(f"images must be [batch, {S}, {S}, 3], got shape "
                      f"{tuple(getattr(images, 'shape', ()))}")
    if not jnp.issubdtype(images.dtype, jnp.floating):
      raise UserError(f"images must be floating (values in [0, 1]), got dtype "
                      f"{images.dtype}")
    return with_coordinates(cast(jax.Array, self.cnn.apply(params["cnn"], images)))

  def read(self, params: Params, questions: jax.Array) -> jax.Array:
    """``[B, Lq]`` word ids (``<NULL>``-padded) -> ``[B, Q]``."""
    if getattr(questions, "ndim", None) != 2 or not jnp.issubdtype(questions.dtype,
                                                                      jnp.integer):
      raise UserError(f"questions must be int word ids [batch, length] (or [batch, "
                      f"questions per image, length] to apply), got "
                      f"{getattr(questions, 'dtype', type(questions).__name__)} "
                      f"{tuple(getattr(questions, 'shape', ()))}")
    checks.ids_in_range("questions", questions, self.question_vocab, "question_vocab")
    lengths = jnp.sum(questions != 0, axis=1)
    xs = checks.take_rows(params["embed"], questions)
    impl = "cudnn" if self.cudnn else "auto"
    if not self.bidirectional:
      _, carry = unroll(self.cell, params["reader"], xs, lengths=lengths, impl=impl)
      return carry.h
    both = {"forward": params["reader"], "backward": params["reader_back"]}
    _, (fwd, back) = bidirectional(self.cell, both, xs, lengths=lengths, impl=impl)
    return jnp.concatenate([fwd.h, back.h], axis=-1)

  # -- fusion ------------------------------------------------------------------
  def fuse(self, params: dict, regions: jax.Array, q: jax.Array
           ) -> tuple[jax.Array, jax.Array | None]:
    """``(fused [B, *], attention [B, hops, L] or None)``."""
    B = regions.shape[0]
    if self.fusion == "concat":
      return jnp.concatenate([regions.reshape(B, -1), q], axis=-1), None
    if self.fusion == "product":
      img = jnp.tanh(base.affine(regions.reshape(B, -1), params["image_proj"]["w"],
                                 params["image_proj"]["b"]))
      que = jnp.tanh(base.affine(q, params["question_proj"]["w"], params["question_proj"]["b"]))
      return img * que, None
    if self.fusion == "attention":
      u = jnp.tanh(base.affine(q, params["question_proj"]["w"], params["question_proj"]["b"]))
      values = base.affine(regions, params["value_proj"]["w"], params["value_proj"]["b"])
      maps = []
      for hop in params["hops"]:
        h = jnp.tanh(base.affine(regions, hop["image"]["w"], hop["image"]["b"])
                     + (base.affine(u, hop["query"]["w"], hop["query"]["b"]))[:, None, :])
        p = jax.nn.softmax((base.affine(h, hop["score"]["w"], hop["score"]["b"]))[..., 0], axis=-1)
        u = u + jnp.einsum("bl,blf->bf", p, values)
        maps.append(p)
      return u, jnp.stack(maps, axis=1)
    # g's first layer is affine in [o_i, o_j, q]: apply it to each part once
    # (L + L + 1 rows, not L * L) and add the results over the pairs.
    first, rest = params["g"][0], params["g"][1:]
    R = regions.shape[-1]
    w_i, w_j, w_q = first["w"][:R], first["w"][R:2 * R], first["w"][2 * R:]
    pre = ((regions @ w_i)[:, :, None, :] + (regions @ w_j)[:, None, :, :]
           + (base.affine(q, w_q, first["b"]))[:, None, None, :])
    g = jax.nn.relu(pre)
    g = _mlp(rest, g, final_relu=True) if rest else g
    return self.pool_pairs(g, axis=(1, 2)), None

  def pool_pairs(self, g: jax.Array, axis: int | tuple[int, ...]) -> jax.Array:
    """g over the pairs (``axis``) by ``g_pool``: summed or averaged."""
    return g.sum(axis=axis) if self.g_pool == "sum" else g.mean(axis=axis)

  def apply(self, params: dict, images: jax.Array, questions: jax.Array, *,
            key: jax.Array | None = None, deterministic: bool | None = None
            ) -> tuple[jax.Array, jax.Array | None]:
    """``(logits, attention maps or None)``. The model has no randomness:
    ``key`` and ``deterministic`` (the protocol's,
    :mod:`rnn_zoo.models.protocol`) change nothing.

    ``questions`` ``[B, Lq]`` (one per image): logits ``[B, num_answers]``,
    maps ``[B, hops, L]``. ``[B, Q, Lq]`` (Q questions per image, the image
    encoded once for all of them): logits ``[B, Q, num_answers]``, maps
    ``[B, Q, hops, L]``."""
    protocol.check_no_randomness(key, deterministic)
    regions = self.regions(params, images)
    grouped = getattr(questions, "ndim", None) == 3
    B, Q = (questions.shape[0], questions.shape[1]) if grouped else (0, 1)
    if grouped:
      questions = questions.reshape(B * Q, questions.shape[2])
    q = self.read(params, questions)
    if q.shape[0] != regions.shape[0] * Q:
      raise UserError(f"images and questions disagree on the batch: {regions.shape[0]} "
                      f"vs {q.shape[0] // Q}")
    if grouped:
      regions = jnp.repeat(regions, Q, axis=0)
    fused, maps = self.fuse(params, regions, q)
    logits = _mlp(params["answer"], fused)
    if grouped:
      logits = logits.reshape(B, Q, -1)
      maps = None if maps is None else maps.reshape((B, Q) + maps.shape[1:])
    return logits, maps

  def loss(self, params: dict, images: jax.Array, questions: jax.Array,
           answers: jax.Array, *, key: jax.Array | None = None) -> tuple[jax.Array, dict]:
    """``(mean cross-entropy, {"accuracy"})``; ``answers`` ``[B]`` or, with
    grouped questions ``[B, Q, Lq]``, ``[B, Q]``."""
    if not jnp.issubdtype(getattr(answers, "dtype", jnp.float32), jnp.integer):
      raise UserError(f"answers must be integer answer ids, got "
                      f"{getattr(answers, 'dtype', type(answers).__name__)}")
    checks.ids_in_range("answers", answers, self.num_answers, "num_answers")
    logits, _ = self.apply(params, images, questions, key=key)
    if logits.shape[:-1] != tuple(answers.shape):
      raise UserError(f"answers must be {list(logits.shape[:-1])} for these questions, "
                      f"got {list(answers.shape)}")
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, answers)
    return ce.mean(), {"accuracy": jnp.mean(jnp.argmax(logits, -1) == answers)}


__all__ = ["VQA", "FUSIONS", "G_POOLS"]
