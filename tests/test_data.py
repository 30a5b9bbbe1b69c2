"""Statistics of the generated tasks, and their no-memory baselines."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_zoo.data import synthetic


def test_adding_batch_statistics():
  b = synthetic.adding_batch(jax.random.key(0), 20000, 50)
  x, m, y = b["inputs"][..., 0], b["inputs"][..., 1], b["targets"]
  assert b["inputs"].shape == (20000, 50, 2)
  np.testing.assert_array_equal(m.sum(1), 2.0)
  # One marker in each half.
  np.testing.assert_array_equal(m[:, :25].sum(1), 1.0)
  np.testing.assert_allclose(y, (x * m).sum(1), rtol=1e-6)
  assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
  assert abs(float(y.mean()) - 1.0) < 0.01
  # The baseline model (always predict 1) scores Var(U1+U2) = 1/6.
  mse_baseline = float(jnp.mean((1.0 - y) ** 2))
  assert mse_baseline == pytest.approx(synthetic.ADDING_BASELINE_MSE["le"], rel=0.03)
  assert synthetic.ADDING_BASELINE_MSE["le"] == pytest.approx(0.167, abs=1e-3)
  first = jnp.argmax(m, axis=1)
  assert abs(float(first.mean()) - 12.0) < 0.3  # uniform over 0..24


def test_adding_hochreiter_variant():
  b = synthetic.adding_batch(jax.random.key(1), 20000, 40, variant="hochreiter")
  x, m, y = b["inputs"][..., 0], b["inputs"][..., 1], b["targets"]
  assert float(x.min()) < -0.9 and float(x.max()) > 0.9
  np.testing.assert_allclose(y, 0.5 + (x * m).sum(1) / 4, rtol=1e-6)
  assert float(jnp.mean((y - 0.5) ** 2)) == pytest.approx(1 / 24, rel=0.05)


@pytest.mark.parametrize("delay", [5, 50])
def test_copy_batch_layout_and_baseline(delay):
  b = synthetic.copy_batch(jax.random.key(0), 4096, delay)
  x, y = np.asarray(b["inputs"]), np.asarray(b["targets"])
  L = delay + 20
  assert x.shape == y.shape == (4096, L)
  assert set(np.unique(x[:, :10]).tolist()) == set(range(1, 9))
  np.testing.assert_array_equal(x[:, 10:10 + delay - 1], 0)
  np.testing.assert_array_equal(x[:, 10 + delay - 1], 9)
  np.testing.assert_array_equal(x[:, 10 + delay:], 0)
  np.testing.assert_array_equal(y[:, :delay + 10], 0)
  np.testing.assert_array_equal(y[:, delay + 10:], x[:, :10])
  # The best memoryless model: blank with certainty, uniform over the 8
  # symbols on the 10 recall steps. Its mean cross-entropy is 10 ln 8 / (T+20).
  logp = np.full((L, 10), -np.inf)
  logp[:delay + 10, 0] = 0.0
  logp[delay + 10:, 1:9] = -math.log(8)
  ce = -np.take_along_axis(np.broadcast_to(logp, (4096, L, 10)), y[..., None], -1)
  assert float(ce.mean()) == pytest.approx(synthetic.copy_baseline_loss(delay), rel=1e-6)
  assert synthetic.copy_baseline_loss(100) == pytest.approx(0.173, abs=1e-3)


def test_variable_copy_gap():
  b = synthetic.copy_batch(jax.random.key(3), 2000, 30, variable=True)
  x, y = np.asarray(b["inputs"]), np.asarray(b["targets"])
  delim = np.argmax(x == 9, axis=1)
  gaps = delim - 10 + 1
  assert gaps.min() >= 1 and gaps.max() <= 30 and len(np.unique(gaps)) > 20
  for i in range(20):
    d = delim[i]
    np.testing.assert_array_equal(y[i, d + 1:d + 11], x[i, :10])
    assert (y[i, :d + 1] == 0).all() and (y[i, d + 11:] == 0).all()


def test_solved_criteria():
  assert synthetic.is_solved("adding", 100, 0.008)
  assert not synthetic.is_solved("adding", 100, 0.01)
  assert synthetic.beats_baseline("copy", 100, 0.08)
  assert not synthetic.beats_baseline("copy", 100, 0.1)
  with pytest.raises(ValueError, match="got 'sort'"):
    synthetic.baseline_loss("sort", 10)


def test_batches_are_deterministic_functions_of_the_key():
  a = synthetic.copy_batch(jax.random.key(7), 8, 10)
  b = jax.jit(lambda k: synthetic.copy_batch(k, 8, 10))(jax.random.key(7))
  np.testing.assert_array_equal(a["inputs"], b["inputs"])
