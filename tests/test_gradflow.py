"""Diagnostics against the closed form of a linear RNN, finite differences, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_zoo as rz
from rnn_zoo import gradflow
from zoo_helpers import make, randomize

B, T, I, H = 3, 12, 2, 4


def linear_rnn(W):
  cell = rz.SimpleRNN(H, activation="linear")
  p = cell.init(jax.random.key(0), I)
  p["w_hh"] = jnp.asarray(W, jnp.float32)
  return cell, p


def test_probe_grad_norms_match_closed_form():
  rng = np.random.default_rng(0)
  W = rng.normal(size=(H, H)) * 0.6
  cell, p = linear_rnn(W)
  xs = jnp.asarray(rng.normal(size=(B, T, I)), jnp.float32)
  u = rng.normal(size=(B, H))

  def loss(probes):
    _, c = rz.unroll(cell, p, xs, hidden_probes=probes)
    return jnp.sum(c.h * u)

  norms = gradflow.hidden_grad_norms(loss, jnp.zeros((B, T, H)))
  # h_T = h_t W^(T-1-t) + ...  =>  dL/dh_t = u (W^(T-1-t))^T.
  want = [np.mean(np.linalg.norm(u @ np.linalg.matrix_power(W, T - 1 - t).T, axis=-1))
          for t in range(T)]
  np.testing.assert_allclose(norms, want, rtol=1e-4)


def test_jacobian_norms_match_closed_form():
  rng = np.random.default_rng(1)
  W = rng.normal(size=(H, H)) * 0.7
  cell, p = linear_rnn(W)
  xs = jnp.asarray(rng.normal(size=(B, T, I)), jnp.float32)
  positions = jnp.array([0, 5, T - 2, T - 1])
  got = gradflow.jacobian_norms(cell, p, xs, positions, key=jax.random.key(0),
                                num_iters=60)
  for k, t in enumerate(np.asarray(positions)):
    want = np.linalg.norm(np.linalg.matrix_power(W, T - 1 - t), 2)
    np.testing.assert_allclose(got[k], np.full(B, want), rtol=1e-3)


def test_scaled_orthogonal_decays_geometrically():
  Q, _ = np.linalg.qr(np.random.default_rng(2).normal(size=(H, H)))
  cell, p = linear_rnn(0.5 * Q)
  xs = jnp.zeros((1, T, I))
  got = gradflow.jacobian_norms(cell, p, xs, jnp.arange(T), key=jax.random.key(1))
  np.testing.assert_allclose(got[:, 0], 0.5 ** (T - 1 - np.arange(T)), rtol=1e-4)


def test_step_jacobian_singular_values_linear_and_lstm():
  rng = np.random.default_rng(3)
  W = rng.normal(size=(H, H))
  cell, p = linear_rnn(W)
  xs = jnp.asarray(rng.normal(size=(B, T, I)), jnp.float32)
  sv = gradflow.step_jacobian_singular_values(cell, p, xs, jnp.array([0, 4]))
  want = np.linalg.svd(W, compute_uv=False)
  np.testing.assert_allclose(sv, np.broadcast_to(want, (2, B, H)), rtol=1e-4)
  # LSTM: the flattened [h, c] Jacobian against jacfwd of one step by hand.
  cell = rz.LSTM(H)
  p = cell.init(jax.random.key(0), I)
  sv = gradflow.step_jacobian_singular_values(cell, p, xs, jnp.array([3]))
  assert sv.shape == (1, B, 2 * H)
  _, _, carries = rz.unroll_with_carries(cell, p, xs)
  def step(v):
    c = rz.LSTMCarry(v[:H][None], v[H:][None])
    new, _ = cell.step(p, c, xs[0, 3][None])
    return jnp.concatenate([new.h[0], new.c[0]])
  J = jax.jacfwd(step)(jnp.concatenate([carries.h[0, 2], carries.c[0, 2]]))
  np.testing.assert_allclose(sv[0, 0], np.linalg.svd(J, compute_uv=False), rtol=1e-4, atol=1e-6)


def test_probe_gradient_matches_finite_differences(x64):
  cell = rz.GRU(H, param_dtype=jnp.float64, dtype=jnp.float64)
  p = cell.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (B, T, I), jnp.float64)
  loss = jax.jit(lambda probes: jnp.sum(jnp.sin(rz.unroll(cell, p, xs, hidden_probes=probes)[0])))
  zeros = jnp.zeros((B, T, H), jnp.float64)
  g = jax.grad(loss)(zeros)
  eps = 1e-6
  for idx in [(0, 0, 1), (1, 5, 2), (2, T - 1, 0)]:
    fd = (loss(zeros.at[idx].set(eps)) - loss(zeros.at[idx].set(-eps))) / (2 * eps)
    np.testing.assert_allclose(g[idx], fd, rtol=1e-6)


def test_stack_probes_give_per_layer_norms():
  stack = rz.StackedRNN.of(rz.LSTM(H), 2)
  p = stack.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  loss = lambda probes: jnp.sum(stack.apply(p, xs, hidden_probes=probes)[0][:, -1])
  n0, n1 = gradflow.hidden_grad_norms(loss, (jnp.zeros((B, T, H)),) * 2)
  assert n0.shape == n1.shape == (T,)
  # The top layer's last step is the output itself: d sum(y_T)/d h_T = ones.
  np.testing.assert_allclose(n1[-1], np.sqrt(H), rtol=1e-6)
  assert float(n0[-1]) > 0


def test_diagnostics_are_jittable():
  cell = rz.SimpleRNN(H)
  p = cell.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  f = jax.jit(lambda p, xs: gradflow.jacobian_norms(cell, p, xs, jnp.array([0, 6]),
                                                    key=jax.random.key(2)))
  g = jax.jit(lambda p, xs: gradflow.step_jacobian_singular_values(cell, p, xs, jnp.array([1])))
  h = jax.jit(lambda n: gradflow.steps_in_the_past(n, 0.1))
  assert f(p, xs).shape == (2, B) and g(p, xs).shape == (1, B, H)
  assert int(h(jnp.array([0.001, 0.05, 0.2, 0.5, 1.0]))) == 2


def test_recurrent_weight_stats():
  cell, p = linear_rnn(np.diag([0.5, -2.0, 1.0, 0.1]))
  s = gradflow.recurrent_weight_stats(cell, p)
  assert s["w"]["spectral_radius"] == pytest.approx(2.0)
  assert s["w"]["max_singular_value"] == pytest.approx(2.0)
  s = gradflow.recurrent_weight_stats(rz.LSTM(H), rz.LSTM(H).init(jax.random.key(0), 2))
  assert sorted(s) == ["f", "g", "i", "o"]
  assert s["f"]["max_singular_value"] == pytest.approx(1.0, rel=1e-5)  # orthogonal


def test_steps_in_the_past():
  n = jnp.array([1e-6, 1e-4, 1e-2, 0.1, 1.0])
  assert int(gradflow.steps_in_the_past(n, 1e-2)) == 2
  assert int(gradflow.steps_in_the_past(n, 1e-7)) == 4
  assert int(gradflow.steps_in_the_past(n, 0.5)) == 0


@pytest.mark.parametrize("name", ["lstm", "gru_cudnn", "mingru"])
def test_parameter_sensitivity_against_per_example_gradients(x64, name):
  """The measure equals its definition computed example by example:
  the RMS over examples of ||d(v . h_t^b)/d theta||."""
  cell = make(name, 4, dtype=jnp.float64, param_dtype=jnp.float64)
  p = randomize(cell.init(jax.random.key(0), 3), jax.random.key(1), 0.3)
  xs = jax.random.normal(jax.random.key(2), (5, 12, 3), jnp.float64)
  positions = [0, 5, 11]
  key = jax.random.key(3)
  got = gradflow.parameter_sensitivity(cell, p, xs, positions, key)
  v = jax.random.normal(key, (4,), jnp.float64) / 2.0
  c0 = cell.initial_carry((1,), jnp.float64)
  flat = lambda tree: jnp.concatenate([l.ravel() for l in jax.tree.leaves(tree)])

  @jax.jit  # one compile; example b and position t are traced
  def norms(b, t):
    def readout(p, c0):
      x = jax.lax.dynamic_slice_in_dim(xs, b, 1)
      ys, _ = rz.unroll(cell, p, x, initial_carry=c0, impl="scan")
      return ys[0, t] @ v
    gp, gc = jax.grad(readout, argnums=(0, 1))(p, c0)
    return (jnp.linalg.norm(gp["w_hh"] if "w_hh" in p else flat(gp)),
            jnp.linalg.norm(gp["w_ih"]), jnp.linalg.norm(flat(gc)))

  rms = lambda a: jnp.sqrt(jnp.mean(jnp.square(jnp.array(a))))
  for i, t in enumerate(positions):
    rec, inp, init = zip(*[norms(b, t) for b in range(5)])
    np.testing.assert_allclose(got["recurrent"][i], rms(rec), rtol=1e-10)
    np.testing.assert_allclose(got["input"][i], rms(inp), rtol=1e-10)
    np.testing.assert_allclose(got["initial_state"][i], rms(init), rtol=1e-10)


def test_parameter_sensitivity_of_a_scalar_linear_recurrence_follows_theory(x64):
  """h_t = lam h_{t-1} + x_t, x white noise: E[(dh_t/dlam)^2] tends to
  (1 + lam^2) / (1 - lam^2)^3 (Zucchet & Orvieto 2024), growing without bound
  as lam -> 1 while |dh_t/dh_0| = lam^t vanishes."""
  cell = rz.SimpleRNN(1, activation="linear", dtype=jnp.float64, param_dtype=jnp.float64)
  xs = jax.random.normal(jax.random.key(0), (4000, 300, 1), jnp.float64)
  for lam in (0.5, 0.8, 0.9):
    p = {"w_ih": jnp.ones((1, 1)), "w_hh": jnp.full((1, 1), lam), "b": jnp.zeros((1,))}
    got = gradflow.parameter_sensitivity(cell, p, xs, [299], jax.random.key(1))
    v = abs(float(jax.random.normal(jax.random.key(1), (1,), jnp.float64)[0]))
    want = np.sqrt((1 + lam ** 2) / (1 - lam ** 2) ** 3)
    np.testing.assert_allclose(float(got["recurrent"][0]) / v, want, rtol=0.06)
    # h_299 is 300 steps after h_0 (the carry before step 0).
    np.testing.assert_allclose(float(got["initial_state"][0]) / v, lam ** 300, rtol=1e-8)
