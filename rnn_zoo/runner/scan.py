"""``impl="scan"``: autodiff of ``jax.lax.scan`` over the cell's step.

Every cell and every option (lengths, reverse, probes, resets, remat by step
or by chunk, every carry) and every JAX transform, forward mode included:
the portable reference the other implementations are tested against.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnn_zoo.cells.cell import Cell, Params
from rnn_zoo.runner.inputs import Prepared, RunResult


def _body_fn(cell, params, carry0, all_carries: bool):
  """One step with the runner's masks, probes and resets."""
  def body(carry, inp):
    xp_t, m_t, p_t, r_t = inp
    if r_t is not None:  # restart from the initial carry where set
      carry = jax.tree.map(
          lambda i, c: jnp.where(r_t.reshape(r_t.shape + (1,) * (c.ndim - 1)), i, c),
          carry0, carry)
    new, y = cell.step_projected(params, carry, xp_t)
    if p_t is not None:
      # A zero probe added to h_t: d loss / d probe_t = d loss / d h_t.
      new = new._replace(h=new.h + p_t)
      y = new.h
    if m_t is not None:
      # Carry leaves of any rank (an attention cell's annotations are [B, L, D]).
      keep = lambda a: m_t.reshape(m_t.shape + (1,) * (a.ndim - 1))
      new = jax.tree.map(lambda n, o: jnp.where(keep(n), n, o), new, carry)
      y = jnp.where(keep(y), y, jnp.zeros_like(y))
    return new, ((y, new) if all_carries else y)
  return body


def _chunked(cell, params, body, prep, xs_t, mask, probes_t, resets_t):
  """Remat by chunks of K steps: the backward pass keeps the carry at each
  chunk boundary (T/K of them) and one chunk's intermediates at a time (K),
  not the ``[T, B, G*H]`` projection."""
  T, B, chunk = prep.T, prep.B, prep.chunk
  n_chunks = -(-T // chunk)
  pad = n_chunks * chunk - T
  inputs = (xs_t, mask, probes_t, resets_t)
  if pad:
    # Padded steps are masked out so they change neither carry nor output.
    if mask is None:
      mask = jnp.ones((T, B), bool)
    pad_fn = lambda a: jnp.concatenate(
        [a, jnp.zeros((pad,) + a.shape[1:], a.dtype)])
    inputs = jax.tree.map(pad_fn, (xs_t, mask, probes_t, resets_t))
  inputs = jax.tree.map(
      lambda a: a.reshape((n_chunks, chunk) + a.shape[1:]), inputs)

  @jax.checkpoint
  def chunk_body(carry, inp):
    x_c, m_c, p_c, r_c = inp
    xp_c = cell.input_projection(params, x_c)  # inside the checkpoint
    return jax.lax.scan(body, carry, (xp_c, m_c, p_c, r_c), length=chunk,
                        unroll=prep.unroll)

  carry, outs = jax.lax.scan(chunk_body, prep.carry0, inputs, length=n_chunks)
  outs = jax.tree.map(
      lambda a: a.reshape((n_chunks * chunk,) + a.shape[2:])[:T], outs)
  return carry, outs


def run(cell: Cell, params: Params, prep: Prepared) -> RunResult:
  """``impl="scan"``: the runner's contract (see :mod:`rnn_zoo.runner`)."""
  xs_t = prep.in_run_order(prep.inputs_t())
  probes_t = None if prep.probes_t is None else prep.in_run_order(prep.probes_t)
  mask, resets_t, T = prep.mask, prep.resets_t, prep.T
  body = _body_fn(cell, params, prep.carry0, prep.all_carries)
  if prep.chunk == 0:
    # The input-to-hidden matmul for every time step at once.
    xp = cell.input_projection(params, xs_t)  # [T, B, G*H]
    carry, outs = jax.lax.scan(body, prep.carry0, (xp, mask, probes_t, resets_t),
                               length=T, unroll=prep.unroll)
  elif prep.chunk == 1:
    # The input projection inside the checkpointed step: neither xp
    # [T, B, G*H] nor its gradient is kept for the backward pass.
    def projected_body(carry, inp):
      x_t, m_t, p_t, r_t = inp
      return body(carry, (cell.input_projection(params, x_t), m_t, p_t, r_t))
    carry, outs = jax.lax.scan(jax.checkpoint(projected_body), prep.carry0,
                               (xs_t, mask, probes_t, resets_t), length=T,
                               unroll=prep.unroll)
  else:
    carry, outs = _chunked(cell, params, body, prep, xs_t, mask, probes_t,
                           resets_t)
  if prep.all_carries:
    ys, carries = outs
    return prep.finish(ys), carry, jax.tree.map(prep.finish, carries)
  return prep.finish(outs), carry, None
