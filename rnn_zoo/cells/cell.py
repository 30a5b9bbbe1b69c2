"""The abstract cell every recurrent cell of the zoo derives from."""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rnn_zoo.cells import base

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Cell(abc.ABC):
  """Base class: hyperparameters only, every method a pure function.

  Subclasses set ``num_gates`` and implement ``init``, ``initial_carry`` and
  ``step_projected``. ``input_projection`` and ``step`` are shared.

  Attributes:
    hidden_size: H, the size of the hidden state and of the output.
    dtype: the compute dtype of the matmuls (float32 default; bfloat16 on
      accelerators). Accumulation and the carry stay in at least float32.
    param_dtype: the dtype ``init`` creates parameters in.
  """
  hidden_size: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  num_gates = 1  # G: the input projection has G*H columns.

  def __post_init__(self):
    base.check_positive_int("hidden_size", self.hidden_size)
    base.check_dtype("dtype", self.dtype)
    base.check_dtype("param_dtype", self.param_dtype)

  # ---- to implement -------------------------------------------------------
  @abc.abstractmethod
  def init(self, key: Array, input_size: int) -> dict[str, Array]:
    """Returns the params dict for inputs of size ``input_size``."""

  @abc.abstractmethod
  def initial_carry(self, batch_shape=(), dtype=None):
    """Returns the all-zero carry for ``batch_shape`` (an int or a tuple)."""

  @abc.abstractmethod
  def pointwise(self, params, carry, xp, u):
    """The step after its two matmuls: ``xp = x_t W_ih + b`` and
    ``u = h_{t-1} W_hh``; everything left is elementwise.

    Only reads the params other than ``w_ih``, ``w_hh`` and ``b``.
    """

  # ---- shared ------------------------------------------------------------
  @property
  def carry_dtype(self):
    return jnp.promote_types(self.dtype, jnp.float32)

  def param_shapes(self, input_size: int) -> dict[str, tuple]:
    """Expected parameter shapes (``None`` for an unknown input size)."""
    gh = self.num_gates * self.hidden_size
    return {"w_ih": (input_size, gh), "w_hh": (self.hidden_size, gh),
            "b": (gh,)}

  def input_size_of(self, params) -> int:
    """The input size I the params were made for."""
    self.check_params(params)
    return int(params["w_ih"].shape[0])

  def check_params(self, params, input_size: int | None = None) -> None:
    base.check_params(self, params, self.param_shapes(input_size))

  def input_projection(self, params, x: Array) -> Array:
    """``x @ w_ih + b``: ``[..., I] -> [..., G*H]``; hoisted out of the scan."""
    return base.matmul(x, params["w_ih"], self.dtype) + params["b"]

  @property
  def has_pointwise(self) -> bool:
    """Whether the step is ``pointwise(xp, h W_hh)`` (one recurrent matmul on
    ``h``): then the runner's fused backward pass applies."""
    return True

  def pointwise_vjp(self, params, carry, xp, u, dcarry, dy):
    """The backward of :meth:`pointwise` for the fused runner.

    Given the step's inputs and the cotangents of its outputs ``(carry, y)``,
    returns ``(dparams, dcarry_prev, dxp, du)``, where ``dcarry_prev`` leaves
    out the path through ``u`` (the runner adds ``du W_hh^T``) and ``dparams``
    covers the params ``pointwise`` reads. Cells override it with the
    closed form (autodiff's version slices and pads more than needed); the
    tests hold each override to this default.
    """
    _, vjp = jax.vjp(lambda p, c, x, w: self.pointwise(p, c, x, w),
                     params, carry, xp, u)
    return vjp((dcarry, dy))

  def recurrent_matmul(self, params, h: Array) -> Array:
    """``u = h W_hh``: ``[..., H] -> [..., G*H]``."""
    return base.matmul(h, params["w_hh"], self.dtype)

  def step_projected(self, params, carry, xp: Array):
    """One step given the projected input ``xp = x_t W_ih + b``."""
    return self.pointwise(params, carry, xp,
                          self.recurrent_matmul(params, carry.h))

  def step(self, params, carry, x: Array):
    """One time step: ``x`` is ``[*batch, I]``; returns ``(carry, y)``."""
    return self.step_projected(params, carry, self.input_projection(params, x))

  def _zeros(self, batch_shape, dtype):
    if isinstance(batch_shape, int):
      batch_shape = (batch_shape,)
    dtype = self.carry_dtype if dtype is None else dtype
    return jnp.zeros(tuple(batch_shape) + (self.hidden_size,), dtype)
