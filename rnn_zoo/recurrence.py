"""The one runner over time, and what is built on it.

* :func:`unroll` runs any cell over a sequence with ``jax.lax.scan``
  (the input projection hoisted out of the loop as one matmul), with
  per-example lengths, length-aware reversal, unrolling, gradient
  checkpointing and zero "probes" on the hidden state (for ``dL/dh_t``).
* :func:`unroll_with_carries` also returns the carry after every step.
* :func:`python_unroll` computes the same thing as a plain Python loop over
  ``cell.step``, one example at a time, sharing no code with the runner: the
  reference the scan is tested against.
* :func:`bidirectional`, :class:`StackedRNN` and :func:`truncated_bptt` build
  on :func:`unroll`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Cell, PointwiseCell
from rnn_zoo.cells.linear import LinearRecurrentCell
from rnn_zoo import parallel as parallel_scan
from rnn_zoo import cudnn as cudnn_kernels
from rnn_zoo import native as native_kernels
from rnn_zoo.fused import fused_recurrence, split_params
from rnn_zoo import checks
from rnn_zoo.errors import UserError

Array = jax.Array
PyTree = Any

MERGES = ("concat", "sum")


# --------------------------------------------------------------------------
# Checks (run on shapes and dtypes, so before tracing).

def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _check_cell(cell) -> None:
  if not isinstance(cell, Cell):
    raise UserError(
        f"cell must be an rnn_zoo cell (SimpleRNN, LSTM, GRU, ...), got {cell!r}")


def _check_inputs(cell: Cell, params, xs, time_major: bool) -> None:
  """Validates ``xs`` ([B, T, I], or [T, B, I] if time_major) against params."""
  if not hasattr(xs, "shape") or not hasattr(xs, "dtype"):
    raise UserError(f"xs must be an array, got {type(xs).__name__}")
  if xs.ndim != 3:
    layout = "[time, batch, features]" if time_major else "[batch, time, features]"
    raise UserError(f"xs must have rank 3 {layout}, got shape {tuple(xs.shape)}")
  if not jnp.issubdtype(xs.dtype, jnp.floating):
    raise UserError(f"xs must be a floating array, got dtype {xs.dtype}")
  cell.check_params(params)
  input_size = cell.input_size_of(params)
  if input_size is not None and xs.shape[-1] != input_size:
    raise UserError(
        f"xs has feature size {xs.shape[-1]} but params expect input_size "
        f"{input_size} (xs shape {tuple(xs.shape)})")


def _check_lengths(lengths, batch: int, time: int) -> Array:
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


def _check_remat(remat) -> int:
  """Returns 0 (no remat), 1 (per step) or the chunk size."""
  if remat is False or remat is None or remat == "none":
    return 0
  if remat is True or remat == "step":
    return 1
  if isinstance(remat, (int, np.integer)) and not isinstance(remat, bool) and remat > 0:
    return int(remat)
  raise UserError(
      f"remat must be False, True/'step', or a positive chunk size, got {remat!r}")


def _check_unroll(unroll) -> None:
  if isinstance(unroll, bool):
    return
  if not isinstance(unroll, (int, np.integer)) or unroll <= 0:
    raise UserError(f"unroll must be a positive int or bool, got {unroll!r}")


def _check_carry(cell: Cell, carry, batch: int) -> None:
  ref = cell.initial_carry((batch,))
  if type(carry) is not type(ref):
    raise UserError(
        f"initial_carry must be a {type(ref).__name__} for {type(cell).__name__}, "
        f"got {type(carry).__name__}")
  ref_leaves = jax.tree_util.tree_flatten_with_path(ref)[0]
  got_leaves, got_tree = jax.tree_util.tree_flatten_with_path(carry)
  if got_tree != jax.tree.structure(ref):
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


# --------------------------------------------------------------------------
# Time-reversal that respects lengths.

def reverse_within_lengths(xs_t: Array, lengths: Array | None) -> Array:
  """Reverses time-major ``[T, B, ...]`` within each sequence's length.

  Position ``t < L_b`` of example ``b`` gets ``x[L_b - 1 - t]``; padding
  positions (``t >= L_b``) stay where they are. The map is an involution.
  """
  if lengths is None:
    return jnp.flip(xs_t, axis=0)
  T = xs_t.shape[0]
  t = jnp.arange(T)[:, None]
  idx = jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # [T, B]
  idx = idx.reshape(idx.shape + (1,) * (xs_t.ndim - 2))
  return jnp.take_along_axis(xs_t, idx, axis=0)


# --------------------------------------------------------------------------
# The runner.

def _is_forward_mode_error(e: Exception) -> bool:
  """JAX's "can't apply forward-mode autodiff (jvp) to a custom_vjp function"."""
  return "forward-mode autodiff" in str(e)


PARALLEL_MODES = ("associative", "log")


def _check_parallel(cell: Cell, parallel, chunk: int) -> str | None:
  """The scan to use: None (sequential), "associative" or "log"."""
  if parallel is None:
    return "associative" if isinstance(cell, LinearRecurrentCell) and chunk == 0 else None
  if parallel is False:
    return None
  mode = "associative" if parallel is True else parallel
  if mode not in PARALLEL_MODES:
    raise UserError(f"parallel must be None, True, False or one of "
                    f"{list(PARALLEL_MODES)}, got {parallel!r}")
  if not isinstance(cell, LinearRecurrentCell):
    raise UserError(f"parallel={parallel!r} needs a LinearRecurrentCell (MinGRU, "
                    f"MinLSTM, LRU), got cell={cell!r}")
  if chunk:
    raise UserError(f"parallel={parallel!r} does not combine with remat="
                    "(the parallel scan is not a loop to checkpoint); pass "
                    "parallel=False for the sequential runner with remat")
  return mode


