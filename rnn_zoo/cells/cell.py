"""The cell interfaces of the zoo, from the most general to the fastest.

* :class:`Cell`: any recurrent cell. Implement ``init``, ``initial_carry``
  and ``step``; the runner (:func:`rnn_zoo.unroll`), stacks, bidirectional
  layers, truncated BPTT and decoding then work with it. An attention decoder
  or any new cell starts here.
* :class:`ProjectedCell`: a cell whose input enters only through
  ``x W_ih + b``. Implement ``step_projected``; the runner hoists the input
  projection out of the time loop (one matmul for all steps).
* :class:`PointwiseCell`: a projected cell whose step is one recurrent
  matmul ``u = h W_hh`` followed by elementwise work ``pointwise(xp, u)``.
  Implement ``pointwise`` (and, for speed, a closed-form ``pointwise_vjp``);
  the runner then uses the hand-written backward pass of :mod:`rnn_zoo.runner.fused`.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rnn_zoo.cells import base
from rnn_zoo.errors import UserError

Array = jax.Array
Params = Any  # a cell's params: a dict (pytree) of arrays
Carry = Any   # a cell's carry: a NamedTuple of arrays (HiddenCarry, LSTMCarry, ...)


@dataclasses.dataclass(frozen=True)
class Cell(abc.ABC):
  """Any recurrent cell: hyperparameters only, every method a pure function.

  Subclasses implement ``init``, ``initial_carry`` and ``step``. The carry is
  a NamedTuple whose field ``h`` is the hidden state (the runner's gradient
  probes add to it).

  Attributes:
    hidden_size: H, the size of the hidden state and of the output.
    dtype: the compute dtype of the matmuls (float32 default; bfloat16 on
      accelerators). Accumulation and the carry stay in at least float32.
    param_dtype: the dtype ``init`` creates parameters in.
  """
  hidden_size: int
  dtype: jax.typing.DTypeLike = jnp.float32
  param_dtype: jax.typing.DTypeLike = jnp.float32

  def __post_init__(self):
    base.check_positive_int("hidden_size", self.hidden_size)
    base.check_dtype("dtype", self.dtype)
    base.check_dtype("param_dtype", self.param_dtype)

  # ---- to implement -------------------------------------------------------
  @abc.abstractmethod
  def init(self, key: Array, input_size: int) -> dict[str, Array]:
    """Returns the params dict for inputs of size ``input_size``."""

  @abc.abstractmethod
  def initial_carry(self, batch_shape: int | tuple[int, ...] = (),
                    dtype: jax.typing.DTypeLike | None = None) -> Carry:
    """Returns the all-zero carry for ``batch_shape`` (an int or a tuple)."""

  @abc.abstractmethod
  def step(self, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
    """One time step: ``x`` is ``[*batch, I]``; returns ``(carry, y)``."""

  # ---- optional -----------------------------------------------------------
  def check_params(self, params: Params, input_size: int | None = None) -> None:
    """Raises ValueError when ``params`` cannot be this cell's (default:
    accepts anything)."""

  def check_initial_carry(self, carry: Carry) -> None:
    """Raises ValueError when ``carry`` cannot start a sequence (the runner
    asks once per call; default: accepts anything of the right structure)."""

  def input_size_of(self, params: Params) -> int | None:
    """The input size I the params were made for (None: unknown); reads
    params that :meth:`check_params` has accepted (the runner checks once,
    then asks)."""
    return None

  def input_projection(self, params: Params, x: Array) -> Array:
    """The part of the step that depends on ``x`` alone, for every step at
    once (the runner hoists it out of the loop). Default: ``x`` itself."""
    del params
    return x

  def prepare(self, params: Params) -> Params:
    """The params as every step reads them, made once per call by the runner
    (hoisted out of the time loop, e.g. :class:`~rnn_zoo.ExpRNN`'s
    ``W = expm(S)``); :meth:`step` must accept both forms. Default: the
    params themselves."""
    return params

  def step_projected(self, params: Params, carry: Carry, xp: Array) -> tuple[Carry, Array]:
    """One step given ``xp = input_projection(params, x_t)``."""
    return self.step(params, carry, xp)

  # ---- shared ------------------------------------------------------------
  @property
  def carry_dtype(self) -> jnp.dtype:
    return jnp.promote_types(self.dtype, jnp.float32)

  def _zeros(self, batch_shape, dtype):
    if isinstance(batch_shape, int):
      batch_shape = (batch_shape,)
    dtype = self.carry_dtype if dtype is None else dtype
    base.check_dtype("dtype", dtype)
    return jnp.zeros(tuple(batch_shape) + (self.hidden_size,), dtype)


@dataclasses.dataclass(frozen=True)
class ProjectedCell(Cell):
  """A cell whose input enters only through ``x W_ih + b``.

  Params hold at least ``w_ih [I, G*H]``, ``w_hh [H, G*H]`` and ``b [G*H]``
  (G = ``num_gates``). Subclasses implement ``init``, ``initial_carry`` and
  ``step_projected``.
  """

  num_gates = 1  # G: the input projection has G*H columns.

  def param_shapes(self, input_size: int | None) -> dict[str, tuple]:
    """Expected parameter shapes (``None`` for an unknown input size)."""
    gh = self.num_gates * self.hidden_size
    return {"w_ih": (input_size, gh), "w_hh": (self.hidden_size, gh),
            "b": (gh,)}

  def check_params(self, params: Params, input_size: int | None = None) -> None:
    base.check_params(self, params, self.param_shapes(input_size))

  def input_size_of(self, params: Params) -> int:
    return int(params["w_ih"].shape[0])

  def input_projection(self, params: Params, x: Array) -> Array:
    """``x @ w_ih + b``: ``[..., I] -> [..., G*H]``; hoisted out of the scan."""
    xw = base.matmul(x, params["w_ih"], self.dtype)
    return xw + base.at_rank(params["b"], xw.ndim)

  @abc.abstractmethod
  def step_projected(self, params: Params, carry: Carry, xp: Array) -> tuple[Carry, Array]:
    """One step given the projected input ``xp = x_t W_ih + b``."""

  def step(self, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
    dtype = getattr(x, "dtype", None)
    if dtype is not None and not jnp.issubdtype(dtype, jnp.floating):
      raise UserError(f"x must be a floating array, got dtype {dtype}")
    return self.step_projected(params, carry, self.input_projection(params, x))


@dataclasses.dataclass(frozen=True)
class PointwiseCell(ProjectedCell):
  """A projected cell whose step is ``pointwise(xp_t, h_{t-1} W_hh)``.

  Subclasses implement ``init``, ``initial_carry`` and ``pointwise``; the
  runner's fused backward pass (:mod:`rnn_zoo.runner.fused`) applies to them.
  """

  @abc.abstractmethod
  def pointwise(self, params: Params, carry: Carry, xp: Array, u: Array) -> tuple[Carry, Array]:
    """The step after its two matmuls: ``xp = x_t W_ih + b`` and
    ``u = h_{t-1} W_hh``; everything left is elementwise.

    Only reads the params other than ``w_ih``, ``w_hh`` and ``b``.
    """

  def pointwise_vjp(self, params: Params, carry: Carry, xp: Array, u: Array,
                    dcarry: Carry, dy: Array) -> tuple[Params, Carry, Array, Array]:
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

  def recurrent_matmul(self, params: Params, h: Array) -> Array:
    """``u = h W_hh``: ``[..., H] -> [..., G*H]``."""
    return base.matmul(h, params["w_hh"], self.dtype)

  def step_projected(self, params: Params, carry: Carry, xp: Array) -> tuple[Carry, Array]:
    return self.pointwise(params, carry, xp,
                          self.recurrent_matmul(params, carry.h))
