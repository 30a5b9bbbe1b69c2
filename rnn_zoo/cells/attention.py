"""Attention over a set of annotations as a wrapper around any cell's step
(Show, Attend and Tell: Xu et al. 2015).

At step t, with annotations ``a_i`` (``[L, D]`` per example: a CNN's spatial
feature map, a question's word states, ...) and the wrapped cell's previous
hidden state ``h_{t-1}``::

  e_ti  = v . tanh(a_i W_a + h_{t-1} W_h + b)        additive (MLP) attention
  alpha_t = softmax(e_t)                             over the L locations
  soft:  z_t = beta_t * sum_i alpha_ti a_i,  beta_t = sigmoid(h_{t-1} w_beta + b_beta)
  hard:  s_t ~ Categorical(alpha_t),  z_t = beta_t * a_{s_t}
         (with probability ``expectation_prob`` the soft z_t instead, as in the paper)
  (carry_t, h_t) = cell.step(carry_{t-1}, [x_t, z_t])

With ``query="after"`` (Luong et al. 2015's order, with input feeding) the
cell steps first on ``[x_t, z_{t-1}]`` and attention then looks with the new
``h_t``: the map of step t is drawn knowing the word just read, and the
context ``z_t`` reaches the output layer (a captioner's logits read
``[h_t, z_t]``) in the same step.

With ``feed_context=False`` the cell reads ``x_t`` alone: the context
reaches only what reads the carry's ``context`` (a captioner's output layer),
so the recurrent state holds no memory of the image and the decoder sees it
only where it looks at the step it needs it.

The wrapper is itself a :class:`~rnn_zoo.cells.cell.Cell`: the runner,
stacks, truncated BPTT and decoding drive it like any other; its carry holds
the annotations (constant over time), this step's ``alpha`` and ``context``
(so :func:`rnn_zoo.unroll_with_carries` returns the attention map of every
step) and, for hard attention, the sampled location and a PRNG key. Hard
attention is trained with REINFORCE
(:func:`rnn_zoo.models.attention_losses.reinforce_surrogate`, with the
captioner's other attention losses).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from rnn_zoo import checks
from rnn_zoo import compat
from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Carry, Cell, Params
from rnn_zoo.errors import UserError

Array = jax.Array
MODES = ("soft", "hard")
QUERIES = ("before", "after")


class AttentionCarry(NamedTuple):
  """Carry of :class:`AttentionCell`: ``h`` ``[*batch, H]``, ``context``
  ``[*batch, D]``, ``features`` ``[*batch, L, D]`` (see each field)."""
  h: jax.Array          # [*batch, H] the wrapped cell's hidden state (the probes' target).
  inner: typing.Any        # the wrapped cell's carry (its ``h`` is superseded by ``h``).
  context: jax.Array    # [*batch, D] z_t, the (gated) attended annotation of the step.
  alpha: jax.Array      # [*batch, L] the step's attention weights (sum to one).
  location: jax.Array   # [*batch] int32 the sampled location (hard), -1 if none.
  features: jax.Array   # [*batch, L, D] the annotations a_i (constant over time).
  projected: jax.Array  # [*batch, L, A] a_i W_a + b, computed once per sequence.
  key: jax.Array        # [*batch, 2] uint32 PRNG key data (hard attention).


def _check_annotated(carry) -> None:
  """A concrete carry must hold annotations (:meth:`AttentionCell.with_features`)."""
  features = getattr(carry, "features", None)
  if features is None or isinstance(features, jax.core.Tracer):
    return
  if bool(jnp.any(jnp.isnan(features))):
    raise UserError("the AttentionCell's carry has no annotations: set them with "
                    "with_features(params, carry, features) before stepping it")


@dataclasses.dataclass(frozen=True)
class AttentionCell(Cell):
  """Soft or hard attention around ``cell`` (see the module doc).

  Build with :meth:`wrap`; ``hidden_size`` is the wrapped cell's. The input
  of the wrapped cell is ``[x_t, z_t]`` (``input_size + feature_size``); the
  output is the wrapped cell's ``h_t``.

  Params: ``{"cell": ..., "att": {"w_feat": [D, A], "w_h": [H, A], "b": [A],
  "v": [A]}, "gate": {"w": [H], "b": []}}`` (no ``"gate"`` without ``gate``).

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> att = rz.AttentionCell.wrap(rz.LSTM(16), num_locations=9, feature_size=8)
    >>> params = att.init(jax.random.key(0), input_size=5)
    >>> feats = jnp.ones((2, 9, 8))                        # [batch, L, D]
    >>> carry = att.with_features(params, att.initial_carry((2,)), feats)
    >>> ys, final, carries = rz.unroll_with_carries(att, params, jnp.ones((2, 4, 5)),
    ...                                             initial_carry=carry)
    >>> ys.shape, carries.alpha.shape                       # the map of every step
    ((2, 4, 16), (2, 4, 9))
  """
  cell: Cell | None = None
  num_locations: int = 1
  feature_size: int = 1
  attention_size: int = 0      # A (0: the wrapped cell's hidden size)
  mode: str = "soft"
  gate: bool = True
  expectation_prob: float = 0.5  # hard: probability of using the soft context
  query: str = "before"        # attend with h_{t-1} (the paper) | "after" the step, with h_t
  feed_context: bool = True    # the cell reads [x_t, z]; False: x_t alone (see the module doc)

  @classmethod
  def wrap(cls, cell: Cell, *, num_locations: int, feature_size: int,
           **kwargs: Any) -> "AttentionCell":
    if not isinstance(cell, Cell):
      raise UserError(f"cell must be an rnn_zoo cell, got {cell!r}")
    return cls(cell.hidden_size, dtype=cell.dtype, param_dtype=cell.param_dtype,
               cell=cell, num_locations=num_locations, feature_size=feature_size,
               **kwargs)

  def __post_init__(self):
    super().__post_init__()
    if not isinstance(self.cell, Cell):
      raise UserError(f"cell must be an rnn_zoo cell, got {self.cell!r}")
    if self.cell.hidden_size != self.hidden_size:
      raise UserError(f"hidden_size must be the wrapped cell's "
                      f"({self.cell.hidden_size}), got {self.hidden_size}")
    checks.positive_int("num_locations", self.num_locations)
    checks.positive_int("feature_size", self.feature_size)
    checks.int_at_least("attention_size", self.attention_size, 0,
                        "0: the hidden size")
    checks.choice("mode", self.mode, MODES)
    checks.choice("query", self.query, QUERIES)
    if not 0.0 <= self.expectation_prob <= 1.0:
      raise UserError(f"expectation_prob must be in [0, 1], got {self.expectation_prob!r}")

  @property
  def _A(self) -> int:
    return self.attention_size or self.hidden_size

  @property
  def _inner(self) -> Cell:
    """The wrapped cell (``__post_init__`` requires one)."""
    return typing.cast(Cell, self.cell)

  def init(self, key: Array, input_size: int) -> dict[str, Any]:
    checks.positive_int("input_size", input_size)
    k_cell, k_f, k_h, k_v, k_g = jax.random.split(key, 5)
    D, H, A, dt = self.feature_size, self.hidden_size, self._A, self.param_dtype
    params = {"cell": self._inner.init(k_cell, input_size + (D if self.feed_context else 0)),
              "att": {"w_feat": base.glorot_uniform(k_f, (D, A), dt),
                      "w_h": base.glorot_uniform(k_h, (H, A), dt),
                      "b": jnp.zeros((A,), dt),
                      "v": base.glorot_uniform(k_v, (A, 1), dt)[:, 0]}}
    if self.gate:
      params["gate"] = {"w": 0.01 * jax.random.normal(k_g, (H,), dt),
                        "b": jnp.zeros((), dt)}
    return params

  def input_size_of(self, params: Params) -> int | None:
    size = self._inner.input_size_of(params["cell"])
    return None if size is None else size - (self.feature_size if self.feed_context else 0)

  def initial_carry(self, batch_shape: int | tuple[int, ...] = (),
                    dtype: jax.typing.DTypeLike | None = None) -> AttentionCarry:
    inner = self._inner.initial_carry(batch_shape, dtype)
    if isinstance(batch_shape, int):
      batch_shape = (batch_shape,)
    batch_shape = tuple(batch_shape)
    dt = inner.h.dtype
    L, D = self.num_locations, self.feature_size
    return AttentionCarry(
        h=inner.h, inner=inner, context=jnp.zeros(batch_shape + (D,), dt),
        alpha=jnp.full(batch_shape + (L,), 1.0 / L, dt),
        location=jnp.full(batch_shape, -1, jnp.int32),
        # NaN until with_features sets them: a carry without annotations
        # is an error when concrete and NaN outputs under jit (it ran on
        # all-zero annotations, every hard-attention row alike).
        features=jnp.full(batch_shape + (L, D), jnp.nan, dt),
        projected=jnp.full(batch_shape + (L, self._A), jnp.nan, dt),
        key=jnp.zeros(batch_shape + (2,), jnp.uint32))

  def with_features(self, params: Params, carry: AttentionCarry, features: Array, *,
                    key: Array | None = None) -> AttentionCarry:
    """The carry with the annotations ``features`` ``[*batch, L, D]`` set (and
    their projection computed once); hard attention needs ``key``."""
    if not isinstance(carry, AttentionCarry):
      raise UserError(f"carry must be an AttentionCarry, got {type(carry).__name__}")
    want = carry.features.shape
    if getattr(features, "shape", None) != want:
      raise UserError(f"features must have shape {want} [*batch, num_locations, "
                      f"feature_size], got {getattr(features, 'shape', None)}")
    if not jnp.issubdtype(features.dtype, jnp.floating):
      raise UserError(f"features must be floating, got dtype {features.dtype}")
    features = features.astype(carry.features.dtype)
    projected = base.matmul(features, params["att"]["w_feat"], self.dtype)
    projected = projected + base.at_rank(params["att"]["b"], projected.ndim)
    carry = carry._replace(features=features, projected=projected.astype(features.dtype))
    if self.mode == "hard":
      if key is None:
        raise UserError("key is required for mode='hard' (it samples a location "
                        "per step), got key=None")
      n = carry.location.size
      keys = jax.random.key_data(jax.random.split(key, n))
      carry = carry._replace(key=keys.reshape(carry.key.shape).astype(jnp.uint32))
    return carry

  def attend(self, params: Params, carry: AttentionCarry, h: Array) -> tuple[Array, Array]:
    """``(alpha [*batch, L], soft context [*batch, D])`` for the query ``h``."""
    q = base.matmul(h, params["att"]["w_h"], self.dtype)
    e = jnp.tanh(carry.projected + q[..., None, :]) @ params["att"]["v"]
    alpha = jax.nn.softmax(e.astype(jnp.float32), axis=-1).astype(h.dtype)
    return alpha, jnp.einsum("...l,...ld->...d", alpha, carry.features)

  def _look(self, params, carry: AttentionCarry, h: Array):
    """``(alpha, context, location, key)`` for the query ``h``: the soft
    context, or (hard) the sampled location's annotation, gated."""
    alpha, context = self.attend(params, carry, h)
    location = jnp.full(carry.location.shape, -1, jnp.int32)
    key = carry.key
    if self.mode == "hard":
      def sample(kd, a):
        k = jax.random.wrap_key_data(kd)
        k, k_loc, k_mix = jax.random.split(k, 3)
        loc = jax.random.categorical(k_loc, jnp.log(a))
        soft = jax.random.bernoulli(k_mix, self.expectation_prob)
        return jax.random.key_data(k), loc, soft
      flat = lambda a: a.reshape((-1,) + a.shape[len(carry.location.shape):])
      kd, loc, soft = jax.vmap(sample)(flat(carry.key), flat(alpha))
      key = kd.reshape(carry.key.shape)
      loc = loc.reshape(carry.location.shape).astype(jnp.int32)
      soft = soft.reshape(carry.location.shape)
      picked = jnp.take_along_axis(carry.features, loc[..., None, None], axis=-2)[..., 0, :]
      # Sampled locations get no gradient through the choice (REINFORCE
      # handles it); with prob. expectation_prob the expectation is used.
      context = jnp.where(soft[..., None], context, picked)
      location = jnp.where(soft, -1, loc)
    if self.gate:
      beta = jax.nn.sigmoid(base.affine(h, params["gate"]["w"], params["gate"]["b"]))
      context = beta[..., None] * context
    return alpha, context, location, key

  def check_initial_carry(self, carry: Carry) -> None:
    _check_annotated(carry)

  def step(self, params: Params, carry: AttentionCarry, x: Array) -> tuple[AttentionCarry, Array]:
    _check_annotated(carry)
    inner = carry.inner._replace(h=carry.h)
    feed = lambda z: jnp.concatenate([x, z], -1) if self.feed_context else x
    if self.query == "before":
      alpha, context, location, key = self._look(params, carry, carry.h)
      inner, y = self._inner.step(params["cell"], inner, feed(context))
    else:   # the cell reads [x_t, z_{t-1}], then attention looks with h_t
      inner, y = self._inner.step(params["cell"], inner, feed(carry.context))
      alpha, context, location, key = self._look(params, carry, inner.h)
    new = carry._replace(h=inner.h, inner=inner, context=context, alpha=alpha,
                         location=location, key=key)
    return new, y


# Moved to rnn_zoo.models.attention_losses (the captioner's training signals).
__getattr__ = compat.moved(__name__, {
    n: "rnn_zoo.models.attention_losses" for n in (
        "doubly_stochastic_penalty", "location_log_probs", "reinforce_surrogate",
        "rewards_to_go")})