def _check_resets(resets, B: int, T: int, time_major: bool, reverse: bool) -> Array:
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


def _parallel_states(cell, params, xp, h0, mask, probes_t, resets_t, mode):
  """Every state ``[T, B, H]`` of a linear recurrent cell by a parallel scan;
  the same numbers as the sequential loop with its masks, probes and resets."""
  col = lambda m: m[..., None]
  if mode == "log":
    if resets_t is not None:
      raise UserError('resets are not supported with parallel="log" (log 0 '
                      'would break the cumulative sum); use parallel=True')
    log_a, log_b = cell.log_coefficients(params, xp)
    if mask is not None:
      log_a = jnp.where(col(mask), log_a, 0.0)
      log_b = jnp.where(col(mask), log_b, parallel_scan.LOG_ZERO)
    h = parallel_scan.log_linear_scan(log_a, log_b, h0)
    if probes_t is not None:  # the probes enter linearly: their own scan
      p = probes_t if mask is None else jnp.where(col(mask), probes_t, 0.0)
      h = h + parallel_scan.linear_scan(jnp.exp(log_a), p.astype(h.dtype))
    return h.astype(h0.dtype)
  a, b = cell.coefficients(params, xp)
  z0 = cell.to_scan(h0)  # the LRU's complex state; the others' own
  if resets_t is not None:
    b = b + jnp.where(col(resets_t), a * z0, 0.0)
    a = jnp.where(col(resets_t), 0.0, a)
  if probes_t is not None:
    b = b + cell.to_scan(probes_t)
  if mask is not None:
    a = jnp.where(col(mask), a, 1.0)
    b = jnp.where(col(mask), b, 0.0)
  return cell.from_scan(parallel_scan.linear_scan(a, b, z0)).astype(h0.dtype)


def _run_native(cell, params, xs, initial_carry, reverse, time_major):
  """An LSTM or GRU through :mod:`rnn_zoo.native`, in the caller's layout
  (no transposes): the GRU's projection ``x W_ih`` here, the LSTM's inside
  its kernel; the bias inside the kernel."""
  t_axis = 0 if time_major else 1
  if reverse:
    xs = jnp.flip(xs, t_axis)
  if native_kernels.kind(cell) == "lstm":
    ys, h, c = native_kernels.lstm_layer(
        params["w_ih"], params["w_hh"], params["b"], xs, initial_carry.h,
        initial_carry.c, not time_major)
    carry = base.LSTMCarry(h=h, c=c)
  else:
    xp = base.matmul(xs, params["w_ih"], cell.dtype)
    ys, h = native_kernels.gru_recurrence(
        params["w_hh"], params["b"], params["b_hn"], xp, initial_carry.h,
        not time_major)
    carry = base.HiddenCarry(h)
  if reverse:
    ys = jnp.flip(ys, t_axis)
  return ys, carry


def _run_cudnn(cell, params, xs, xs_t, initial_carry, lengths, reverse,
               time_major, chunk, resets_t, probes_t):
  """An LSTM through :mod:`rnn_zoo.cudnn` (``xs_t``: the time-major inputs,
  zero past the lengths)."""
  if chunk:
    reason = "cuDNN keeps what its backward pass needs itself (no remat)"
  elif resets_t is not None:
    reason = "cuDNN takes no resets"
  else:
    reason = cudnn_kernels.why_not(cell, params, xs, initial_carry, probes_t)
  if reason:
    raise UserError(f"cudnn=True cannot run here: {reason}")
  if reverse:
    xs_t = reverse_within_lengths(xs_t, lengths)
  try:
    ys_t, h, c = cudnn_kernels.lstm(params, xs_t, initial_carry.h,
                                    initial_carry.c, lengths)
  except TypeError as e:
    if not _is_forward_mode_error(e):
      raise
    raise UserError("cudnn=True does not support forward-mode autodiff "
                    "(jax.jvp, jax.jacfwd); pass cudnn=False") from e
  if reverse:
    ys_t = reverse_within_lengths(ys_t, lengths)
  return (ys_t if time_major else jnp.swapaxes(ys_t, 0, 1)), base.LSTMCarry(h=h, c=c)


def _check_cudnn(cudnn) -> bool:
  if not isinstance(cudnn, bool):
    raise UserError(f"cudnn must be True or False, got {cudnn!r}")
  return cudnn


