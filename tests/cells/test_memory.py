"""The cells built for long memory (rnn_zoo.cells.memory): expRNN, IndRNN,
coRNN. Their steps against NumPy equations, the runner against a Python loop
and float64 finite differences run with every zoo cell (tests/cells/
test_cells.py, tests/runner/test_unroll.py); here: what is particular to
each, the errors, and training through the binaries' jitted step."""

import json
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

import rnn_zoo as rz
from rnn_zoo.training import optim


# -- expRNN --------------------------------------------------------------------

def test_exprnn_inits_give_block_rotations_and_an_orthogonal_weight():
  H = 8
  for scheme in ("henaff", "cayley"):
    cell = rz.ExpRNN(H, init_scheme=scheme)
    p = cell.init(jax.random.key(0), 3)
    s = np.asarray(p["skew"] - p["skew"].T, np.float64)
    np.testing.assert_array_equal(s, -s.T)
    angles = np.array([s[2 * i, 2 * i + 1] for i in range(H // 2)])
    blocks = np.zeros((H, H))
    for i, a in enumerate(angles):
      blocks[2 * i, 2 * i + 1], blocks[2 * i + 1, 2 * i] = a, -a
    np.testing.assert_array_equal(s, blocks)   # 2x2 blocks, nothing else
    if scheme == "henaff":
      assert np.all(np.abs(angles) <= math.pi) and np.ptp(angles) > 1.0
    else:  # -tan(s/2), s in [0, pi/2]
      assert np.all((angles <= 0) & (angles >= -1.0))
    w = np.asarray(cell.recurrent_weight(p), np.float64)
    np.testing.assert_allclose(w @ w.T, np.eye(H), atol=2e-6)
    assert float(jnp.abs(p["b"]).max()) <= 0.01
    assert abs(float(jnp.std(p["w_ih"])) - math.sqrt(2 / 3)) < 0.25


def test_exprnn_weight_is_made_once_per_call_and_steps_accept_both_forms(x64, monkeypatch):
  cell = rz.ExpRNN(6, dtype=jnp.float64, param_dtype=jnp.float64)
  p = cell.init(jax.random.key(1), 3)
  p = {**p, "skew": p["skew"] + 0.3 * jax.random.normal(jax.random.key(2), (6, 6),
                                                          jnp.float64)}
  prepared = cell.prepare(p)
  assert cell.prepare(prepared) is prepared
  np.testing.assert_allclose(prepared["w_hh"], jax.scipy.linalg.expm(p["skew"] - p["skew"].T))
  xs = jax.random.normal(jax.random.key(3), (2, 9, 3), jnp.float64)
  ys, _ = rz.unroll(cell, p, xs)
  ys_loop, _ = rz.python_unroll(cell, p, xs)                  # raw params per step
  ys_prep, _ = rz.python_unroll(cell, prepared, xs)
  np.testing.assert_allclose(ys, ys_loop, rtol=1e-12)
  np.testing.assert_allclose(ys, ys_prep, rtol=1e-12)
  # The runner computes expm once per call: the steps it runs get the made
  # weight (the loop above made it at every step).
  seen = []
  step = type(cell).step_projected

  def spy(self, params, carry, xp):
    seen.append("w_hh" in params)
    return step(self, params, carry, xp)

  monkeypatch.setattr(type(cell), "step_projected", spy)
  jax.jit(lambda p: rz.unroll(cell, p, xs)[0]).lower(p)
  assert seen and all(seen)


def test_exprnn_stays_orthogonal_through_training_with_its_own_rate():
  """RMSprop with the skew parameter at a tenth of the rate (the paper's
  setting, through optax.multi_transform): W stays orthogonal to float32
  tolerance, and the two groups move at their rates."""
  cell = rz.ExpRNN(16)
  p0 = cell.init(jax.random.key(0), 2)
  xs = jax.random.normal(jax.random.key(1), (8, 30, 2))
  target = jax.random.normal(jax.random.key(2), (8, 16))

  def loss(p):
    ys, _ = rz.unroll(cell, p, xs)
    return jnp.mean((ys[:, -1] - target) ** 2)

  def train(scale):
    config = ml_collections.ConfigDict(
        {"optimizer": "rmsprop", "momentum": 0.0, "orthogonal_lr_scale": scale})
    opt = optim.base_optimizer(config, 1e-2)
    state, p = opt.init(p0), p0

    @jax.jit
    def step(p, state):
      g = jax.grad(loss)(p)
      updates, state = opt.update(g, state, p)
      return optax.apply_updates(p, updates), state
    for _ in range(20):
      p, state = step(p, state)
    return p

  full, tenth = train(1.0), train(0.1)
  for p in (full, tenth):
    w = np.asarray(cell.recurrent_weight(p), np.float64)
    np.testing.assert_allclose(w @ w.T, np.eye(16), atol=5e-6)
  moved = lambda p, k: float(jnp.abs(p[k] - p0[k]).max())
  # RMSprop's first steps move each entry by about the rate: a tenth.
  assert moved(tenth, "skew") < 0.3 * moved(full, "skew")
  np.testing.assert_allclose(moved(tenth, "w_ih"), moved(full, "w_ih"), rtol=0.5)
  labels = optim.orthogonal_labels({"a": {"skew": 1, "w_ih": 2}, "b": 3})
  assert labels == {"a": {"skew": "orthogonal", "w_ih": "default"}, "b": "default"}


def test_modrelu():
  z = jnp.array([-2.0, -0.5, 0.0, 0.5, 2.0])
  np.testing.assert_allclose(rz.cells.memory.modrelu(z, -1.0), [-1.0, 0.0, 0.0, 0.0, 1.0])
  np.testing.assert_allclose(rz.cells.memory.modrelu(z, 0.5), [-2.5, -1.0, 0.0, 1.0, 2.5])


# -- IndRNN --------------------------------------------------------------------

def test_indrnn_bound_init_and_clipping():
  cell = rz.IndRNN(64, t_max=100, magnitude=2.0)
  bound = 2.0 ** (1 / 100)
  assert cell.bound == pytest.approx(bound)
  p = cell.init(jax.random.key(0), 3)
  assert float(p["u"].min()) >= 0.0 and float(p["u"].max()) <= bound
  # Beyond the bound a weight acts as the bound and gets no gradient.
  p = {**p, "u": p["u"].at[0].set(5.0).at[1].set(-5.0)}
  np.testing.assert_allclose(cell.recurrent_weights(p)[:2], [bound, -bound])
  xs = jax.random.normal(jax.random.key(1), (2, 20, 3))
  g = jax.grad(lambda p: jnp.sum(rz.unroll(cell, p, xs)[0]))(p)
  np.testing.assert_array_equal(g["u"][:2], 0.0)
  assert np.any(np.asarray(g["u"][2:]) != 0)
  unbounded = rz.IndRNN(8)
  assert unbounded.bound is None
  q = unbounded.init(jax.random.key(0), 3)
  assert float(q["u"].max()) <= 1.0
  q = {**q, "u": q["u"] * 5}
  np.testing.assert_array_equal(unbounded.recurrent_weights(q), q["u"])


def test_indrnn_gradient_through_time_is_the_product_of_its_weights(x64):
  """A linear-regime unit (ReLU above 0): d h_T / d h_0 = u^T per unit."""
  cell = rz.IndRNN(4, t_max=50, dtype=jnp.float64, param_dtype=jnp.float64)
  p = {"w_ih": jnp.zeros((1, 4)), "u": jnp.array([0.5, 0.9, 1.0, 1.01]),
       "b": jnp.ones((4,))}
  xs = jnp.zeros((1, 50, 1))
  h0 = rz.HiddenCarry(jnp.ones((1, 4)))
  jac = jax.jacobian(lambda h: rz.unroll(cell, p, xs, initial_carry=rz.HiddenCarry(h))[1].h)(h0.h)
  np.testing.assert_allclose(np.diag(jac[0, :, 0, :]), np.asarray(p["u"]) ** 50, rtol=1e-12)


# -- coRNN ---------------------------------------------------------------------

def test_cornn_states_stay_bounded_over_long_sequences():
  """The paper's bound: y and y' stay bounded for any T (here 3,000 steps of
  inputs of size 3)."""
  cell = rz.CoRNN(32)
  p = cell.init(jax.random.key(0), 2)
  xs = 3.0 * jax.random.normal(jax.random.key(1), (4, 3000, 2))
  ys, carry = jax.jit(lambda p, xs: rz.unroll(cell, p, xs))(p, xs)
  assert np.all(np.isfinite(ys)) and float(jnp.abs(ys).max()) < 2.0
  assert float(jnp.abs(carry.z).max()) < 2.0


# -- all three -----------------------------------------------------------------

@pytest.mark.parametrize("make,match", [
    (lambda: rz.ExpRNN(4, init_scheme="xavier"), "init_scheme must be one of"),
    (lambda: rz.IndRNN(4, t_max=-1), "t_max must be"),
    (lambda: rz.IndRNN(4, activation="gelu"), "activation must be one of"),
    (lambda: rz.IndRNN(4, magnitude=0), "magnitude must be"),
    (lambda: rz.CoRNN(4, dt=0), "dt must be"),
    (lambda: rz.CoRNN(4, epsilon=-1.0), "epsilon must be"),
])
def test_bad_options_are_one_line_errors(make, match):
  with pytest.raises(ValueError, match=match):
    make()


def test_make_cell_and_wrong_params():
  assert rz.make_cell("exprnn", 4, init_scheme="cayley") == rz.ExpRNN(4, init_scheme="cayley")
  assert rz.make_cell("indrnn", 4, t_max=9) == rz.IndRNN(4, t_max=9)
  assert rz.make_cell("cornn", 4, dt=0.1) == rz.CoRNN(4, dt=0.1)
  p = rz.ExpRNN(4).init(jax.random.key(0), 3)
  with pytest.raises(ValueError, match=r"params\['skew'\] of ExpRNN must have shape \(4, 4\)"):
    rz.unroll(rz.ExpRNN(4), {**p, "skew": p["skew"][:3]}, jnp.ones((1, 2, 3)))
  with pytest.raises(ValueError, match=r"params of IndRNN miss keys \['u'\]"):
    rz.unroll(rz.IndRNN(4), {"w_ih": p["w_ih"], "b": p["b"]}, jnp.ones((1, 2, 3)))


def test_linen_module_and_stacks_take_them():
  xs = jnp.ones((2, 7, 3))
  for cell in (rz.ExpRNN(6), rz.IndRNN(6, t_max=7), rz.CoRNN(6)):
    layer = rz.nn.RNN(cell, num_layers=2)
    variables = layer.init(jax.random.key(0), xs)
    assert layer.apply(variables, xs).shape == (2, 7, 6)
    stack = rz.StackedRNN.of(cell, 2)
    sp = stack.init(jax.random.key(1), 3)
    ys, _ = stack.apply(sp, xs)
    carry, y = stack.step(sp, stack.initial_carry((2,)), xs[:, 0])
    np.testing.assert_allclose(y, ys[:, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("cell,extra", [
    ("exprnn", {"orthogonal_lr_scale": 0.1, "optimizer": "rmsprop", "momentum": 0.0}),
    ("indrnn", {"num_layers": 2}),
    ("cornn", {}),
])
def test_config_cell_trains_through_the_jitted_loop(tmp_path, cell, extra):
  """config.cell=exprnn|indrnn|cornn through train_and_evaluate (the
  binaries' path: the jitted train step): the loss falls; expRNN's W stays
  orthogonal with its own learning rate."""
  from experiments.long_range import config as lr_config  # pylint: disable=g-import-not-at-top
  from experiments.long_range import workload  # pylint: disable=g-import-not-at-top
  from rnn_zoo.training import checkpoint, loop  # pylint: disable=g-import-not-at-top
  c = lr_config.get_config("smoke")
  c.update(dict(cell=cell, num_steps=60, eval_every=60, log_every=20,
                learning_rate=1e-2, checkpoint_every=60, **extra))
  w = workload.long_range(c)
  final = loop.train_and_evaluate(c, str(tmp_path), w)
  metrics = [json.loads(l) for l in open(tmp_path / "metrics.jsonl") if l.strip()]
  losses = [m["loss"] for m in metrics if m["split"] == "train"]
  assert np.isfinite(final["loss"]) and losses[-1] < losses[0], losses
  params = checkpoint.load_latest(str(tmp_path))["state"]["params"]
  layer = params["params"]["rnn"]["stack"]["layer_0"]
  if cell == "exprnn":
    w_hh = np.asarray(rz.ExpRNN(c.hidden_size).recurrent_weight(layer), np.float64)
    np.testing.assert_allclose(w_hh @ w_hh.T, np.eye(c.hidden_size), atol=1e-5)
  if cell == "indrnn":
    assert rz.make_cell("indrnn", 4, t_max=c.seq_len).bound == pytest.approx(2 ** (1 / c.seq_len))
