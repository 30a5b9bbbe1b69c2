"""Optimizers, schedules and clipping chosen by config."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnn_zoo import training
from rnn_zoo.training import optim

from experiments.long_range import config as lr_config


def cfg(**kw):
  c = lr_config.get_config("smoke")
  c.unlock()
  c.update(kw)
  return c


@pytest.mark.parametrize("name", training.OPTIMIZERS)
@pytest.mark.parametrize("schedule", training.SCHEDULES)
def test_every_optimizer_and_schedule_reduces_a_quadratic(name, schedule):
  c = cfg(optimizer=name, schedule=schedule, learning_rate=0.3, num_steps=50,
          decay_every=20, warmup_steps=5 if schedule == "cosine" else 0)
  opt = training.make_optimizer(c)
  params = {"w": jnp.array([3.0, -2.0])}
  state = opt.init(params)
  loss = lambda p: jnp.sum(p["w"] ** 2)
  for _ in range(50):
    g = jax.grad(loss)(params)
    upd, state = opt.update(g, state, params)
    params = optax.apply_updates(params, upd)
  assert float(loss(params)) < 13.0 * 0.5


def test_schedules_values():
  s = optim.make_schedule(cfg(schedule="step", learning_rate=1.0, decay_every=10,
                              decay_factor=0.5, warmup_steps=0))
  assert [float(s(i)) for i in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
  w = optim.make_schedule(cfg(schedule="constant", learning_rate=1.0, warmup_steps=4))
  np.testing.assert_allclose([float(w(i)) for i in (0, 2, 4, 10)], [0, 0.5, 1, 1])
  c = optim.make_schedule(cfg(schedule="cosine", learning_rate=1.0, num_steps=100,
                              warmup_steps=0))
  np.testing.assert_allclose([float(c(0)), float(c(50)), float(c(100))], [1, 0.5, 0], atol=1e-6)


def _quadratic_workload(grad):
  """A Workload whose gradient is ``grad`` exactly (loss = <w, grad>)."""
  from rnn_zoo.training import loop  # pylint: disable=g-import-not-at-top
  g = jnp.asarray(grad)
  return loop.Workload(
      init_params=lambda key: {"w": jnp.zeros_like(g)},
      loss_fn=lambda p, batch, key, train: (jnp.sum(p["w"] * g), {}),
      train_batch=lambda key, step: {"x": jnp.zeros((16,))},
      eval_batch=lambda key, i: {"x": jnp.zeros((16,))},
      shape_fields=())


def _jitted_steps(c, grad, steps=2):
  """Runs the loop's train step, jitted with donation as the loop does."""
  from rnn_zoo.training import loop  # pylint: disable=g-import-not-at-top
  w = _quadratic_workload(grad)
  opt = training.make_optimizer(c)
  state = jax.jit(lambda: loop.initial_state(w, opt, c, jax.random.key(0),
                                             jax.random.key(1)))()
  step = jax.jit(loop.make_train_step(w, opt, c), donate_argnums=0)
  metrics = []
  for s in range(steps):
    state, m = step(state, {"x": jnp.zeros((16,))})
    metrics.append(jax.device_get(m))
  return state, metrics


@pytest.mark.parametrize("name", training.OPTIMIZERS)
@pytest.mark.parametrize("schedule", training.SCHEDULES)
@pytest.mark.parametrize("clipping", ["none", "norm", "value", "both"])
def test_every_optimizer_schedule_and_clipping_through_the_jitted_step(name, schedule, clipping):
  """Each combination runs in the jitted, donated train step (a clip_value
  that only worked eagerly crashed every real run)."""
  c = cfg(optimizer=name, schedule=schedule, learning_rate=0.1, num_steps=10,
          warmup_steps=2 if schedule == "cosine" else 0,
          clip_norm=1.0 if clipping in ("norm", "both") else 0.0,
          clip_value=0.5 if clipping in ("value", "both") else 0.0)
  state, metrics = _jitted_steps(c, [3.0, -4.0, 0.1])
  assert int(state.step) == 2
  assert np.isfinite(np.asarray(state.params["w"])).all()
  assert not np.array_equal(np.asarray(state.params["w"]), np.zeros(3))
  assert metrics[0]["grad_norm"] == pytest.approx(np.sqrt(25.01), rel=1e-5)
  assert metrics[0]["clipped"] == (0.0 if clipping == "none" else 1.0)