def _run(cell: Cell, params, xs, *, initial_carry, lengths, reverse,
         time_major, unroll, remat, all_carries, hidden_probes, fused=None,
         parallel=None, resets=None, native=None, cudnn=False):
  _check_cell(cell)
  cudnn = _check_cudnn(cudnn)
  _check_inputs(cell, params, xs, time_major)
  _check_unroll(unroll)
  chunk = _check_remat(remat)
  mode = _check_parallel(cell, parallel, chunk)
  xs_t = xs if time_major else jnp.swapaxes(xs, 0, 1)  # [T, B, I]
  T, B = xs_t.shape[0], xs_t.shape[1]
  resets_t = None if resets is None else _check_resets(resets, B, T, time_major, reverse)
  if lengths is not None:
    lengths = _check_lengths(lengths, B, T)
  if initial_carry is None:
    initial_carry = _zero_carry(cell, params, B)
  else:
    _check_carry(cell, initial_carry, B)
  probes_t = None
  if hidden_probes is not None:
    want = (xs.shape[0], xs.shape[1], cell.hidden_size)
    if tuple(hidden_probes.shape) != want:
      raise UserError(
          f"hidden_probes must have the output shape {want}, got "
          f"{tuple(hidden_probes.shape)}")
    probes_t = hidden_probes if time_major else jnp.swapaxes(hidden_probes, 0, 1)

  mask = None
  if lengths is not None:
    mask = jnp.arange(T)[:, None] < lengths[None, :]  # [T, B]
    # Padding is unspecified (it may hold NaN): read zeros there instead, so
    # that nothing of it reaches values or gradients.
    xs_t = jnp.where(mask[..., None], xs_t, jnp.zeros((), xs_t.dtype))
  if cudnn:
    return _run_cudnn(cell, params, xs, xs_t, initial_carry, lengths, reverse,
                      time_major, chunk, resets_t, probes_t)
  can_fuse = (chunk == 0 and not all_carries and resets_t is None
              and isinstance(cell, PointwiseCell))
  if native is False:
    no_native = "native=False"
  elif native_kernels.kind(cell) is not None and (not can_fuse or fused is False):
    no_native = ("it replaces the fused runner (fused=None or True, no remat, "
                 "resets or all carries)")
  else:
    no_native = native_kernels.why_not(cell, params, xs, initial_carry, mask, probes_t)
  if native and no_native:
    raise UserError(f"native=True cannot run here: {no_native}")
  if no_native is None:
    try:
      return _run_native(cell, params, xs, initial_carry, reverse, time_major)
    except (TypeError, ValueError) as e:
      # jax.jvp of the custom_vjp (TypeError), or of a custom call inside it
      # (jax.hessian's outer jacfwd traces the forward rule: ValueError).
      if not (_is_forward_mode_error(e) or "cannot be differentiated" in str(e)):
        raise
      if native:
        raise UserError(
            "native=True does not support forward-mode autodiff (jax.jvp, "
            "jax.jacfwd); pass native=None or native=False") from e
      # Forward mode: the scan runner below supports every transform.
  if reverse:
    xs_t = reverse_within_lengths(xs_t, lengths)
    if probes_t is not None:
      probes_t = reverse_within_lengths(probes_t, lengths)
  # The input-to-hidden matmul for every time step at once.
  # (With remat, each chunk projects its own inputs inside the checkpoint.)
  xp = cell.input_projection(params, xs_t) if chunk == 0 else None  # [T, B, G*H]

  def finish(a):  # back to the caller's time order and layout
    if reverse:
      a = reverse_within_lengths(a, lengths)
    return a if time_major else jnp.swapaxes(a, 0, 1)

  if mode is not None:
    h = _parallel_states(cell, params, xp, initial_carry.h, mask, probes_t,
                         resets_t, mode)
    ys = h if mask is None else jnp.where(mask[..., None], h, jnp.zeros((), h.dtype))
    carry = base.HiddenCarry(h[-1])
    if all_carries:
      return finish(ys), carry, base.HiddenCarry(finish(h))
    return finish(ys), carry

  def body(carry, inp):
    xp_t, m_t, p_t, r_t = inp
    if r_t is not None:  # restart from the initial carry where set
      carry = jax.tree.map(
          lambda i, c: jnp.where(r_t.reshape(r_t.shape + (1,) * (c.ndim - 1)), i, c),
          initial_carry, carry)
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

  if fused and not can_fuse:
    raise UserError(
        "fused=True needs a PointwiseCell (SimpleRNN, LSTM, GRU; not GRUCho "
        "or a generic Cell) and no remat, resets or all carries; got "
        f"cell={cell!r}, remat={remat!r}, all_carries={all_carries}, "
        f"resets={'given' if resets is not None else None}")
  inputs = (xp, mask, probes_t, resets_t)
  fused_out = None
  if can_fuse and fused is not False:
    w_hh, small = split_params(params)
    try:
      fused_out = fused_recurrence(cell, w_hh, small, xp, initial_carry, mask,
                                   probes_t, unroll)
    except TypeError as e:
      if not _is_forward_mode_error(e):
        raise
      if fused:
        raise UserError(
            "fused=True does not support forward-mode autodiff (jax.jvp, "
            "jax.jacfwd); pass fused=None or fused=False") from e
      # Forward mode (jax.jvp, jacfwd) cannot go through a custom_vjp: the
      # plain scan below supports every transform.
  if fused_out is not None:
    outs, carry = fused_out
  elif chunk == 0:
    carry, outs = jax.lax.scan(body, initial_carry, inputs, length=T,
                               unroll=unroll)
  elif chunk == 1:
    # The input projection happens inside the checkpointed step, so neither
    # xp [T, B, G*H] nor its gradient is kept for the backward pass.
    def projected_body(carry, inp):
      x_t, m_t, p_t, r_t = inp
      return body(carry, (cell.input_projection(params, x_t), m_t, p_t, r_t))
    carry, outs = jax.lax.scan(jax.checkpoint(projected_body), initial_carry,
                               (xs_t, mask, probes_t, resets_t), length=T,
                               unroll=unroll)
  else:
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
      # The chunk's input projection inside the checkpoint: what the
      # backward pass keeps is the carry at each chunk boundary (T/K of
      # them) and one chunk's intermediates at a time (K), not the
      # [T, B, G*H] projection.
      x_c, m_c, p_c, r_c = inp
      xp_c = cell.input_projection(params, x_c)
      return jax.lax.scan(body, carry, (xp_c, m_c, p_c, r_c), length=chunk,
                          unroll=unroll)

    carry, outs = jax.lax.scan(chunk_body, initial_carry, inputs,
                               length=n_chunks)
    outs = jax.tree.map(
        lambda a: a.reshape((n_chunks * chunk,) + a.shape[2:])[:T], outs)

  if all_carries:
    ys, carries = outs
    return finish(ys), carry, jax.tree.map(finish, carries)
  return finish(outs), carry


