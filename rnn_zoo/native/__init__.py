"""Native CPU kernels for the recurrences, called through ``jax.ffi``.

The LSTM's and the GRU's recurrences (``rnn.cc``): the recurrent weight
packed once per call, each step's gates finished in registers, the hidden
units split between threads (the caller and XLA's own pool) with one
barrier per step -- what oneDNN's RNN primitive (PyTorch's CPU
``nn.LSTM``) does and XLA's ``lax.scan`` cannot express.
:func:`lstm_recurrence` and :func:`gru_recurrence` have the same values and
gradients as ``rnn_zoo.runner.fused.fused_recurrence`` (tested); the LSTM's input
projection ``x W_ih`` runs inside the forward kernel, in the same register
tiles as ``h W_hh``, and ``dx = dz W_ih^T`` inside the backward kernel
(:func:`lstm_layer`); the weight gradients are one native GEMM over every
step's rows (:func:`weight_grads`).

The kernels are C++ (``rnn.cc`` and the headers beside it), compiled by
``python -m rnn_zoo.native build`` (``make`` runs it) or on first use with
``$CXX`` (else ``g++``, else ``c++`` from ``PATH``; set ``CXX`` to pin the
compiler) (about 10 s; ``-O3 -march=native``) into ``$RNN_ZOO_CACHE/native``
(default ``~/.cache/rnn_zoo/native``), keyed by the source, the compiler,
its flags, the JAX version and the CPU, then loaded and registered with XLA.
The library is loaded into the process, so the cache is trusted only when
it is private: folders owned by the user and not writable by others
(:func:`check_private`; else the kernels stay off, saying why), the build
lock never opened through a symlink, and a new build is loaded and checked
for every kernel before it is cached.
:func:`available` says whether that worked (and never raises);
:func:`load` raises :class:`rnn_zoo.UserError` saying why not.

Threads: ``RNN_ZOO_NATIVE_THREADS``, read at each call (default: one per
thread of XLA's intra-op pool, i.e. per core); at most one per 16 hidden
units. The results do not depend on it (each unit's arithmetic is the same
however the units are split; tested).
"""

from __future__ import annotations

import ctypes
import fcntl
import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import threading

import jax
import jax.numpy as jnp

Array = jax.Array

from rnn_zoo import cache
from rnn_zoo.errors import UserError

SOURCE = pathlib.Path(__file__).with_name("rnn.cc")
"""The one translation unit; it includes the headers beside it, one per
concern: simd.h (vectors, math, register tiles), team.h (the thread team),
pack.h (weight packing, layouts), lstm.h, gru.h, weight_grads.h."""


def sources() -> list[pathlib.Path]:
  """Every native source file (rnn.cc and its headers)."""
  return sorted(p for p in SOURCE.parent.iterdir() if p.suffix in (".cc", ".h"))
CXXFLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-pthread")
TARGETS = {
    "rnn_zoo_lstm_forward_infer": "RnnZooLstmForwardInfer",
    "rnn_zoo_lstm_forward_train": "RnnZooLstmForwardTrain",
    "rnn_zoo_lstm_fused_forward_infer": "RnnZooLstmFusedForwardInfer",
    "rnn_zoo_lstm_fused_forward_train": "RnnZooLstmFusedForwardTrain",
    "rnn_zoo_lstm_backward": "RnnZooLstmBackward",
    "rnn_zoo_lstm_layer_backward": "RnnZooLstmLayerBackward",
    "rnn_zoo_gru_forward_infer": "RnnZooGruForwardInfer",
    "rnn_zoo_gru_forward_train": "RnnZooGruForwardTrain",
    "rnn_zoo_gru_backward": "RnnZooGruBackward",
    "rnn_zoo_weight_grads": "RnnZooWeightGrads",
    "rnn_zoo_recurrent_weight_grads": "RnnZooRecurrentWeightGrads",
}

_lock = threading.Lock()
_state: dict = {}


def cache_dir() -> pathlib.Path:
  return cache.root() / "native"


def _cpu_key() -> str:
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("flags"):
          return line
  except OSError:
    pass
  return platform.processor() or platform.machine()


