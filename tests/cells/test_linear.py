"""Linear recurrent cells (minGRU, minLSTM, LRU): the parallel scans give
what the sequential loop gives, values and gradients; per-step resets;
errors; the LRU against its equations in complex NumPy."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_zoo as rz
from zoo_helpers import randomize
from rnn_zoo import parallel

B, T, I, H = 3, 33, 4, 5
CELLS = {"mingru": lambda **kw: rz.MinGRU(H, **kw),
         "minlstm": lambda **kw: rz.MinLSTM(H, **kw)}
MODES = ["parallel", "parallel_log"]


H_LRU = 6  # 3 complex modes
# (cell, parallel mode): the LRU has no log-space form.
CELL_MODES = [(n, m) for n in sorted(CELLS) for m in MODES] + [("lru", "parallel")]


def setup(name, dtype=jnp.float64, T=T, **kw):
  if name == "lru":
    cell = rz.LRU(H_LRU, dtype=dtype, param_dtype=dtype, **kw)
  else:
    cell = CELLS[name](dtype=dtype, param_dtype=dtype, **kw)
  p = randomize(cell.init(jax.random.key(0), I), jax.random.key(1),
                0.3 if name == "lru" else 0.5)
  xs = jax.random.normal(jax.random.key(2), (B, T, I), dtype)
  h0 = rz.HiddenCarry(jax.random.normal(jax.random.key(3), (B, cell.hidden_size), dtype))
  return cell, p, xs, h0


def close(a, b, tol):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=tol, atol=tol), a, b)


@pytest.mark.parametrize("name,mode", CELL_MODES)
@pytest.mark.parametrize("options", [
    {}, {"lengths": [T, 9, 0]}, {"lengths": [T, 9, 0], "reverse": True},
    {"time_major": True}])
def test_parallel_equals_sequential_float64(x64, name, mode, options):
  cell, p, xs, h0 = setup(name)
  kw = dict(options, initial_carry=h0)
  if "lengths" in kw:
    kw["lengths"] = jnp.array(kw["lengths"])
  if kw.get("time_major"):
    xs = jnp.swapaxes(xs, 0, 1)
  want = rz.python_unroll_with_carries(cell, p, xs, **kw)
  seq = rz.unroll_with_carries(cell, p, xs, impl="scan", **kw)
  got = jax.jit(lambda p, xs: rz.unroll_with_carries(cell, p, xs, impl=mode, **kw))(p, xs)
  close(seq, want, 1e-12)
  close(got, want, 1e-10)


@pytest.mark.parametrize("name,mode", CELL_MODES)
def test_parallel_gradients_float64(x64, name, mode):
  """Gradients with respect to params, inputs, initial carry and the hidden
  probes (dL/dh_t) match the sequential loop's (the LRU's complex scan
  too)."""
  cell, p, xs, h0 = setup(name)
  H = cell.hidden_size
  lengths = jnp.array([T, 20, 1])
  w = jax.random.normal(jax.random.key(9), (B, T, H), jnp.float64)

  def loss(p, xs, h0, probes, impl):
    ys, c = rz.unroll(cell, p, xs, initial_carry=h0, lengths=lengths,
                      hidden_probes=probes, impl=impl)
    return jnp.sum(w * jnp.sin(ys)) + jnp.sum(c.h ** 2)

  args = (p, xs, h0, jnp.zeros((B, T, H), jnp.float64))
  want = jax.grad(loss, argnums=(0, 1, 2, 3))(*args, "scan")
  got = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3)), static_argnums=4)(*args, mode)
  close(got, want, 1e-10)
  assert float(jnp.abs(want[3]).max()) > 0  # the probes see a gradient
  assert all(float(jnp.abs(g).max()) > 0 for g in want[0].values())


def test_default_is_the_associative_scan_and_stacks_run_it():
  cell, p, xs, _ = setup("mingru", jnp.float32)
  jaxpr = str(jax.make_jaxpr(lambda p, xs: rz.unroll(cell, p, xs))(p, xs))
  assert "scan[" not in jaxpr  # no sequential loop
  seq = str(jax.make_jaxpr(lambda p, xs: rz.unroll(cell, p, xs, impl="scan"))(p, xs))
  assert "scan[" in seq
  stack = rz.StackedRNN((rz.MinGRU(H), rz.MinLSTM(H)))
  sp = stack.init(jax.random.key(0), I)
  a, _ = stack.apply(sp, xs)
  b, _ = stack.apply(sp, xs, impl="scan")
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # Step by step (generation) is the sequential cell.
  carry, ys = stack.initial_carry((B,)), []
  for t in range(xs.shape[1]):
    carry, y = stack.step(sp, carry, xs[:, t])
    ys.append(y)
  np.testing.assert_allclose(jnp.stack(ys, 1), b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_float32_error_of_the_scans(name):
  """The float32 scans against float64 at T=4096: the tolerance the docs
  state (measured: ~1e-6 associative, ~1e-4 log-space relative to the
  state's scale at this length)."""
  with jax.enable_x64(True):
    cell64, p64, xs64, _ = setup(name, jnp.float64, T=4096)
    ref = np.asarray(rz.unroll(cell64, p64, xs64, impl="scan")[0])
  cell = CELLS[name]()
  p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p64)
  xs = jnp.asarray(xs64, jnp.float32)
  scale = np.abs(ref).max()
  err = {m: float(np.abs(np.asarray(rz.unroll(cell, p, xs, impl=m)[0]) - ref).max()) / scale
         for m in ("scan", "parallel", "parallel_log")}
  assert err["scan"] < 1e-5 and err["parallel"] < 1e-5, err
  assert err["parallel_log"] < 1e-3, err


