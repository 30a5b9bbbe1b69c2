"""What is built on the runner: :func:`bidirectional` layers, the
:class:`StackedRNN` of layers and :func:`truncated_bptt`."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp

from rnn_zoo import checks
from rnn_zoo.cells import base
from rnn_zoo.cells.cell import Carry, Cell, Params
from rnn_zoo.errors import UserError
from rnn_zoo.runner.api import unroll
from rnn_zoo.runner.select import check_cell

Array = jax.Array

MERGES = ("concat", "sum")


# --------------------------------------------------------------------------
# Bidirectional.

def merge_directions(ys_f: Array, ys_b: Array, merge: str) -> Array:
  """The two directions' outputs: ``"concat"`` on the last axis or ``"sum"``."""
  if merge == "concat":
    return jnp.concatenate([ys_f, ys_b], axis=-1)
  return ys_f + ys_b


def bidirectional(cell: Cell, params: Params, xs: Array, *,
                  initial_carry: tuple[Carry, Carry] | None = None,
                  lengths: Array | None = None, merge: str = "concat",
                  **kwargs: Any) -> tuple[Array, tuple[Carry, Carry]]:
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
  return merge_directions(ys_f, ys_b, merge), (c_f, c_b)


# --------------------------------------------------------------------------
# Stacks.