def _zero_carry(cell: Cell, params, batch: int):
  """The cell's zero carry, in float64 when its params are (the default is
  the cell's own dtype): float64 runs, such as the gradient-flow
  diagnostics, then need no initial carry of their own."""
  f64 = any(getattr(x, "dtype", None) == jnp.float64 for x in jax.tree.leaves(params))
  return cell.initial_carry((batch,), jnp.float64 if f64 else None)


def unroll(cell: Cell, params, xs: Array, *, initial_carry=None,
           lengths: Array | None = None, reverse: bool = False,
           time_major: bool = False, unroll: int | bool = 1,
           remat: bool | str | int = False,
           hidden_probes: Array | None = None, fused: bool | None = None,
           parallel: bool | str | None = None, resets: Array | None = None,
           native: bool | None = None, cudnn: bool = False):
  """Runs ``cell`` over a sequence with ``jax.lax.scan``.

  The input projection (``x_t W_ih + b`` for a :class:`ProjectedCell`) is
  computed for all steps at once, outside the loop; the scan body does only
  the recurrent part.

  Args:
    cell: a cell from :mod:`rnn_zoo.cells` (any :class:`rnn_zoo.Cell`).
    params: ``cell.init(...)`` output.
    xs: ``[batch, time, input]`` floating array (``[time, batch, input]`` if
      ``time_major``).
    initial_carry: the carry at t=0 (batch shape ``[batch]``, floating);
      zeros if None.
    lengths: optional int ``[batch]`` valid lengths in ``[0, time]``. Outputs
      at ``t >= length`` are zero; the final carry is the carry after the last
      valid step (the initial carry when the length is 0). What ``xs`` holds
      past the length is never read (it may be NaN): it reaches neither the
      outputs nor any gradient.
    reverse: run from the end of each sequence to its start; with
      ``lengths``, each sequence is reversed within its own length. Outputs are
      returned in the original time order.
    time_major: layout of ``xs`` and of the outputs.
    unroll: ``lax.scan`` unroll factor (same values, maybe faster).
    remat: gradient checkpointing: False, True/``"step"`` (recompute each
      step in the backward pass), or an int K (store the carry only every K
      steps and project each chunk's inputs inside the checkpoint; the
      backward pass's own memory ~ T/K + K instead of T, besides the inputs,
      the outputs and their gradients, which are O(T) for any method).
    hidden_probes: optional zeros shaped like the outputs, added to ``h_t``
      after each step. Their gradient is ``dL/dh_t`` for every t in one
      backward pass (the gradient-flow diagnostics rest on this).
    fused: use the hand-written backward pass of :mod:`rnn_zoo.fused` (the
      weight gradient as one matmul after the loop). None (default): whenever
      it applies (a :class:`PointwiseCell`, no remat). False: plain autodiff
      of the scan.
    parallel: for a :class:`rnn_zoo.cells.LinearRecurrentCell` (MinGRU,
      MinLSTM), whose step is ``h_t = a_t * h_{t-1} + b_t``: None (default)
      runs it with a parallel scan (``jax.lax.associative_scan``, log depth
      in T) unless ``remat`` is set; ``"log"`` with the log-space scan
      (``jax.lax.cumlogsumexp``, Feng et al. 2024); False with the
      sequential loop (what generation does, step by step). Same values
      and gradients either way (tested in float64). Other cells: None or
      False.
    resets: optional bool ``[batch, time]`` (``[time, batch]`` if
      ``time_major``): where set, the carry entering that step is
      ``initial_carry`` again (packed sequences, episodes), as Haiku's
      ``ResetCore``. Not with ``reverse`` (nor ``parallel="log"``); the fused
      backward pass does not apply.
    native: the native CPU kernels of the LSTM and GRU
      (:mod:`rnn_zoo.native`: packed weights, gates finished in registers;
      forward and backward). None (default): whenever they apply
      (``rnn_zoo.native.why_not`` says when: an LSTM or cuDNN-form GRU in
      float32 on a one-device CPU process, no lengths or probes, and the
      fused runner otherwise in use). True: raise if it
      does not apply. False: never (the scan runner, the portable
      reference; same values to float32 rounding, tested).
    cudnn: run an LSTM through cuDNN on an NVIDIA GPU
      (:mod:`rnn_zoo.cudnn`, ``jax.experimental.rnn``: the whole sequence
      and its backward pass in cuDNN's kernels; lengths, reverse and any
      initial carry as above). False (default): the scan runner. True:
      raise if it does not apply (``rnn_zoo.cudnn.why_not`` says when: an
      ``rnn_zoo.LSTM`` in float32 on a one-device GPU process, no probes,
      resets or remat). Its float32 matmuls use TF32 unless JAX's default
      matmul precision is ``"highest"``; ``rnn_zoo.cudnn.emulated()`` runs
      the same path on JAX's reference implementation on any backend.

  Returns:
    ``(ys, final_carry)``; ``ys`` is ``[batch, time, hidden]``. The carry
    after every step: :func:`unroll_with_carries`.

  Autodiff:
    Reverse mode (``jax.grad``, ``jax.vjp``) uses the fused backward pass
    (or the native kernels' backward).
    Forward mode cannot go through its ``custom_vjp``: for ``jax.jvp``,
    ``jax.jacfwd`` and ``jax.hessian`` the defaults ``fused=None`` and
    ``native=None`` fall back to the plain scan by themselves (same values;
    ``fused=True``, ``native=True`` or ``cudnn=True`` raises). The
    linear function ``jax.linearize`` returns is evaluated after the runner
    has run, so it cannot fall back: pass ``fused=False`` for it (JAX's
    error then reads "can't apply forward-mode autodiff (jvp) to a
    custom_vjp function").

  Raises:
    ValueError (:class:`rnn_zoo.UserError`): on a wrong rank, a feature size
      that does not match the params, non-float inputs or carry, out-of-range
      lengths or unknown options.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.GRU(32)
    >>> params = cell.init(jax.random.key(0), input_size=4)
    >>> xs = jnp.ones((2, 10, 4))
    >>> ys, carry = rz.unroll(cell, params, xs, lengths=jnp.array([10, 3]))
    >>> ys.shape, carry.h.shape
    ((2, 10, 32), (2, 32))
  """
  return _run(cell, params, xs, initial_carry=initial_carry, lengths=lengths,
              reverse=reverse, time_major=time_major, unroll=unroll,
              remat=remat, all_carries=False, hidden_probes=hidden_probes,
              fused=fused, parallel=parallel, resets=resets, native=native,
              cudnn=cudnn)


