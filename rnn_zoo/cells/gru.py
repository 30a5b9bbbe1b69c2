"""Gated recurrent unit (Cho et al. 2014), in both formulations."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Array, Carry, Params, PointwiseCell, ProjectedCell
from rnn_zoo.errors import UserError

VARIANTS = ("cudnn", "cho")
RECURRENT_INITS = ("orthogonal", "uniform", "glorot_uniform")
INPUT_INITS = ("glorot_uniform", "uniform")


def _check(cell, variant) -> None:
  base.check_choice("variant", cell.variant, VARIANTS)
  if cell.variant != variant:
    raise UserError(
        f"{type(cell).__name__} is variant={variant!r}, got variant={cell.variant!r}")
  base.check_choice("recurrent_init", cell.recurrent_init, RECURRENT_INITS)
  base.check_choice("input_init", cell.input_init, INPUT_INITS)


def _init(cell, key, input_size) -> dict:
  base.check_positive_int("input_size", input_size)
  H, dt = cell.hidden_size, cell.param_dtype
  k_ih, k_hh = jax.random.split(key)
  w_ih, w_hh = base.gate_weights(k_ih, k_hh, input_size, H, 3, cell.input_init,
                                 cell.recurrent_init, dt)
  return {"w_ih": w_ih, "w_hh": w_hh, "b": jnp.zeros((3 * H,), dt)}


@dataclasses.dataclass(frozen=True)
class GRU(PointwiseCell):
  r"""GRU; gate order ``r, z, n`` as in PyTorch.

  With ``[a_r, a_z, a_n] = x_t W_ih + b`` and ``W_hh = [U_r, U_z, U_n]``::

    r_t = sigmoid(a_r + h_{t-1} U_r)             reset gate
    z_t = sigmoid(a_z + h_{t-1} U_z)             update gate
    n_t = tanh(a_n + r_t * (h_{t-1} U_n + b_hn))     variant="cudnn" (default)
    n_t = tanh(a_n + (r_t * h_{t-1}) U_n)            variant="cho"
    h_t = (1 - z_t) * n_t + z_t * h_{t-1},      y_t = h_t

  ``"cudnn"`` (the default) applies the reset gate after the recurrent matmul,
  as cuDNN, PyTorch ``nn.GRU`` and Keras ``reset_after=True`` do; it lets all
  three recurrent matmuls run as one, so it is a :class:`PointwiseCell` (the
  fused backward applies). ``"cho"`` is Cho et al. 2014's original: its
  second matmul reads ``r_t * h_{t-1}``, so ``GRU(..., variant="cho")``
  returns a :class:`GRUCho`, a plain :class:`ProjectedCell`.

  Shapes: ``x_t`` ``[*batch, I]``; ``h_t`` ``[*batch, H]``.

  Params (``init``):
    ``w_ih`` ``[I, 3H]``, ``w_hh`` ``[H, 3H]`` (blocks r, z, n), ``b`` ``[3H]``
    (PyTorch ``bias_ih`` plus the r, z parts of ``bias_hh``), and for
    ``"cudnn"`` only ``b_hn`` ``[H]`` (the n part of PyTorch's ``bias_hh``,
    which sits inside the reset product). Biases start at zero.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.GRU(8, variant="cho")
    >>> type(cell).__name__, sorted(cell.init(jax.random.key(0), input_size=3))
    ('GRUCho', ['b', 'w_hh', 'w_ih'])
  """
  variant: str = "cudnn"
  recurrent_init: str = "orthogonal"
  input_init: str = "glorot_uniform"

  num_gates = 3

  def __new__(cls, *args, **kwargs):
    variant = kwargs.get("variant", args[3] if len(args) > 3 else "cudnn")
    if cls is GRU and variant == "cho":
      return GRUCho(*args, **kwargs)  # not a GRU: __init__ is not run again
    return super().__new__(cls)

  def __post_init__(self):
    super().__post_init__()
    _check(self, "cudnn")

  def param_shapes(self, input_size: int | None) -> dict[str, tuple]:
    shapes = super().param_shapes(input_size)
    shapes["b_hn"] = (self.hidden_size,)
    return shapes

  def init(self, key: Array, input_size: int) -> Params:
    params = _init(self, key, input_size)
    params["b_hn"] = jnp.zeros((self.hidden_size,), self.param_dtype)
    return params

  def initial_carry(self, batch_shape: int | tuple[int, ...] = (),
                    dtype: jax.typing.DTypeLike | None = None) -> Carry:
    return base.HiddenCarry(self._zeros(batch_shape, dtype))

  def pointwise(self, params: Params, carry: Carry, xp: Array, u: Array) -> tuple[Carry, Array]:
    H, h = self.hidden_size, carry.h
    rz = base.sigmoid(xp[..., :2 * H] + u[..., :2 * H])  # one op for r and z
    r, z = rz[..., :H], rz[..., H:]
    n = jnp.tanh(xp[..., 2 * H:] + r * (u[..., 2 * H:] + base.at_rank(params["b_hn"], u.ndim)))
    h_new = ((1.0 - z) * n + z * h).astype(h.dtype)
    return base.HiddenCarry(h_new), h_new

  def pointwise_vjp(self, params: Params, carry: Carry, xp: Array, u: Array,
                    dcarry: Carry, dy: Array) -> tuple[Params, Carry, Array, Array]:
    H, h = self.hidden_size, carry.h
    rz = base.sigmoid(xp[..., :2 * H] + u[..., :2 * H])
    r, z = rz[..., :H], rz[..., H:]
    hn = u[..., 2 * H:] + base.at_rank(params["b_hn"], u.ndim)
    n = jnp.tanh(xp[..., 2 * H:] + r * hn)
    dh = dcarry.h + dy
    dn_pre = dh * (1.0 - z) * (1.0 - n * n)
    d_rz = jnp.concatenate([dn_pre * hn * r * (1.0 - r),
                            dh * (h - n) * z * (1.0 - z)], axis=-1)
    du_n = dn_pre * r
    dxp = jnp.concatenate([d_rz, dn_pre], axis=-1).astype(xp.dtype)
    du = jnp.concatenate([d_rz, du_n], axis=-1).astype(u.dtype)
    db_hn = du_n.reshape((-1, H)).sum(0).astype(params["b_hn"].dtype)
    dparams = {k: (db_hn if k == "b_hn" else jnp.zeros_like(v))
               for k, v in params.items()}
    return dparams, base.HiddenCarry((dh * z).astype(h.dtype)), dxp, du


@dataclasses.dataclass(frozen=True)
class GRUCho(ProjectedCell):
  r"""Cho et al. 2014's GRU: ``n_t = tanh(a_n + (r_t * h_{t-1}) U_n)``.

  The other equations, the params (``w_ih [I, 3H]``, ``w_hh [H, 3H]``,
  ``b [3H]``, no ``b_hn``) and the options are those of :class:`GRU`;
  ``rz.GRU(H, variant="cho")`` builds one. Its reset gate multiplies
  ``h_{t-1}`` before the candidate's matmul, so the step needs two recurrent
  matmuls and the runner uses plain autodiff of the scan (no fused backward).

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.GRUCho(8)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> carry, y = cell.step(params, cell.initial_carry((2,)), jnp.ones((2, 3)))
    >>> y.shape
    (2, 8)
  """
  variant: str = "cho"
  recurrent_init: str = "orthogonal"
  input_init: str = "glorot_uniform"

  num_gates = 3

  def __post_init__(self):
    super().__post_init__()
    _check(self, "cho")

  def init(self, key: Array, input_size: int) -> Params:
    return _init(self, key, input_size)

  def initial_carry(self, batch_shape: int | tuple[int, ...] = (),
                    dtype: jax.typing.DTypeLike | None = None) -> Carry:
    return base.HiddenCarry(self._zeros(batch_shape, dtype))

  def step_projected(self, params: Params, carry: Carry, xp: Array) -> tuple[Carry, Array]:
    H, h, w_hh = self.hidden_size, carry.h, params["w_hh"]
    rz = base.sigmoid(xp[..., :2 * H] + base.matmul(h, w_hh[:, :2 * H], self.dtype))
    r, z = rz[..., :H], rz[..., H:]
    n = jnp.tanh(xp[..., 2 * H:] + base.matmul(r * h, w_hh[:, 2 * H:], self.dtype))
    h_new = ((1.0 - z) * n + z * h).astype(h.dtype)
    return base.HiddenCarry(h_new), h_new
