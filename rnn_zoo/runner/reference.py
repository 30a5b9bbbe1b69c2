"""The reference runner: :func:`python_unroll` computes what
:func:`rnn_zoo.unroll` computes as a plain Python loop over ``cell.step``,
one example at a time, sharing no code with the runner: the reference every
implementation is tested against, and a debugging aid."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rnn_zoo.cells.cell import Carry, Cell, Params
from rnn_zoo.errors import UserError
from rnn_zoo.runner.inputs import zero_carry

Array = jax.Array


def python_unroll_with_carries(cell: Cell, params: Params, xs: Array, *,
                               initial_carry: Carry = None, lengths: Array | None = None,
                               reverse: bool = False, time_major: bool = False,
                               hidden_probes: Array | None = None
                               ) -> tuple[Array, Carry, Carry]:
  """:func:`unroll_with_carries` as a plain Python loop (the reference):
  ``xs`` ``[batch, time, input]`` (``lengths`` ``[batch]``) to ``(ys, final
  carry, carries)``, every carry leaf ``[batch, time, ...]``.

  Written from the contract alone, sharing no code with the runner: each
  example runs on its own through ``cell.step`` over its first ``length``
  inputs (in reverse order when ``reverse``); outputs past the length are
  zero and the carry stays put there. ``lengths`` must be concrete (NumPy or
  a concrete array).
  """
  xs = np.asarray(xs) if not isinstance(xs, jax.Array) else xs
  if getattr(xs, "ndim", None) != 3:
    raise UserError(f"xs must have rank 3, got shape {getattr(xs, 'shape', None)}")
  if time_major:
    xs = jnp.swapaxes(xs, 0, 1)
    if hidden_probes is not None:
      hidden_probes = jnp.swapaxes(hidden_probes, 0, 1)
  B, T = xs.shape[0], xs.shape[1]
  if lengths is None:
    steps = [T] * B
  else:
    if isinstance(lengths, jax.core.Tracer):
      raise UserError("python_unroll needs concrete lengths, got a tracer")
    steps = [int(n) for n in np.asarray(lengths)]
  if initial_carry is None:
    initial_carry = zero_carry(cell, params, B)
  ys_rows, finals, carry_rows = [], [], []
  for b in range(B):
    carry = jax.tree.map(lambda a: a[b:b + 1], initial_carry)
    L = steps[b]
    order = list(range(L))[::-1] if reverse else list(range(L))
    y_at, c_at = {}, {}
    for t in order:
      carry, y = cell.step(params, carry, xs[b:b + 1, t])
      if hidden_probes is not None:
        carry = carry._replace(h=carry.h + hidden_probes[b:b + 1, t])
        y = carry.h
      y_at[t], c_at[t] = y[0], jax.tree.map(lambda a: a[0], carry)
    zero_y = jnp.zeros((cell.hidden_size,), y_at[order[0]].dtype if L else jnp.float32)
    last = jax.tree.map(lambda a: a[0], carry)
    ys_rows.append(jnp.stack([y_at.get(t, zero_y) for t in range(T)]) if T else
                   jnp.zeros((0, cell.hidden_size)))
    finals.append(last)
    if T:
      carry_rows.append(jax.tree.map(lambda *a: jnp.stack(a),
                                     *[c_at.get(t, last) for t in range(T)]))
    else:
      carry_rows.append(jax.tree.map(lambda a: jnp.zeros((0,) + a.shape), last))
  stack = lambda rows: jax.tree.map(lambda *a: jnp.stack(a), *rows)
  ys, final, carries = jnp.stack(ys_rows), stack(finals), stack(carry_rows)
  if time_major:
    ys = jnp.swapaxes(ys, 0, 1)
    carries = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), carries)
  return ys, final, carries


def python_unroll(cell: Cell, params: Params, xs: Array, *, initial_carry: Carry = None,
                  lengths: Array | None = None, reverse: bool = False,
                  time_major: bool = False, hidden_probes: Array | None = None
                  ) -> tuple[Array, Carry]:
  """:func:`unroll` as a plain Python loop over ``cell.step``: ``xs``
  ``[batch, time, input]`` (``lengths`` ``[batch]``) to ``(ys [batch, time,
  H], final carry)``.

  Slow (one traced step per example and time step); it is the reference the
  scan is tested against, and a debugging aid. Same results as
  :func:`unroll` (minus ``unroll``, ``remat`` and ``fused``); see
  :func:`python_unroll_with_carries`.
  """
  ys, final, _ = python_unroll_with_carries(
      cell, params, xs, initial_carry=initial_carry, lengths=lengths,
      reverse=reverse, time_major=time_major, hidden_probes=hidden_probes)
  return ys, final