def _library_path(cxx: str) -> pathlib.Path:
  h = hashlib.sha256()
  for part in (*(p.read_bytes() for p in sources()), " ".join(CXXFLAGS).encode(), cxx.encode(),
               jax.__version__.encode(), _cpu_key().encode(), sys.platform.encode()):
    h.update(part)
    h.update(b"\0")
  return cache_dir() / f"librnn_zoo_native-{h.hexdigest()[:16]}.so"


def check_private(folder: pathlib.Path) -> None:
  """The library is loaded into the process (``dlopen``): its folder and
  the folders above it up to the cache root must be owned by this user (or
  root) and not writable by the group or others, so that no other user can
  plant a library there. Raises :class:`rnn_zoo.UserError` naming the folder."""
  me = os.getuid()
  root = cache.root()
  for d in [folder, *folder.parents]:
    try:
      st = os.stat(d)
    except FileNotFoundError:
      continue
    if st.st_uid not in (me, 0) or (st.st_mode & 0o022 and not st.st_mode & 0o1000):
      raise UserError(
          f"the native kernels' cache {d} is writable by other users or not yours "
          f"(mode {oct(st.st_mode & 0o7777)}, owner uid {st.st_uid}): refusing to "
          "load a library from it; set RNN_ZOO_CACHE to a folder of your own")
    if d == root or d == root.parent:
      break


def _open_lock(path: pathlib.Path):
  """The build lock, opened without following a symlink planted in its place."""
  fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
  return os.fdopen(fd, "w")


def _smoke_test(path: str) -> None:
  """A built library must load and export every FFI target before it is
  cached (a broken compiler's output stays out of the cache)."""
  try:
    lib = ctypes.CDLL(path)
    for symbol in TARGETS.values():
      getattr(lib, symbol)
  except (OSError, AttributeError) as e:
    raise UserError(f"the built native library does not load or lacks a kernel "
                    f"({type(e).__name__}: {e}); not cached") from None


def _build(cxx: str, path: pathlib.Path) -> None:
  path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
  check_private(path.parent)
  try:
    lock_file = _open_lock(path.parent / ".lock")
  except OSError as e:
    raise UserError(f"cannot open the native build lock {path.parent / '.lock'} "
                    f"(a symlink is refused): {e}") from None
  with lock_file as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent first uses build it once
    if path.exists():
      return
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    cmd = [cxx, *CXXFLAGS, "-isystem", jax.ffi.include_dir(), str(SOURCE), "-o", tmp]
    try:
      proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
      if proc.returncode != 0:
        raise UserError(f"building the native recurrence kernels failed ({' '.join(cmd)}):\n"
                        f"{proc.stderr.strip()[-2000:]}")
      _smoke_test(tmp)
      os.replace(tmp, path)
    finally:
      if os.path.exists(tmp):
        os.unlink(tmp)


TESTED_PLATFORMS = (("linux", "x86_64"),)
"""Where the test suite runs the kernels: (sys.platform, machine)."""


def untested_platform() -> str | None:
  """Why the kernels are off on this platform by default, or None.

  They are on only where the suite tests them (x86-64 Linux); elsewhere
  ``RNN_ZOO_NATIVE_UNTESTED=1`` builds them anyway, at the user's risk.
  """
  here = (sys.platform, platform.machine())
  if here in TESTED_PLATFORMS or os.environ.get("RNN_ZOO_NATIVE_UNTESTED") == "1":
    return None
  return (f"the native kernels are tested on x86-64 Linux only, not {here[1]} "
          f"{here[0]} (RNN_ZOO_NATIVE_UNTESTED=1 builds them anyway)")


def untuned_cpu() -> str | None:
  """Why ``impl="auto"`` leaves the kernels out on this CPU, or None.

  They are tuned and timed on AVX-512 CPUs. Without ``avx512f`` (an AVX2
  CPU) their 16-float vectors compile to pairs of AVX2 operations and the
  LSTM's training step measured 7x the fused scan's time (AMD EPYC with
  AVX2, 2 cores, 2026-12-07), so there ``"auto"`` takes the fused scan;
  ``impl="native"`` still runs them (the same values, tested).
  """
  if "avx512f" in _cpu_key().split():
    return None
  return ("the native kernels are tuned for AVX-512 and this CPU has none (on "
          "AVX2 they measured 7x the fused scan's time; impl='native' runs them "
          "anyway)")


