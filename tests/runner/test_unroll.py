"""The runner and what is built on it: values, gradients, semantics, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_zoo as rz
from zoo_helpers import make, randomize

B, T, I, H = 3, 7, 4, 5


def setup(name, key=0, dtype=jnp.float32, **kw):
  cell = make(name, H, param_dtype=dtype, dtype=dtype, **kw)
  p = randomize(cell.init(jax.random.key(key), I), jax.random.key(key + 1), 0.3)
  xs = jax.random.normal(jax.random.key(key + 2), (B, T, I), dtype)
  return cell, p, xs


def assert_trees_close(a, b, **kw):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, **kw), a, b)


@pytest.mark.parametrize("options", [
    {}, {"reverse": True}, {"lengths": [7, 3, 0]},
    {"lengths": [7, 3, 0], "reverse": True}, {"time_major": True},
])
def test_scan_equals_python_loop(cell_name, options):
  cell, p, xs = setup(cell_name)
  kw = dict(options)
  if "lengths" in kw:
    kw["lengths"] = jnp.array(kw["lengths"])
  if kw.get("time_major"):
    xs = jnp.swapaxes(xs, 0, 1)
  got = rz.unroll_with_carries(cell, p, xs, **kw)
  want = rz.python_unroll_with_carries(cell, p, xs, **kw)
  assert_trees_close(got, want, rtol=1e-5, atol=1e-6)


def test_loop_reference_is_a_loop_of_steps():
  """python_unroll itself against hand-written calls of cell.step."""
  cell, p, xs = setup("lstm")
  carry = cell.initial_carry((B,))
  ys = []
  for t in range(T):
    carry, y = cell.step(p, carry, xs[:, t])
    ys.append(y)
  got_ys, got_carry = rz.python_unroll(cell, p, xs)
  np.testing.assert_allclose(got_ys, jnp.stack(ys, 1), rtol=1e-5, atol=1e-6)
  assert_trees_close(got_carry, carry, rtol=1e-5, atol=1e-6)


def test_lengths_semantics_by_hand():
  cell, p, xs = setup("gru_cudnn")
  lengths = jnp.array([7, 3, 0])
  ys, carry, carries = rz.unroll_with_carries(cell, p, xs, lengths=lengths)
  # Example 1 (length 3) equals running its first 3 steps alone (through
  # the scan runner, as lengths are; the native kernel differs in the last
  # bits).
  ys1, c1 = rz.unroll(cell, p, xs[1:2, :3], impl="fused")
  np.testing.assert_allclose(ys[1, :3], ys1[0], rtol=1e-6)
  np.testing.assert_array_equal(ys[1, 3:], 0.0)
  np.testing.assert_allclose(carry.h[1], c1.h[0], rtol=1e-6)
  # Past the length, the carry stays at its last valid value.
  np.testing.assert_allclose(carries.h[1, 3:], jnp.broadcast_to(c1.h[0], (4, H)), rtol=1e-6)
  # Length 0: zero outputs and the initial carry.
  np.testing.assert_array_equal(ys[2], 0.0)
  np.testing.assert_array_equal(carry.h[2], 0.0)
  # A custom initial carry is returned untouched for length 0.
  init = rz.HiddenCarry(jnp.full((B, H), 0.25))
  _, carry = rz.unroll(cell, p, xs, lengths=lengths, initial_carry=init)
  np.testing.assert_array_equal(carry.h[2], 0.25)


def test_reverse_within_lengths_by_hand():
  x = jnp.arange(5.0)[:, None, None] * jnp.ones((1, 2, 1))  # [T=5, B=2, 1]
  out = rz.reverse_within_lengths(x, jnp.array([5, 3]))
  np.testing.assert_array_equal(out[:, 0, 0], [4, 3, 2, 1, 0])
  np.testing.assert_array_equal(out[:, 1, 0], [2, 1, 0, 3, 4])
  np.testing.assert_array_equal(rz.reverse_within_lengths(out, jnp.array([5, 3])), x)


def test_reverse_runs_each_sequence_from_its_own_end():
  cell, p, xs = setup("lstm")
  lengths = jnp.array([7, 4, 1])
  ys, carry = rz.unroll(cell, p, xs, lengths=lengths, reverse=True)
  for b, L in enumerate([7, 4, 1]):
    ref_ys, ref_c = rz.unroll(cell, p, xs[b:b + 1, :L][:, ::-1])
    np.testing.assert_allclose(ys[b, :L], ref_ys[0, ::-1], rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(ys[b, L:], 0.0)
    np.testing.assert_allclose(carry.c[b], ref_c.c[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("merge", ["concat", "sum"])
def test_bidirectional(merge):
  cell = rz.GRU(H)
  kf, kb = jax.random.split(jax.random.key(0))
  p = {"forward": cell.init(kf, I), "backward": cell.init(kb, I)}
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  lengths = jnp.array([7, 5, 2])
  ys, (cf, cb) = rz.bidirectional(cell, p, xs, lengths=lengths, merge=merge)
  yf, cf_ref = rz.unroll(cell, p["forward"], xs, lengths=lengths)
  yb, cb_ref = rz.unroll(cell, p["backward"], xs, lengths=lengths, reverse=True)
  want = jnp.concatenate([yf, yb], -1) if merge == "concat" else yf + yb
  np.testing.assert_allclose(ys, want, rtol=1e-6)
  np.testing.assert_allclose(cf.h, cf_ref.h)
  np.testing.assert_allclose(cb.h, cb_ref.h)
  # The backward direction's final carry is at t=0 of each sequence: it has
  # seen every valid step. Its output at t=0 equals that carry.
  np.testing.assert_allclose(yb[:, 0], cb.h, rtol=1e-6)


def test_stack_equals_layer_by_layer():
  stack = rz.StackedRNN.of(rz.LSTM(H), num_layers=3)
  p = stack.init(jax.random.key(0), I)
  assert [p[f"layer_{i}"]["w_ih"].shape[0] for i in range(3)] == [I, H, H]
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  ys, carries = stack.apply(p, xs)
  h = xs
  for i in range(3):
    h, c = rz.unroll(rz.LSTM(H), p[f"layer_{i}"], h)
    assert_trees_close(carries[i], c, rtol=1e-6)
  np.testing.assert_allclose(ys, h, rtol=1e-6)


@pytest.mark.parametrize("options", [
    {}, {"lengths": [7, 3, 0]}, {"reverse": True, "lengths": [7, 3, 0]},
    {"resets": True}, {"time_major": True}])
def test_a_stack_is_a_cell_stepped_or_run_layer_by_layer(options):
  """As Haiku's DeepRNN is a core: the runner takes a stack (layer by
  layer, each layer's own fast path) and gives what stepping every layer
  per time step gives (the Python loop over ``stack.step``)."""
  stack = rz.StackedRNN((rz.LSTM(H), rz.GRU(H + 1), rz.SimpleRNN(H)))
  assert isinstance(stack, rz.Cell) and stack.hidden_size == H
  p = randomize(stack.init(jax.random.key(0), I), jax.random.key(1), 0.3)
  xs = jax.random.normal(jax.random.key(2), (B, T, I))
  kw = dict(options)
  if "lengths" in kw:
    kw["lengths"] = jnp.array(kw["lengths"])
  if kw.get("resets"):
    kw["resets"] = jnp.zeros((B, T), bool).at[:, 4].set(True)
  if kw.get("time_major"):
    xs = jnp.swapaxes(xs, 0, 1)
  ys, carries = jax.jit(lambda p, xs: rz.unroll(stack, p, xs, **kw))(p, xs)
  if "resets" in kw:  # every layer restarts from zeros at t=4
    first, _ = rz.python_unroll(stack, p, xs[:, :4])
    rest, want_carries = rz.python_unroll(stack, p, xs[:, 4:])
    want_ys = jnp.concatenate([first, rest], axis=1)
  else:
    want_ys, want_carries = rz.python_unroll(stack, p, xs, **kw)
  np.testing.assert_allclose(ys, want_ys, rtol=1e-5, atol=1e-6)
  assert_trees_close(carries, want_carries, rtol=1e-5, atol=1e-6)
  # The cell protocol's hoisted first-layer projection steps the same.
  c0 = stack.initial_carry((B,))
  x0 = xs[0] if kw.get("time_major") else xs[:, 0]
  assert_trees_close(stack.step_projected(p, c0, stack.input_projection(p, x0)),
                     stack.step(p, c0, x0), rtol=1e-6)


def test_a_stack_as_a_cell_checks_its_params_probes_and_refusals():
  stack = rz.StackedRNN.of(rz.GRU(H), 2, dropout_rate=0.5)
  p = stack.init(jax.random.key(0), I)
  stack.check_params(p, I)
  assert stack.input_size_of(p) == I
  with pytest.raises(ValueError, match=r"params\['w_ih'\] of GRU must have shape"):
    stack.check_params(p, I + 1)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  # The probe of unroll(stack) is the last layer's dL/dh_t; dropout follows
  # the key, as stack.apply does.
  probe = jnp.zeros((B, T, H))
  loss = lambda q, k: jnp.sum(rz.unroll(stack, p, xs, hidden_probes=q, key=k)[0] ** 2)
  g = jax.grad(loss)(probe, jax.random.key(3))
  want = jax.grad(lambda q: jnp.sum(stack.apply(
      p, xs, hidden_probes=(None, q), key=jax.random.key(3))[0] ** 2))(probe)
  np.testing.assert_allclose(g, want, rtol=1e-6)
  assert not np.allclose(loss(probe, jax.random.key(3)), loss(probe, None))
  with pytest.raises(ValueError, match="unroll_with_carries takes one cell"):
    rz.unroll_with_carries(stack, p, xs)
  with pytest.raises(ValueError, match="explain_impl takes one cell"):
    rz.explain_impl(stack, p, xs)
  bi = rz.StackedRNN.of(rz.GRU(H), 1, bidirectional=True)
  with pytest.raises(ValueError, match="reverse=True with a bidirectional stack"):
    rz.unroll(bi, bi.init(jax.random.key(0), I), xs, reverse=True)
  with pytest.raises(ValueError, match="deterministic must be None, True or False"):
    rz.unroll(rz.GRU(H), p["layer_0"], xs, deterministic="yes")


def test_bidirectional_stack_shapes_and_values():
  stack = rz.StackedRNN.of(rz.GRU(H), 2, bidirectional=True)
  p = stack.init(jax.random.key(0), I)
  assert p["layer_1"]["forward"]["w_ih"].shape == (2 * H, 3 * H)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  ys, carries = stack.apply(p, xs)
  h0, _ = rz.bidirectional(rz.GRU(H), p["layer_0"], xs)
  h1, c1 = rz.bidirectional(rz.GRU(H), p["layer_1"], h0)
  np.testing.assert_allclose(ys, h1, rtol=1e-6)
  assert ys.shape == (B, T, 2 * H) and stack.output_size == 2 * H


def test_stack_dropout_between_layers():
  stack = rz.StackedRNN.of(rz.SimpleRNN(H), 2, dropout_rate=0.5)
  p = stack.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  det, _ = stack.apply(p, xs, deterministic=True)
  a, _ = stack.apply(p, xs, key=jax.random.key(5))
  b, _ = stack.apply(p, xs, key=jax.random.key(5))
  c, _ = stack.apply(p, xs, key=jax.random.key(6))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c) and not np.allclose(a, det)
  # Dropout acts only between layers: the first layer sees xs unchanged.
  h0, _ = rz.unroll(rz.SimpleRNN(H), p["layer_0"], xs)
  mask = jax.random.bernoulli(jax.random.fold_in(jax.random.key(5), 1), 0.5, h0.shape)
  want, _ = rz.unroll(rz.SimpleRNN(H), p["layer_1"], jnp.where(mask, h0 / 0.5, 0.0))
  np.testing.assert_allclose(a, want, rtol=1e-6)
  # The zoo's rule: without a key the default is deterministic; asked for
  # dropout without a key is an error.
  np.testing.assert_array_equal(stack.apply(p, xs)[0], det)
  with pytest.raises(ValueError, match="key is required for dropout_rate=0.5"):
    stack.apply(p, xs, deterministic=False)


@pytest.mark.parametrize("remat", [True, 3, 7, 10])
@pytest.mark.parametrize("unroll", [1, 3])
def test_remat_and_unroll_match_plain(remat, unroll):
  cell, p, xs = setup("lstm")
  lengths = jnp.array([7, 5, 2])

  def loss(p, xs, **kw):
    ys, c = rz.unroll(cell, p, xs, lengths=lengths, **kw)
    return jnp.sum(ys ** 2) + jnp.sum(c.c)

  v0, g0 = jax.value_and_grad(loss, (0, 1))(p, xs)
  v1, g1 = jax.value_and_grad(loss, (0, 1))(p, xs, remat=remat, unroll=unroll)
  np.testing.assert_allclose(v0, v1, rtol=1e-6)
  assert_trees_close(g0, g1, rtol=1e-5, atol=1e-7)


def test_gradients_match_finite_differences(cell_name, x64):
  cell, p, xs = setup(cell_name, dtype=jnp.float64)
  lengths = jnp.array([7, 4, 2])

  def loss(p, xs):
    ys, c = rz.unroll(cell, p, xs, lengths=lengths, reverse=True)
    return jnp.sum(jnp.sin(ys)) + jnp.sum(c.h ** 2)

  grads = jax.grad(loss, (0, 1))(p, xs)
  loss = jax.jit(loss)
  rng = np.random.default_rng(0)
  leaves, tree = jax.tree.flatten((p, xs))
  gleaves = jax.tree.leaves(grads)
  eps = 1e-6
  for li, (leaf, g) in enumerate(zip(leaves, gleaves)):
    for _ in range(4):
      idx = tuple(rng.integers(0, s) for s in leaf.shape)
      def shifted(d):
        new = list(leaves)
        new[li] = leaf.at[idx].add(d)
        return loss(*jax.tree.unflatten(tree, new))
      fd = (shifted(eps) - shifted(-eps)) / (2 * eps)
      np.testing.assert_allclose(g[idx], fd, rtol=1e-5, atol=1e-8)


def test_hidden_probes_give_dloss_dh():
  """The probe gradient at t equals d loss / d h_t, checked via the carries."""
  cell, p, xs = setup("gru_cho")
  probes = jnp.zeros((B, T, H))

  def loss(probes):
    ys, _ = rz.unroll(cell, p, xs, hidden_probes=probes)
    return jnp.sum(ys[:, -1] ** 2)

  g = jax.grad(loss)(probes)
  # At the last step: d/dh_T of sum h_T^2 = 2 h_T.
  ys, _ = rz.unroll(cell, p, xs)
  np.testing.assert_allclose(g[:, -1], 2 * ys[:, -1], rtol=1e-5)
  # One step back: dL/dh_{T-1} = J^T dL/dh_T with J = dh_T/dh_{T-1}.
  h_prev = ys[:, -2]
  def last(h):
    return cell.step(p, rz.HiddenCarry(h), xs[:, -1])[1]
  _, vjp = jax.vjp(last, h_prev)
  np.testing.assert_allclose(g[:, -2], vjp(2 * ys[:, -1])[0], rtol=1e-5)


def test_truncated_bptt_values_and_gradient_cut():
  cell, p, _ = setup("lstm")
  xs = jax.random.normal(jax.random.key(9), (B, 10, I))
  window = 4  # windows [0,4) [4,8) [8,10)
  ys, carry = rz.truncated_bptt(cell, p, xs, window=window)
  ys_full, c_full = rz.unroll(cell, p, xs)
  np.testing.assert_allclose(ys, ys_full, rtol=1e-5)
  assert_trees_close(carry, c_full, rtol=1e-5)

  def out_at(xs, t):
    return jnp.sum(rz.truncated_bptt(cell, p, xs, window=window)[0][:, t])

  g = jax.grad(out_at)(xs, 6)  # step 6 lies in window [4, 8)
  np.testing.assert_array_equal(g[:, :4], 0.0)  # exactly cut at t=4
  assert np.all(np.abs(g[:, 4:7]).sum(-1) > 0)
  np.testing.assert_array_equal(g[:, 7:], 0.0)  # causal
  # Inside the window it equals full BPTT restricted to the window.
  g_full = jax.grad(lambda x: jnp.sum(rz.unroll(cell, p, x)[0][:, 6]))(xs)
  np.testing.assert_allclose(g[:, 4:7], g_full[:, 4:7], rtol=1e-5)
  # The last, shorter window is cut at t=8 too.
  g = jax.grad(out_at)(xs, 9)
  np.testing.assert_array_equal(g[:, :8], 0.0)


def test_truncated_bptt_on_a_stack():
  stack = rz.StackedRNN.of(rz.GRU(H), 2)
  p = stack.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (B, 9, I))
  ys, carries = rz.truncated_bptt(stack, p, xs, window=3)
  ys_full, c_full = stack.apply(p, xs)
  np.testing.assert_allclose(ys, ys_full, rtol=1e-5)
  g = jax.grad(lambda x: jnp.sum(rz.truncated_bptt(stack, p, x, window=3)[0][:, 7]))(xs)
  np.testing.assert_array_equal(g[:, :6], 0.0)
  assert np.abs(g[:, 6:8]).sum() > 0


def test_jitted_runner_traces_once_per_shape():
  cell = rz.LSTM(H)
  p = cell.init(jax.random.key(0), I)
  traces = []

  @jax.jit
  def f(p, xs, lengths):
    traces.append(xs.shape)
    return rz.unroll(cell, p, xs, lengths=lengths)[0]

  for seed in range(3):
    f(p, jax.random.normal(jax.random.key(seed), (B, T, I)), jnp.array([1, 2, 3]))
  assert traces == [(B, T, I)]
  f(p, jnp.ones((B, T + 1, I)), jnp.array([1, 2, 3]))
  assert traces == [(B, T, I), (B, T + 1, I)]


@pytest.mark.parametrize("call,message", [
    (lambda c, p: rz.unroll(c, p, jnp.ones((T, I))),
     "xs must have rank 3 [batch, time, features], got shape (7, 4)"),
    (lambda c, p: rz.unroll(c, p, jnp.ones((B, T, I + 1))),
     "xs has feature size 5 but params expect input_size 4"),
    (lambda c, p: rz.unroll(c, p, jnp.ones((B, T, I), jnp.int32)),
     "xs must be a floating array, got dtype int32"),
    (lambda c, p: rz.unroll(c, p, jnp.ones((B, T, I)), lengths=jnp.array([1, -1, 2])),
     "lengths must lie in [0, time=7], got [-1]"),
    (lambda c, p: rz.unroll(c, p, jnp.ones((B, T, I)), lengths=jnp.array([1, 8, 2])),
     "lengths must lie in [0, time=7], got [8]"),
    (lambda c, p: rz.unroll(c, p, jnp.ones((B, T, I)), lengths=jnp.array([1.0, 2.0, 3.0])),
     "lengths must be integers, got dtype float32"),
    (lambda c, p: rz.unroll(c, p, jnp.ones((B, T, I)), lengths=jnp.array([1, 2])),
     "lengths must have shape [batch]=(3,), got (2,)"),
    (lambda c, p: rz.unroll(c, p, jnp.ones((B, T, I)), remat="sometimes"),
     "remat must be False, True/'step', or a positive chunk size, got 'sometimes'"),
    (lambda c, p: rz.unroll(c, p, jnp.ones((B, T, I)), unroll=0),
     "unroll must be a positive int or bool, got 0"),
    (lambda c, p: rz.unroll(c, {"w_ih": p["w_ih"]}, jnp.ones((B, T, I))),
     "params of LSTM miss keys ['b', 'w_hh']"),
    (lambda c, p: rz.unroll(c, p | {"w_hh": jnp.ones((H, H))}, jnp.ones((B, T, I))),
     "params['w_hh'] of LSTM must have shape (5, 20), got (5, 5)"),
    (lambda c, p: rz.unroll(c, p, jnp.ones((B, T, I)), initial_carry=rz.HiddenCarry(jnp.zeros((B, H)))),
     "initial_carry must be a LSTMCarry for LSTM, got HiddenCarry"),
    (lambda c, p: rz.unroll(c, p, jnp.ones((B, T, I)), initial_carry=c.initial_carry((B + 1,))),
     "initial_carry.h must have shape (3, 5), got (4, 5)"),
    (lambda c, p: rz.unroll("lstm", p, jnp.ones((B, T, I))),
     "cell must be an rnn_zoo cell"),
    (lambda c, p: rz.bidirectional(c, p, jnp.ones((B, T, I))),
     "params of a bidirectional layer must be a dict with keys ['backward', 'forward']"),
    (lambda c, p: rz.bidirectional(c, {"forward": p, "backward": p}, jnp.ones((B, T, I)), merge="max"),
     "merge must be one of ['concat', 'sum'], got 'max'"),
    (lambda c, p: rz.truncated_bptt(c, p, jnp.ones((B, T, I)), window=0),
     "window must be a positive int, got 0"),
    (lambda c, p: rz.StackedRNN.of(c, 0), "num_layers must be a positive int, got 0"),
    (lambda c, p: rz.StackedRNN.of(c, 2, dropout_rate=1.0), "dropout_rate must be in [0, 1), got 1.0"),
    (lambda c, p: rz.StackedRNN.of(c, 2).apply({"layer_0": p}, jnp.ones((B, T, I))),
     "params of StackedRNN must have keys ['layer_0', 'layer_1'], got ['layer_0']"),
])
def test_bad_input_messages(call, message):
  cell = rz.LSTM(H)
  p = cell.init(jax.random.key(0), I)
  with pytest.raises(ValueError) as e:
    call(cell, p)
  assert message in str(e.value)


def test_errors_raise_before_tracing_under_jit():
  cell = rz.GRU(H)
  p = cell.init(jax.random.key(0), I)
  f = jax.jit(lambda xs: rz.unroll(cell, p, xs)[0])
  with pytest.raises(ValueError, match="feature size 3"):
    f(jnp.ones((B, T, 3)))


@pytest.mark.parametrize("name", ["rnn_tanh", "irnn", "lstm", "gru_cudnn"])
@pytest.mark.parametrize("options", [{}, {"lengths": [7, 3, 0]},
                                     {"lengths": [6, 7, 1], "reverse": True},
                                     {"probes": True},
                                     {"probes": True, "lengths": [7, 2, 5], "reverse": True}])
def test_fused_backward_equals_autodiff(name, options, x64):
  cell, p, xs = setup(name, dtype=jnp.float64)
  kw = dict(options)
  if "lengths" in kw:
    kw["lengths"] = jnp.array(kw["lengths"])
  init = jax.tree.map(lambda a: 0.1 * jnp.ones_like(a), cell.initial_carry((B,)))
  r = jax.random.normal(jax.random.key(5), (B, T, H), jnp.float64)
  probes = jnp.zeros((B, T, H), jnp.float64) if kw.pop("probes", False) else None

  def loss(p, xs, init, probes, impl):
    ys, c = rz.unroll(cell, p, xs, initial_carry=init, impl=impl,
                      hidden_probes=probes, **kw)
    return jnp.sum(ys * r) + sum(jnp.sum(jnp.cos(a)) for a in c)

  v_f, g_f = jax.value_and_grad(loss, (0, 1, 2, 3))(p, xs, init, probes, "fused")
  v_p, g_p = jax.value_and_grad(loss, (0, 1, 2, 3))(p, xs, init, probes, "scan")
  np.testing.assert_allclose(v_f, v_p, rtol=1e-12)
  assert_trees_close(g_f, g_p, rtol=1e-10, atol=1e-12)


def test_fused_refuses_what_it_cannot_do():
  cell = rz.GRU(H, variant="cho")
  p = cell.init(jax.random.key(0), I)
  with pytest.raises(ValueError, match="impl='fused' cannot run here: the fused "
                     "backward pass needs a PointwiseCell"):
    rz.unroll(cell, p, jnp.ones((B, T, I)), impl="fused")


# -- hardening: no silent wrong results ------------------------------------------

def test_python_reference_probes_and_carries_time_major():
  """The reference runs probes, reversal and lengths on its own; the runner
  agrees (gradients of the probes included)."""
  cell, p, xs = setup("lstm")
  lengths = jnp.array([7, 2, 5])
  probes = jax.random.normal(jax.random.key(9), (B, T, H)) * 0.1
  for reverse in (False, True):
    got = rz.unroll_with_carries(cell, p, xs, lengths=lengths, reverse=reverse,
                                 hidden_probes=probes)
    want = rz.python_unroll_with_carries(cell, p, xs, lengths=lengths,
                                         reverse=reverse, hidden_probes=probes)
    assert_trees_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["lstm", "gru_cudnn", "gru_cho", "rnn_tanh"])
@pytest.mark.parametrize("impl", ["auto", "scan"])
def test_nan_in_padding_reaches_neither_values_nor_gradients(name, impl):
  cell, p, xs = setup(name)
  lengths = jnp.array([7, 3, 0])
  pad = jnp.arange(T)[None, :, None] >= lengths[:, None, None]
  dirty = jnp.where(pad, jnp.nan, xs)
  clean = jnp.where(pad, 0.0, xs)

  def loss(p, xs, reverse):
    ys, carry = rz.unroll(cell, p, xs, lengths=lengths, reverse=reverse, impl=impl)
    return jnp.sum(ys ** 2) + jnp.sum(carry.h)

  for reverse in (False, True):
    f = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), static_argnums=2)
    (v_dirty, (gp_dirty, gx_dirty)) = f(p, dirty, reverse)
    (v_clean, (gp_clean, gx_clean)) = f(p, clean, reverse)
    assert np.isfinite(float(v_dirty))
    np.testing.assert_allclose(v_dirty, v_clean, rtol=1e-6)
    assert_trees_close(gp_dirty, gp_clean, rtol=1e-6)
    np.testing.assert_array_equal(gx_dirty[pad[..., 0]], 0.0)


def test_integer_initial_carry_is_an_error():
  cell, p, xs = setup("gru_cudnn")
  with pytest.raises(ValueError, match="initial_carry.h must be a floating array .* got dtype int32"):
    rz.unroll(cell, p, xs, initial_carry=rz.HiddenCarry(jnp.zeros((B, H), jnp.int32)))
  with pytest.raises(ValueError, match="dtype must be a floating dtype"):
    cell.initial_carry((B,), dtype=jnp.int32)


def test_truncated_bptt_on_an_empty_sequence():
  cell, p, _ = setup("lstm")
  ys, carry = rz.truncated_bptt(cell, p, jnp.zeros((B, 0, I)), window=3)
  want_ys, want_carry = rz.unroll(cell, p, jnp.zeros((B, 0, I)))
  assert ys.shape == want_ys.shape == (B, 0, H)
  assert_trees_close(carry, want_carry)
  stack = rz.StackedRNN.of(cell, 2)
  ys, carries = rz.truncated_bptt(stack, stack.init(jax.random.key(0), I),
                                  jnp.zeros((B, 0, I)), window=3)
  assert ys.shape == (B, 0, H) and len(carries) == 2


@pytest.mark.parametrize("how", ["jvp", "jacfwd", "linearize", "hessian"])
def test_forward_mode_autodiff_through_the_runner(how):
  """jvp, jacfwd and hessian work with default arguments (the runner falls
  back to the plain scan); jax.linearize's linear function needs impl="scan"
  (as unroll's docstring says). All agree with reverse mode."""
  cell, p, xs = setup("lstm")
  stack = rz.StackedRNN.of(cell, 2)
  sp = stack.init(jax.random.key(3), I)
  kw = {"impl": "scan"} if how == "linearize" else {}
  layer = rz.nn.RNN(cell, num_layers=2, **kw)
  variables = layer.init(jax.random.key(4), xs)
  fns = {
      "unroll": lambda x: jnp.sum(rz.unroll(cell, p, x, **kw)[0] ** 2),
      "stack": lambda x: jnp.sum(stack.apply(sp, x, **kw)[0] ** 2),
      "flax": lambda x: jnp.sum(layer.apply(variables, x) ** 2),
  }
  x = xs[:1, :3]
  for name, f in fns.items():
    g = jax.grad(f)(x)
    if how == "jvp":
      _, t = jax.jvp(f, (x,), (jnp.ones_like(x),))
      np.testing.assert_allclose(t, jnp.sum(g), rtol=1e-4, err_msg=name)
    elif how == "jacfwd":
      np.testing.assert_allclose(jax.jacfwd(f)(x), g, rtol=1e-4, atol=1e-6, err_msg=name)
    elif how == "linearize":
      _, lin = jax.linearize(f, x)
      np.testing.assert_allclose(lin(jnp.ones_like(x)), jnp.sum(g), rtol=1e-4, err_msg=name)
    else:
      hess = np.asarray(jax.hessian(f)(x)).reshape(x.size, x.size)
      np.testing.assert_allclose(hess, hess.T, rtol=1e-3, atol=1e-5, err_msg=name)
      col = jax.jvp(jax.grad(f), (x,), (jnp.zeros_like(x).at[0, 0, 0].set(1.0),))[1]
      np.testing.assert_allclose(hess[:, 0], np.asarray(col).ravel(), rtol=1e-4, atol=1e-6)
  with pytest.raises(ValueError, match="impl='fused' does not support forward-mode autodiff"):
    jax.jvp(lambda x: jnp.sum(rz.unroll(cell, p, x, impl="fused")[0]), (x,), (x,))


def test_a_generic_cell_needs_only_init_carry_and_step():
  """A Cell that implements only init, initial_carry and step runs through
  the runner, stacks, truncated BPTT and decoding."""
  import dataclasses

  @dataclasses.dataclass(frozen=True)
  class Leaky(rz.Cell):
    def init(self, key, input_size):
      return {"w": jax.random.normal(key, (input_size, self.hidden_size)) * 0.1}

    def initial_carry(self, batch_shape=(), dtype=None):
      return rz.HiddenCarry(self._zeros(batch_shape, dtype))

    def step(self, params, carry, x):
      h = 0.5 * carry.h + jnp.tanh(x @ params["w"])
      return rz.HiddenCarry(h), h

  cell = Leaky(4)
  p = cell.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  lengths = jnp.array([7, 4, 1])
  assert_trees_close(rz.unroll(cell, p, xs, lengths=lengths, reverse=True),
                     rz.python_unroll(cell, p, xs, lengths=lengths, reverse=True),
                     rtol=1e-5, atol=1e-6)
  stack = rz.StackedRNN.of(cell, 2)
  sp = stack.init(jax.random.key(2), I)
  ys, _ = rz.truncated_bptt(stack, sp, xs, window=3)
  carry = stack.initial_carry((B,))
  for t in range(T):
    carry, y = stack.step(sp, carry, xs[:, t])
  np.testing.assert_allclose(y, ys[:, -1], rtol=1e-5, atol=1e-6)
  lm = rz.models.CharLM(vocab_size=6, cell=cell, num_layers=1)
  lp = lm.init(key=jax.random.key(3))
  logits, _ = lm.apply(lp, jnp.array([[1, 2, 3]]))
  c, l0 = lm.step(lp, lm.initial_carry(1), jnp.array([1]))
  np.testing.assert_allclose(l0, logits[:, 0], rtol=1e-5, atol=1e-6)


# -- learnable initial state ---------------------------------------------------

@pytest.mark.parametrize("bidirectional", [False, True])
def test_learned_initial_carry_is_a_broadcast_param(bidirectional):
  """learn_initial_carry: params["initial_carry"] (zeros at init, no batch
  dims) is every example's carry at t=0; its gradient is the batch sum of
  the explicit initial carry's; a jitted optax step moves it."""
  import optax  # pylint: disable=g-import-not-at-top
  stack = rz.StackedRNN.of(rz.LSTM(5), 2, bidirectional=bidirectional,
                           learn_initial_carry=True)
  params = stack.init(jax.random.key(0), 3)
  assert jax.tree.leaves(params["initial_carry"])[0].shape == (5,)
  assert all(float(jnp.abs(l).max()) == 0 for l in jax.tree.leaves(params["initial_carry"]))
  params["initial_carry"] = jax.tree.map(
      lambda l: jax.random.normal(jax.random.key(1), l.shape), params["initial_carry"])
  xs = jax.random.normal(jax.random.key(2), (4, 6, 3))
  carry0 = stack.initial_carry((4,), params=params)
  ys, _ = stack.apply(params, xs)
  want, _ = stack.apply(params, xs, initial_carry=carry0)
  np.testing.assert_allclose(ys, want, rtol=1e-6)
  zero, _ = stack.apply(params, xs, initial_carry=stack._zero_carries((4,), None))
  assert float(jnp.abs(ys - zero).max()) > 1e-3  # the learned state is used
  loss = lambda p, c: jnp.sum(jnp.sin(stack.apply(p, xs, initial_carry=c)[0]))
  g_learned = jax.grad(lambda p: loss(p, None))(params)["initial_carry"]
  g_explicit = jax.grad(loss, argnums=1)(params, carry0)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b.sum(0), rtol=1e-5, atol=1e-6),
               g_learned, g_explicit)
  opt = optax.adam(1e-2)

  @jax.jit
  def train_step(p, s):
    g = jax.grad(lambda p: loss(p, None))(p)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s

  new, _ = train_step(params, opt.init(params))
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()),
                       new["initial_carry"], params["initial_carry"])
  assert all(m > 0 for m in jax.tree.leaves(moved))


