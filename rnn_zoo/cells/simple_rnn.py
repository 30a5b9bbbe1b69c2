"""The vanilla (Elman) RNN, including IRNN."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Array, Carry, Params, PointwiseCell

ACTIVATIONS = ("tanh", "relu", "linear")
RECURRENT_INITS = ("uniform", "orthogonal", "identity", "glorot_uniform")
INPUT_INITS = ("uniform", "glorot_uniform", "normal")


@dataclasses.dataclass(frozen=True)
class SimpleRNN(PointwiseCell):
  r"""Elman RNN: ``h_t = act(x_t W_ih + h_{t-1} W_hh + b)``, ``y_t = h_t``.

  Shapes: ``x_t`` ``[*batch, I]``, ``h_t`` ``[*batch, H]``.

  Params (``init``):
    ``w_ih`` ``[I, H]``, ``w_hh`` ``[H, H]``, ``b`` ``[H]`` (PyTorch's
    ``bias_ih + bias_hh``; initialized to zero).

  Attributes:
    activation: ``"tanh"``, ``"relu"`` or ``"linear"`` (the identity: a
      linear RNN, whose gradients have a closed form).
    recurrent_init: ``"uniform"`` (PyTorch's default ``U(±1/sqrt(H))``, the
      default here), ``"orthogonal"``, ``"identity"`` (IRNN, Le et al. 2015)
      or ``"glorot_uniform"``; multiplied by ``recurrent_scale``.
    input_init: ``"uniform"`` (``U(±1/sqrt(H))``), ``"glorot_uniform"``, or
      ``"normal"`` with standard deviation ``input_std``.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.SimpleRNN(8)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> carry, y = cell.step(params, cell.initial_carry((2,)), jnp.ones((2, 3)))
    >>> y.shape
    (2, 8)
  """
  activation: str = "tanh"
  recurrent_init: str = "uniform"
  recurrent_scale: float = 1.0
  input_init: str = "uniform"
  input_std: float = 0.001

  num_gates = 1

  def __post_init__(self):
    super().__post_init__()
    base.check_choice("activation", self.activation, ACTIVATIONS)
    base.check_choice("recurrent_init", self.recurrent_init, RECURRENT_INITS)
    base.check_choice("input_init", self.input_init, INPUT_INITS)

  @classmethod
  def irnn(cls, hidden_size: int, **kw: Any) -> "SimpleRNN":
    """IRNN (Le, Jaitly & Hinton 2015): ReLU, identity recurrent weight,
    small Gaussian input weights (std 0.001), zero bias."""
    defaults: dict[str, Any] = {"activation": "relu", "recurrent_init": "identity",
                                "input_init": "normal", "input_std": 0.001}
    return cls(hidden_size, **(defaults | kw))

  def init(self, key: Array, input_size: int) -> Params:
    base.check_positive_int("input_size", input_size)
    H, dt = self.hidden_size, self.param_dtype
    k_ih, k_hh = jax.random.split(key)
    if self.input_init == "uniform":
      w_ih = base.uniform_fan(k_ih, (input_size, H), dt, H)
    elif self.input_init == "glorot_uniform":
      w_ih = base.glorot_uniform(k_ih, (input_size, H), dt)
    else:
      w_ih = self.input_std * jax.random.normal(k_ih, (input_size, H), dt)
    if self.recurrent_init == "uniform":
      w_hh = base.uniform_fan(k_hh, (H, H), dt, H)
    elif self.recurrent_init == "orthogonal":
      w_hh = base.orthogonal_blocks(k_hh, H, 1, dt)
    elif self.recurrent_init == "identity":
      w_hh = base.identity_blocks(H, 1, dt)
    else:
      w_hh = base.glorot_uniform(k_hh, (H, H), dt)
    return {"w_ih": w_ih, "w_hh": self.recurrent_scale * w_hh,
            "b": jnp.zeros((H,), dt)}

  def initial_carry(self, batch_shape: int | tuple[int, ...] = (),
                    dtype: jax.typing.DTypeLike | None = None) -> Carry:
    return base.HiddenCarry(self._zeros(batch_shape, dtype))

  def pointwise(self, params: Params, carry: Carry, xp: Array, u: Array) -> tuple[Carry, Array]:
    pre = xp + u
    if self.activation == "tanh":
      h = jnp.tanh(pre)
    elif self.activation == "relu":
      h = jax.nn.relu(pre)
    else:
      h = pre
    h = h.astype(carry.h.dtype)
    return base.HiddenCarry(h), h

  def pointwise_vjp(self, params: Params, carry: Carry, xp: Array, u: Array,
                    dcarry: Carry, dy: Array) -> tuple[Params, Carry, Array, Array]:
    del params
    pre = xp + u
    dh = dcarry.h + dy
    if self.activation == "tanh":
      t = jnp.tanh(pre)
      dz = dh * (1.0 - t * t)
    elif self.activation == "relu":
      dz = jnp.where(pre > 0, dh, 0.0)
    else:
      dz = dh
    dz = dz.astype(xp.dtype)
    return {}, base.HiddenCarry(jnp.zeros_like(carry.h)), dz, dz
