"""Gradient-flow diagnostics for every cell and stack of the zoo.

* :func:`hidden_grad_norms`: ``||dL/dh_t||`` for every t (and layer) in one
  backward pass, from zero probes added to the hidden state by the runner.
* :func:`jacobian_norms`: the spectral norm of ``dh_T/dh_t`` by power
  iteration with jvp/vjp (one linearization, reused).
* :func:`step_jacobian_singular_values`: singular values of the one-step
  Jacobian ``d carry_{t+1} / d carry_t`` along a trajectory.
* :func:`recurrent_weight_stats`: spectral radius and largest singular value
  of the recurrent weight (per gate block).
* :func:`steps_in_the_past`: Pascanu et al. (2013)'s measure of how far back
  the gradient stays above a floor.
* :func:`parameter_sensitivity`: how much the state at step t moves with the
  recurrent parameters, against t (Zucchet & Orvieto 2024), beside how much
  it moves with the initial state.

For ``h_t = W sigma(h_{t-1}) + U x_t + b`` (Pascanu, Mikolov & Bengio 2013),
``dh_t/dh_k = prod_{i=k+1..t} W^T diag(sigma'(h_{i-1}))``: if the largest
singular value of W is below 1/gamma (gamma = max|sigma'|) the long-term
gradient vanishes exponentially. All functions but
:func:`recurrent_weight_stats` are jittable.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from rnn_zoo.cells.cell import Carry, Cell, Params
from rnn_zoo.cells.linear import LinearRecurrentCell
from rnn_zoo.runner import unroll, unroll_with_carries

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Diagnostics:
  """The gradient-flow diagnostics' hook into a workload's recurrent model
  (``rnn_zoo.training.Workload.diagnostics``; the grid's in-training
  diagnostics and ``benchmarks.gradient_flow`` read it).

  Attributes:
    hidden_shapes: ``batch -> shapes``, one ``[B, T, H]`` per recurrent
      layer: the probes whose gradient is ``dL/dh_t``
      (:func:`hidden_grad_norms`; the workload's ``loss_fn`` takes them as
      ``hidden_probes=``).
    layers: ``params -> ((cell, cell params), ...)``, one per recurrent layer,
      to drive a layer's cell directly (Jacobians, sensitivities).
    first_layer_inputs: ``(params, inputs) -> what the first recurrent layer
      reads`` (an encoder and a norm before it); None: the inputs themselves.
  """
  hidden_shapes: Callable
  layers: Callable
  first_layer_inputs: Callable | None = None

  def first_layer(self, params: Params, inputs: Any) -> tuple[Cell, Params, Array]:
    """``(cell, cell params, what it reads)`` of the first recurrent layer."""
    cell, p = self.layers(params)[0]
    xs = inputs if self.first_layer_inputs is None else self.first_layer_inputs(params, inputs)
    return cell, p, xs


def hidden_grad_norms(loss_of_probes: Callable, probes: Any) -> tuple:
  """``||dL/dh_t||`` for every step, averaged over the batch.

  Args:
    loss_of_probes: ``probes -> scalar loss``, where the model adds
      ``probes`` to its hidden states (``hidden_probes=`` of
      :func:`rnn_zoo.unroll`, ``StackedRNN.apply``, ``rz.nn.RNN`` and
      ``SequenceModel``).
    probes: zeros with the structure the model takes (an array
      ``[B, T, H]`` or a tuple of them, one per layer, None for none).

  Returns:
    For each probe array, ``[T]`` = mean over the batch of the L2 norm over
    features of ``dL/dh_t`` (the same structure as ``probes``).
  """
  grads = jax.grad(loss_of_probes)(probes)
  return jax.tree.map(lambda g: jnp.mean(norm(g, axis=-1), axis=0), grads)


def norm(x: Array, axis: int | tuple[int, ...] = -1, keepdims: bool = False) -> Array:
  """The L2 norm of ``x`` (any shape, e.g. ``[B, T, H]``) along ``axis``
  (``[B, T]``), scaled by the largest entry first, so that it
  stays exact for vectors far below the square root of the smallest normal
  number (``jnp.linalg.norm`` squares its entries: it returns 0 for a vector
  of 1e-160s in float64, of 1e-20s in float32)."""
  m = jnp.max(jnp.abs(x), axis=axis, keepdims=True)
  safe = jnp.where(m > 0, m, 1.0)
  out = m * jnp.sqrt(jnp.sum(jnp.square(x / safe), axis=axis, keepdims=True))
  return out if keepdims else jnp.squeeze(out, axis)


def jacobian_norms(cell: Cell, params: Params, xs: Array, positions: Sequence[int] | Array,
                   *, key: Array, num_iters: int = 30,
                   initial_carry: Carry = None) -> Array:
  """Spectral norm of ``dh_T / dh_t`` for each t in ``positions``.

  Power iteration on ``J^T J`` with ``J v`` from a jvp and ``J^T u`` from the
  transposed linearization, for every example and position at once (``h_t``
  perturbed through the runner's probes, so ``c_t`` of an LSTM is held).

  Args:
    cell, params: the cell.
    xs: ``[B, T, I]`` inputs.
    positions: K time indices in ``[0, T)``.
    key: PRNG key for the starting vectors.
    num_iters: power-iteration steps.
    initial_carry: optional starting carry.

  Returns:
    ``[K, B]`` spectral norms.
  """
  B, T = xs.shape[0], xs.shape[1]
  H = cell.hidden_size
  positions = jnp.asarray(positions)
  zeros = jnp.zeros((B, T, H), xs.dtype)

  linearizable = "parallel" if isinstance(cell, LinearRecurrentCell) else "scan"

  def final_h(probes):
    # Plain autodiff: forward mode (linearize) cannot go through the fused
    # or native runners' custom VJP (the parallel scan is plain autodiff).
    _, carry = unroll(cell, params, xs, hidden_probes=probes,
                      initial_carry=initial_carry, impl=linearizable)
    return carry.h

  _, jvp_fn = jax.linearize(final_h, zeros)
  vjp_fn = jax.linear_transpose(jvp_fn, zeros)

  def normalize(v):
    n = norm(v, axis=-1, keepdims=True)
    return v / jnp.where(n > 0, n, 1.0)

  def one(t, v0):
    place = lambda v: zeros.at[:, t].set(v)
    J = lambda v: jvp_fn(place(v))            # [B, H] -> [B, H]
    Jt = lambda u: vjp_fn(u)[0][:, t]          # [B, H] -> [B, H]

    def body(_, v):
      # Normalized after each factor, not only after J^T J: sigma^2 would
      # underflow where sigma is below ~1e-19 (float32) / ~1e-154 (float64).
      return normalize(Jt(normalize(J(v))))
    v = jax.lax.fori_loop(0, num_iters, body, normalize(v0))
    return norm(J(v), axis=-1)

  v0 = jax.random.normal(key, (positions.shape[0], B, H), xs.dtype)
  return jax.vmap(one)(positions, v0)


def step_jacobian_singular_values(cell: Cell, params: Params, xs: Array,
                                  positions: Sequence[int] | Array,
                                  initial_carry: Carry = None) -> Array:
  """Singular values of ``d carry_{t+1} / d carry_t`` along the trajectory.

  The carry is flattened (``h`` for RNN/GRU, ``[h, c]`` for the LSTM, so
  D = H or 2H).

  Returns:
    ``[K, B, D]`` singular values (descending) at each position.
  """
  B = xs.shape[0]
  if initial_carry is None:
    initial_carry = cell.initial_carry((B,))
  _, _, carries = unroll_with_carries(cell, params, xs, initial_carry=initial_carry)
  positions = jnp.asarray(positions)
  prepared = cell.prepare(params)  # once, not per position (expRNN's expm)

  def flat(c):
    return jnp.concatenate(list(c), axis=-1)

  def unflat(v):
    parts = jnp.split(v, len(initial_carry), axis=-1)
    return type(initial_carry)(*parts)

  def at(t):
    # Carry before step t (the initial carry for t = 0).
    before = jax.tree.map(
        lambda c, c0: jnp.where(t > 0, c[:, jnp.maximum(t - 1, 0)], c0),
        carries, initial_carry)
    x_t = xs[:, t]

    def step_one(c, x):  # one example
      new, _ = cell.step(prepared, unflat(c[None]), x[None])
      return flat(new)[0]
    J = jax.vmap(jax.jacfwd(step_one))(flat(before), x_t)  # [B, D, D]
    return jnp.linalg.svd(J, compute_uv=False)
  return jax.vmap(at)(positions)


def recurrent_weight_stats(cell: Cell, params: Params) -> dict[str, dict[str, float]]:
  """Spectral radius and largest singular value of each ``[H, H]`` block of
  ``w_hh`` (one block for SimpleRNN, expRNN's ``expm(S)`` and coRNN's
  position coupling, i/f/g/o for LSTM, r/z/n for GRU);
  ``{}`` for a cell without one (MinGRU, MinLSTM: their recurrence is the
  diagonal gate ``a_t``)."""
  params = cell.prepare(params)  # e.g. expRNN's W = expm(S)
  if "w_hh" not in params:
    return {}
  names = {1: ["w"], 3: ["r", "z", "n"], 4: ["i", "f", "g", "o"]}[getattr(cell, "num_gates")]
  H = cell.hidden_size
  w = np.asarray(params["w_hh"], np.float64)
  out = {}
  for k, name in enumerate(names):
    blk = w[:, k * H:(k + 1) * H]
    out[name] = {"spectral_radius": float(np.max(np.abs(np.linalg.eigvals(blk)))),
                 "max_singular_value": float(np.linalg.norm(blk, 2))}
  return out


def steps_in_the_past(norms: Array, floor: float = 1e-2) -> Array:
  """How many steps back from the last one ``norms[t] / norms[-1]`` stays at
  or above ``floor`` (counting back until the first step below it), for
  ``norms`` ``[T]`` (or ``[..., T]``: one count per leading index)."""
  rel = norms / (norms[-1] + 1e-30)
  below = rel[::-1] < floor
  T = norms.shape[0]
  first_below = jnp.where(jnp.any(below), jnp.argmax(below), T)
  return first_below - 1


def parameter_sensitivity(cell: Cell, params: Params, xs: Array, positions: Sequence[int] | Array,
                          key: Array) -> dict[str, Array]:
  """The sensitivity of the state at step t to the recurrent parameters and
  to the initial state, for each t in ``positions``.

  Zucchet & Orvieto 2024 ("Recurrent neural networks: vanishing and
  exploding gradients are not the end of the story") show that as a
  recurrence keeps more memory, its states grow ever more sensitive to the
  recurrent parameters (for ``h_t = lam h_{t-1} + x_t`` with white-noise
  inputs, ``E[(dh_t/dlam)^2] -> (1 + lam^2) / (1 - lam^2)^3``) even though
  ``dh_t/dh_0`` does not explode. Measured with a random readout ``v . h_t``
  (``v ~ N(0, I/H)``), per example (one backward pass per example and
  position).

  Args:
    cell: any zoo cell.
    params: its params; the recurrent ones are the cell's
      ``recurrent_params`` (the LRU: ``nu_log``, ``theta_log``, which set
      lambda) or ``w_hh`` when the cell has it, otherwise (MinGRU, MinLSTM:
      the recurrence is set by the gates) every param.
    xs: ``[B, T, I]`` inputs.
    positions: the steps t (0-based, ``< T``).
    key: for the readout.

  Returns:
    ``{"recurrent": [P], "input": [P], "initial_state": [P]}``: the norms of
    ``d(v . h_t)/d theta_rec``, ``d(v . h_t)/d w_ih`` and of ``d(v . h_t)/d
    carry_0`` (every field of the carry), root mean square over the
    examples, for each position.
  """
  H = cell.hidden_size
  v = jax.random.normal(key, (H,), xs.dtype) / np.sqrt(H)
  positions = jnp.asarray(positions)

  def one(x):  # one example: [P] norms
    def readouts(p, c0):
      ys, _ = unroll(cell, p, x[None], initial_carry=c0)
      return ys[0, positions] @ v
    jac_p, jac_c = jax.jacrev(readouts, argnums=(0, 1))(params, cell.initial_carry((1,), x.dtype))
    size = lambda tree: jnp.sqrt(sum(jnp.sum(jnp.square(l.reshape(l.shape[0], -1)), axis=-1)
                                     for l in jax.tree.leaves(tree)))
    names = getattr(cell, "recurrent_params", ("w_hh",))
    rec = {k: jac_p[k] for k in names if k in jac_p} or jac_p
    return size(rec), size({"w_ih": jac_p["w_ih"]}), size(jac_c)

  rec, inp, init = jax.vmap(one)(xs)  # each [B, P]
  rms = lambda a: jnp.sqrt(jnp.mean(jnp.square(a), axis=0))
  return {"recurrent": rms(rec), "input": rms(inp), "initial_state": rms(init)}