def test_learned_initial_carry_with_resets_tbptt_module_and_errors():
  stack = rz.StackedRNN.of(rz.GRU(4), 1, learn_initial_carry=True)
  params = stack.init(jax.random.key(0), 2)
  params["initial_carry"] = (rz.HiddenCarry(jnp.arange(4.0) / 4),)
  xs = jax.random.normal(jax.random.key(1), (2, 8, 2))
  # A reset restarts from the learned state: the rest equals a fresh run.
  resets = jnp.zeros((2, 8), bool).at[0, 3].set(True)
  ys, _ = stack.apply(params, xs, resets=resets)
  fresh, _ = stack.apply(params, xs[:1, 3:])
  np.testing.assert_allclose(ys[0, 3:], fresh[0], rtol=1e-5, atol=1e-6)
  # Truncated BPTT starts from it too.
  tb, _ = rz.truncated_bptt(stack, params, xs, window=3)
  np.testing.assert_allclose(tb, stack.apply(params, xs)[0], rtol=1e-5, atol=1e-6)
  # The Flax module's option.
  layer = rz.nn.RNN(rz.GRU(4), learn_initial_carry=True)
  variables = layer.init(jax.random.key(0), xs)
  assert "initial_carry" in variables["params"]["stack"]
  with pytest.raises(ValueError, match=r"learn_initial_carry=True: pass params="):
    stack.initial_carry((2,))
  with pytest.raises(ValueError, match=r"must have keys \['layer_0', 'initial_carry'\]"):
    stack.apply({"layer_0": params["layer_0"]}, xs)