def build() -> pathlib.Path:
  """Compiles the kernels for this machine if its cache has none (the
  explicit step that ``make`` and ``python -m rnn_zoo.native build`` run;
  otherwise the first traced call builds them) and returns the library's
  path; registers nothing. Raises :class:`rnn_zoo.UserError` saying why
  they cannot be built here."""
  untested = untested_platform()
  if untested:
    raise UserError(untested)
  cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
  if not cxx:
    raise UserError("the native kernels need a C++ compiler (g++): none on PATH")
  path = _library_path(cxx)
  if not path.exists():
    _build(cxx, path)
  check_private(path.parent)
  return path


def load() -> ctypes.CDLL:
  """Builds (once per machine) and registers the kernels; returns the
  library. Raises :class:`rnn_zoo.UserError` if they cannot be had here."""
  with _lock:
    if "lib" in _state:
      return _state["lib"]
    if "error" in _state:
      raise UserError(_state["error"])
    try:
      lib = ctypes.CDLL(str(build()))
      for name, symbol in TARGETS.items():
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, symbol)),
                                    platform="cpu")
    except (UserError, OSError) as e:
      _state["error"] = str(e)
      raise UserError(str(e)) from e
    _state["lib"] = lib
    return lib


def available() -> bool:
  """Whether the native kernels are built and registered (builds them on
  the first call); never raises."""
  try:
    load()
    return True
  except UserError:
    return False


def load_error() -> str | None:
  """Why the kernels cannot be loaded here (builds them on first use), or
  None; never raises."""
  try:
    load()
  except UserError as e:
    return str(e)
  return None


def _process_reason() -> str | None:
  """Why the kernels cannot run in this process (backend, devices, build),
  or None."""
  if jax.default_backend() != "cpu":
    return f"the native kernel runs on the CPU, not {jax.default_backend()}"
  if jax.device_count() != 1:
    return (f"the native kernel runs in a one-device process ({jax.device_count()} "
            "devices here: the scan runner partitions)")
  return load_error()


def status() -> str:
  """One line for a log: whether the kernels run here and, if not, why."""
  reason = _process_reason() or untuned_cpu()
  if reason is not None:
    return "not used: " + reason.splitlines()[0]
  return "used for float32 LSTM and GRU layers without lengths or probes"


def _call(name, outs, *args, batch_major):
  load()
  return jax.ffi.ffi_call(name, outs, vmap_method="sequential")(
      *args, batch_major=bool(batch_major))


def _check_operands(what: str, batch_major, seq: dict, **fixed) -> None:
  """Every operand's shape and dtype before a kernel reads its buffer (the
  kernels trust them: a short bias would be read past its end).

  ``seq``: ``{name: (array, width)}`` sequences ``[T, B, width]`` (``[B, T,
  width]`` with ``batch_major``), which must agree on ``T`` and ``B``;
  ``fixed``: ``name=(array, shape)`` where ``shape`` may use ``"B"``.
  """
  arrays = {n: a for n, (a, _) in seq.items()} | {n: a for n, (a, _) in fixed.items()}
  for name, a in arrays.items():
    if getattr(a, "dtype", None) != jnp.float32:
      raise UserError(f"{what}: {name} must be float32, got "
                      f"{getattr(a, 'dtype', type(a).__name__)}")
  TB = None
  for name, (a, width) in seq.items():
    if a.ndim != 3 or a.shape[2] != width or (TB is not None and a.shape[:2] != TB):
      layout = "[B, T, " if batch_major else "[T, B, "
      raise UserError(f"{what}: {name} must be {layout}{width}]"
                      + (f" with {layout[1:5]} {tuple(TB)} as the other sequences"
                         if TB is not None else "")
                      + f", got shape {tuple(a.shape)}")
    TB = TB or a.shape[:2]
  B = None if TB is None else TB[0] if batch_major else TB[1]
  for name, (a, shape) in fixed.items():
    want = tuple(B if d == "B" else d for d in shape)
    if tuple(a.shape) != want:
      raise UserError(f"{what}: {name} must have shape {want}, got {tuple(a.shape)}")


