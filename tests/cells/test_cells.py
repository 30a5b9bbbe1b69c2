"""Each cell's step against a NumPy transcription of its documented equations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import rnn_zoo as rz
from zoo_helpers import CELL_FACTORIES, make, randomize


def sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def numpy_step(cell, p, carry, x):
  p = {k: np.asarray(v, np.float64) for k, v in p.items()}
  x = np.asarray(x, np.float64)
  h = np.asarray(carry.h, np.float64)
  H = cell.hidden_size
  if isinstance(cell, rz.SimpleRNN):
    pre = x @ p["w_ih"] + h @ p["w_hh"] + p["b"]
    h = np.tanh(pre) if cell.activation == "tanh" else np.maximum(pre, 0)
    return (h,)
  if isinstance(cell, rz.LSTM):
    c = np.asarray(carry.c, np.float64)
    z = x @ p["w_ih"] + h @ p["w_hh"] + p["b"]
    i, f, g, o = (z[:, k * H:(k + 1) * H] for k in range(4))
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return (sigmoid(o) * np.tanh(c), c)
  if isinstance(cell, rz.ExpRNN):  # W = expm(A - A^T) by SciPy, then modReLU
    z = x @ p["w_ih"] + h @ scipy.linalg.expm(p["skew"] - p["skew"].T)
    return (np.sign(z) * np.maximum(np.abs(z) + p["b"], 0.0),)
  if isinstance(cell, rz.IndRNN):
    bound = cell.magnitude ** (1.0 / cell.t_max)
    pre = x @ p["w_ih"] + p["b"] + np.clip(p["u"], -bound, bound) * h
    return (np.maximum(pre, 0.0) if cell.activation == "relu" else np.tanh(pre),)
  if isinstance(cell, rz.CoRNN):  # the paper's IMEX step: velocity first
    z = np.asarray(carry.z, np.float64)
    force = (np.tanh(x @ p["w_ih"] + h @ p["w_hh"] + z @ p["w_hz"] + p["b"])
             - cell.gamma * h - cell.epsilon * z)
    z = z + cell.dt * force
    return (h + cell.dt * z, z)
  a = x @ p["w_ih"] + p["b"]
  blk = lambda m, k: m[..., k * H:(k + 1) * H]
  # Feng et al. 2024's g: x + 0.5 for x >= 0, sigmoid(x) below.
  g = lambda v: np.where(v >= 0, v + 0.5, sigmoid(v))
  if isinstance(cell, rz.MinGRU):
    z = sigmoid(blk(a, 0))
    return ((1 - z) * h + z * g(blk(a, 1)),)
  if isinstance(cell, rz.MinLSTM):
    f, i = sigmoid(blk(a, 0)), sigmoid(blk(a, 1))
    return (f / (f + i) * h + i / (f + i) * g(blk(a, 2)),)
  U = p["w_hh"]
  blk = lambda m, k: m[..., k * H:(k + 1) * H]
  r = sigmoid(blk(a, 0) + h @ blk(U, 0))
  z = sigmoid(blk(a, 1) + h @ blk(U, 1))
  if cell.variant == "cudnn":
    n = np.tanh(blk(a, 2) + r * (h @ blk(U, 2) + p["b_hn"]))
  else:
    n = np.tanh(blk(a, 2) + (r * h) @ blk(U, 2))
  return ((1 - z) * n + z * h,)


def test_step_matches_numpy_equations(cell_name):
  cell = make(cell_name)
  key = jax.random.key(0)
  p = randomize(cell.init(key, 3), jax.random.key(1))
  carry = jax.tree.map(
      lambda a: jax.random.normal(jax.random.key(2), a.shape),
      cell.initial_carry((4,)))
  x = jax.random.normal(jax.random.key(3), (4, 3))
  new, y = cell.step(p, carry, x)
  want = numpy_step(cell, p, carry, x)
  for got, ref in zip(new, want):
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(y, new.h)


@pytest.mark.parametrize("name,shapes", [
    ("rnn_tanh", {"w_ih": (3, 5), "w_hh": (5, 5), "b": (5,)}),
    ("lstm", {"w_ih": (3, 20), "w_hh": (5, 20), "b": (20,)}),
    ("gru_cudnn", {"w_ih": (3, 15), "w_hh": (5, 15), "b": (15,), "b_hn": (5,)}),
    ("gru_cho", {"w_ih": (3, 15), "w_hh": (5, 15), "b": (15,)}),
    ("mingru", {"w_ih": (3, 10), "b": (10,)}),
    ("minlstm", {"w_ih": (3, 15), "b": (15,)}),
    ("exprnn", {"w_ih": (3, 5), "skew": (5, 5), "b": (5,)}),
    ("indrnn", {"w_ih": (3, 5), "u": (5,), "b": (5,)}),
    ("cornn", {"w_ih": (3, 5), "w_hh": (5, 5), "w_hz": (5, 5), "b": (5,)}),
])
def test_param_names_and_shapes(name, shapes):
  p = make(name).init(jax.random.key(0), 3)
  assert {k: v.shape for k, v in p.items()} == shapes
  assert all(v.dtype == jnp.float32 for v in p.values())


def test_lstm_forget_bias_and_chrono():
  H = 6
  b = rz.LSTM(H, forget_bias=1.0).init(jax.random.key(0), 2)["b"]
  np.testing.assert_array_equal(b[H:2 * H], 1.0)
  np.testing.assert_array_equal(b[:H], 0.0)
  np.testing.assert_array_equal(b[2 * H:], 0.0)
  b0 = rz.LSTM(H, forget_bias=0.0).init(jax.random.key(0), 2)["b"]
  np.testing.assert_array_equal(b0, 0.0)
  # Chrono: b_f = log(u), u ~ U[1, T_max - 1]; b_i = -b_f.
  bc = rz.LSTM(1000, chrono_t_max=50).init(jax.random.key(0), 2)["b"]
  b_i, b_f = np.asarray(bc[:1000]), np.asarray(bc[1000:2000])
  np.testing.assert_array_equal(b_i, -b_f)
  u = np.exp(b_f)
  assert u.min() >= 1.0 - 1e-5 and u.max() <= 49.0 + 1e-4
  assert abs(u.mean() - 25.0) < 1.5  # mean of U[1, 49]


def test_orthogonal_and_identity_inits():
  H = 8
  w = rz.LSTM(H).init(jax.random.key(0), 3)["w_hh"]
  for k in range(4):
    blk = np.asarray(w[:, k * H:(k + 1) * H])
    np.testing.assert_allclose(blk.T @ blk, np.eye(H), atol=1e-5)
  p = rz.SimpleRNN.irnn(H).init(jax.random.key(0), 3)
  np.testing.assert_array_equal(p["w_hh"], np.eye(H))
  assert float(jnp.std(p["w_ih"])) < 0.01
  bound = 1 / np.sqrt(H)
  w = rz.SimpleRNN(H).init(jax.random.key(0), 3)["w_hh"]
  assert float(jnp.abs(w).max()) <= bound


def test_carry_types_and_shapes():
  c = rz.LSTM(7).initial_carry((2, 3))
  assert isinstance(c, rz.LSTMCarry) and c.h.shape == (2, 3, 7) and c.c.shape == (2, 3, 7)
  g = rz.GRU(7).initial_carry(4)
  assert isinstance(g, rz.HiddenCarry) and g.h.shape == (4, 7)


def test_cells_are_hashable_and_frozen():
  assert hash(rz.LSTM(4)) == hash(rz.LSTM(4))
  assert rz.GRU(4) != rz.GRU(4, variant="cho")
  with pytest.raises(Exception):
    rz.LSTM(4).hidden_size = 5


def test_bfloat16_compute_keeps_float32_params_and_carry():
  cell = rz.LSTM(8, dtype=jnp.bfloat16)
  p = cell.init(jax.random.key(0), 3)
  assert p["w_hh"].dtype == jnp.float32
  ys, c = rz.unroll(cell, p, jnp.ones((2, 4, 3)))
  assert ys.dtype == jnp.float32 and c.c.dtype == jnp.float32
  ref, _ = rz.unroll(rz.LSTM(8), p, jnp.ones((2, 4, 3)))
  np.testing.assert_allclose(ys, ref, atol=3e-2)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn", "mingru", "lru"])
def test_bfloat16_compute_trains_in_a_jitted_step(name):
  """The matmuls run in bfloat16 (the compiled program says so), the carry,
  accumulation and gradients stay float32 and within bfloat16's rounding of
  the float32 ones."""
  c32, c16 = rz.make_cell(name, 16), rz.make_cell(name, 16, dtype=jnp.bfloat16)
  p = c32.init(jax.random.key(0), 5)
  xs = jax.random.normal(jax.random.key(1), (4, 12, 5))
  r = jax.random.normal(jax.random.key(2), (4, 12, 16))
  grad = lambda cell: jax.jit(jax.grad(
      lambda p, x: jnp.sum(rz.unroll(cell, p, x)[0] * r), (0, 1)))
  assert "bf16" in grad(c16).lower(p, xs).as_text()
  assert "bf16" not in grad(c32).lower(p, xs).as_text()
  g16, g32 = grad(c16)(p, xs), grad(c32)(p, xs)
  for a, b in zip(jax.tree.leaves(g16), jax.tree.leaves(g32)):
    assert a.dtype == jnp.float32
    np.testing.assert_allclose(a, b, atol=2e-2 * float(jnp.abs(b).max()))
  _, carry = rz.unroll(c16, p, xs)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(carry))


@pytest.mark.parametrize("make_bad,message", [
    (lambda: rz.LSTM(0), "hidden_size must be a positive int, got 0"),
    (lambda: rz.LSTM(-3), "hidden_size must be a positive int, got -3"),
    (lambda: rz.GRU(4, variant="keras"), "variant must be one of ['cudnn', 'cho'], got 'keras'"),
    (lambda: rz.SimpleRNN(4, activation="sigmoid"), "activation must be one of ['tanh', 'relu', 'linear'], got 'sigmoid'"),
    (lambda: rz.LSTM(4, recurrent_init="zeros"), "recurrent_init must be one of"),
    (lambda: rz.LSTM(4, chrono_t_max=1), "chrono_t_max must be > 2, got 1"),
    (lambda: rz.LSTM(4, dtype=jnp.int32), "dtype must be a floating dtype"),
    (lambda: rz.LSTM(4).init(jax.random.key(0), 0), "input_size must be a positive int, got 0"),
    (lambda: rz.make_cell("transformer", 4), "cell must be one of ['rnn', 'irnn', 'lstm', 'gru', 'mingru', 'minlstm', 'lru', 'exprnn', 'indrnn', 'cornn'], got 'transformer'"),
    (lambda: rz.make_cell("gru", 4, forget_bias=1.0), "cell 'gru' does not take the options ['forget_bias']"),
    (lambda: rz.GRUCho(4, variant="cudnn"), "GRUCho is variant='cho', got variant='cudnn'"),
])
def test_bad_cell_options(make_bad, message):
  with pytest.raises(ValueError) as e:
    make_bad()
  assert message in str(e.value)


def test_make_cell():
  assert rz.make_cell("irnn", 3) == rz.SimpleRNN.irnn(3)
  assert rz.make_cell("lstm", 3, forget_bias=0.0) == rz.LSTM(3, forget_bias=0.0)


@pytest.mark.parametrize("name", ["rnn_tanh", "irnn", "lstm", "gru_cudnn"])
def test_closed_form_pointwise_vjp_equals_autodiff(name, x64):
  cell = make(name, param_dtype=jnp.float64, dtype=jnp.float64)
  p = randomize(cell.init(jax.random.key(0), 3), jax.random.key(1))
  small = {k: v for k, v in p.items() if k not in ("w_ih", "w_hh", "b")}
  ks = jax.random.split(jax.random.key(2), 6)
  G = cell.num_gates * cell.hidden_size
  carry = jax.tree.map(lambda a: jax.random.normal(ks[0], a.shape, jnp.float64),
                       cell.initial_carry((4,)))
  xp = jax.random.normal(ks[1], (4, G), jnp.float64)
  u = jax.random.normal(ks[2], (4, G), jnp.float64)
  dcarry = jax.tree.map(lambda a: jax.random.normal(ks[3], a.shape, jnp.float64), carry)
  dy = jax.random.normal(ks[4], (4, cell.hidden_size), jnp.float64)
  got = cell.pointwise_vjp(small, carry, xp, u, dcarry, dy)
  want = rz.PointwiseCell.pointwise_vjp(cell, small, carry, xp, u, dcarry, dy)
  assert len(jax.tree.leaves(got)) == len(jax.tree.leaves(want))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12), got, want)


@pytest.mark.parametrize("name", sorted(CELL_FACTORIES))
def test_step_refuses_integer_inputs_as_unroll_does(name):
  cell = make(name, hidden=3)
  params = cell.init(jax.random.key(0), 2)
  x = jnp.ones((4, 2), jnp.int32)
  with pytest.raises(rz.UserError, match="x must be a floating array, got dtype int32"):
    cell.step(params, cell.initial_carry((4,)), x)
  with pytest.raises(rz.UserError, match="xs must be a floating array, got dtype int32"):
    rz.unroll(cell, params, x[:, None])
  cell.step(params, cell.initial_carry((4,)), x.astype(jnp.float32))
