"""The LSTM through cuDNN on NVIDIA GPUs (``jax.experimental.rnn``).

On a GPU the scan runner steps the recurrence with one small kernel launch
per step; cuDNN's RNN kernel runs the whole sequence, the backward pass
included, from inside one call. :func:`lstm` runs an :class:`rnn_zoo.LSTM`
layer through JAX's binding of it (``jax.experimental.rnn.lstm``), with the
runner's contract: per-example lengths (outputs past a length are zero, the
final carry is the one after the last valid step, also for length 0, which
cuDNN itself cannot take), reversal within lengths, any initial carry, and
gradients of params, inputs and initial carry.
:func:`rnn_zoo.unroll` (``impl="cudnn"``) calls it.

What it runs (:func:`rnn_zoo.explain_impl` says why not otherwise): an ``rnn_zoo.LSTM``
whose params, inputs, carry and compute dtype are float32 (cuDNN's binding
in JAX takes nothing else: bfloat16 compute runs on the scan runner), on an
NVIDIA GPU, in a process with one device (sharded over several, XLA would
gather a custom call's operands onto each), without hidden probes, resets
or remat. Its float32 matmuls use TF32 unless JAX's default matmul
precision is ``"highest"`` / ``"float32"``, as XLA's own GPU matmuls do.

The weights: cuDNN takes one flat vector per layer, ``W_ih [4H, I]``,
``W_hh [4H, H]``, ``b_ih [4H]``, ``b_hh [4H]`` with the gate blocks in the
order i, f, g, o (PyTorch's and the zoo's); :func:`pack_lstm_weights`
builds it from the zoo's params (``w_ih [I, 4H]``, ``w_hh [H, 4H]``, one
bias ``b``, so ``b_hh`` is zero), and its transpose brings the gradient
back to the zoo's params.

Without a GPU, :func:`emulated` runs the same path (packing, lengths,
reversal, gradients) on JAX's own reference implementation of the cuDNN
call (``jax.experimental.rnn.lstm_ref``) on any backend: the tests check it
against the scan runner on the CPU, and against cuDNN on a GPU. The
environment variable ``RNN_ZOO_CUDNN_EMULATE=1`` turns it on for a whole
process (an experiment binary with ``--config.cudnn=True`` on a CPU).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import jax
import jax.numpy as jnp


_emulation = {"on": os.environ.get("RNN_ZOO_CUDNN_EMULATE", "") == "1"}


@contextlib.contextmanager
def emulated() -> Iterator[None]:
  """Within it, the cuDNN path runs on JAX's reference implementation of
  the cuDNN call (``jax.experimental.rnn.lstm_ref`` over the same packed
  weights) on any backend: a way to run ``impl="cudnn"`` code on a CPU.

  It is read when a function is traced: a function jitted inside keeps
  what it traced with.

  Example:
    >>> import jax, jax.numpy as jnp, rnn_zoo as rz
    >>> cell = rz.LSTM(8)
    >>> params = cell.init(jax.random.key(0), input_size=3)
    >>> with rz.cudnn.emulated():
    ...   ys, carry = rz.unroll(cell, params, jnp.ones((2, 5, 3)), impl="cudnn",
    ...                         lengths=jnp.array([5, 0]))
    >>> ys.shape, float(abs(carry.h[1]).max())
    ((2, 5, 8), 0.0)
  """
  before = _emulation["on"]
  _emulation["on"] = True
  try:
    yield
  finally:
    _emulation["on"] = before


def pack_lstm_weights(params: dict[str, jax.Array]) -> jax.Array:
  """The zoo's LSTM params as cuDNN's flat weight vector (one layer, one
  direction): ``[W_ih^T, W_hh^T, b, 0]`` flattened, float32.

  Args:
    params: ``rnn_zoo.LSTM`` params ``{"w_ih": [I, 4H], "w_hh": [H, 4H],
      "b": [4H]}``.

  Returns:
    ``[4H * (I + H) + 8H]``, the layout of
    ``jax.experimental.rnn.unpack_lstm_weights`` (tested against it).
  """
  w_ih, w_hh, b = params["w_ih"], params["w_hh"], params["b"]
  return jnp.concatenate([w_ih.T.reshape(-1), w_hh.T.reshape(-1), b,
                          jnp.zeros_like(b)]).astype(jnp.float32)


def _reference_op(x, h0, c0, weights, seq_lengths, input_size, hidden_size,
                  num_layers, dropout, bidirectional, precision):
  """``jax.experimental.rnn.lstm``'s signature over JAX's reference
  implementation of it (``lstm_ref``), for :func:`emulated`."""
  from jax.experimental import rnn as jax_rnn  # pylint: disable=g-import-not-at-top
  del precision
  w_ih, w_hh, b_ih, b_hh = jax_rnn.unpack_lstm_weights(
      weights, input_size, hidden_size, num_layers, bidirectional)
  return jax_rnn.lstm_ref(x, h0, c0, w_ih, w_hh, b_ih, b_hh, seq_lengths,
                          input_size, hidden_size, num_layers, dropout,
                          bidirectional)


def _op():
  if _emulation["on"]:
    return _reference_op
  from jax.experimental import rnn as jax_rnn  # pylint: disable=g-import-not-at-top
  return jax_rnn.lstm


def platform_reason() -> str | None:
  """Why cuDNN cannot run in this process (backend, devices, plugin), or
  None (the cell, dtype and option checks are the runner's:
  :func:`rnn_zoo.explain_impl`)."""
  if _emulation["on"]:
    return None
  backend = jax.default_backend()
  if backend != "gpu":
    return f"cuDNN runs on an NVIDIA GPU, not {backend}"
  client = getattr(jax.devices()[0], "client", None)
  if "rocm" in str(getattr(client, "platform_version", "")).lower():
    return "cuDNN runs on an NVIDIA GPU (this GPU runs ROCm)"
  if jax.device_count() != 1:
    return (f"the cuDNN path runs in a one-device process ({jax.device_count()} "
            "devices here: the scan runner partitions)")
  from jax.experimental import rnn as jax_rnn  # pylint: disable=g-import-not-at-top
  if not hasattr(jax_rnn.gpu_rnn, "compute_rnn_workspace_reserve_space_sizes"):
    return "this jaxlib's CUDA plugin has no cuDNN RNN kernels (jaxlib.gpu_rnn)"
  return None


def status() -> str:
  """One line for a log: whether the cuDNN path can run here and, if not,
  why."""
  reason = platform_reason()
  if reason is not None:
    return "not available: " + reason
  return ("available (unroll(impl='cudnn')) for float32 LSTM layers"
          + (" [emulated]" if _emulation["on"] else ""))


def _precision():
  """TF32 (``HIGH``) unless JAX's default matmul precision asks for full
  float32, as XLA's GPU matmuls do; cuDNN's binding takes no bfloat16."""
  setting = jax.config.jax_default_matmul_precision
  full = str(setting).lower() in ("highest", "float32")
  return jax.lax.Precision.HIGHEST if full else jax.lax.Precision.HIGH


def lstm(params: dict[str, jax.Array], xs_t: jax.Array, h0: jax.Array,
         c0: jax.Array, lengths: jax.Array | None = None
         ) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One LSTM layer through cuDNN, time-major.

  Args:
    params: ``rnn_zoo.LSTM`` params (float32).
    xs_t: ``[T, B, I]`` float32 inputs; rows past a length must be finite
      (the runner zeroes them).
    h0, c0: ``[B, H]`` initial state.
    lengths: optional int ``[B]`` in ``[0, T]``.

  Returns:
    ``(ys [T, B, H], h_T [B, H], c_T [B, H])``: outputs zero past each
    length, the state after each sequence's last valid step (the initial
    state for length 0).
  """
  T, B, I = xs_t.shape
  H = h0.shape[-1]
  if lengths is None:
    seq = jnp.full((B,), T, jnp.int32)
  else:
    # cuDNN fails on length 0 (jax-ml/jax#17966): such rows run one step on
    # zeros, and the where()s below put back the initial state and zeros.
    seq = jnp.maximum(lengths, 1).astype(jnp.int32)
  y, h_n, c_n = _op()(jnp.swapaxes(xs_t, 0, 1), h0[None], c0[None],
                      pack_lstm_weights(params), seq, I, H, 1, 0.0, False,
                      _precision())
  ys, h, c = jnp.swapaxes(y, 0, 1), h_n[0], c_n[0]
  if lengths is not None:
    mask = jnp.arange(T)[:, None] < lengths[None, :]
    ys = jnp.where(mask[..., None], ys, jnp.zeros((), ys.dtype))
    empty = (lengths == 0)[:, None]
    h, c = jnp.where(empty, h0, h), jnp.where(empty, c0, c)
  return ys, h, c
