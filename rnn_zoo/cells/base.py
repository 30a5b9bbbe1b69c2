"""Shared pieces of the pure-function cells: carries, initializers, checks.

Every cell in :mod:`rnn_zoo.cells` is a small frozen dataclass holding only
hyperparameters, with pure methods (``init``, ``initial_carry``, ``step``,
...): see :mod:`rnn_zoo.cells.cell` for the three interfaces.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from rnn_zoo import checks
from rnn_zoo.errors import UserError

Array = jax.Array
PyTree = Any


class HiddenCarry(NamedTuple):
  """Carry of :class:`SimpleRNN` and :class:`GRU`."""
  h: jax.Array  # [*batch, hidden] hidden state.


class LSTMCarry(NamedTuple):
  """Carry of :class:`LSTM`."""
  h: jax.Array  # [*batch, hidden] hidden state (the output).
  c: jax.Array  # [*batch, hidden] cell state.


check_choice = checks.choice
check_positive_int = checks.positive_int


def check_dtype(name: str, value: Any) -> None:
  try:
    dt = jnp.dtype(value)
  except TypeError as e:
    raise UserError(f"{name} must be a floating dtype, got {value!r}") from e
  if not jnp.issubdtype(dt, jnp.floating):
    raise UserError(f"{name} must be a floating dtype, got {value!r}")


# --------------------------------------------------------------------------
# Initializers. Each takes (key, shape, dtype) and returns an array.

def uniform_fan(key: Array, shape: tuple[int, ...], dtype: jax.typing.DTypeLike,
                hidden_size: int) -> Array:
  """PyTorch's default RNN init: U(-1/sqrt(H), 1/sqrt(H))."""
  bound = 1.0 / math.sqrt(hidden_size)
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def glorot_uniform(key: Array, shape: tuple[int, ...],
                   dtype: jax.typing.DTypeLike) -> Array:
  fan_in, fan_out = shape[-2], shape[-1]
  bound = math.sqrt(6.0 / (fan_in + fan_out))
  return jax.random.uniform(key, shape, dtype, -bound, bound)


def orthogonal_blocks(key: Array, hidden_size: int, num_blocks: int,
                      dtype: jax.typing.DTypeLike, scale: float = 1.0) -> Array:
  """``[H, G*H]`` made of G independent orthogonal ``[H, H]`` blocks."""
  keys = jax.random.split(key, num_blocks)
  init = jax.nn.initializers.orthogonal(scale)
  return jnp.concatenate(
      [init(k, (hidden_size, hidden_size), dtype) for k in keys], axis=-1)


def gate_weights(k_ih: Array, k_hh: Array, input_size: int, hidden_size: int,
                 num_gates: int, input_init: str, recurrent_init: str,
                 dtype: jax.typing.DTypeLike) -> tuple[Array, Array]:
  """``(w_ih [I, G*H], w_hh [H, G*H])`` of a gated cell (LSTM, GRU).

  ``input_init``: ``"glorot_uniform"`` (per gate block) or ``"uniform"``;
  ``recurrent_init``: ``"orthogonal"`` (per block), ``"uniform"`` or
  ``"glorot_uniform"`` (per block).
  """
  H, G = hidden_size, num_gates
  if input_init == "glorot_uniform":
    w_ih = jnp.concatenate([glorot_uniform(k, (input_size, H), dtype)
                            for k in jax.random.split(k_ih, G)], axis=-1)
  else:
    w_ih = uniform_fan(k_ih, (input_size, G * H), dtype, H)
  if recurrent_init == "orthogonal":
    w_hh = orthogonal_blocks(k_hh, H, G, dtype)
  elif recurrent_init == "uniform":
    w_hh = uniform_fan(k_hh, (H, G * H), dtype, H)
  else:
    w_hh = jnp.concatenate([glorot_uniform(k, (H, H), dtype)
                            for k in jax.random.split(k_hh, G)], axis=-1)
  return w_ih, w_hh


def identity_blocks(hidden_size: int, num_blocks: int, dtype: jax.typing.DTypeLike,
                    scale: float = 1.0) -> Array:
  eye = scale * jnp.eye(hidden_size, dtype=dtype)
  return jnp.concatenate([eye] * num_blocks, axis=-1)


def sigmoid(x: Array) -> Array:
  """``sigmoid(x) = (1 + tanh(x / 2)) / 2``.

  On XLA:CPU one ``tanh`` over a whole gate block vectorizes far better than
  ``jax.nn.sigmoid`` on each slice (measured: the LSTM step's pointwise part
  ran ~5x faster, see benchmarks/throughput.py).
  """
  return 0.5 * jnp.tanh(0.5 * x) + 0.5


def at_rank(a: Array, ndim: int) -> Array:
  """``a`` with leading unit axes up to rank ``ndim``: a bias ``[G*H]``
  broadcast against ``[T, B, G*H]`` explicitly (the suite runs with
  ``jax_numpy_rank_promotion="raise"``)."""
  a = jnp.asarray(a)
  return a.reshape((1,) * (ndim - a.ndim) + a.shape)


def affine(x: Array, w: Array, b: Array) -> Array:
  """``x @ w + b`` with the bias broadcast explicitly (:func:`at_rank`)."""
  y = x @ w
  return y + at_rank(b, y.ndim)


def matmul(x: Array, w: Array, dtype: jax.typing.DTypeLike) -> Array:
  """``x @ w`` computed in ``dtype`` with float32 (or wider) accumulation.

  A float64 operand (x64 enabled, as in the float64 gradient-flow
  diagnostics) computes in float64 whatever ``dtype`` says: casting it down
  would silently lose the precision the caller asked for.
  """
  if jnp.float64 in (jnp.dtype(x.dtype), jnp.dtype(w.dtype)):
    dtype = jnp.float64
  out_dtype = jnp.promote_types(dtype, jnp.float32)
  lead = x.shape[:-1]
  # A 2-D GEMM: XLA:CPU ran [T, B, I] @ [I, G*H] 2.5x slower than the same
  # product with the leading axes flattened (measured, jax 0.10.2).
  out = jnp.matmul(x.reshape((-1, x.shape[-1])).astype(dtype), w.astype(dtype),
                   preferred_element_type=out_dtype)
  return out.reshape(lead + (w.shape[-1],))


def check_params(cell: Any, params: PyTree, expected: dict[str, tuple]) -> None:
  """Raises ValueError if ``params`` lacks a key or has a wrong shape."""
  if not isinstance(params, dict):
    raise UserError(
        f"params of {type(cell).__name__} must be a dict with keys "
        f"{sorted(expected)}, got {type(params).__name__}")
  missing = sorted(set(expected) - set(params))
  if missing:
    raise UserError(
        f"params of {type(cell).__name__} miss keys {missing}; "
        f"got keys {sorted(params)}")
  for k, shape in expected.items():
    got = tuple(params[k].shape)
    if any(e is not None and e != g for e, g in zip(shape, got)) or len(got) != len(shape):
      raise UserError(
          f"params[{k!r}] of {type(cell).__name__} must have shape "
          f"{tuple('?' if s is None else s for s in shape)}, got {got}")