def _check_lstm(what, w_hh, b, h0, c0, batch_major, **seq):
  H = w_hh.shape[0] if getattr(w_hh, "ndim", 0) == 2 else -1
  _check_operands(what, batch_major, seq, w_hh=(w_hh, (H, 4 * H)), b=(b, (4 * H,)),
                  h0=(h0, ("B", H)), c0=(c0, ("B", H)))


def _seq(batch_major, T, B, width):
  return jax.ShapeDtypeStruct((B, T, width) if batch_major else (T, B, width),
                              jnp.float32)


def _dims(xp, batch_major):
  return (xp.shape[1], xp.shape[0]) if batch_major else (xp.shape[0], xp.shape[1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def lstm_recurrence(w_hh: Array, b: Array, xp: Array, h0: Array, c0: Array,
                    batch_major: bool = False) -> tuple[Array, Array, Array]:
  """The LSTM recurrence over projected inputs.

  Args:
    w_hh: ``[H, 4H]`` recurrent weight (gate blocks i, f, g, o).
    b: ``[4H]`` bias.
    xp: ``x_t W_ih`` without the bias: ``[T, B, 4H]``, or ``[B, T, 4H]``
      with ``batch_major``.
    h0, c0: ``[B, H]`` initial state.
    batch_major: the layout of ``xp`` and of the outputs ``ys``.

  Returns:
    ``(ys, h_T, c_T)``: ``ys`` ``[T, B, H]`` (``[B, T, H]`` with
    ``batch_major``), the final state ``[B, H]``.
  """
  H = w_hh.shape[0]
  _check_lstm("lstm_recurrence", w_hh, b, h0, c0, batch_major, xp=(xp, 4 * H))
  T, B = _dims(xp, batch_major)
  ys, c_last = _call("rnn_zoo_lstm_forward_infer",
                     (_seq(batch_major, T, B, H),
                      jax.ShapeDtypeStruct((B, H), jnp.float32)),
                     w_hh, b, xp, h0, c0, batch_major=batch_major)
  return ys, _last(ys, batch_major), c_last


def _last(ys, batch_major):
  return ys[:, -1] if batch_major else ys[-1]


def weight_grads(h0: Array, ys: Array, d: Array, xs: Array | None = None,
                 batch_major: bool = False) -> tuple[Array, ...]:
  """The weight gradients of a recurrence, in one native GEMM over every
  step's rows: ``dW_hh = sum_t h_{t-1}^T d_t``, ``db = sum_t d_t`` and, with
  ``xs``, ``dW_ih = sum_t x_t^T d_t``.

  Args:
    h0: ``[B, H]`` initial state (``h_{-1}``).
    ys: ``[T, B, H]`` the outputs ``h_t`` (``[B, T, H]`` with ``batch_major``).
    d: ``[T, B, N]`` the gradient of the pre-activations (``dz``; the
      GRU's ``du``), in the layout of ``ys``.
    xs: ``[T, B, I]`` the inputs, in the layout of ``ys``, or None.

  Returns:
    ``(dW_hh [H, N], db [N])``, or ``(dW_ih [I, N], dW_hh, db)`` with ``xs``.
  """
  H, N = ys.shape[-1], d.shape[-1]
  seq = {"ys": (ys, H), "d": (d, N)}
  if xs is not None:
    seq["xs"] = (xs, xs.shape[-1])
  _check_operands("weight_grads", batch_major, seq, h0=(h0, ("B", H)))
  f32 = jnp.float32
  outs = (jax.ShapeDtypeStruct((H, N), f32), jax.ShapeDtypeStruct((N,), f32))
  if xs is None:
    return _call("rnn_zoo_recurrent_weight_grads", outs, h0, ys, d,
                 batch_major=batch_major)
  return _call("rnn_zoo_weight_grads",
               (jax.ShapeDtypeStruct((xs.shape[-1], N), f32),) + outs, xs, h0, ys, d,
               batch_major=batch_major)


def _forward_train(target, seq, w_hh, *operands, batch_major):
  """The training forward kernel ``target`` (over xp, or over the inputs
  ``seq`` with the fused projection): the outputs and the residuals of
  :func:`_bwd`."""
  T, B = _dims(seq, batch_major)
  H = w_hh.shape[0]
  f32 = jnp.float32
  ys, cs, acts = _call(target,
                       (_seq(batch_major, T, B, H),
                        jax.ShapeDtypeStruct((T, B, H), f32),
                        jax.ShapeDtypeStruct((T, B, 4 * H), f32)),
                       w_hh, *operands, batch_major=batch_major)
  h0, c0 = operands[-2:]
  return (ys, _last(ys, batch_major), cs[-1]), (w_hh, h0, c0, ys, cs, acts)


def _fwd(w_hh, b, xp, h0, c0, batch_major):
  _check_lstm("lstm_recurrence", w_hh, b, h0, c0, batch_major, xp=(xp, 4 * w_hh.shape[0]))
  return _forward_train("rnn_zoo_lstm_forward_train", xp, w_hh, b, xp, h0, c0,
                        batch_major=batch_major)


def _backward(batch_major, res, cotangents, w_ih=None, x_shape=None):
  """The backward kernel: ``dz`` (the layout of ``ys``), ``dh0``, ``dc0``;
  with ``w_ih``, ``dx = dz W_ih^T`` too (shape ``x_shape``, after ``dz``),
  step by step beside ``dz_t W_hh^T``."""
  w_hh, h0, c0, ys, cs, acts = res
  dys, dhT, dcT = cotangents
  T, B, H = cs.shape
  dz = _seq(batch_major, T, B, 4 * H)
  state = jax.ShapeDtypeStruct((B, H), jnp.float32)
  if w_ih is None:
    return _call("rnn_zoo_lstm_backward", (dz, state, state),
                 w_hh, acts, cs, c0, dys, dhT, dcT, batch_major=batch_major)
  return _call("rnn_zoo_lstm_layer_backward",
               (dz, jax.ShapeDtypeStruct(x_shape, jnp.float32), state, state),
               w_hh, w_ih, acts, cs, c0, dys, dhT, dcT, batch_major=batch_major)


def _bwd(batch_major, res, cotangents):
  dz, dh0, dc0 = _backward(batch_major, res, cotangents)
  _, h0, _, ys, _, _ = res
  dw_hh, db = weight_grads(h0, ys, dz, batch_major=batch_major)
  return dw_hh, db, dz, dh0, dc0


lstm_recurrence.defvjp(_fwd, _bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(6,))
def lstm_layer(w_ih: Array, w_hh: Array, b: Array, xs: Array, h0: Array, c0: Array,
               batch_major: bool = False) -> tuple[Array, Array, Array]:
  """An LSTM layer over its inputs: :func:`lstm_recurrence` with the input
  projection ``xs W_ih`` computed inside the kernel, step by step in the
  same register tiles as ``h_{t-1} W_hh`` (no ``[T, B, 4H]`` projection
  written to memory and read back); its gradient computes
  ``dx = dz W_ih^T`` inside the backward kernel and the weight gradients
  with :func:`weight_grads`.

  Args:
    w_ih: ``[I, 4H]`` input weight; w_hh: ``[H, 4H]``; b: ``[4H]``.
    xs: ``[T, B, I]``, or ``[B, T, I]`` with ``batch_major``.
    h0, c0: ``[B, H]`` initial state.
    batch_major: the layout of ``xs`` and of the outputs ``ys``.

  Returns:
    ``(ys, h_T, c_T)`` as :func:`lstm_recurrence`.
  """
  _check_layer(w_ih, w_hh, b, xs, h0, c0, batch_major)
  T, B = _dims(xs, batch_major)
  H = w_hh.shape[0]
  ys, c_last = _call("rnn_zoo_lstm_fused_forward_infer",
                     (_seq(batch_major, T, B, H),
                      jax.ShapeDtypeStruct((B, H), jnp.float32)),
                     w_hh, w_ih, b, xs, h0, c0, batch_major=batch_major)
  return ys, _last(ys, batch_major), c_last


def _check_layer(w_ih, w_hh, b, xs, h0, c0, batch_major):
  I = xs.shape[-1] if getattr(xs, "ndim", 0) == 3 else -1
  _check_lstm("lstm_layer", w_hh, b, h0, c0, batch_major, xs=(xs, I))
  _check_operands("lstm_layer", batch_major, {}, w_ih=(w_ih, (I, 4 * w_hh.shape[0])))


def _layer_fwd(w_ih, w_hh, b, xs, h0, c0, batch_major):
  _check_layer(w_ih, w_hh, b, xs, h0, c0, batch_major)
  out, rec_res = _forward_train("rnn_zoo_lstm_fused_forward_train", xs, w_hh, w_ih, b,
                                xs, h0, c0, batch_major=batch_major)
  return out, (w_ih, xs, rec_res)


def _layer_bwd(batch_major, res, cotangents):
  w_ih, xs, rec_res = res
  dz, dxs, dh0, dc0 = _backward(batch_major, rec_res, cotangents, w_ih, xs.shape)
  _, h0, _, ys, _, _ = rec_res
  dw_ih, dw_hh, db = weight_grads(h0, ys, dz, xs, batch_major=batch_major)
  return dw_ih, dw_hh, db, dxs, dh0, dc0


lstm_layer.defvjp(_layer_fwd, _layer_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def gru_recurrence(w_hh: Array, b: Array, b_hn: Array, xp: Array, h0: Array,
                   batch_major: bool = False) -> tuple[Array, Array]:
  """The GRU recurrence (``rnn_zoo.GRU``, the cuDNN/PyTorch form) over
  projected inputs.

  Args:
    w_hh: ``[H, 3H]`` recurrent weight (blocks r, z, n).
    b: ``[3H]`` input bias; b_hn: ``[H]`` the bias inside the reset product.
    xp: ``x_t W_ih`` without the bias: ``[T, B, 3H]``, or ``[B, T, 3H]``
      with ``batch_major``.
    h0: ``[B, H]`` initial state.
    batch_major: the layout of ``xp`` and of ``ys``.

  Returns:
    ``(ys, h_T)``.
  """
  _check_gru(w_hh, b, b_hn, xp, h0, batch_major)
  T, B = _dims(xp, batch_major)
  ys = _call("rnn_zoo_gru_forward_infer", (_seq(batch_major, T, B, w_hh.shape[0]),),
             w_hh, b, b_hn, xp, h0, batch_major=batch_major)[0]
  return ys, _last(ys, batch_major)


def _check_gru(w_hh, b, b_hn, xp, h0, batch_major):
  H = w_hh.shape[0] if getattr(w_hh, "ndim", 0) == 2 else -1
  _check_operands("gru_recurrence", batch_major, {"xp": (xp, 3 * H)},
                  w_hh=(w_hh, (H, 3 * H)), b=(b, (3 * H,)), b_hn=(b_hn, (H,)),
                  h0=(h0, ("B", H)))


def _gru_fwd(w_hh, b, b_hn, xp, h0, batch_major):
  _check_gru(w_hh, b, b_hn, xp, h0, batch_major)
  T, B = _dims(xp, batch_major)
  H = w_hh.shape[0]
  ys, acts = _call("rnn_zoo_gru_forward_train",
                   (_seq(batch_major, T, B, H),
                    jax.ShapeDtypeStruct((T, B, 4 * H), jnp.float32)),
                   w_hh, b, b_hn, xp, h0, batch_major=batch_major)
  return (ys, _last(ys, batch_major)), (w_hh, h0, ys, acts)


def _gru_bwd(batch_major, res, cotangents):
  w_hh, h0, ys, acts = res
  dys, dhT = cotangents
  T, B, H = acts.shape[0], acts.shape[1], w_hh.shape[0]
  du, dn, dh0 = _call("rnn_zoo_gru_backward",
                      (_seq(batch_major, T, B, 3 * H), _seq(batch_major, T, B, H),
                       jax.ShapeDtypeStruct((B, H), jnp.float32)),
                      w_hh, acts, h0, ys, dys, dhT, batch_major=batch_major)
  dw_hh, du_sum = weight_grads(h0, ys, du, batch_major=batch_major)
  dxp = jnp.concatenate([du[..., :2 * H], dn], axis=-1)
  db = jnp.concatenate([du_sum[:2 * H], dn.reshape(-1, H).sum(0)])
  return dw_hh, db, du_sum[2 * H:], dxp, dh0


gru_recurrence.defvjp(_gru_fwd, _gru_bwd)
