"""``impl="parallel"`` and ``"parallel_log"``: a linear recurrent cell's
states ``h_t = a_t * h_{t-1} + b_t`` by a parallel scan (log depth in time),
with the same numbers as the sequential loop with its masks, probes and
resets (tested in float64)."""

from __future__ import annotations

import jax.numpy as jnp

from rnn_zoo import parallel as parallel_scan
from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Cell, Params
from rnn_zoo.runner.inputs import Prepared, RunResult


def _col(m):
  return m[..., None]


def _log_states(cell, params, xp, h0, mask, probes_t):
  log_a, log_b = cell.log_coefficients(params, xp)
  if mask is not None:
    log_a = jnp.where(_col(mask), log_a, 0.0)
    log_b = jnp.where(_col(mask), log_b, parallel_scan.LOG_ZERO)
  h = parallel_scan.log_linear_scan(log_a, log_b, h0)
  if probes_t is not None:  # the probes enter linearly: their own scan
    p = probes_t if mask is None else jnp.where(_col(mask), probes_t, 0.0)
    h = h + parallel_scan.linear_scan(jnp.exp(log_a), p.astype(h.dtype))
  return h.astype(h0.dtype)


def _states(cell, params, xp, h0, mask, probes_t, resets_t):
  a, b = cell.coefficients(params, xp)
  z0 = cell.to_scan(h0)  # the LRU's complex state; the others' own
  if resets_t is not None:
    b = b + jnp.where(_col(resets_t), a * z0[None], 0.0)
    a = jnp.where(_col(resets_t), 0.0, a)
  if probes_t is not None:
    b = b + cell.to_scan(probes_t)
  if mask is not None:
    a = jnp.where(_col(mask), a, 1.0)
    b = jnp.where(_col(mask), b, 0.0)
  return cell.from_scan(parallel_scan.linear_scan(a, b, z0)).astype(h0.dtype)


def run(cell: Cell, params: Params, prep: Prepared, *, log: bool = False) -> RunResult:
  """The runner's contract (see :mod:`rnn_zoo.runner`); ``log``: the
  log-space scan (``jax.lax.cumlogsumexp``, Feng et al. 2024)."""
  xs_t = prep.in_run_order(prep.inputs_t())
  probes_t = None if prep.probes_t is None else prep.in_run_order(prep.probes_t)
  xp = cell.input_projection(params, xs_t)
  h0, mask = prep.carry0.h, prep.mask
  if log:
    h = _log_states(cell, params, xp, h0, mask, probes_t)
  else:
    h = _states(cell, params, xp, h0, mask, probes_t, prep.resets_t)
  ys = h if mask is None else jnp.where(mask[..., None], h, jnp.zeros((), h.dtype))
  carry = base.HiddenCarry(h[-1])
  carries = base.HiddenCarry(prep.finish(h)) if prep.all_carries else None
  return prep.finish(ys), carry, carries
