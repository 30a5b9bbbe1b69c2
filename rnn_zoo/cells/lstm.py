"""Long short-term memory (Hochreiter & Schmidhuber 1997; Gers et al. 2000)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Array, Carry, Params, PointwiseCell
from rnn_zoo.errors import UserError

RECURRENT_INITS = ("orthogonal", "uniform", "glorot_uniform")
INPUT_INITS = ("glorot_uniform", "uniform")


@dataclasses.dataclass(frozen=True)
class LSTM(PointwiseCell):
  r"""LSTM with a forget gate; gate order ``i, f, g, o`` as in PyTorch.

  Equations, with ``[z_i, z_f, z_g, z_o] = x_t W_ih + h_{t-1} W_hh + b``::

    i_t = sigmoid(z_i)          input gate
    f_t = sigmoid(z_f)          forget gate
    g_t = tanh(z_g)             candidate
    o_t = sigmoid(z_o)          output gate
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t),      y_t = h_t

  Shapes: ``x_t`` ``[*batch, I]``; ``h_t, c_t`` ``[*batch, H]``.

  Params (``init``):
    ``w_ih`` ``[I, 4H]``, ``w_hh`` ``[H, 4H]`` (columns in blocks of H in gate
    order i, f, g, o), ``b`` ``[4H]`` (PyTorch's ``bias_ih + bias_hh``).

  Attributes:
    forget_bias: initial value of the forget-gate bias ``b_f`` (1.0 default,
      Gers et al. 2000 / Jozefowicz et al. 2015; 0 is the "no bias" baseline).
    chrono_t_max: if set, chrono initialization (Tallec & Ollivier 2018):
      ``b_f ~ log U([1, T_max - 1])`` and ``b_i = -b_f``; overrides
      ``forget_bias``. Must be > 2.
    recurrent_init: ``"orthogonal"`` (default; each gate block orthogonal),
      ``"uniform"`` (PyTorch's ``U(±1/sqrt(H))``) or ``"glorot_uniform"``.
    input_init: ``"glorot_uniform"`` (default) or ``"uniform"``.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.LSTM(16, chrono_t_max=100)
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> carry = cell.initial_carry((4,))
    >>> carry, y = cell.step(params, carry, jnp.zeros((4, 2)))
    >>> carry.c.shape
    (4, 16)
  """
  forget_bias: float = 1.0
  chrono_t_max: float | None = None
  recurrent_init: str = "orthogonal"
  input_init: str = "glorot_uniform"

  num_gates = 4

  def __post_init__(self):
    super().__post_init__()
    base.check_choice("recurrent_init", self.recurrent_init, RECURRENT_INITS)
    base.check_choice("input_init", self.input_init, INPUT_INITS)
    if self.chrono_t_max is not None and not self.chrono_t_max > 2:
      raise UserError(f"chrono_t_max must be > 2, got {self.chrono_t_max!r}")

  def init(self, key: Array, input_size: int) -> Params:
    base.check_positive_int("input_size", input_size)
    H, dt = self.hidden_size, self.param_dtype
    k_ih, k_hh, k_b = jax.random.split(key, 3)
    w_ih, w_hh = base.gate_weights(k_ih, k_hh, input_size, H, 4, self.input_init,
                                   self.recurrent_init, dt)
    if self.chrono_t_max is not None:
      b_f = jnp.log(jax.random.uniform(k_b, (H,), dt, 1.0,
                                       self.chrono_t_max - 1.0))
      b_i = -b_f
    else:
      b_f = jnp.full((H,), self.forget_bias, dt)
      b_i = jnp.zeros((H,), dt)
    b = jnp.concatenate([b_i, b_f, jnp.zeros((2 * H,), dt)])
    return {"w_ih": w_ih, "w_hh": w_hh, "b": b}

  def initial_carry(self, batch_shape: int | tuple[int, ...] = (),
                    dtype: jax.typing.DTypeLike | None = None) -> Carry:
    z = self._zeros(batch_shape, dtype)
    return base.LSTMCarry(h=z, c=z)

  def pointwise(self, params: Params, carry: Carry, xp: Array, u: Array) -> tuple[Carry, Array]:
    i, f, g, o = self._gates(xp + u)
    c = f * carry.c + i * g
    h = o * jnp.tanh(c)
    dt = carry.h.dtype
    return base.LSTMCarry(h=h.astype(dt), c=c.astype(dt)), h.astype(dt)

  def _gates(self, z):
    # One tanh over all four blocks (sigmoid(x) = (1 + tanh(x/2)) / 2): on
    # CPU this vectorizes far better than four separate activations.
    H = self.hidden_size
    scale = jnp.concatenate([jnp.full((2 * H,), 0.5, z.dtype),
                             jnp.ones((H,), z.dtype),
                             jnp.full((H,), 0.5, z.dtype)])
    a = jnp.tanh(z * base.at_rank(scale, z.ndim))
    return (0.5 * a[..., :H] + 0.5, 0.5 * a[..., H:2 * H] + 0.5,
            a[..., 2 * H:3 * H], 0.5 * a[..., 3 * H:] + 0.5)

  def pointwise_vjp(self, params: Params, carry: Carry, xp: Array, u: Array,
                    dcarry: Carry, dy: Array) -> tuple[Params, Carry, Array, Array]:
    del params
    i, f, g, o = self._gates(xp + u)
    c = f * carry.c + i * g
    tc = jnp.tanh(c)
    dh = dcarry.h + dy
    dc = dcarry.c + dh * o * (1.0 - tc * tc)
    dz = jnp.concatenate([dc * g * i * (1.0 - i), dc * carry.c * f * (1.0 - f),
                          dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)],
                         axis=-1).astype(xp.dtype)
    dprev = base.LSTMCarry(h=jnp.zeros_like(carry.h),
                           c=(dc * f).astype(carry.c.dtype))
    return {}, dprev, dz, dz  # z = xp + u: the same gradient for both