@pytest.mark.parametrize("name", ["mingru", "lstm", "gru_cho"])
def test_resets_restart_from_the_initial_carry(name):
  """A reset at t gives what a fresh run from t gives; resets in the
  parallel scan equal resets in the loop."""
  cell = {"mingru": rz.MinGRU(H), "lstm": rz.LSTM(H), "gru_cho": rz.GRUCho(H)}[name]
  p = randomize(cell.init(jax.random.key(0), I), jax.random.key(1), 0.3)
  xs = jax.random.normal(jax.random.key(2), (B, 12, I))
  h0 = jax.tree.map(lambda a: jax.random.normal(jax.random.key(4), a.shape),
                    cell.initial_carry((B,)))
  resets = jnp.zeros((B, 12), bool).at[0, 5].set(True).at[1, 0].set(True)
  ys, final = rz.unroll(cell, p, xs, initial_carry=h0, resets=resets)
  # The scan runner, as resets use (the LSTM's native kernel differs in the
  # last bits).
  plain, _ = rz.unroll(cell, p, xs, initial_carry=h0,
                       impl="fused" if name == "lstm" else "auto")
  np.testing.assert_allclose(ys[2], plain[2], rtol=1e-6)  # no reset
  np.testing.assert_allclose(ys[1], plain[1], rtol=1e-6)  # reset at 0 = start
  first = lambda c: jax.tree.map(lambda a: a[:1], c)
  fresh, _ = rz.unroll(cell, p, xs[:1, 5:], initial_carry=first(h0),
                       impl="fused" if name == "lstm" else "auto")
  np.testing.assert_allclose(ys[0, 5:], fresh[0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(ys[0, :5], plain[0, :5], rtol=1e-6)
  if name == "mingru":
    seq, fseq = rz.unroll(cell, p, xs, initial_carry=h0, resets=resets, impl="scan")
    np.testing.assert_allclose(ys, seq, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final.h, fseq.h, rtol=1e-5, atol=1e-6)
  # Under jit, and through a gradient.
  g = jax.jit(jax.grad(lambda p: jnp.sum(
      rz.unroll(cell, p, xs, initial_carry=h0, resets=resets)[0])))(p)
  assert all(bool(jnp.all(jnp.isfinite(v))) for v in jax.tree.leaves(g))


def test_linear_scan_building_blocks(x64):
  a = jax.random.uniform(jax.random.key(0), (50, 3), jnp.float64, 0.1, 1.0)
  b = jax.random.normal(jax.random.key(1), (50, 3), jnp.float64)
  h0 = jnp.array([1.0, -2.0, 0.5])
  h, want = h0, []
  for t in range(50):
    h = a[t] * h + b[t]
    want.append(h)
  np.testing.assert_allclose(parallel.linear_scan(a, b, h0), jnp.stack(want), rtol=1e-12)
  bp = jnp.abs(b) + 0.1
  h, want = h0, []
  for t in range(50):
    h = a[t] * h + bp[t]
    want.append(h)
  np.testing.assert_allclose(parallel.log_linear_scan(jnp.log(a), jnp.log(bp), h0),
                             jnp.stack(want), rtol=1e-10)


@pytest.mark.parametrize("kwargs,message", [
    ({"impl": "fast"}, "impl must be one of ['auto', 'scan', 'fused'"),
    ({"parallel": "fast"}, "parallel must be None, True, False or 'log'"),
    ({"impl": "parallel", "remat": 4}, "does not combine with remat"),
    ({"resets": jnp.zeros((B, T))}, "resets must be a bool array, got dtype float32"),
    ({"resets": jnp.zeros((T, B), bool)}, "resets must be a bool array of shape (3, 33)"),
    ({"resets": jnp.zeros((B, T), bool), "reverse": True}, "not supported with reverse"),
    ({"resets": jnp.zeros((B, T), bool), "impl": "parallel_log"},
     "resets do not combine with the log-space scan"),
])
def test_errors(kwargs, message):
  cell, p, xs, _ = setup("mingru", jnp.float32)
  with pytest.raises(ValueError, match=None) as e:
    rz.unroll(cell, p, xs, **kwargs)
  assert message in str(e.value)


def test_parallel_needs_a_linear_cell():
  cell = rz.LSTM(H)
  p = cell.init(jax.random.key(0), I)
  with pytest.raises(ValueError, match="needs a LinearRecurrentCell"):
    rz.unroll(cell, p, jnp.ones((B, T, I)), impl="parallel")
  with pytest.raises(ValueError, match="impl='fused' cannot run here: the fused "
                     "backward pass takes no resets"):
    rz.unroll(cell, p, jnp.ones((B, T, I)), impl="fused", resets=jnp.zeros((B, T), bool))


def test_make_cell_and_config_names():
  assert rz.make_cell("mingru", 4) == rz.MinGRU(4)
  assert rz.make_cell("minlstm", 4, forget_bias=0.0) == rz.MinLSTM(4, forget_bias=0.0)
  p = rz.MinLSTM(4, forget_bias=2.0).init(jax.random.key(0), 3)
  np.testing.assert_array_equal(p["b"], [2.0] * 4 + [0.0] * 8)


@pytest.mark.slow
@pytest.mark.parametrize("cell,block", [("mingru", "none"), ("minlstm", "none"),
                                        ("lru", "none"), ("lru", "residual_glu")])
def test_config_cell_trains_through_the_jitted_loop(tmp_path, cell, block):
  """config.cell=mingru|minlstm|lru (and config.block) through
  train_and_evaluate (the binaries' path: jitted train step, parallel scan
  inside), 2 layers: the loss falls."""
  from experiments.long_range import config as lr_config  # pylint: disable=g-import-not-at-top
  from experiments.long_range import workload  # pylint: disable=g-import-not-at-top
  from rnn_zoo.training import loop  # pylint: disable=g-import-not-at-top
  c = lr_config.get_config("smoke")
  c.update(dict(cell=cell, num_layers=2, num_steps=60, eval_every=60, log_every=20,
                learning_rate=1e-2, checkpoint_every=60, block=block))
  w = workload.long_range(c)
  params = w.init_params(jax.random.key(0))
  names = [jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_leaves_with_path(params)]
  assert any("w_ih" in n for n in names) and not any("w_hh" in n for n in names)
  if block == "residual_glu":
    assert set(params["params"]) == {"encoder", "norm_0", "rnn_0", "glu_0", "norm_1",
                                     "rnn_1", "glu_1", "head"}
    # The hooks find layer 0's cell params and what it reads.
    xs = w.train_batch(jax.random.key(1), 0)["inputs"]
    cell_obj, p0, first_xs = w.diagnostics.first_layer(params, xs)
    assert p0 is params["params"]["rnn_0"]["stack"]["layer_0"]
    assert first_xs.shape == xs.shape[:2] + (c.hidden_size,)
    assert set(w.param_groups(params)) == {"rnn", "blocks", "head"}
  final = loop.train_and_evaluate(c, str(tmp_path), w)
  metrics = [json.loads(l) for l in open(tmp_path / "metrics.jsonl") if l.strip()]
  losses = [m["loss"] for m in metrics if m["split"] == "train"]
  assert np.isfinite(final["loss"]) and losses[-1] < losses[0], losses


# -- LRU ----------------------------------------------------------------------

def test_lru_is_its_equations(x64):
  """h_t = lambda h_{t-1} + gamma (B x_t) in complex NumPy, lambda =
  exp(-exp(nu_log) + i exp(theta_log)); the state is [Re h, Im h]."""
  cell, p, xs, h0 = setup("lru")
  n = H_LRU // 2
  q = {k: np.asarray(v) for k, v in p.items()}
  lam = np.exp(-np.exp(q["nu_log"]) + 1j * np.exp(q["theta_log"]))
  h = np.asarray(h0.h)[:, :n] + 1j * np.asarray(h0.h)[:, n:]
  want = []
  for t in range(T):
    u = np.asarray(xs[:, t]) @ q["w_ih"] + q["b"]
    h = lam * h + np.exp(q["gamma_log"]) * (u[:, :n] + 1j * u[:, n:])
    want.append(np.concatenate([h.real, h.imag], -1))
  for impl in ("parallel", "scan"):
    ys, c = rz.unroll(cell, p, xs, initial_carry=h0, impl=impl)
    np.testing.assert_allclose(ys, np.stack(want, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c.h, want[-1], rtol=1e-12, atol=1e-12)


def test_lru_ring_init():
  cell = rz.LRU(512, r_min=0.9, r_max=0.999, max_phase=np.pi / 10)
  p = cell.init(jax.random.key(0), 7)
  lam = np.asarray(cell.eigenvalues(p))
  r, phase = np.abs(lam), np.angle(lam)
  assert r.min() >= 0.9 - 1e-6 and r.max() <= 0.999 + 1e-6
  # |lambda|^2 uniform on [r_min^2, r_max^2]: its mean is the midpoint.
  assert abs(np.mean(r ** 2) - (0.9 ** 2 + 0.999 ** 2) / 2) < 0.01
  assert phase.min() >= 0 and phase.max() <= np.pi / 10 + 1e-6
  np.testing.assert_allclose(np.exp(2 * np.asarray(p["gamma_log"])) + r ** 2, 1.0, atol=1e-5)
  assert abs(float(np.std(p["w_ih"])) - 1 / np.sqrt(2 * 7)) < 0.01
  np.testing.assert_array_equal(p["b"], 0.0)
  # The normalization keeps the state at the input's scale near |lambda| = 1.
  xs = jax.random.normal(jax.random.key(1), (8, 2000, 7))
  ys, _ = rz.unroll(cell, p, xs)
  assert 0.5 < float(jnp.mean(ys[:, -100:] ** 2)) * 2 < 2.0


def test_lru_float32_error_and_resets():
  """float32 scan against float64 at T=4096 (measured ~1e-6 of the state's
  scale); resets in the complex scan equal resets in the loop."""
  with jax.enable_x64(True):
    cell64, p64, xs64, _ = setup("lru", jnp.float64, T=4096, r_min=0.9, r_max=0.999)
    ref = np.asarray(rz.unroll(cell64, p64, xs64, impl="scan")[0])
  cell = rz.LRU(H_LRU, r_min=0.9, r_max=0.999)
  p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), p64)
  xs = jnp.asarray(xs64, jnp.float32)
  scale = np.abs(ref).max()
  for m in ("scan", "parallel"):
    err = float(np.abs(np.asarray(rz.unroll(cell, p, xs, impl=m)[0]) - ref).max()) / scale
    assert err < 1e-4, (m, err)
  resets = jnp.zeros((B, 12), bool).at[0, 5].set(True)
  h0 = rz.HiddenCarry(jax.random.normal(jax.random.key(4), (B, H_LRU)))
  a, fa = rz.unroll(cell, p, xs[:, :12], initial_carry=h0, resets=resets)
  b, fb = rz.unroll(cell, p, xs[:, :12], initial_carry=h0, resets=resets, impl="scan")
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  fresh, _ = rz.unroll(cell, p, xs[:1, 5:12], initial_carry=rz.HiddenCarry(h0.h[:1]))
  np.testing.assert_allclose(a[0, 5:], fresh[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("make,message", [
    (lambda: rz.LRU(5), "hidden_size must be even for the LRU"),
    (lambda: rz.LRU(4, r_min=0.99, r_max=0.9), "need 0 <= r_min < r_max <= 1, got r_min=0.99"),
    (lambda: rz.LRU(4, max_phase=0.0), "max_phase must be in (0, 2 pi], got 0.0"),
    (lambda: rz.make_cell("lru", 4, forget_bias=1.0), "cell 'lru' does not take the options ['forget_bias']"),
])
def test_lru_errors(make, message):
  with pytest.raises(ValueError) as e:
    make()
  assert message in str(e.value)
  cell = rz.LRU(4)
  p = cell.init(jax.random.key(0), 2)
  with pytest.raises(ValueError, match='needs log_coefficients, which LRU does not have'):
    rz.unroll(cell, p, jnp.ones((1, 3, 2)), impl="parallel_log")