@pytest.mark.parametrize("clip_norm,clip_value,want", [
    (1.0, 0.0, [0.6, -0.8, 0.0]),               # norm 5 -> 1
    (0.0, 1.0, [1.0, -1.0, 0.0]),               # each entry to [-1, 1]
    (1.0, 1.0, [2 ** -0.5, -(2 ** -0.5), 0.0]),  # value first, then norm
    (10.0, 0.0, [3.0, -4.0, 0.0]),              # nothing to clip
])
def test_clipping_values_in_the_jitted_step(clip_norm, clip_value, want):
  """SGD with learning rate 1: the update is minus the clipped gradient."""
  c = cfg(optimizer="sgd", schedule="constant", learning_rate=1.0,
          warmup_steps=0, clip_norm=clip_norm, clip_value=clip_value)
  state, metrics = _jitted_steps(c, [3.0, -4.0, 0.0], steps=1)
  np.testing.assert_allclose(-np.asarray(state.params["w"]), want, rtol=1e-6, atol=1e-7)
  assert metrics[0]["grad_norm"] == pytest.approx(5.0)
  assert metrics[0]["clipped"] == (0.0 if clip_norm == 10.0 else 1.0)


@pytest.mark.slow
def test_clip_value_runs_in_the_binary(tmp_path):
  """The command of the issue: --config.clip_value crashed every run."""
  import helpers  # pylint: disable=g-import-not-at-top
  proc = helpers.run(tmp_path / "cv", "--config.clip_value=1.0", "--config.num_steps=5",
                     "--config.checkpoint_every=5", "--config.eval_every=5")
  assert "Traceback" not in proc.stderr



@pytest.mark.parametrize("name", training.OPTIMIZERS)
def test_the_logged_learning_rate_is_the_one_applied_after_a_skipped_step(name):
  """nonfinite=skip keeps the old optimizer state, so its schedule count
  stops while the train state's step goes on: the logged rate follows the
  optimizer (the update applied at step 2 uses the rate of count 1)."""
  from rnn_zoo.training import loop  # pylint: disable=g-import-not-at-top
  c = cfg(optimizer=name, schedule="step", learning_rate=1.0, decay_every=1,
          decay_factor=0.5, warmup_steps=0, nonfinite="skip", clip_norm=0.0,
          clip_value=0.0)
  g = jnp.array([3.0, -4.0])
  w = loop.Workload(
      init_params=lambda key: {"w": jnp.zeros_like(g)},
      loss_fn=lambda p, batch, key, train: (jnp.sum(p["w"] * g) * batch["x"], {}),
      train_batch=lambda key, step: {"x": jnp.ones(())},
      eval_batch=lambda key, i: {"x": jnp.ones(())},
      shape_fields=())
  opt = training.make_optimizer(c)
  state = jax.jit(lambda: loop.initial_state(w, opt, c, jax.random.key(0),
                                             jax.random.key(1)))()
  step = jax.jit(loop.make_train_step(w, opt, c), donate_argnums=0)
  rates = []
  for x in (1.0, np.nan, 1.0, 1.0):
    state, m = step(state, {"x": jnp.asarray(x, jnp.float32)})
    rates.append(float(m["learning_rate"]))
  assert int(state.step) == 4 and int(state.nonfinite_steps) == 1
  # Counts 0, 1 (skipped: not applied), 1, 2.
  assert rates == [1.0, 0.5, 0.5, 0.25]
