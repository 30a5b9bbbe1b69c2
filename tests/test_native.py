"""The LSTM's native CPU kernel (rnn_zoo.native) against the scan runner."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_zoo as rz
from rnn_zoo import native

pytestmark = pytest.mark.skipif(not native.available(),
                                reason="no C++ compiler for the native kernel here")

# (B, T, I, H): H a multiple of 16 and not; B a multiple of the 6-row tile and
# not; one step; fewer units than one 16-lane group.
SHAPES = [(3, 5, 4, 20), (8, 7, 3, 64), (13, 6, 5, 33), (6, 1, 2, 16), (2, 4, 3, 5),
          (32, 3, 8, 256)]


def _run(cell, p, xs, init, native_flag):
  return rz.unroll(cell, p, xs, initial_carry=init, native=native_flag)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_values_and_gradients_match_the_scan_runner(shape):
  B, T, I, H = shape
  cell = rz.LSTM(H)
  k = jax.random.split(jax.random.key(0), 5)
  p = cell.init(k[0], I)
  xs = jax.random.normal(k[1], (B, T, I))
  init = rz.LSTMCarry(h=0.5 * jax.random.normal(k[2], (B, H)),
                      c=0.5 * jax.random.normal(k[3], (B, H)))
  r = jax.random.normal(k[4], (B, T, H))

  def loss(p, xs, init, flag):
    ys, carry = _run(cell, p, xs, init, flag)
    return jnp.sum(ys * r) + jnp.sum(jnp.sin(carry.h)) + jnp.sum(carry.c ** 2)

  out_n = jax.jit(lambda *a: _run(cell, *a, True))(p, xs, init)
  out_s = jax.jit(lambda *a: _run(cell, *a, False))(p, xs, init)
  for a, b in zip(jax.tree.leaves(out_n), jax.tree.leaves(out_s)):
    np.testing.assert_allclose(a, b, atol=2e-6, rtol=2e-6)
  g_n = jax.jit(jax.grad(lambda *a: loss(*a, True), (0, 1, 2)))(p, xs, init)
  g_s = jax.jit(jax.grad(lambda *a: loss(*a, False), (0, 1, 2)))(p, xs, init)
  for a, b in zip(jax.tree.leaves(g_n), jax.tree.leaves(g_s)):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=2e-5)


def test_it_is_the_default_for_an_lstm_and_not_with_lengths():
  cell = rz.LSTM(8)
  p = cell.init(jax.random.key(0), 3)
  xs = jnp.ones((2, 4, 3))
  hlo = lambda f: jax.jit(f).lower(p, xs).as_text()
  assert "rnn_zoo_lstm_forward" in hlo(lambda p, x: rz.unroll(cell, p, x)[0])
  assert "rnn_zoo_lstm_forward" not in hlo(
      lambda p, x: rz.unroll(cell, p, x, lengths=jnp.array([4, 2]))[0])
  assert "rnn_zoo_lstm_forward" not in hlo(
      lambda p, x: rz.unroll(cell, p, x, native=False)[0])
  grad_hlo = hlo(jax.grad(lambda p, x: jnp.sum(rz.unroll(cell, p, x)[0])))
  assert "rnn_zoo_lstm_forward_train" in grad_hlo and "rnn_zoo_lstm_backward" in grad_hlo


def test_a_stacked_lstm_trains_through_it_like_the_scan():
  stack = rz.StackedRNN.of(rz.LSTM(24), 2)
  p = stack.init(jax.random.key(0), 5)
  xs = jax.random.normal(jax.random.key(1), (7, 9, 5))
  target = jax.random.normal(jax.random.key(2), (7, 9, 24))

  def loss(p, flag):
    return jnp.mean((stack.apply(p, xs, native=flag)[0] - target) ** 2)

  grads = [jax.jit(jax.grad(loss), static_argnums=1)(p, flag) for flag in (None, False)]
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-5)


def test_vmap_runs_each_member():
  cell = rz.LSTM(16)
  ps = jax.vmap(lambda k: cell.init(k, 3))(jax.random.split(jax.random.key(0), 3))
  xs = jax.random.normal(jax.random.key(1), (3, 2, 5, 3))
  f = lambda flag: jax.jit(jax.vmap(lambda p, x: rz.unroll(cell, p, x, native=flag)[0]))
  np.testing.assert_allclose(f(True)(ps, xs), f(False)(ps, xs), atol=2e-6)


@pytest.mark.parametrize("what, make, match", [
    ("gru", lambda: (rz.GRU(8), {}), "rnn_zoo.LSTM only, not GRU"),
    ("lengths", lambda: (rz.LSTM(8), {"lengths": jnp.array([4, 1])}),
     "no lengths or hidden_probes"),
    ("bfloat16", lambda: (rz.LSTM(8, dtype=jnp.bfloat16), {}), "float32 only"),
    ("fused=False", lambda: (rz.LSTM(8), {"fused": False}), "replaces the fused runner"),
])
def test_native_true_says_why_it_cannot_run(what, make, match):
  del what
  cell, kw = make()
  p = cell.init(jax.random.key(0), 3)
  with pytest.raises(ValueError, match=f"native=True cannot run here: .*{match}"):
    rz.unroll(cell, p, jnp.ones((2, 4, 3)), native=True, **kw)


def test_forward_mode_falls_back_to_the_scan():
  cell = rz.LSTM(8)
  p = cell.init(jax.random.key(0), 3)
  x = jnp.ones((2, 4, 3))
  f = lambda flag: lambda x: jnp.sum(rz.unroll(cell, p, x, native=flag)[0])
  _, t_default = jax.jvp(f(None), (x,), (x,))
  _, t_scan = jax.jvp(f(False), (x,), (x,))
  np.testing.assert_allclose(t_default, t_scan, rtol=1e-6)
  with pytest.raises(ValueError, match="native=True does not support forward-mode"):
    jax.jvp(f(True), (x,), (x,))


def test_a_failed_build_is_a_clear_error_and_the_runner_falls_back(tmp_path, monkeypatch):
  monkeypatch.setattr(native, "_state", {})
  monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path))
  monkeypatch.setenv("CXX", "/bin/false")
  assert not native.available()
  with pytest.raises(ValueError, match="building the native LSTM kernel failed"):
    native.load()
  cell = rz.LSTM(8)
  p = cell.init(jax.random.key(0), 3)
  assert "building the native LSTM kernel failed" in native.why_not(
      cell, p, jnp.ones((4, 2, 32)), cell.initial_carry((2,)))
  ys, _ = rz.unroll(cell, p, jnp.ones((2, 4, 3)))  # the scan runner, silently
  assert ys.shape == (2, 4, 8)


def test_one_thread_and_two_give_the_same_bits(tmp_path):
  # Each hidden unit's arithmetic does not depend on how units are split
  # between threads: a race between the threads would show up here.
  code = ("import jax, numpy as np, rnn_zoo as rz\n"
          "cell = rz.LSTM(80); p = cell.init(jax.random.key(0), 7)\n"
          "xs = jax.random.normal(jax.random.key(1), (9, 30, 7))\n"
          "g = jax.jit(jax.grad(lambda p: (rz.unroll(cell, p, xs, native=True)[0] ** 2).sum()))(p)\n"
          "np.save(__import__('sys').argv[1], np.asarray(g['w_hh']))\n")
  outs = []
  for threads in ("1", "2"):
    path = str(tmp_path / f"threads_{threads}.npy")
    env = dict(os.environ, RNN_ZOO_NATIVE_THREADS=threads)
    subprocess.run([sys.executable, "-c", code, path], env=env, check=True)
    outs.append(np.load(path))
  np.testing.assert_array_equal(outs[0], outs[1])
