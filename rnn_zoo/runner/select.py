"""Which implementation runs a recurrence: one pure, table-tested choice.

:func:`select_impl` takes the facts (the cell, what the call asks for, the
process it runs in) and returns ``(impl, reason)``: the implementation and a
sentence saying why. It reads nothing else (no JAX state, no environment),
so every rule is a row of a table test; :func:`rnn_zoo.explain_impl`
gathers the facts of a real call and asks it.

The implementations (``impl=``):

* ``"scan"``: autodiff of ``jax.lax.scan`` over ``cell.step_projected``;
  every cell, every option, every transform (the portable reference).
* ``"fused"``: the same loop with a hand-written backward pass
  (:mod:`rnn_zoo.runner.fused`) for a :class:`rnn_zoo.PointwiseCell`.
* ``"native"``: the C++ CPU kernels (:mod:`rnn_zoo.native`) of
  ``rnn_zoo.LSTM`` and ``rnn_zoo.GRU`` in float32.
* ``"cudnn"``: an ``rnn_zoo.LSTM`` through cuDNN on an NVIDIA GPU
  (:mod:`rnn_zoo.cudnn`); never chosen by ``"auto"``.
* ``"parallel"`` / ``"parallel_log"``: a :class:`rnn_zoo.LinearRecurrentCell`
  by ``jax.lax.associative_scan`` / the log-space scan.
* ``"auto"`` (default): the fastest that applies, in the order
  parallel, native, fused, scan.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np

from rnn_zoo.cells.cell import Cell, PointwiseCell
from rnn_zoo.cells.gru import GRU
from rnn_zoo.cells.linear import LinearRecurrentCell
from rnn_zoo.cells.lstm import LSTM
from rnn_zoo.errors import UserError

IMPLS = ("auto", "scan", "fused", "native", "cudnn", "parallel", "parallel_log")
"""Every value of ``impl=``."""

NATIVE_KINDS = ("LSTM", "GRU")
"""The exact cell classes the native kernels run (a subclass may change the
step, so it does not qualify)."""


class Request(NamedTuple):
  """What one call of the runner asks for (the facts :func:`select_impl`
  reads besides the cell and the platform): flags and sizes only, no
  arrays (``lengths`` says whether a ``[batch]`` lengths array was given)."""
  impl: str = "auto"            # the user's impl= (one of IMPLS)
  remat_chunk: int = 0          # 0: no remat; 1: per step; K: chunks of K
  all_carries: bool = False     # unroll_with_carries
  lengths: bool = False         # a lengths mask was given
  probes: bool = False          # hidden_probes were given
  resets: bool = False          # resets were given
  reverse: bool = False         # run from the end of each sequence
  float32: str | None = None    # None if every dtype is float32, else the
                                # first that is not ("w_hh is float64")
  empty: bool = False           # a zero-sized time or batch axis
  excluded: frozenset = frozenset()  # impls the deprecated flags rule out


class Platform(NamedTuple):
  """The process a call runs in."""
  backend: str = "cpu"          # jax.default_backend()
  device_count: int = 1         # jax.device_count()
  native_error: str | None = None  # why the native kernels cannot load here
  cudnn_error: str | None = None   # why cuDNN cannot run here (backend,
                                   # plugin), None where it can
  native_untuned: str | None = None  # why "auto" skips the native kernels on
                                     # this CPU though they can run (no AVX-512)


def _cell_class(cell) -> str:
  return type(cell).__name__


def native_kind(cell: Cell) -> str | None:
  """``"lstm"`` or ``"gru"`` for the cells the native kernels run."""
  kinds: dict[type, str] = {LSTM: "lstm", GRU: "gru"}
  return kinds.get(type(cell))


def _is_lstm(cell) -> bool:
  return native_kind(cell) == "lstm"


def _fused_reason(cell, req: Request) -> str | None:
  """None if the fused backward pass applies, else why not."""
  if not isinstance(cell, PointwiseCell):
    return (f"the fused backward pass needs a PointwiseCell (SimpleRNN, LSTM, "
            f"GRU), not {_cell_class(cell)}")
  if req.remat_chunk:
    return "the fused backward pass does not combine with remat"
  if req.resets:
    return "the fused backward pass takes no resets"
  if req.all_carries:
    return "the fused backward pass does not return every carry"
  return None


def _native_reason(cell, req: Request, platform: Platform) -> str | None:
  """None if the native kernels run this call, else why not."""
  if native_kind(cell) is None:
    return ("the native kernels run rnn_zoo.LSTM and rnn_zoo.GRU (variant "
            f"'cudnn') only, not {_cell_class(cell)}")
  fused = _fused_reason(cell, req)
  if fused is not None:
    return fused.replace("the fused backward pass", "the native kernel")
  if req.lengths or req.probes:
    return "the native kernel takes no lengths or hidden_probes"
  if req.float32 is not None:
    return f"the native kernel is float32 only ({req.float32})"
  if req.empty:
    return "the native kernel needs inputs with a step and a row"
  if platform.backend != "cpu":
    return f"the native kernel runs on the CPU, not {platform.backend}"
  if platform.device_count != 1:
    return (f"the native kernel runs in a one-device process "
            f"({platform.device_count} devices here: the scan runner partitions)")
  return platform.native_error


def _cudnn_reason(cell, req: Request, platform: Platform) -> str | None:
  if not _is_lstm(cell):
    return ("cuDNN runs rnn_zoo.LSTM only (jax.experimental.rnn has no other "
            f"cell), not {_cell_class(cell)}")
  if req.remat_chunk:
    return "cuDNN keeps what its backward pass needs itself (no remat)"
  if req.resets:
    return "cuDNN takes no resets"
  if req.all_carries:
    return "cuDNN does not return every carry"
  if req.probes:
    return "cuDNN takes no hidden_probes"
  if req.float32 is not None:
    return (f"jax.experimental.rnn is float32 only ({req.float32}; bfloat16 "
            "compute runs on the scan runner)")
  if req.empty:
    return "cuDNN needs inputs with a step and a row"
  return platform.cudnn_error


def _parallel_reason(cell, req: Request, impl: str) -> str | None:
  if not isinstance(cell, LinearRecurrentCell):
    return (f"the parallel scan needs a LinearRecurrentCell (MinGRU, MinLSTM, "
            f"LRU), not {_cell_class(cell)}")
  if req.remat_chunk:
    return ("the parallel scan does not combine with remat (it is not a loop "
            'to checkpoint; impl="scan" runs remat)')
  if impl == "parallel_log" and req.resets:
    return ('resets do not combine with the log-space scan (log 0 would break '
            'the cumulative sum); use impl="parallel"')
  if impl == "parallel_log" and not _has_log_coefficients(cell):
    return (f"the log-space scan needs log_coefficients, which "
            f"{_cell_class(cell)} does not have; use impl=\"parallel\"")
  return None


def _has_log_coefficients(cell) -> bool:
  return type(cell).log_coefficients is not LinearRecurrentCell.log_coefficients


def check_cell(cell: Any) -> None:
  if not isinstance(cell, Cell):
    raise UserError(
        f"cell must be an rnn_zoo cell (SimpleRNN, LSTM, GRU, ...), got {cell!r}")


def check_impl(impl: Any) -> None:
  if impl not in IMPLS:
    raise UserError(f"impl must be one of {list(IMPLS)}, got {impl!r}")


def select_impl(cell: Cell, options: Request,
                devices: Platform) -> tuple[str, str]:
  """The implementation that runs this call, and why.

  Args:
    cell: the cell.
    options: what the call asks for (:class:`Request`).
    devices: the process it runs in (:class:`Platform`).

  Returns:
    ``(impl, reason)``: one of ``"scan"``, ``"fused"``, ``"native"``,
    ``"cudnn"``, ``"parallel"``, ``"parallel_log"``, and a sentence.

  Raises:
    UserError: an explicit ``impl`` that cannot run this call (the message
      says why), or an unknown ``impl``.

  Example:
    >>> import rnn_zoo as rz
    >>> from rnn_zoo.runner.select import Platform, Request, select_impl
    >>> select_impl(rz.LSTM(8), Request(lengths=True), Platform())
    ('fused', 'the native kernel takes no lengths or hidden_probes; the fused backward pass applies')
  """
  check_cell(cell)
  check_impl(options.impl)
  req, impl = options, options.impl
  if impl == "auto":
    return _auto(cell, req, devices)
  if impl == "scan":
    return "scan", "impl='scan' (asked for)"
  if impl == "cudnn":
    why = _cudnn_reason(cell, req, devices)
  elif impl == "native":
    why = _native_reason(cell, req, devices)
  elif impl == "fused":
    why = _fused_reason(cell, req)
  else:
    why = _parallel_reason(cell, req, impl)
  if why is not None:
    raise UserError(f"impl={impl!r} cannot run here: {why}")
  return impl, f"impl={impl!r} (asked for)"


def _auto(cell, req: Request, platform: Platform) -> tuple[str, str]:
  if "parallel" not in req.excluded and isinstance(cell, LinearRecurrentCell):
    if not req.remat_chunk:
      return "parallel", ("a LinearRecurrentCell: the associative scan (log "
                          "depth in time)")
  native_why = ("excluded by native=False" if "native" in req.excluded
                else _native_reason(cell, req, platform) or platform.native_untuned)
  if native_why is None:
    return "native", (f"an rnn_zoo.{_cell_class(cell)} in float32 on a "
                      "one-device CPU process: the native kernels apply")
  fused_why = ("excluded by fused=False" if "fused" in req.excluded
               else _fused_reason(cell, req))
  if fused_why is None:
    if native_kind(cell) is None:
      return "fused", (f"a PointwiseCell ({_cell_class(cell)}): the fused "
                       "backward pass applies")
    return "fused", f"{native_why}; the fused backward pass applies"
  if isinstance(cell, LinearRecurrentCell):
    return "scan", ("the parallel scan does not combine with remat"
                    if req.remat_chunk else "excluded by parallel=False")
  return "scan", fused_why


# --------------------------------------------------------------------------
# The deprecated flags (fused=, native=, cudnn=, parallel=).

def from_legacy_flags(impl: str, *, fused: bool | None = None,
                      native: bool | None = None, cudnn: bool | None = None,
                      parallel: bool | str | None = None, stacklevel: int = 3) -> tuple[str, frozenset]:
  """Maps the deprecated flags onto ``(impl, excluded)`` with a warning.

  ``cudnn=True``, ``native=True``, ``fused=True``, ``parallel=True`` and
  ``parallel="log"`` ask for one implementation; ``native=False``,
  ``fused=False`` (which also rules out the native kernels, as it did) and
  ``parallel=False`` leave ``"auto"`` to choose among the rest.
  """
  given = {k: v for k, v in (("fused", fused), ("native", native),
                             ("cudnn", cudnn), ("parallel", parallel))
           if v is not None}
  if not given:
    return impl, frozenset()
  for name, value in given.items():
    ok = isinstance(value, (bool, np.bool_)) or (name == "parallel" and value == "log")
    if not ok:
      allowed = "None, True, False or 'log'" if name == "parallel" else "True or False"
      raise UserError(f"{name} must be {allowed}, got {value!r} (deprecated: "
                      "use impl=)")
    given[name] = value if value == "log" else bool(value)
  wanted = [f"{k}={v!r}" for k, v in given.items()]
  asked = {("parallel_log" if v == "log" else k) for k, v in given.items()
           if v is True or v == "log"}
  excluded = frozenset(k for k, v in given.items() if v is False)
  if "fused" in excluded:
    excluded |= {"native"}
  if len(asked) > 1 or (asked and impl != "auto") or (asked & excluded):
    raise UserError(f"{', '.join(wanted)} (deprecated flags) contradict each "
                    f"other or impl={impl!r}; pass impl= alone")
  new = asked.pop() if asked else impl
  if new != "auto":
    hint = f'impl="{new}"'
  else:
    hint = ('impl="auto", or impl= naming the implementation you want '
            '(rz.explain_impl says which one "auto" picks)')
  warnings.warn(f"{', '.join(wanted)} is deprecated and will be removed in the "
                f"next release: pass {hint}", DeprecationWarning,
                stacklevel=stacklevel)
  if new != "auto":
    excluded = frozenset()
  return new, excluded


class Choice(NamedTuple):
  """What :func:`rnn_zoo.explain_impl` returns: the implementation and why."""
  impl: str
  reason: str

  def __str__(self) -> str:
    return f"{self.impl}: {self.reason}"


def dtype_reason(dtypes: dict[str, Any]) -> str | None:
  """None if every named dtype is float32, else ``"<name> is <dtype>"``."""
  for what, dt in dtypes.items():
    if np.dtype(dt) != np.dtype(np.float32):
      return f"{what} is {np.dtype(dt)}"
  return None
