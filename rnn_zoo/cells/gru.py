"""Gated recurrent unit (Cho et al. 2014), in both formulations."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Cell

VARIANTS = ("cudnn", "cho")
RECURRENT_INITS = ("orthogonal", "uniform", "glorot_uniform")
INPUT_INITS = ("glorot_uniform", "uniform")


@dataclasses.dataclass(frozen=True)
class GRU(Cell):
  r"""GRU; gate order ``r, z, n`` as in PyTorch.

  With ``[a_r, a_z, a_n] = x_t W_ih + b`` and ``W_hh = [U_r, U_z, U_n]``::

    r_t = sigmoid(a_r + h_{t-1} U_r)             reset gate
    z_t = sigmoid(a_z + h_{t-1} U_z)             update gate
    n_t = tanh(a_n + r_t * (h_{t-1} U_n + b_hn))     variant="cudnn" (default)
    n_t = tanh(a_n + (r_t * h_{t-1}) U_n)            variant="cho"
    h_t = (1 - z_t) * n_t + z_t * h_{t-1},      y_t = h_t

  ``"cudnn"`` (the default) applies the reset gate after the recurrent matmul,
  as cuDNN, PyTorch ``nn.GRU`` and Keras ``reset_after=True`` do; it lets all
  three recurrent matmuls run as one. ``"cho"`` is Cho et al. 2014's original.

  Shapes: ``x_t`` ``[*batch, I]``; ``h_t`` ``[*batch, H]``.

  Params (``init``):
    ``w_ih`` ``[I, 3H]``, ``w_hh`` ``[H, 3H]`` (blocks r, z, n), ``b`` ``[3H]``
    (PyTorch ``bias_ih`` plus the r, z parts of ``bias_hh``), and for
    ``"cudnn"`` only ``b_hn`` ``[H]`` (the n part of PyTorch's ``bias_hh``,
    which sits inside the reset product). Biases start at zero.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.GRU(8, variant="cho")
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> sorted(params)
    ['b', 'w_hh', 'w_ih']
  """
  variant: str = "cudnn"
  recurrent_init: str = "orthogonal"
  input_init: str = "glorot_uniform"

  num_gates = 3

  def __post_init__(self):
    super().__post_init__()
    base.check_choice("variant", self.variant, VARIANTS)
    base.check_choice("recurrent_init", self.recurrent_init, RECURRENT_INITS)
    base.check_choice("input_init", self.input_init, INPUT_INITS)

  def param_shapes(self, input_size):
    shapes = super().param_shapes(input_size)
    if self.variant == "cudnn":
      shapes["b_hn"] = (self.hidden_size,)
    return shapes

  def init(self, key, input_size):
    base.check_positive_int("input_size", input_size)
    H, dt = self.hidden_size, self.param_dtype
    k_ih, k_hh = jax.random.split(key)
    if self.input_init == "glorot_uniform":
      w_ih = jnp.concatenate([base.glorot_uniform(k, (input_size, H), dt)
                              for k in jax.random.split(k_ih, 3)], axis=-1)
    else:
      w_ih = base.uniform_fan(k_ih, (input_size, 3 * H), dt, H)
    if self.recurrent_init == "orthogonal":
      w_hh = base.orthogonal_blocks(k_hh, H, 3, dt)
    elif self.recurrent_init == "uniform":
      w_hh = base.uniform_fan(k_hh, (H, 3 * H), dt, H)
    else:
      w_hh = jnp.concatenate([base.glorot_uniform(k, (H, H), dt)
                              for k in jax.random.split(k_hh, 3)], axis=-1)
    params = {"w_ih": w_ih, "w_hh": w_hh, "b": jnp.zeros((3 * H,), dt)}
    if self.variant == "cudnn":
      params["b_hn"] = jnp.zeros((H,), dt)
    return params

  def initial_carry(self, batch_shape=(), dtype=None):
    return base.HiddenCarry(self._zeros(batch_shape, dtype))

  def step_projected(self, params, carry, xp):
    H, h = self.hidden_size, carry.h
    a_r, a_z, a_n = jnp.split(xp, 3, axis=-1)
    w_hh = params["w_hh"]
    if self.variant == "cudnn":
      u = base.matmul(h, w_hh, self.dtype)
      u_r, u_z, u_n = jnp.split(u, 3, axis=-1)
      r = jax.nn.sigmoid(a_r + u_r)
      z = jax.nn.sigmoid(a_z + u_z)
      n = jnp.tanh(a_n + r * (u_n + params["b_hn"]))
    else:
      u = base.matmul(h, w_hh[:, :2 * H], self.dtype)
      u_r, u_z = jnp.split(u, 2, axis=-1)
      r = jax.nn.sigmoid(a_r + u_r)
      z = jax.nn.sigmoid(a_z + u_z)
      n = jnp.tanh(a_n + base.matmul(r * h, w_hh[:, 2 * H:], self.dtype))
    h_new = ((1.0 - z) * n + z * h).astype(h.dtype)
    return base.HiddenCarry(h_new), h_new
