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


def test_clip_by_global_norm_reports_norm_before_clipping():
  g = {"a": jnp.array([3.0, 4.0])}  # norm 5
  out, stats = training.clip(g, clip_norm=1.0, clip_value=0.0)
  np.testing.assert_allclose(out["a"], [0.6, 0.8], rtol=1e-6)
  assert float(stats["grad_norm"]) == pytest.approx(5.0)
  assert float(stats["clipped"]) == 1.0
  out, stats = training.clip(g, clip_norm=10.0, clip_value=0.0)
  np.testing.assert_array_equal(out["a"], g["a"])
  assert float(stats["clipped"]) == 0.0


def test_clip_by_value():
  g = {"a": jnp.array([3.0, -0.5])}
  out, stats = training.clip(g, clip_norm=0.0, clip_value=1.0)
  np.testing.assert_array_equal(out["a"], [1.0, -0.5])
  assert float(stats["clipped"]) == 1.0 and float(stats["grad_norm"]) == pytest.approx(np.hypot(3, .5))
