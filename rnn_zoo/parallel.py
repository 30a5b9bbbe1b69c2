"""Parallel scans for diagonal linear recurrences ``h_t = a_t * h_{t-1} + b_t``.

The step composes associatively, ``(a1, b1) then (a2, b2) = (a2 a1, a2 b1 +
b2)``, so all T states come from ``jax.lax.associative_scan`` in O(log T)
sequential depth (O(T) work) instead of T dependent steps; the log-space
form (Heinsen 2023, used by Feng et al. 2024 for minGRU/minLSTM) is a
``cumsum`` and a ``jax.lax.cumlogsumexp``. :func:`rnn_zoo.unroll` runs a
:class:`rnn_zoo.cells.LinearRecurrentCell` with them; these functions are
the building blocks, on time-major arrays (time on axis 0).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

# Stands in for log(0) in the log-space scan: exp of it is exactly 0, and
# unlike -inf it keeps cumlogsumexp's gradient finite.
LOG_ZERO = -1e30


def _combine(x, y):
  a1, b1 = x
  a2, b2 = y
  return a2 * a1, a2 * b1 + b2


def linear_scan(a: Array, b: Array, h0: Array | None = None) -> Array:
  """Every ``h_t = a_t * h_{t-1} + b_t`` (``h_{-1} = h0``, default 0).

  Args:
    a, b: ``[T, ...]`` (real or complex), time on axis 0.
    h0: ``[...]`` the state before the first step, or None for zeros.

  Returns:
    ``[T, ...]``: the state after every step.

  Example:
    >>> import jax.numpy as jnp
    >>> from rnn_zoo.parallel import linear_scan
    >>> linear_scan(jnp.full((4, 1), 0.5), jnp.ones((4, 1)))[:, 0].tolist()
    [1.0, 1.5, 1.75, 1.875]
  """
  if h0 is not None:
    b = b.at[0].add(a[0] * h0)
  _, h = jax.lax.associative_scan(_combine, (a, b), axis=0)
  return h


def log_linear_scan(log_a: Array, log_b: Array, h0: Array | None = None) -> Array:
  """:func:`linear_scan` for ``a_t, b_t > 0`` given ``log a_t``, ``log b_t``:
  ``h_t = exp(A_t) (h0 + sum_{k<=t} exp(log b_k - A_k))`` with ``A_t =
  sum_{k<=t} log a_k``, the sum as ``cumlogsumexp`` (Heinsen 2023).

  ``h0`` may have any sign (its term is added in linear space). In float32
  the error grows with ``|A_T|`` (the two large logs nearly cancel): see
  docs/parallel_scan.md for what was measured.
  """
  a_star = jnp.cumsum(log_a, axis=0)
  log_b = jnp.maximum(log_b, LOG_ZERO)
  h = jnp.exp(a_star + jax.lax.cumlogsumexp(log_b - a_star, axis=0))
  if h0 is not None:
    h = h + jnp.exp(a_star) * h0[None]
  return h