def unroll_with_carries(cell: Cell, params, xs: Array, *, initial_carry=None,
                        lengths: Array | None = None, reverse: bool = False,
                        time_major: bool = False, unroll: int | bool = 1,
                        remat: bool | str | int = False,
                        hidden_probes: Array | None = None,
                        parallel: bool | str | None = None,
                        resets: Array | None = None):
  """:func:`unroll` that also returns the carry after every step.

  Returns:
    ``(ys, final_carry, carries)``: ``carries`` has the carry's fields with a
    time axis where the outputs have theirs (``[batch, time, hidden]``). Past
    a sequence's length the carry stays at its last valid value.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.LSTM(4)
    >>> params = cell.init(jax.random.key(0), input_size=2)
    >>> ys, final, carries = rz.unroll_with_carries(cell, params, jnp.ones((3, 6, 2)))
    >>> carries.c.shape
    (3, 6, 4)
  """
  return _run(cell, params, xs, initial_carry=initial_carry, lengths=lengths,
              reverse=reverse, time_major=time_major, unroll=unroll,
              remat=remat, all_carries=True, hidden_probes=hidden_probes,
              parallel=parallel, resets=resets)


def python_unroll_with_carries(cell: Cell, params, xs, *, initial_carry=None,
                               lengths=None, reverse=False, time_major=False,
                               hidden_probes=None):
  """:func:`unroll_with_carries` as a plain Python loop (the reference).

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
    lengths = [T] * B
  else:
    if isinstance(lengths, jax.core.Tracer):
      raise UserError("python_unroll needs concrete lengths, got a tracer")
    lengths = [int(n) for n in np.asarray(lengths)]
  if initial_carry is None:
    initial_carry = _zero_carry(cell, params, B)
  ys_rows, finals, carry_rows = [], [], []
  for b in range(B):
    carry = jax.tree.map(lambda a: a[b:b + 1], initial_carry)
    L = lengths[b]
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


def python_unroll(cell: Cell, params, xs: Array, *, initial_carry=None,
                  lengths=None, reverse=False, time_major=False,
                  hidden_probes=None):
  """:func:`unroll` as a plain Python loop over ``cell.step``.

  Slow (one traced step per example and time step); it is the reference the
  scan is tested against, and a debugging aid. Same results as
  :func:`unroll` (minus ``unroll``, ``remat`` and ``fused``); see
  :func:`python_unroll_with_carries`.
  """
  ys, final, _ = python_unroll_with_carries(
      cell, params, xs, initial_carry=initial_carry, lengths=lengths,
      reverse=reverse, time_major=time_major, hidden_probes=hidden_probes)
  return ys, final


# --------------------------------------------------------------------------
# Bidirectional.

def _merge(ys_f, ys_b, merge):
  if merge == "concat":
    return jnp.concatenate([ys_f, ys_b], axis=-1)
  return ys_f + ys_b


def bidirectional(cell: Cell, params, xs: Array, *, initial_carry=None,
                  lengths=None, merge: str = "concat", **kwargs):
  """Runs ``cell`` forward and (length-aware) backward and merges outputs.

  Args:
    cell: the cell of both directions.
    params: ``{"forward": p_f, "backward": p_b}``, each ``cell.init(...)``.
    xs: ``[batch, time, input]``.
    initial_carry: ``(carry_forward, carry_backward)`` or None.
    lengths: optional ``[batch]`` valid lengths (the backward direction starts
      at each sequence's last valid step).
    merge: ``"concat"`` (outputs ``[..., 2H]``) or ``"sum"`` (``[..., H]``).
    **kwargs: passed to :func:`unroll` (``time_major``, ``unroll``, ``remat``).

  Returns:
    ``(ys, (final_carry_forward, final_carry_backward))``.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.LSTM(8)
    >>> k1, k2 = jax.random.split(jax.random.key(0))
    >>> params = {"forward": cell.init(k1, 3), "backward": cell.init(k2, 3)}
    >>> ys, _ = rz.bidirectional(cell, params, jnp.ones((2, 5, 3)))
    >>> ys.shape
    (2, 5, 16)
  """
  base.check_choice("merge", merge, MERGES)
  if not isinstance(params, dict) or set(params) != {"forward", "backward"}:
    got = sorted(params) if isinstance(params, dict) else type(params).__name__
    raise UserError(
        f"params of a bidirectional layer must be a dict with keys "
        f"['backward', 'forward'], got {got}")
  c_f, c_b = (None, None) if initial_carry is None else initial_carry
  ys_f, c_f = unroll(cell, params["forward"], xs, initial_carry=c_f,
                     lengths=lengths, **kwargs)
  ys_b, c_b = unroll(cell, params["backward"], xs, initial_carry=c_b,
                     lengths=lengths, reverse=True, **kwargs)
  return _merge(ys_f, ys_b, merge), (c_f, c_b)


# --------------------------------------------------------------------------
# Stacks.

@dataclasses.dataclass(frozen=True)
class StackedRNN:
  """Several recurrent layers, each fed the previous layer's outputs.

  Params are ``{"layer_0": p_0, "layer_1": p_1, ...}``; with
  ``bidirectional`` each ``p_k`` is ``{"forward": ..., "backward": ...}``.
  Carries are a tuple with one entry per layer (a ``(forward, backward)``
  pair when bidirectional).

  Attributes:
    cells: one cell per layer (see :meth:`of` for L copies of one cell).
    bidirectional: run every layer in both directions.
    merge: ``"concat"`` or ``"sum"`` of the two directions.
    dropout_rate: dropout on the inputs of layers 1..L-1 (between layers, as
      PyTorch's ``dropout=``), applied when a key is given and
      ``deterministic`` is False.
    learn_initial_carry: a learnable initial state: every layer's carry at
      t=0 is a parameter (``params["initial_carry"]``, one carry per layer
      without batch dims, zeros at init) broadcast over the batch whenever
      no ``initial_carry`` is given (and where ``resets`` restart it).

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> stack = rz.StackedRNN.of(rz.LSTM(16), num_layers=2, dropout_rate=0.1)
    >>> params = stack.init(jax.random.key(0), input_size=5)
    >>> ys, carries = stack.apply(params, jnp.ones((3, 7, 5)),
    ...                           key=jax.random.key(1))
    >>> ys.shape, len(carries)
    ((3, 7, 16), 2)
  """
  cells: tuple
  bidirectional: bool = False
  merge: str = "concat"
  dropout_rate: float = 0.0
  learn_initial_carry: bool = False

  def __post_init__(self):
    cells = tuple(self.cells)
    if not cells:
      raise UserError("cells must hold at least one cell, got ()")
    for c in cells:
      _check_cell(c)
    object.__setattr__(self, "cells", cells)
    base.check_choice("merge", self.merge, MERGES)
    checks.fraction("dropout_rate", self.dropout_rate)

  @classmethod
  def of(cls, cell: Cell, num_layers: int, **kwargs) -> "StackedRNN":
    """``num_layers`` copies of ``cell``."""
    base.check_positive_int("num_layers", num_layers)
    return cls((cell,) * num_layers, **kwargs)

  @property
  def num_layers(self) -> int:
    return len(self.cells)

  @property
  def output_size(self) -> int:
    h = self.cells[-1].hidden_size
    return 2 * h if self.bidirectional and self.merge == "concat" else h

  def _layer_input_sizes(self, input_size):
    sizes = [input_size]
    for c in self.cells[:-1]:
      mult = 2 if self.bidirectional and self.merge == "concat" else 1
      sizes.append(mult * c.hidden_size)
    return sizes

  def init(self, key: Array, input_size: int) -> dict:
    base.check_positive_int("input_size", input_size)
    params = {}
    for i, (cell, size) in enumerate(
        zip(self.cells, self._layer_input_sizes(input_size))):
      k = jax.random.fold_in(key, i)
      if self.bidirectional:
        kf, kb = jax.random.split(k)
        params[f"layer_{i}"] = {"forward": cell.init(kf, size),
                                "backward": cell.init(kb, size)}
      else:
        params[f"layer_{i}"] = cell.init(k, size)
    if self.learn_initial_carry:
      params["initial_carry"] = self._zero_carries((), self.cells[0].param_dtype)
    return params

  def _zero_carries(self, batch_shape, dtype) -> tuple:
    def one(c):
      carry = c.initial_carry(batch_shape, dtype)
      return (carry, carry) if self.bidirectional else carry
    return tuple(one(c) for c in self.cells)

  def initial_carry(self, batch_shape=(), dtype=None, params=None) -> tuple:
    """One carry per layer for ``batch_shape``: zeros, or with
    ``learn_initial_carry`` the learned state in ``params`` broadcast over
    the batch (``params`` is then required)."""
    if not self.learn_initial_carry:
      return self._zero_carries(batch_shape, dtype)
    if params is None or "initial_carry" not in params:
      raise UserError("learn_initial_carry=True: pass params= (the learned "
                      "initial state lives in params['initial_carry'])")
    if isinstance(batch_shape, int):
      batch_shape = (batch_shape,)
    zeros = self._zero_carries(batch_shape, dtype)
    return jax.tree.map(lambda z, l: jnp.broadcast_to(l.astype(z.dtype), z.shape),
                        zeros, tuple(params["initial_carry"]))

  def apply(self, params, xs: Array, *, initial_carry=None, lengths=None,
            key: Array | None = None, deterministic: bool = False,
            hidden_probes: Sequence[Array | None] | None = None, **kwargs):
    """Runs all layers; returns ``(ys, final_carries)``.

    Args:
      params: :meth:`init` output.
      xs: ``[batch, time, input]`` (or time-major via ``time_major=True``).
      initial_carry: a tuple with one carry per layer, or None for zeros.
      lengths: optional ``[batch]`` valid lengths, used by every layer.
      key: PRNG key for dropout between layers; required when
        ``dropout_rate > 0`` and not ``deterministic``.
      deterministic: disable dropout (evaluation).
      hidden_probes: optional, one entry per layer (an array shaped like that
        layer's unidirectional outputs, or None): zero probes whose gradient
        is ``dL/dh_t`` of that layer (not with ``bidirectional``).
      **kwargs: passed to :func:`unroll`.
    """
    self._check_params(params)
    use_dropout = self._use_dropout(key, deterministic)
    if initial_carry is None and self.learn_initial_carry:
      batch = xs.shape[1] if kwargs.get("time_major") else xs.shape[0]
      initial_carry = self.initial_carry((batch,), params=params)
    if initial_carry is None:
      initial_carry = (None,) * self.num_layers
    elif len(initial_carry) != self.num_layers:
      raise UserError(
          f"initial_carry must hold {self.num_layers} carries (one per layer), "
          f"got {len(initial_carry)}")
    if hidden_probes is None:
      hidden_probes = (None,) * self.num_layers
    elif len(hidden_probes) != self.num_layers:
      raise UserError(f"hidden_probes must hold {self.num_layers} entries (one "
                       f"per layer), got {len(hidden_probes)}")
    elif self.bidirectional and any(p is not None for p in hidden_probes):
      raise UserError("hidden_probes are not supported with bidirectional=True")
    carries = []
    for i, cell in enumerate(self.cells):
      if i > 0 and use_dropout:
        xs = self._dropout(xs, key, i)
      p = params[f"layer_{i}"]
      if self.bidirectional:
        xs, carry = bidirectional(cell, p, xs, initial_carry=initial_carry[i],
                                  lengths=lengths, merge=self.merge, **kwargs)
      else:
        xs, carry = unroll(cell, p, xs, initial_carry=initial_carry[i],
                           lengths=lengths, hidden_probes=hidden_probes[i],
                           **kwargs)
      carries.append(carry)
    return xs, tuple(carries)

  def step(self, params, carry: tuple, x: Array, *, projected: bool = False,
           key: Array | None = None, deterministic: bool = True):
    """One time step through every layer: ``(carries, y)``.

    What a decoder (char LM, captioner, VQA question reader) calls once per
    token; equal to :meth:`apply` on a length-1 sequence.

    Args:
      params: :meth:`init` output.
      carry: a tuple with one carry per layer (:meth:`initial_carry`).
      x: ``[*batch, input]`` this step's input; with ``projected``, the first
        layer's ``cells[0].input_projection`` of it instead (e.g. a row of
        ``w_ih`` looked up for a one-hot token).
      key: dropout key between layers (as :meth:`apply`), needed when
        ``dropout_rate > 0`` and not ``deterministic``.
      deterministic: disable dropout (the default: decoding).

    Returns:
      ``(new_carries, y)`` with ``y`` ``[*batch, H_last]``.

    Example:
      >>> import jax, jax.numpy as jnp, rnn_zoo as rz
      >>> stack = rz.StackedRNN.of(rz.GRU(6), num_layers=2)
      >>> params = stack.init(jax.random.key(0), input_size=3)
      >>> carry, y = stack.step(params, stack.initial_carry((4,)), jnp.ones((4, 3)))
      >>> y.shape, len(carry)
      ((4, 6), 2)
    """
    if self.bidirectional:
      raise UserError("a bidirectional stack cannot run one step at a time "
                      "(the backward direction needs the whole sequence)")
    self._check_params(params)
    use_dropout = self._use_dropout(key, deterministic)
    if not isinstance(carry, (tuple, list)) or len(carry) != self.num_layers:
      raise UserError(
          f"carry must hold {self.num_layers} carries (one per layer), got "
          f"{type(carry).__name__} of {len(carry) if isinstance(carry, (tuple, list)) else '?'}")
    new = []
    for i, cell in enumerate(self.cells):
      p = params[f"layer_{i}"]
      if i > 0 and use_dropout:
        x = self._dropout(x, key, i)
      if i == 0 and projected:
        c, x = cell.step_projected(p, carry[0], x)
      else:
        c, x = cell.step(p, carry[i], x)
      new.append(c)
    return tuple(new), x

  def _use_dropout(self, key, deterministic: bool) -> bool:
    use = self.dropout_rate > 0 and not deterministic
    if use and key is None:
      raise UserError(
          f"key is required for dropout_rate={self.dropout_rate} unless "
          "deterministic=True, got key=None")
    return use

  def _dropout(self, xs, key, layer: int):
    """Inverted dropout on the inputs of ``layer`` (>= 1)."""
    keep = 1.0 - self.dropout_rate
    mask = jax.random.bernoulli(jax.random.fold_in(key, layer), keep, xs.shape)
    return jnp.where(mask, xs / keep, 0.0).astype(xs.dtype)

  def _check_params(self, params) -> None:
    expected = [f"layer_{i}" for i in range(self.num_layers)]
    if self.learn_initial_carry:
      expected.append("initial_carry")
    if not isinstance(params, dict) or sorted(params) != sorted(expected):
      got = sorted(params) if isinstance(params, dict) else type(params).__name__
      raise UserError(f"params of StackedRNN must have keys {expected}, got {got}")


# --------------------------------------------------------------------------
# Truncated backpropagation through time.

def truncated_bptt(model: Cell | StackedRNN, params, xs: Array, *,
                   window: int, initial_carry=None, time_major: bool = False,
                   key: Array | None = None, **kwargs):
  """Runs ``model`` over a long sequence in windows of ``window`` steps.

  The carry flows forward through the whole sequence, but the gradient is
  stopped at every window boundary: the loss at step t reaches back at most
  to the start of t's window. The last window may be shorter.

  Args:
    model: a cell or a :class:`StackedRNN`.
    params: its params.
    xs: ``[batch, time, input]`` (``[time, batch, input]`` if time_major).
    window: K, the number of steps between gradient cuts.
    initial_carry: carry at t=0 (gradients reach it from the first window).
    time_major: layout of ``xs`` and outputs.
    key: dropout key for a stack (folded with the window index).
    **kwargs: passed to :func:`unroll` (``unroll``, ``remat``,
      ``deterministic`` for stacks).

  Returns:
    ``(ys, final_carry)``; ``final_carry`` carries no gradient (feed it to
    the next batch, as stateful char-rnn training does).

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.LSTM(8)
    >>> params = cell.init(jax.random.key(0), 2)
    >>> ys, carry = rz.truncated_bptt(cell, params, jnp.ones((4, 100, 2)),
    ...                               window=25)
    >>> ys.shape
    (4, 100, 8)
  """
  base.check_positive_int("window", window)
  if "lengths" in kwargs:
    raise UserError("truncated_bptt does not take lengths; got lengths="
                     f"{kwargs['lengths']!r}")
  if isinstance(model, StackedRNN):
    def run(carry, xw, k):
      return model.apply(params, xw, initial_carry=carry, time_major=True,
                         key=k, **kwargs)
    if initial_carry is None:
      B = xs.shape[1] if time_major else xs.shape[0]
      initial_carry = model.initial_carry(
          (B,), params=params if model.learn_initial_carry else None)
  elif isinstance(model, Cell):
    def run(carry, xw, k):
      del k
      return unroll(model, params, xw, initial_carry=carry, time_major=True,
                    **kwargs)
    _check_inputs(model, params, xs, time_major)
    if initial_carry is None:
      initial_carry = model.initial_carry((xs.shape[1] if time_major else xs.shape[0],))
  else:
    raise UserError(f"model must be a cell or a StackedRNN, got {model!r}")
  if getattr(xs, "ndim", None) != 3:
    raise UserError(f"xs must have rank 3, got shape {getattr(xs, 'shape', None)}")
  xs_t = xs if time_major else jnp.swapaxes(xs, 0, 1)
  T = xs_t.shape[0]
  if T == 0:  # nothing to cut: what the runner gives for an empty sequence
    ys, carry = run(initial_carry, xs_t, None)
    return (ys if time_major else jnp.swapaxes(ys, 0, 1)), carry
  n, rem = divmod(T, window)
  window_key = (lambda i: None) if key is None else (
      lambda i: jax.random.fold_in(key, i))

  def body(carry, inp):
    i, xw = inp
    ys, carry = run(carry, xw, window_key(i))
    return jax.lax.stop_gradient(carry), ys

  carry, ys = initial_carry, []
  if n:
    xw = xs_t[:n * window].reshape((n, window) + xs_t.shape[1:])
    carry, ys_w = jax.lax.scan(body, carry, (jnp.arange(n), xw))
    ys.append(ys_w.reshape((n * window,) + ys_w.shape[2:]))
  if rem:
    carry, ys_r = body(carry, (n, xs_t[n * window:]))
    ys.append(ys_r)
  ys = jnp.concatenate(ys) if len(ys) > 1 else ys[0]
  return (ys if time_major else jnp.swapaxes(ys, 0, 1)), carry