@dataclasses.dataclass(frozen=True)
class StackedRNN(Cell):
  """Several recurrent layers, each fed the previous layer's outputs.

  A stack is itself a :class:`~rnn_zoo.Cell` (as Haiku's ``DeepRNN`` is a
  core): :meth:`step` runs one time step through every layer, so whatever
  takes a cell takes a stack (:func:`~rnn_zoo.unroll`,
  :func:`truncated_bptt`, :func:`~rnn_zoo.python_unroll`, the decoders,
  ``rz.nn.RNN``, ``rz.nnx.RNN``). :func:`~rnn_zoo.unroll` runs a stack layer
  by layer (:meth:`apply`: each layer over the whole sequence, through its
  own fastest implementation), with the same values as stepping it.
  ``hidden_size`` is the output size (``2 H`` for a bidirectional concat),
  ``dtype`` and ``param_dtype`` are the first cell's.

  Params are ``{"layer_0": p_0, "layer_1": p_1, ...}``; with
  ``bidirectional`` each ``p_k`` is ``{"forward": ..., "backward": ...}``.
  Carries are a tuple with one entry per layer (a ``(forward, backward)``
  pair when bidirectional).

  Attributes:
    cells: one cell per layer (see :meth:`of` for L copies of one cell).
    bidirectional: run every layer in both directions.
    merge: ``"concat"`` or ``"sum"`` of the two directions.
    dropout_rate: dropout on the inputs of layers 1..L-1 (between layers, as
      PyTorch's ``dropout=``), applied when a key is given (the zoo's rule,
      :func:`rnn_zoo.checks.use_dropout`: ``deterministic=None``, the
      default, drops out exactly when a key is given).
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
  # The Cell's fields, derived from the cells (not arguments).
  hidden_size: int = dataclasses.field(init=False, repr=False, compare=False)
  dtype: jax.typing.DTypeLike = dataclasses.field(init=False, repr=False, compare=False)
  param_dtype: jax.typing.DTypeLike = dataclasses.field(
      init=False, repr=False, compare=False)
  cells: tuple
  bidirectional: bool = False
  merge: str = "concat"
  dropout_rate: float = 0.0
  learn_initial_carry: bool = False

  def __post_init__(self):
    cells = tuple(self.cells) if isinstance(self.cells, (tuple, list)) else self.cells
    if not isinstance(cells, tuple) or not cells:
      raise UserError(f"cells must be a non-empty tuple of cells, got {self.cells!r}")
    for c in cells:
      check_cell(c)
    object.__setattr__(self, "cells", cells)
    base.check_choice("merge", self.merge, MERGES)
    checks.fraction("dropout_rate", self.dropout_rate)
    object.__setattr__(self, "hidden_size", self.output_size)
    object.__setattr__(self, "dtype", cells[0].dtype)
    object.__setattr__(self, "param_dtype", cells[0].param_dtype)

  @classmethod
  def of(cls, cell: Cell, num_layers: int, **kwargs: Any) -> "StackedRNN":
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

  def _layer_input_sizes(self, input_size: int | None) -> list[int | None]:
    sizes: list[int | None] = [input_size]
    for c in self.cells[:-1]:
      mult = 2 if self.bidirectional and self.merge == "concat" else 1
      sizes.append(mult * c.hidden_size)
    return sizes

  def init(self, key: Array, input_size: int) -> dict:
    base.check_positive_int("input_size", input_size)
    params: dict[str, Any] = {}
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

  def initial_carry(self, batch_shape: int | tuple[int, ...] = (),
                    dtype: jax.typing.DTypeLike | None = None,
                    params: Params | None = None) -> tuple:
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

  def apply(self, params: Params, xs: Array, *, initial_carry: Sequence[Carry] | None = None,
            lengths: Array | None = None, key: Array | None = None,
            deterministic: bool | None = None,
            hidden_probes: Sequence[Array | None] | None = None,
            **kwargs: Any) -> tuple[Array, tuple[Carry, ...]]:
    """Runs all layers; returns ``(ys, final_carries)``.

    Args:
      params: :meth:`init` output.
      xs: ``[batch, time, input]`` (or time-major via ``time_major=True``).
      initial_carry: a tuple with one carry per layer, or None for zeros.
      lengths: optional ``[batch]`` valid lengths, used by every layer.
      key: PRNG key for dropout between layers.
      deterministic: None (default): dropout exactly when ``key`` is given;
        True: none (evaluation); False: dropout, ``key`` required.
      hidden_probes: optional, one entry per layer (an array shaped like that
        layer's unidirectional outputs, or None): zero probes whose gradient
        is ``dL/dh_t`` of that layer (not with ``bidirectional``).
      **kwargs: passed to :func:`unroll`.
    """
    self._check_keys(params)
    use_dropout = self._use_dropout(key, deterministic)
    if self.bidirectional and kwargs.get("reverse"):
      raise UserError("reverse=True with a bidirectional stack: its layers "
                      "already run both ways")
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

  def step(self, params: Params, carry: tuple, x: Array, *, projected: bool = False,
           key: Array | None = None, deterministic: bool | None = None
           ) -> tuple[tuple[Carry, ...], Array]:
    """One time step through every layer: ``(carries, y)``.

    What a decoder (char LM, captioner, VQA question reader) calls once per
    token; equal to :meth:`apply` on a length-1 sequence.

    Args:
      params: :meth:`init` output.
      carry: a tuple with one carry per layer (:meth:`initial_carry`).
      x: ``[*batch, input]`` this step's input; with ``projected``, the first
        layer's ``cells[0].input_projection`` of it instead (e.g. a row of
        ``w_ih`` looked up for a one-hot token).
      key: dropout key between layers (as :meth:`apply`).
      deterministic: as :meth:`apply` (None: dropout exactly when ``key`` is
        given, so decoding without a key is deterministic).

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
    self._check_keys(params)
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

  def step_projected(self, params: Params, carry: Carry, xp: Array, *,
                     key: Array | None = None,
                     deterministic: bool | None = None) -> tuple[Carry, Array]:
    """:meth:`step` given ``xp = input_projection(params, x)``."""
    return self.step(params, carry, xp, projected=True, key=key,
                     deterministic=deterministic)

  def input_projection(self, params: Params, x: Array) -> Array:
    """The first layer's input projection (what :meth:`step_projected`
    takes)."""
    return self.cells[0].input_projection(self._first(params), x)

  def prepare(self, params: Params) -> Params:
    """Every layer's :meth:`~rnn_zoo.Cell.prepare`d params."""
    out = dict(params)
    for i, cell in enumerate(self.cells):
      p = params[f"layer_{i}"]
      out[f"layer_{i}"] = ({d: cell.prepare(p[d]) for d in ("forward", "backward")}
                           if self.bidirectional else cell.prepare(p))
    return out

  def check_params(self, params: Params, input_size: int | None = None) -> None:
    """Raises ValueError unless ``params`` are this stack's: the keys, then
    every layer's (and direction's) params for its input size."""
    self._check_keys(params)
    for i, (cell, size) in enumerate(zip(self.cells, self._layer_input_sizes(input_size))):
      p = params[f"layer_{i}"]
      for d in (("forward", "backward") if self.bidirectional else (None,)):
        if d is not None and (not isinstance(p, dict) or d not in p):
          raise UserError(f"params['layer_{i}'] of a bidirectional stack must "
                          f"hold 'forward' and 'backward', got {p!r:.80}")
        cell.check_params(p if d is None else p[d], size)

  def check_initial_carry(self, carry: Carry) -> None:
    if not isinstance(carry, (tuple, list)) or len(carry) != self.num_layers:
      raise UserError(f"initial_carry must hold {self.num_layers} carries (one "
                      f"per layer), got {type(carry).__name__}")
    for cell, c in zip(self.cells, carry):
      for one in (c if self.bidirectional else (c,)):
        cell.check_initial_carry(one)

  def input_size_of(self, params: Params) -> int | None:
    return self.cells[0].input_size_of(self._first(params))

  def _first(self, params: Params) -> Params:
    p = params["layer_0"]
    return p["forward"] if self.bidirectional else p

  def _use_dropout(self, key, deterministic: bool | None) -> bool:
    return checks.use_dropout(self.dropout_rate, deterministic, has_key=key is not None)

  def _dropout(self, xs, key, layer: int):
    """Inverted dropout on the inputs of ``layer`` (>= 1)."""
    keep = 1.0 - self.dropout_rate
    mask = jax.random.bernoulli(jax.random.fold_in(key, layer), keep, xs.shape)
    return jnp.where(mask, xs / keep, 0.0).astype(xs.dtype)

  def _check_keys(self, params) -> None:
    expected = [f"layer_{i}" for i in range(self.num_layers)]
    if self.learn_initial_carry:
      expected.append("initial_carry")
    if not isinstance(params, dict) or sorted(params) != sorted(expected):
      got = sorted(params) if isinstance(params, dict) else type(params).__name__
      raise UserError(f"params of StackedRNN must have keys {expected}, got {got}")


# --------------------------------------------------------------------------
# Truncated backpropagation through time.

def truncated_bptt(model: Cell | StackedRNN, params: Params, xs: Array, *,
                   window: int, initial_carry: Any = None, time_major: bool = False,
                   key: Array | None = None, **kwargs: Any) -> tuple[Array, Any]:
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
  if not isinstance(model, Cell):
    raise UserError(f"model must be a cell or a StackedRNN, got {model!r}")

  def run(carry, xw, k):
    return unroll(model, params, xw, initial_carry=carry, time_major=True,
                  key=k, **kwargs)

  model.check_params(params)
  if getattr(xs, "ndim", None) != 3:
    raise UserError(f"xs must have rank 3, got shape {getattr(xs, 'shape', None)}")
  if initial_carry is None:
    batch = (xs.shape[1] if time_major else xs.shape[0],)
    initial_carry = (model.initial_carry(batch, params=params)  # learned or zeros
                     if isinstance(model, StackedRNN) else model.initial_carry(batch))
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