def test_remat_memory_is_bounded_in_T():
  """remat=K keeps the carry at each chunk boundary and one chunk's
  intermediates, and projects each chunk's inputs inside the checkpoint:
  XLA's temporary memory for a gradient (many-to-one loss) barely grows
  from T=1024 to T=8192, while the plain runner's grows with T."""
  cell = rz.LSTM(64)
  p = cell.init(jax.random.key(0), 4)

  def temp_mib(T, remat):
    xs = jax.ShapeDtypeStruct((2, T, 4), jnp.float32)
    f = jax.jit(jax.grad(lambda p, xs: jnp.sum(rz.unroll(cell, p, xs, remat=remat)[1].h)))
    return f.lower(p, xs).compile().memory_analysis().temp_size_in_bytes / 2 ** 20

  plain = [temp_mib(T, False) for T in (1024, 8192)]
  chunked = [temp_mib(T, 32) for T in (1024, 8192)]
  assert plain[1] > 6 * plain[0], plain
  assert chunked[1] < 2 * chunked[0], chunked
  assert chunked[1] < plain[1] / 10, (chunked, plain)


def test_a_narrower_initial_carry_is_refused():
  """A float16 initial carry turned the whole float32 unroll float16."""
  cell = rz.LSTM(4)
  params = cell.init(jax.random.key(0), 3)
  xs = jnp.ones((2, 5, 3))
  with pytest.raises(rz.UserError, match=r"initial_carry.h has dtype float16, narrower "
                     r"than the float32 carry of LSTM: the whole unroll would run in "
                     r"float16; cast it \(.astype\(float32\)\)"):
    rz.unroll(cell, params, xs, initial_carry=cell.initial_carry((2,), jnp.float16))
  ys, carry = rz.unroll(cell, params, xs, initial_carry=cell.initial_carry((2,), jnp.float32))
  assert ys.dtype == carry.h.dtype == jnp.float32
