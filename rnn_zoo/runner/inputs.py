"""The runner's inputs, validated once at the public boundary.

:func:`prepare` checks every argument of :func:`rnn_zoo.unroll` (on shapes
and dtypes, so before anything is traced) and returns a :class:`Prepared`
call: what every implementation reads, in one place, in the time-major
layout the loops use. Nothing downstream validates again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rnn_zoo.cells.cell import Carry, Cell, Params
from rnn_zoo.errors import UserError
from rnn_zoo.runner.select import Request, check_cell, dtype_reason

Array = jax.Array
RunResult = tuple[Array, Carry, Carry | None]  # (ys, final_carry, every carry or None)


def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def check_xs(xs: Any, time_major: bool) -> None:
  """``xs`` is a rank-3 floating array."""
  if not hasattr(xs, "shape") or not hasattr(xs, "dtype"):
    raise UserError(f"xs must be an array, got {type(xs).__name__}")
  if xs.ndim != 3:
    layout = "[time, batch, features]" if time_major else "[batch, time, features]"
    raise UserError(f"xs must have rank 3 {layout}, got shape {tuple(xs.shape)}")
  if not jnp.issubdtype(xs.dtype, jnp.floating):
    raise UserError(f"xs must be a floating array, got dtype {xs.dtype}")


def check_inputs(cell: Cell, params: Params, xs: Any, time_major: bool) -> None:
  """Validates ``xs`` ([B, T, I], or [T, B, I] if time_major) against params
  (the params are checked once, here)."""
  check_xs(xs, time_major)
  cell.check_params(params)
  input_size = cell.input_size_of(params)
  if input_size is not None and xs.shape[-1] != input_size:
    raise UserError(
        f"xs has feature size {xs.shape[-1]} but params expect input_size "
        f"{input_size} (xs shape {tuple(xs.shape)})")


def check_lengths(lengths: Any, batch: int, time: int) -> Array:
  lengths = jnp.asarray(lengths)
  if not jnp.issubdtype(lengths.dtype, jnp.integer):
    raise UserError(f"lengths must be integers, got dtype {lengths.dtype}")
  if lengths.shape != (batch,):
    raise UserError(
        f"lengths must have shape [batch]=({batch},), got {tuple(lengths.shape)}")
  if _is_concrete(lengths):
    arr = np.asarray(lengths)
    bad = arr[(arr < 0) | (arr > time)]
    if bad.size:
      raise UserError(
          f"lengths must lie in [0, time={time}], got {bad.tolist()} in "
          f"lengths={arr.tolist()}")
  return lengths


def check_remat(remat: bool | str | int | None) -> int:
  """Returns 0 (no remat), 1 (per step) or the chunk size."""
  if remat is False or remat is None or remat == "none":
    return 0
  if remat is True or remat == "step":
    return 1
  if isinstance(remat, (int, np.integer)) and not isinstance(remat, bool) and remat > 0:
    return int(remat)
  raise UserError(
      f"remat must be False, True/'step', or a positive chunk size, got {remat!r}")


def check_unroll(unroll: int | bool) -> None:
  if isinstance(unroll, bool):
    return
  if not isinstance(unroll, (int, np.integer)) or unroll <= 0:
    raise UserError(f"unroll must be a positive int or bool, got {unroll!r}")


def check_carry(cell: Cell, carry: Carry, batch: int) -> None:
  ref = cell.initial_carry((batch,))
  if type(carry) is not type(ref):
    raise UserError(
        f"initial_carry must be a {type(ref).__name__} for {type(cell).__name__}, "
        f"got {type(carry).__name__}")
  ref_leaves = jax.tree_util.tree_flatten_with_path(ref)[0]
  got_leaves, got_tree = jax.tree_util.tree_flatten_with_path(carry)
  if got_tree != jax.tree.structure(ref):  # type: ignore[operator]
    raise UserError(
        f"initial_carry must have the structure of {type(cell).__name__}'s carry "
        f"{jax.tree.structure(ref)}, got {got_tree}")
  for (path, want), (_, got) in zip(ref_leaves, got_leaves):
    name = jax.tree_util.keystr(path, simple=True, separator=".")
    if not hasattr(got, "shape") or tuple(got.shape) != tuple(want.shape):
      raise UserError(
          f"initial_carry.{name} must have shape {tuple(want.shape)}, "
          f"got {tuple(getattr(got, 'shape', ())) or type(got).__name__}")
    if (jnp.issubdtype(want.dtype, jnp.floating)
        and not jnp.issubdtype(got.dtype, jnp.floating)):
      raise UserError(
          f"initial_carry.{name} must be a floating array (the carry of "
          f"{type(cell).__name__} is {want.dtype}), got dtype {got.dtype}")
    if (jnp.issubdtype(want.dtype, jnp.floating)
        and jnp.finfo(got.dtype).bits < jnp.finfo(want.dtype).bits):
      raise UserError(
          f"initial_carry.{name} has dtype {got.dtype}, narrower than the "
          f"{want.dtype} carry of {type(cell).__name__}: the whole unroll would run "
          f"in {got.dtype}; cast it (.astype({want.dtype})) or make the cell with "
          f"dtype={got.dtype}")


def check_resets(resets: Any, B: int, T: int, time_major: bool, reverse: bool) -> Array:
  if reverse:
    raise UserError("resets are not supported with reverse=True")
  want = (T, B) if time_major else (B, T)
  if not hasattr(resets, "shape") or tuple(resets.shape) != want:
    raise UserError(f"resets must be a bool array of shape {want} "
                    f"({'[time, batch]' if time_major else '[batch, time]'}), got "
                    f"{getattr(resets, 'shape', type(resets).__name__)}")
  if resets.dtype != jnp.bool_:
    raise UserError(f"resets must be a bool array, got dtype {resets.dtype}")
  return resets if time_major else resets.T


def zero_carry(cell: Cell, params: Params, batch: int) -> Carry:
  """The cell's zero carry, in float64 when its params are (the default is
  the cell's own dtype): float64 runs, such as the gradient-flow
  diagnostics, then need no initial carry of their own."""
  f64 = any(getattr(x, "dtype", None) == jnp.float64 for x in jax.tree.leaves(params))
  return cell.initial_carry((batch,), jnp.float64 if f64 else None)


def reverse_within_lengths(xs_t: Array, lengths: Array | None) -> Array:
  """Reverses time-major ``[T, B, ...]`` within each sequence's length.

  Position ``t < L_b`` of example ``b`` gets ``x[L_b - 1 - t]``; padding
  positions (``t >= L_b``) stay where they are. The map is an involution.

  Example:
    >>> import jax.numpy as jnp, rnn_zoo as rz
    >>> xs_t = jnp.arange(4.0)[:, None, None] * jnp.ones((4, 2, 1))
    >>> rz.reverse_within_lengths(xs_t, jnp.array([4, 2]))[:, :, 0].T.tolist()
    [[3.0, 2.0, 1.0, 0.0], [1.0, 0.0, 2.0, 3.0]]
  """
  if lengths is None:
    return jnp.flip(xs_t, axis=0)
  T = xs_t.shape[0]
  t = jnp.arange(T)[:, None]
  idx = jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # [T, B]
  idx = idx.reshape(idx.shape + (1,) * (xs_t.ndim - 2))
  return jnp.take_along_axis(xs_t, idx, axis=0)


@dataclasses.dataclass(frozen=True)
class Prepared:
  """One validated call of the runner: what every implementation reads.

  Attributes:
    xs: the inputs in the caller's layout, as given.
    time_major: the caller's layout (of ``xs`` and of the outputs).
    reverse: run from the end of each sequence (within its length).
    lengths: int ``[B]`` valid lengths, or None.
    mask: bool ``[T, B]`` (``t < length``), or None.
    probes_t: ``[T, B, H]`` zero probes added to ``h_t``, or None.
    resets_t: bool ``[T, B]``, or None.
    carry0: the initial carry (zeros when none was given).
    chunk: 0 (no remat), 1 (per step) or the remat chunk size.
    unroll: ``lax.scan``'s unroll factor.
    all_carries: also return the carry after every step.
  """
  xs: Array
  time_major: bool
  reverse: bool
  lengths: Array | None
  mask: Array | None
  probes_t: Array | None
  resets_t: Array | None
  carry0: Any
  chunk: int
  unroll: int | bool
  all_carries: bool

  @property
  def T(self) -> int:
    return self.xs.shape[0 if self.time_major else 1]

  @property
  def B(self) -> int:
    return self.xs.shape[1 if self.time_major else 0]

  def inputs_t(self) -> Array:
    """The inputs time-major ``[T, B, I]``, zero past each length (padding
    is unspecified, it may hold NaN: nothing of it reaches values or
    gradients)."""
    xs_t = self.xs if self.time_major else jnp.swapaxes(self.xs, 0, 1)
    if self.mask is None:
      return xs_t
    return jnp.where(self.mask[..., None], xs_t, jnp.zeros((), xs_t.dtype))

  def in_run_order(self, a_t: Array) -> Array:
    """A time-major sequence in the order the loop runs (reversed within
    the lengths with ``reverse``); an involution, so it also maps back."""
    return reverse_within_lengths(a_t, self.lengths) if self.reverse else a_t

  def finish(self, a_t: Array) -> Array:
    """A time-major sequence in run order back to the caller's order and
    layout."""
    a_t = self.in_run_order(a_t)
    return a_t if self.time_major else jnp.swapaxes(a_t, 0, 1)

  def request(self, cell: Cell, params: Params, impl: str,
              excluded: frozenset = frozenset()) -> Request:
    """The facts :func:`rnn_zoo.runner.select.select_impl` reads."""
    dtypes = {"compute dtype": cell.dtype}
    for name in ("w_ih", "w_hh", "b"):
      if isinstance(params, dict) and name in params:
        dtypes[name] = params[name].dtype
    dtypes["inputs"] = self.xs.dtype
    for path, leaf in jax.tree_util.tree_flatten_with_path(self.carry0)[0]:
      name = jax.tree_util.keystr(path, simple=True, separator=".")
      dtypes[f"carry {name}"] = leaf.dtype
    return Request(impl=impl, remat_chunk=self.chunk,
                   all_carries=self.all_carries,
                   lengths=self.lengths is not None,
                   probes=self.probes_t is not None,
                   resets=self.resets_t is not None, reverse=self.reverse,
                   float32=dtype_reason(dtypes), empty=0 in self.xs.shape,
                   excluded=excluded)


def prepare(cell: Cell, params: Params, xs: Any, *, initial_carry: Carry = None,
            lengths: Any = None, reverse: bool = False, time_major: bool = False,
            unroll: int | bool = 1, remat: bool | str | int = False,
            all_carries: bool = False, hidden_probes: Array | None = None,
            resets: Any = None) -> Prepared:
  """Validates one call of the runner (see :func:`rnn_zoo.unroll`)."""
  check_cell(cell)
  check_inputs(cell, params, xs, time_major)
  check_unroll(unroll)
  chunk = check_remat(remat)
  T, B = (xs.shape[0], xs.shape[1]) if time_major else (xs.shape[1], xs.shape[0])
  resets_t = None if resets is None else check_resets(resets, B, T, time_major, reverse)
  mask = None
  if lengths is not None:
    lengths = check_lengths(lengths, B, T)
    mask = jnp.arange(T)[:, None] < lengths[None, :]  # [T, B]
  if initial_carry is None:
    initial_carry = zero_carry(cell, params, B)
  else:
    check_carry(cell, initial_carry, B)
  cell.check_initial_carry(initial_carry)
  probes_t = None
  if hidden_probes is not None:
    want = (xs.shape[0], xs.shape[1], cell.hidden_size)
    if tuple(getattr(hidden_probes, "shape", ())) != want:
      raise UserError(
          f"hidden_probes must have the output shape {want}, got "
          f"{tuple(getattr(hidden_probes, 'shape', ()))}")
    probes_t = hidden_probes if time_major else jnp.swapaxes(hidden_probes, 0, 1)
  return Prepared(xs=xs, time_major=time_major, reverse=bool(reverse),
                  lengths=lengths, mask=mask, probes_t=probes_t,
                  resets_t=resets_t, carry0=initial_carry, chunk=chunk,
                  unroll=unroll, all_carries=all_carries)
