"""Flax NNX modules over the zoo's cells and runner: :class:`RNN` and
:class:`Bidirectional`.

The module holds the functional params of a :class:`rnn_zoo.StackedRNN`
(``{"layer_0": cell params, ...}``), one :class:`flax.nnx.Param` per array,
and calls the functional runner with them: outputs and gradients are those
of :meth:`rnn_zoo.StackedRNN.apply`, bit for bit. :meth:`RNN.to_params` and
:meth:`RNN.from_params` convert to and from the functional params;
:meth:`RNN.to_linen` and :meth:`RNN.from_linen` to and from
:class:`rnn_zoo.nn.RNN`.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import nnx

from rnn_zoo import checks
from rnn_zoo.cells.cell import Cell
from rnn_zoo.errors import UserError
from rnn_zoo.nn.recurrent import RNN as LinenRNN
from rnn_zoo.nnx.params import draw_key, rng_stream, to_arrays, to_variables
from rnn_zoo.runner import StackedRNN
from rnn_zoo.runner.stack import MERGES, merge_directions
from rnn_zoo.runner.select import check_impl

Array = jax.Array


def _stack_of(cell, num_layers, bidirectional, merge, dropout_rate,
              learn_initial_carry) -> StackedRNN:
  if isinstance(cell, StackedRNN):
    given = {"num_layers": (num_layers, 1), "bidirectional": (bidirectional, False),
             "merge": (merge, "concat"), "dropout_rate": (dropout_rate, 0.0),
             "learn_initial_carry": (learn_initial_carry, False)}
    for name, (value, default) in given.items():
      if value != default:
        raise UserError(f"{name}={value!r} is set by the StackedRNN given as cell; "
                        f"leave it at {default!r}")
    return cell
  if not isinstance(cell, Cell):
    raise UserError(f"cell must be a zoo Cell or a StackedRNN, got {type(cell).__name__}")
  return StackedRNN.of(cell, num_layers, bidirectional=bidirectional, merge=merge,
                       dropout_rate=dropout_rate,
                       learn_initial_carry=learn_initial_carry)


def _check_reverse(reverse: bool, stack: StackedRNN) -> None:
  if reverse and stack.bidirectional:
    raise UserError("reverse=True with bidirectional=True: a bidirectional "
                    "layer already runs both ways")


class RNN(nnx.Module):
  """A (stacked, optionally bidirectional) recurrent layer as an NNX module.

  Args:
    cell: the cell of every layer (e.g. ``rz.LSTM(128)``), or a whole
      :class:`rnn_zoo.StackedRNN` (then leave the stack's own arguments at
      their defaults).
    in_features: the size of the inputs' last axis.
    num_layers, bidirectional, merge, dropout_rate, learn_initial_carry: the
      stack's (see :class:`rnn_zoo.StackedRNN`).
    time_major, unroll, remat, impl: the runner's (see
      :func:`rnn_zoo.unroll`; ``impl="auto"`` picks the native kernels,
      fused scan, parallel scan or plain scan, and
      :func:`rnn_zoo.explain_impl` says why).
    reverse: run the sequence backwards (length-aware: each sequence
      starts at its last valid step); outputs stay aligned with the inputs.
      Not with ``bidirectional``.
    return_carry: also return the final carries (one per layer).
    deterministic: the default of ``__call__``'s (None: dropout exactly
      when the module holds an RNG stream or the call passes ``rngs``;
      :meth:`flax.nnx.Module.eval` sets True, ``train()`` False).
    params: functional params to hold instead of initializing (see
      :meth:`from_params`).
    rngs: :class:`flax.nnx.Rngs`: its ``params`` stream initializes, its
      ``dropout`` stream (else ``default``) drives dropout.

  Example:
    >>> import jax.numpy as jnp, rnn_zoo as rz
    >>> from flax import nnx
    >>> layer = rz.nnx.RNN(rz.LSTM(16), 3, num_layers=2, rngs=nnx.Rngs(0))
    >>> layer(jnp.ones((4, 9, 3))).shape
    (4, 9, 16)
  """

  def __init__(self, cell: Cell | StackedRNN, in_features: int | None = None, *,
               num_layers: int = 1, bidirectional: bool = False,
               merge: str = "concat", dropout_rate: float = 0.0,
               learn_initial_carry: bool = False, time_major: bool = False,
               unroll: int = 1, remat: Any = False, impl: str = "auto",
               reverse: bool = False, return_carry: bool = False,
               deterministic: bool | None = None, params: Any = None,
               rngs: nnx.Rngs | None = None):
    self.stack = _stack_of(cell, num_layers, bidirectional, merge, dropout_rate,
                           learn_initial_carry)
    check_impl(impl)
    _check_reverse(reverse, self.stack)
    checks.optional_bool("deterministic", deterministic)
    self.time_major, self.unroll, self.remat, self.impl = time_major, unroll, remat, impl
    self.reverse, self.return_carry = bool(reverse), bool(return_carry)
    self.deterministic = deterministic
    if params is None:
      if rngs is None:
        raise UserError("rngs is required to initialize the params (or pass params=)")
      if in_features is None:
        raise UserError("in_features is required to initialize the params "
                        "(or pass params=)")
      checks.positive_int("in_features", in_features)
      params = self.stack.init(rngs.params(), in_features)
    else:
      self.stack.check_params(params, in_features)
    self.params = to_variables(params)
    self.rngs = rng_stream(rngs) if self.stack.dropout_rate > 0 else nnx.data(None)

  # -- conversions ------------------------------------------------------------
  @classmethod
  def from_params(cls, cell: Cell | StackedRNN, params: dict, **kwargs: Any) -> "RNN":
    """The module holding ``params`` (what ``StackedRNN.init`` makes: the
    ``{"layer_k": ...}`` dict) for ``cell``; ``kwargs`` as the constructor's
    (``rngs`` only for dropout)."""
    return cls(cell, params=params, **kwargs)

  def to_params(self) -> dict:
    """The functional params: ``self.stack.apply(rnn.to_params(), xs)``
    equals ``rnn(xs)``."""
    return to_arrays(self.params)

  @classmethod
  def from_linen(cls, module: LinenRNN, variables: dict, *,
                 rngs: nnx.Rngs | None = None) -> "RNN":
    """The NNX twin of a :class:`rnn_zoo.nn.RNN` and its ``variables``."""
    if not isinstance(module, LinenRNN):
      raise UserError(f"module must be an rnn_zoo.nn.RNN, got {type(module).__name__}")
    legacy = module._legacy_flags()
    if legacy:
      raise UserError(f"module uses the deprecated flags {sorted(legacy)}: set impl= instead")
    try:
      params = variables["params"]["stack"]
    except (KeyError, TypeError):
      raise UserError("variables must be what rz.nn.RNN.init returns "
                      "({'params': {'stack': ...}})") from None
    return cls(module.cell, num_layers=module.num_layers,
               bidirectional=module.bidirectional, merge=module.merge,
               dropout_rate=module.dropout_rate,
               learn_initial_carry=module.learn_initial_carry,
               time_major=module.time_major, unroll=module.unroll,
               remat=module.remat, impl=module.impl,
               return_carry=module.return_carry, params=params, rngs=rngs)

  def to_linen(self) -> tuple[LinenRNN, dict]:
    """``(module, variables)``: the :class:`rnn_zoo.nn.RNN` computing the
    same function (``module.apply(variables, xs)``)."""
    if self.reverse:
      raise UserError("rz.nn.RNN has no reverse option: reverse=True has no Linen twin")
    s = self.stack
    if len(set(s.cells)) != 1:
      raise UserError("rz.nn.RNN has one cell for every layer; this stack has "
                      f"{len(set(s.cells))} different cells")
    module = LinenRNN(s.cells[0], num_layers=s.num_layers, bidirectional=s.bidirectional,
                      merge=s.merge, dropout_rate=s.dropout_rate,
                      time_major=self.time_major, unroll=self.unroll, remat=self.remat,
                      impl=self.impl, return_carry=self.return_carry,
                      learn_initial_carry=s.learn_initial_carry)
    return module, {"params": {"stack": self.to_params()}}

  # -- the forward pass -------------------------------------------------------
  def initial_carry(self, batch_size: int, dtype: jax.typing.DTypeLike | None = None) -> tuple:
    """One carry per layer for ``batch_size`` sequences (zeros, or the learned
    state with ``learn_initial_carry``)."""
    params = self.to_params() if self.stack.learn_initial_carry else None
    return self.stack.initial_carry((batch_size,), dtype, params=params)

  def __call__(self, xs: Array, *, initial_carry: tuple | None = None,
               lengths: Array | None = None, reverse: bool | None = None,
               deterministic: bool | None = None, rngs: Any = None,
               hidden_probes: tuple | None = None) -> Any:
    """Runs the stack over ``xs`` ``[batch, time, in_features]``.

    Args:
      initial_carry: one carry per layer, or None (:meth:`initial_carry`).
      lengths: ``[batch]`` valid lengths (outputs past them are zero, the
        carry frozen at the last valid step).
      reverse: overrides the constructor's.
      deterministic: overrides the module's (see the class doc).
      rngs: an ``nnx.Rngs``, ``nnx.RngStream`` or key for this call's dropout.
      hidden_probes: one array ``[batch, time, H]`` (or None) per layer,
        added to the hidden states: the gradient of a loss with respect to
        them is ``dL/dh_t`` (see :func:`rnn_zoo.gradflow.hidden_grad_norms`).

    Returns:
      ``ys`` ``[batch, time, H]`` (``2H`` for a concatenated bidirectional
      layer), and the final carries too with ``return_carry``.
    """
    ys, carries = self.run(xs, initial_carry=initial_carry, lengths=lengths,
                           reverse=reverse, deterministic=deterministic,
                           rngs=rngs, hidden_probes=hidden_probes)
    return (ys, carries) if self.return_carry else ys

  def run(self, xs: Array, *, initial_carry: tuple | None = None,
          lengths: Array | None = None, reverse: bool | None = None,
          deterministic: bool | None = None, rngs: Any = None,
          hidden_probes: tuple | None = None) -> tuple[Array, tuple]:
    """``(ys, final carries)`` whatever ``return_carry`` (see ``__call__``)."""
    reverse = self.reverse if reverse is None else reverse
    _check_reverse(reverse, self.stack)
    deterministic = self.deterministic if deterministic is None else deterministic
    use = checks.use_dropout(self.stack.dropout_rate, deterministic,
                             has_key=rngs is not None or self.rngs is not None)
    key = draw_key(rngs, self.rngs) if use else None
    extra = {"reverse": True} if reverse else {}
    ys, carries = self.stack.apply(
        self.to_params(), xs, initial_carry=initial_carry, lengths=lengths,
        key=key, deterministic=not use, hidden_probes=hidden_probes,
        time_major=self.time_major, unroll=self.unroll, remat=self.remat,
        impl=self.impl, **extra)
    return ys, carries


class Bidirectional(nnx.Module):
  """Two :class:`RNN` modules, one run forwards and one backwards (length
  aware), their outputs merged, as :class:`flax.nnx.Bidirectional` composes
  two ``nnx.RNN``; with the same params it computes what
  :func:`rnn_zoo.bidirectional` computes.

  Args:
    forward_rnn, backward_rnn: :class:`RNN` modules with the same input size
      (``backward_rnn`` runs with ``reverse=True`` whatever its own setting).
    merge: ``"concat"`` (``[..., H_f + H_b]``) or ``"sum"``.
    return_carry: also return ``(carries_forward, carries_backward)``, each
      a tuple with one carry per layer of that direction (the same form
      ``initial_carry`` takes).

  Example:
    >>> import jax.numpy as jnp, rnn_zoo as rz
    >>> from flax import nnx
    >>> rngs = nnx.Rngs(0)
    >>> bi = rz.nnx.Bidirectional(rz.nnx.RNN(rz.GRU(8), 3, rngs=rngs),
    ...                           rz.nnx.RNN(rz.GRU(8), 3, rngs=rngs))
    >>> bi(jnp.ones((2, 5, 3))).shape
    (2, 5, 16)
  """

  def __init__(self, forward_rnn: RNN, backward_rnn: RNN, *, merge: str = "concat",
               return_carry: bool = False):
    for name, m in (("forward_rnn", forward_rnn), ("backward_rnn", backward_rnn)):
      if not isinstance(m, RNN):
        raise UserError(f"{name} must be an rz.nnx.RNN, got {type(m).__name__}")
    checks.choice("merge", merge, MERGES)
    self.forward_rnn, self.backward_rnn = forward_rnn, backward_rnn
    self.merge, self.return_carry = merge, bool(return_carry)

  def __call__(self, xs: Array, *, initial_carry: tuple | None = None,
               lengths: Array | None = None, deterministic: bool | None = None,
               rngs: Any = None) -> Any:
    c_f, c_b = (None, None) if initial_carry is None else initial_carry
    kw = {"lengths": lengths, "deterministic": deterministic, "rngs": rngs}
    ys_f, c_f = self.forward_rnn.run(xs, initial_carry=c_f, reverse=False, **kw)
    ys_b, c_b = self.backward_rnn.run(xs, initial_carry=c_b, reverse=True, **kw)
    if self.merge == "sum" and ys_f.shape != ys_b.shape:
      raise UserError(f"merge='sum' needs equal output sizes, got {ys_f.shape[-1]} "
                      f"and {ys_b.shape[-1]}")
    ys = merge_directions(ys_f, ys_b, self.merge)
    return (ys, (c_f, c_b)) if self.return_carry else ys
