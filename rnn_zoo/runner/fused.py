"""The recurrence with a hand-written backward pass over the whole sequence.

For a cell whose step is ``pointwise(xp_t, u_t)`` with ``u_t = h_{t-1} W_hh``
(SimpleRNN, LSTM, cuDNN-style GRU), autodiff of ``lax.scan`` computes the
weight gradient ``dW_hh += h_{t-1}^T du_t`` inside the backward loop: one small
matmul and one ``[H, G*H]`` accumulation per step. Here the backward loop
only carries ``dh`` (and ``dc``) back in time and emits ``du_t``; the weight
gradient is then one large matmul over all ``T*B`` rows, as cuDNN does:

  forward loop:   u_t = h_{t-1} W_hh;  (carry_t, y_t) = pointwise(xp_t, u_t)
                  saved: u_t and carry_{t-1}
  backward loop:  (d carry_{t-1}, dxp_t, du_t) = vjp(pointwise)(d carry_t, dy_t)
                  d h_{t-1} += du_t W_hh^T
  after the loop: dW_hh = sum_t h_{t-1}^T du_t   (one [H, T*B] x [T*B, G*H] GEMM)

The input projection ``xp = x W_ih + b`` stays outside (plain autodiff), so
``dW_ih`` and ``dx`` are large matmuls too. Same values and gradients as the
plain runner (tested); used by :func:`rnn_zoo.unroll` when it applies.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Carry, Cell, Params, PointwiseCell
from rnn_zoo.runner.inputs import Prepared, RunResult

MATMUL_PARAMS = ("w_ih", "w_hh", "b")


def split_params(params: Params) -> tuple[jax.Array, Params]:
  """``(w_hh, small)``: the recurrent weight and the pointwise-only params."""
  return params["w_hh"], {k: v for k, v in params.items()
                          if k not in MATMUL_PARAMS}


def _blend(mask_t, new, old):
  if mask_t is None:
    return new
  keep = mask_t[:, None]
  return jax.tree.map(lambda n, o: jnp.where(keep, n, o), new, old)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 7))
def fused_recurrence(cell: PointwiseCell, w_hh: jax.Array, small: Params,
                     xp: jax.Array, carry0: Carry, mask: jax.Array | None,
                     probes: jax.Array | None = None,
                     unroll: int | bool = 1) -> tuple[jax.Array, Carry]:
  """Runs the recurrence over time-major ``xp`` ``[T, B, G*H]``.

  Args:
    cell: a :class:`rnn_zoo.PointwiseCell`.
    w_hh: ``[H, G*H]`` recurrent weight.
    small: the cell's other pointwise params (e.g. the GRU's ``b_hn``).
    xp: ``[T, B, G*H]`` projected inputs.
    carry0: the initial carry.
    mask: ``[T, B]`` bool validity mask, or None.
    probes: ``[T, B, H]`` zeros added to ``h_t`` after each step, or None;
      their gradient is ``dL/dh_t`` (the backward loop has it anyway).
    unroll: ``lax.scan`` unroll factor.

  Returns:
    ``(ys [T, B, H], final_carry)``.
  """
  (ys, carry), _ = _forward(cell, w_hh, small, xp, carry0, mask, probes, unroll)
  return ys, carry


def _forward(cell, w_hh, small, xp, carry0, mask, probes, unroll):
  def body(carry, inp):
    xp_t, m_t, p_t = inp
    u = base.matmul(carry.h, w_hh, cell.dtype)
    new, y = cell.pointwise(small, carry, xp_t, u)
    if p_t is not None:
      new = new._replace(h=new.h + p_t)
      y = new.h
    if m_t is not None:
      new = _blend(m_t, new, carry)
      y = jnp.where(m_t[:, None], y, jnp.zeros_like(y))
    return new, (y, u, carry)

  carry, (ys, us, prev) = jax.lax.scan(body, carry0, (xp, mask, probes),
                                       unroll=unroll)
  return (ys, carry), (us, prev)


def _fwd(cell, w_hh, small, xp, carry0, mask, probes, unroll):
  out, (us, prev) = _forward(cell, w_hh, small, xp, carry0, mask, probes, unroll)
  # An empty tuple vs None: whether there are probes, kept in the residuals'
  # static tree structure rather than as a value.
  return out, (w_hh, small, xp, us, prev, mask, () if probes is not None else None)


def _bwd(cell, unroll, res, cotangents):
  w_hh, small, xp, us, prev, mask, probe_marker = res
  has_probes = probe_marker is not None
  dys, dcarry_T = cotangents
  w_hh_t = w_hh.T

  def body(acc, inp):
    dcarry, dsmall = acc
    xp_t, u_t, prev_t, dy_t, m_t = inp
    if m_t is not None:
      # A masked step left the carry unchanged and output a constant zero:
      # nothing flows into the cell there (so ds, dxp, du get no rows).
      keep = m_t[:, None]
      dcarry_in = jax.tree.map(lambda d: jnp.where(keep, d, 0.0), dcarry)
      dy_t = jnp.where(keep, dy_t, 0.0)
    else:
      dcarry_in = dcarry
    # A probe on h_t receives everything that flows into h_t.
    dprobe = (dcarry_in.h + dy_t) if has_probes else None
    ds, dprev, dxp, du = cell.pointwise_vjp(small, prev_t, xp_t, u_t,
                                            dcarry_in, dy_t)
    # h_{t-1} also feeds u_t = h_{t-1} W_hh.
    dh = dprev.h + base.matmul(du, w_hh_t, cell.dtype).astype(dprev.h.dtype)
    dprev = dprev._replace(h=dh)
    if m_t is not None:
      dprev = _blend(m_t, dprev, dcarry)  # the carry passed through
    dsmall = jax.tree.map(jnp.add, dsmall, ds)
    # Cells whose step reads only xp + u return one array for both: store it
    # once (half the backward's output traffic).
    return (dprev, dsmall), (du, None if dxp is du else dxp, dprobe)

  dsmall0 = jax.tree.map(jnp.zeros_like, small)
  (dcarry0, dsmall), (dus, dxp, dprobes) = jax.lax.scan(
      body, (dcarry_T, dsmall0), (xp, us, prev, dys, mask), reverse=True,
      unroll=unroll)
  # The hoisted weight gradient: one GEMM over every (time, batch) row.
  acc_dtype = jnp.promote_types(w_hh.dtype, jnp.float32)
  rows_h = prev.h.reshape((-1, prev.h.shape[-1])).astype(cell.dtype)
  rows_du = dus.reshape((-1, dus.shape[-1])).astype(cell.dtype)
  dw_hh = jnp.matmul(rows_h.T, rows_du,
                     preferred_element_type=acc_dtype).astype(w_hh.dtype)
  dxp = dus if dxp is None else dxp
  return dw_hh, dsmall, dxp.astype(xp.dtype), dcarry0, None, dprobes


fused_recurrence.defvjp(_fwd, _bwd)


def run(cell: Cell, params: Params, prep: Prepared) -> RunResult:
  """``impl="fused"``: the runner's contract (see :mod:`rnn_zoo.runner`)."""
  xs_t = prep.in_run_order(prep.inputs_t())
  probes_t = None if prep.probes_t is None else prep.in_run_order(prep.probes_t)
  mask = prep.mask  # symmetric under the within-length reversal
  xp = cell.input_projection(params, xs_t)
  w_hh, small = split_params(params)
  ys, carry = fused_recurrence(cell, w_hh, small, xp, prep.carry0, mask,
                               probes_t, prep.unroll)
  return prep.finish(ys), carry, None
