"""The public runner: :func:`unroll`, :func:`unroll_with_carries` and
:func:`explain_impl`.

Each call is validated once (:func:`rnn_zoo.runner.inputs.prepare`), the
implementation is chosen once (:func:`rnn_zoo.runner.select.select_impl`,
a pure function of the facts), and the chosen module runs it; every
implementation has the one signature ``run(cell, params, prepared) ->
(ys, final_carry, carries)``.

The implementations (``impl=`` of :func:`unroll`; each is tested against
``"scan"``):

* ``"auto"`` (default): the fastest that applies: ``"parallel"`` for a
  linear recurrent cell without remat, else ``"native"``, else ``"fused"``,
  else ``"scan"``;
* ``"scan"``: autodiff of ``jax.lax.scan``: every cell, option and transform
  (the portable reference);
* ``"fused"``: a hand-written backward pass (the weight gradient as one
  matmul after the loop) for a :class:`rnn_zoo.cells.PointwiseCell`
  (SimpleRNN, LSTM, GRU) without remat, resets or every carry;
* ``"native"``: the C++ CPU kernels (:mod:`rnn_zoo.native`) of an
  ``rnn_zoo.LSTM`` or ``rnn_zoo.GRU`` in float32 on a one-device CPU
  process, without lengths or probes (what ``"fused"`` takes otherwise);
* ``"cudnn"``: an ``rnn_zoo.LSTM`` through cuDNN on an NVIDIA GPU
  (:mod:`rnn_zoo.cudnn`; float32, one device, no probes, resets or remat);
  never chosen by ``"auto"``. Its float32 matmuls use TF32 unless JAX's
  default matmul precision is ``"highest"``; ``rnn_zoo.cudnn.emulated()``
  runs the same path on any backend;
* ``"parallel"``: a :class:`rnn_zoo.cells.LinearRecurrentCell` (MinGRU,
  MinLSTM, LRU) by ``jax.lax.associative_scan``; ``"parallel_log"``: by the
  log-space scan (Feng et al. 2024).

Autodiff: reverse mode (``jax.grad``, ``jax.vjp``) uses the chosen
implementation's backward pass. Forward mode cannot go through the
``custom_vjp`` of ``"fused"``, ``"native"`` and ``"cudnn"``: for
``jax.jvp``, ``jax.jacfwd`` and ``jax.hessian``, ``impl="auto"`` falls back
to the scan by itself (same values); an explicit one raises. The linear
function ``jax.linearize`` returns is evaluated after the runner has run, so
it cannot fall back: pass ``impl="scan"`` for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import jax

from rnn_zoo import checks
from rnn_zoo import cudnn as cudnn_kernels
from rnn_zoo import native as native_kernels
from rnn_zoo.cells.cell import Carry, Cell, Params
from rnn_zoo.errors import UserError
from rnn_zoo.runner import cudnn as cudnn_impl
from rnn_zoo.runner import fused as fused_impl
from rnn_zoo.runner import native as native_impl
from rnn_zoo.runner import parallel as parallel_impl
from rnn_zoo.runner import scan as scan_impl
from rnn_zoo.runner.inputs import Prepared, prepare
from rnn_zoo.runner.select import (Choice, Platform, Request, check_impl,
                                   from_legacy_flags, native_kind, select_impl)

if TYPE_CHECKING:
  from rnn_zoo.runner.stack import StackedRNN

Array = jax.Array

log = logging.getLogger("rnn_zoo.runner")

_RUN = {
    "scan": scan_impl.run,
    "fused": fused_impl.run,
    "native": native_impl.run,
    "cudnn": cudnn_impl.run,
    "parallel": parallel_impl.run,
    "parallel_log": lambda cell, params, prep: parallel_impl.run(
        cell, params, prep, log=True),
}


def current_platform(cell: Cell, req: Request) -> Platform:
  """The facts of this process that :func:`select_impl` reads. The native
  library is loaded (built on first use) only when the call could use it."""
  native_error = native_untuned = None
  maybe_native = (req.impl in ("auto", "native") and "native" not in req.excluded
                  and native_kind(cell) is not None)
  backend, count = jax.default_backend(), jax.device_count()
  if maybe_native and backend == "cpu" and count == 1:
    native_error = native_kernels.load_error()
    native_untuned = native_kernels.untuned_cpu()
  cudnn_error = cudnn_kernels.platform_reason() if req.impl == "cudnn" else None
  return Platform(backend=backend, device_count=count,
                  native_error=native_error, cudnn_error=cudnn_error,
                  native_untuned=native_untuned)


def _is_forward_mode_error(e: Exception) -> bool:
  """JAX's "can't apply forward-mode autodiff (jvp) to a custom_vjp
  function" (TypeError), or a custom call's "cannot be differentiated"
  (jax.hessian's outer jacfwd traces the forward rule: ValueError).

  JAX gives no way to ask a trace whether it is forward-mode before the
  custom_vjp refuses it, so this is the one place its message is read; a
  test pins both messages to the JAX version the package pins.
  """
  return isinstance(e, (TypeError, ValueError)) and (
      "forward-mode autodiff" in str(e) or "cannot be differentiated" in str(e))


def _choose(cell, params, xs, impl, legacy, kwargs) -> tuple[Prepared, Request, Choice]:
  impl, excluded = from_legacy_flags(impl, stacklevel=5, **legacy)
  check_impl(impl)
  prep = prepare(cell, params, xs, **kwargs)
  req = prep.request(cell, params, impl, excluded)
  return prep, req, Choice(*select_impl(cell, req, current_platform(cell, req)))


def _run(cell, params, xs, impl, legacy, **kwargs):
  prep, req, choice = _choose(cell, params, xs, impl, legacy, kwargs)
  log.debug("unroll(%s): %s", type(cell).__name__, choice)
  params = cell.prepare(params)  # once per call, outside the time loop
  try:
    return _RUN[choice.impl](cell, params, prep)
  except (TypeError, ValueError) as e:
    if choice.impl not in ("fused", "native", "cudnn") or not _is_forward_mode_error(e):
      raise
    if req.impl != "auto":  # asked for by name (or by a deprecated flag)
      raise UserError(
          f"impl={choice.impl!r} does not support forward-mode autodiff "
          '(jax.jvp, jax.jacfwd); pass impl="auto" or impl="scan"') from e
    # Forward mode cannot go through a custom_vjp: the scan supports every
    # transform (same values).
    return scan_impl.run(cell, params, prep)


def explain_impl(cell: Cell, params: Params, xs: Array, *, impl: str = "auto",
                 **kwargs: Any) -> Choice:
  """Which implementation :func:`unroll` runs for this call, and why.

  Takes the arguments of :func:`unroll` (``xs`` ``[batch, time, input]``,
  or ``[time, batch, input]`` with ``time_major``); runs nothing. The answer to "why
  is this slow": e.g. ``fused: the native kernel takes no lengths or
  hidden_probes; the fused backward pass applies``.

  Returns:
    a :class:`rnn_zoo.runner.select.Choice` ``(impl, reason)``.

  Raises:
    ValueError (:class:`rnn_zoo.UserError`): what :func:`unroll` would
      raise for these arguments.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.SimpleRNN(8)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> impl, why = rz.explain_impl(cell, params, jnp.ones((2, 5, 3)), remat=True)
    >>> impl, why
    ('scan', 'the fused backward pass does not combine with remat')
  """
  _refuse_stack(cell, "explain_impl")
  legacy = {k: kwargs.pop(k) for k in ("fused", "native", "cudnn", "parallel")
            if k in kwargs}
  return _choose(cell, params, xs, impl, legacy, kwargs)[2]


def unroll(cell: Cell, params: Params, xs: Array, *, initial_carry: Carry = None,
           lengths: Array | None = None, reverse: bool = False,
           time_major: bool = False, unroll: int | bool = 1,
           remat: bool | str | int = False,
           hidden_probes: Array | None = None, resets: Array | None = None,
           impl: str = "auto", key: Array | None = None,
           deterministic: bool | None = None, fused: bool | None = None,
           parallel: bool | str | None = None, native: bool | None = None,
           cudnn: bool | None = None) -> tuple[Array, Carry]:
  """Runs ``cell`` over a sequence.

  The input projection (``x_t W_ih + b`` for a :class:`ProjectedCell`) is
  computed for all steps at once, outside the loop; the loop does only the
  recurrent part.

  Args:
    cell: a cell from :mod:`rnn_zoo.cells` (any :class:`rnn_zoo.Cell`); a
      :class:`rnn_zoo.StackedRNN` runs layer by layer (its ``apply``).
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
    resets: optional bool ``[batch, time]`` (``[time, batch]`` if
      ``time_major``): where set, the carry entering that step is
      ``initial_carry`` again (packed sequences, episodes), as Haiku's
      ``ResetCore``. Not with ``reverse``.
    impl: which implementation runs it: ``"auto"`` (default: the fastest
      that applies), ``"scan"``, ``"fused"``, ``"native"``, ``"cudnn"``,
      ``"parallel"`` or ``"parallel_log"`` (what each takes: this module's
      documentation; :func:`explain_impl` says which runs and why). One
      named explicitly that cannot run the call raises, saying why.
    fused, parallel, native, cudnn: deprecated aliases of ``impl`` (a
      ``DeprecationWarning``; removed in the next release): ``X=True`` is
      ``impl="X"`` (``parallel="log"``: ``"parallel_log"``), ``X=False``
      leaves ``"auto"`` to choose among the others (``fused=False`` also
      rules out the native kernels).
    key, deterministic: dropout inside the cell (a stack's between layers;
      the zoo's rule: None drops out exactly when ``key`` is given); a cell
      without dropout ignores them.

  Returns:
    ``(ys, final_carry)``; ``ys`` is ``[batch, time, hidden]``. The carry
    after every step: :func:`unroll_with_carries`.

  Autodiff: reverse mode everywhere; forward mode (``jax.jvp``,
  ``jax.jacfwd``, ``jax.hessian``) falls back to the scan under ``"auto"``
  (see this module's documentation).

  Raises:
    ValueError (:class:`rnn_zoo.UserError`): on a wrong rank, a feature size
      that does not match the params, non-float inputs or carry, out-of-range
      lengths, unknown options, or an ``impl`` that cannot run the call.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.GRU(32)
    >>> params = cell.init(jax.random.key(0), input_size=4)
    >>> xs = jnp.ones((2, 10, 4))
    >>> ys, carry = rz.unroll(cell, params, xs, lengths=jnp.array([10, 3]))
    >>> ys.shape, carry.h.shape
    ((2, 10, 32), (2, 32))
  """
  legacy = dict(fused=fused, parallel=parallel, native=native, cudnn=cudnn)
  options = dict(initial_carry=initial_carry, lengths=lengths, reverse=reverse,
                 time_major=time_major, unroll=unroll, remat=remat, resets=resets)
  if isinstance(cell, _stack_type()):
    return _unroll_stack(cell, params, xs, hidden_probes, key, deterministic,
                         impl, legacy, options)
  checks.optional_bool("deterministic", deterministic)
  ys, carry, _ = _run(cell, params, xs, impl, legacy, all_carries=False,
                      hidden_probes=hidden_probes, **options)
  return ys, carry


def _unroll_stack(stack, params, xs, hidden_probes, key, deterministic, impl,
                  legacy, options) -> tuple[Array, Carry]:
  """:func:`unroll` of a stack: its ``apply`` (layer by layer), the probe
  on the last layer."""
  probes = None if hidden_probes is None else (
      (None,) * (stack.num_layers - 1) + (hidden_probes,))
  return stack.apply(params, xs, key=key, deterministic=deterministic,
                     hidden_probes=probes, impl=impl, **options,
                     **{k: v for k, v in legacy.items() if v is not None})


def _stack_type() -> type[StackedRNN]:
  from rnn_zoo.runner.stack import StackedRNN  # built on this module
  return StackedRNN


def _refuse_stack(cell, name: str) -> None:
  if isinstance(cell, _stack_type()):
    raise UserError(f"{name} takes one cell, got a StackedRNN: run it on each "
                    "layer (stack.cells[i], params['layer_i'])")


def unroll_with_carries(cell: Cell, params: Params, xs: Array, *, initial_carry: Carry = None,
                        lengths: Array | None = None, reverse: bool = False,
                        time_major: bool = False, unroll: int | bool = 1,
                        remat: bool | str | int = False,
                        hidden_probes: Array | None = None,
                        resets: Array | None = None, impl: str = "auto",
                        parallel: bool | str | None = None) -> tuple[Array, Carry, Carry]:
  """:func:`unroll` that also returns the carry after every step
  (``impl``: ``"auto"``, ``"scan"``, ``"parallel"`` or ``"parallel_log"``;
  ``parallel=`` is its deprecated alias).

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
  _refuse_stack(cell, "unroll_with_carries")
  return _run(
      cell, params, xs, impl, dict(parallel=parallel),
      initial_carry=initial_carry, lengths=lengths, reverse=reverse,
      time_major=time_major, unroll=unroll, remat=remat, all_carries=True,
      hidden_probes=hidden_probes, resets=resets)
