"""Soft and hard attention around a cell: the equations, weights summing to
one, the runner / stack / decoding paths, and REINFORCE's unbiasedness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_zoo as rz
from rnn_zoo import decoding
from rnn_zoo.models import attention_losses

B, T, I, L, D, H = 3, 5, 4, 6, 7, 8


def setup(mode="soft", cell=None, **kw):
  att = rz.AttentionCell.wrap(cell or rz.LSTM(H), num_locations=L, feature_size=D,
                              mode=mode, **kw)
  params = att.init(jax.random.key(0), I)
  feats = jax.random.normal(jax.random.key(1), (B, L, D))
  carry = att.with_features(params, att.initial_carry((B,)), feats,
                            key=jax.random.key(2) if mode == "hard" else None)
  xs = jax.random.normal(jax.random.key(3), (B, T, I))
  return att, params, feats, carry, xs


def sigmoid(x):
  return 1 / (1 + np.exp(-x))


def soft_look(p, feats, h):
  """``(alpha, z)`` of the module doc's equations, in float64, for query h."""
  a, h = np.asarray(feats, np.float64), np.asarray(h, np.float64)
  pa = {k: np.asarray(v, np.float64) for k, v in p["att"].items()}
  e = np.tanh(a @ pa["w_feat"] + pa["b"] + (h @ pa["w_h"])[:, None, :]) @ pa["v"]
  alpha = np.exp(e - e.max(-1, keepdims=True))
  alpha /= alpha.sum(-1, keepdims=True)
  beta = sigmoid(h @ np.asarray(p["gate"]["w"]) + float(p["gate"]["b"]))
  return alpha, beta[:, None] * np.einsum("bl,bld->bd", alpha, a)


def test_one_soft_step_matches_the_equations():
  att, p, feats, carry, xs = setup()
  carry = carry._replace(h=jax.random.normal(jax.random.key(4), (B, H)))
  new, y = att.step(p, carry, xs[:, 0])
  alpha, z = soft_look(p, feats, carry.h)
  np.testing.assert_allclose(new.alpha, alpha, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new.context, z, rtol=1e-5, atol=1e-6)
  # The wrapped cell read [x, z] from the previous h.
  inner = carry.inner._replace(h=carry.h)
  want_inner, want_y = att.cell.step(p["cell"], inner, jnp.concatenate(
      [xs[:, 0], jnp.asarray(z, jnp.float32)], -1))
  np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new.h, want_inner.h, rtol=1e-5, atol=1e-6)


def test_query_after_steps_the_cell_first_then_looks_with_the_new_h():
  att, p, feats, carry, xs = setup(query="after")
  carry = carry._replace(h=jax.random.normal(jax.random.key(4), (B, H)),
                         context=jax.random.normal(jax.random.key(5), (B, D)))
  new, y = att.step(p, carry, xs[:, 0])
  # The cell read [x_t, z_{t-1}] ...
  inner, want_y = att.cell.step(p["cell"], carry.inner._replace(h=carry.h),
                                jnp.concatenate([xs[:, 0], carry.context], -1))
  np.testing.assert_allclose(y, want_y, rtol=1e-5, atol=1e-6)
  # ... then attention looked with h_t: the soft step's equations at h_t.
  alpha, z = soft_look(p, feats, inner.h)
  np.testing.assert_allclose(new.alpha, alpha, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(new.context, z, rtol=1e-5, atol=1e-6)
  # So this step's map depends on this step's input (with "before" it cannot).
  other, _ = att.step(p, carry, xs[:, 1])
  assert not np.allclose(other.alpha, new.alpha)
  before, pb, _, carry_b, _ = setup()
  m1, _ = before.step(pb, carry_b, xs[:, 0])
  m2, _ = before.step(pb, carry_b, xs[:, 1])
  np.testing.assert_allclose(m1.alpha, m2.alpha)


@pytest.mark.parametrize("mode,query", [("soft", "before"), ("hard", "before"),
                                        ("soft", "after"), ("hard", "after")])
def test_weights_sum_to_one_and_the_runner_equals_the_loop(mode, query):
  att, p, _, carry, xs = setup(mode, query=query)
  lengths = jnp.array([5, 2, 0])
  got = rz.unroll_with_carries(att, p, xs, initial_carry=carry, lengths=lengths)
  want = rz.python_unroll_with_carries(att, p, xs, initial_carry=carry, lengths=lengths)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)
  alphas = got[2].alpha                                  # [B, T, L]: a map per step
  np.testing.assert_allclose(alphas.sum(-1), 1.0, rtol=1e-5)
  assert alphas.shape == (B, T, L)


def test_hard_attention_samples_one_location():
  att, p, feats, carry, xs = setup("hard", expectation_prob=0.0)
  _, _, carries = rz.unroll_with_carries(att, p, xs, initial_carry=carry)
  loc = np.asarray(carries.location)
  assert loc.min() >= 0 and loc.max() < L
  beta = jax.nn.sigmoid(jnp.concatenate([carry.h[:, None], carries.h[:, :-1]], 1)
                        @ p["gate"]["w"] + p["gate"]["b"])
  picked = jnp.take_along_axis(feats[:, None], loc[..., None, None], axis=2)[..., 0, :]
  np.testing.assert_allclose(carries.context, beta[..., None] * picked, rtol=1e-5, atol=1e-6)
  # The same key samples the same locations; another key others.
  again = rz.unroll_with_carries(att, p, xs, initial_carry=carry)[2].location
  np.testing.assert_array_equal(again, loc)
  other = att.with_features(p, att.initial_carry((B,)), feats, key=jax.random.key(99))
  assert not np.array_equal(rz.unroll_with_carries(att, p, xs, initial_carry=other)[2].location, loc)
  # expectation_prob=1: always the expectation, i.e. soft attention.
  att1 = rz.AttentionCell.wrap(rz.LSTM(H), num_locations=L, feature_size=D, mode="hard",
                               expectation_prob=1.0)
  soft = rz.AttentionCell.wrap(rz.LSTM(H), num_locations=L, feature_size=D)
  c1 = att1.with_features(p, att1.initial_carry((B,)), feats, key=jax.random.key(5))
  cs = soft.with_features(p, soft.initial_carry((B,)), feats)
  np.testing.assert_allclose(rz.unroll(att1, p, xs, initial_carry=c1)[0],
                             rz.unroll(soft, p, xs, initial_carry=cs)[0], rtol=1e-6)


def test_reinforce_estimate_is_unbiased():
  """Three locations, one step: the mean of many REINFORCE estimates of
  grad E[R] (w.r.t. the attention params) matches the exact gradient,
  sum_s R(s) grad alpha_s, within four standard errors."""
  att = rz.AttentionCell.wrap(rz.GRU(4), num_locations=3, feature_size=2, mode="hard",
                              expectation_prob=0.0, gate=False)
  p = att.init(jax.random.key(0), 1)
  p["att"]["v"] = p["att"]["v"] * 3.0                      # a non-uniform alpha
  feats = jnp.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
  x = jnp.ones((1, 1))
  reward = lambda z: z @ jnp.array([2.0, -1.0])  # R(s) = 2, -1, 1
  base_carry = att.initial_carry((1,))

  def surrogate(att_params, key):
    q = dict(p, att=att_params)
    carry = att.with_features(q, base_carry, feats, key=key)
    new, _ = att.step(q, carry, x)
    lp = attention_losses.location_log_probs(new.alpha[:, None], new.location[:, None])
    return attention_losses.reinforce_surrogate(lp, reward(new.context), 0.5)[0]

  keys = jax.random.split(jax.random.key(7), 20000)
  grads = jax.vmap(jax.grad(surrogate), in_axes=(None, 0))(p["att"], keys)

  def expected_reward(att_params):
    q = dict(p, att=att_params)
    carry = att.with_features(q, base_carry, feats, key=jax.random.key(0))
    alpha, _ = att.attend(q, carry, carry.h)
    return jnp.sum(alpha[0] * reward(feats[0]))

  exact = jax.grad(expected_reward)(p["att"])
  for name in ("w_feat", "w_h", "v", "b"):
    g = -np.asarray(grads[name], np.float64)                 # the surrogate is a loss
    mean, se = g.mean(0), g.std(0) / np.sqrt(g.shape[0])
    assert np.all(np.abs(mean - np.asarray(exact[name])) <= 4 * se + 1e-6), name
  assert np.abs(np.asarray(exact["v"])).max() > 1e-3           # a real gradient


def test_reinforce_with_rewards_to_go_is_unbiased_over_two_steps():
  """Two steps over three locations (nine location pairs, enumerated): the
  mean of many estimates that give each choice its reward to go
  (``r_1 + r_2`` for step 1, ``r_2`` for step 2, against per-step
  baselines) matches the exact gradient of E[r_1 + r_2] within four
  standard errors, as the whole-return estimate does."""
  att = rz.AttentionCell.wrap(rz.GRU(4), num_locations=3, feature_size=2, mode="hard",
                              expectation_prob=0.0, gate=False)
  p = att.init(jax.random.key(0), 1)
  p["att"]["v"] = p["att"]["v"] * 3.0
  feats = jnp.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
  xs = jnp.ones((1, 2, 1))
  r1 = lambda z: z @ jnp.array([2.0, -1.0])   # 2, -1, 1
  r2 = lambda z: z @ jnp.array([-1.0, 3.0])   # -1, 3, 2
  base_carry = att.initial_carry((1,))

  def run(att_params, key):
    q = dict(p, att=att_params)
    carry = att.with_features(q, base_carry, feats, key=key)
    _, _, carries = rz.unroll_with_carries(att, q, xs, initial_carry=carry)
    lp = attention_losses.location_log_probs(carries.alpha, carries.location)   # [1, 2]
    step_rewards = jnp.stack([r1(carries.context[:, 0]), r2(carries.context[:, 1])], -1)
    return lp, step_rewards

  def to_go(att_params, key):
    lp, rs = run(att_params, key)
    to_go = attention_losses.rewards_to_go(rs)
    return attention_losses.reinforce_surrogate(lp, to_go, jnp.array([0.5, 1.0]))[0]

  def whole(att_params, key):
    lp, rs = run(att_params, key)
    return attention_losses.reinforce_surrogate(lp, rs.sum(-1), 0.5)[0]

  def expected_return(att_params):
    # Enumerate s_1, then s_2 given s_1: step the cell with a_{s_1}'s context.
    q = dict(p, att=att_params)
    carry = att.with_features(q, base_carry, feats, key=jax.random.key(0))
    a1, _ = att.attend(q, carry, carry.h)
    total = 0.0
    for s1 in range(3):
      inner = carry.inner._replace(h=carry.h)
      inner, _ = att.cell.step(q["cell"], inner,
                               jnp.concatenate([xs[:, 0], feats[:, s1]], -1))
      a2, _ = att.attend(q, carry, inner.h)
      for s2 in range(3):
        total += a1[0, s1] * a2[0, s2] * (r1(feats[0, s1]) + r2(feats[0, s2]))
    return total

  exact = jax.grad(expected_return)(p["att"])
  keys = jax.random.split(jax.random.key(7), 20000)
  spread = {}
  for name, surrogate in (("to_go", to_go), ("whole", whole)):
    grads = jax.vmap(jax.grad(surrogate), in_axes=(None, 0))(p["att"], keys)
    for k in ("w_feat", "w_h", "v", "b"):
      g = -np.asarray(grads[k], np.float64)
      mean, se = g.mean(0), g.std(0) / np.sqrt(g.shape[0])
      assert np.all(np.abs(mean - np.asarray(exact[k])) <= 4 * se + 1e-6), (name, k)
    spread[name] = float(np.asarray(grads["v"]).std(0).sum())
  assert np.abs(np.asarray(exact["v"])).max() > 1e-3
  assert spread["to_go"] < spread["whole"]              # the point of it
  assert np.allclose(attention_losses.rewards_to_go(jnp.array([[1.0, 2.0, 4.0]])), [[7.0, 6.0, 4.0]])
  with pytest.raises(ValueError, match=r"reward - baseline must be a scalar, \[batch\] \[1\]"):
    attention_losses.reinforce_surrogate(jnp.zeros((1, 2)), jnp.zeros((1, 3)), 0.0)


@pytest.mark.parametrize("query", ["before", "after"])
def test_without_feeding_the_context_the_state_never_sees_the_features(query):
  att, params, feats, carry, xs = setup(query=query, feed_context=False)
  assert att.input_size_of(params) == I
  assert params["cell"]["w_ih"].shape[0] == I              # no D columns for the context
  ys, _, carries = rz.unroll_with_carries(att, params, xs, initial_carry=carry)
  other = att.with_features(params, att.initial_carry((B,)), 2.0 * feats + 1.0)
  ys2, _, carries2 = rz.unroll_with_carries(att, params, xs, initial_carry=other)
  np.testing.assert_array_equal(ys, ys2)                 # the state: words only
  assert float(jnp.abs(carries.context - carries2.context).max()) > 1e-3
  np.testing.assert_allclose(carries.alpha.sum(-1), 1.0, rtol=1e-5)
  # The map of each step is the module doc's, for that step's query.
  hs = carries.h if query == "after" else jnp.concatenate(
      [carry.h[:, None], carries.h[:, :-1]], axis=1)
  for t in range(T):
    alpha, z = soft_look(params, feats, hs[:, t])
    np.testing.assert_allclose(carries.alpha[:, t], alpha, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(carries.context[:, t], z, rtol=1e-4, atol=1e-5)


def test_doubly_stochastic_penalty_by_hand():
  alphas = jnp.array([[[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]]])   # [1, T=3, L=2]
  np.testing.assert_allclose(attention_losses.doubly_stochastic_penalty(alphas), [0.5])
  mask = jnp.array([[1.0, 1.0, 0.0]])
  np.testing.assert_allclose(attention_losses.doubly_stochastic_penalty(alphas, mask), [0.5 ** 2 + 0.5 ** 2])


def test_attention_decoder_steps_through_the_stack_and_decodes():
  """A 2-layer decoder whose first layer attends, stepped by StackedRNN.step
  inside decoding.generate and beam_search."""
  att = rz.AttentionCell.wrap(rz.GRU(H), num_locations=L, feature_size=D)
  stack = rz.StackedRNN((att, rz.GRU(H)))
  V = 9
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  params = {"stack": stack.init(k1, 5), "emb": jax.random.normal(k2, (V, 5)),
            "out": jax.random.normal(k3, (H, V))}
  feats = jax.random.normal(jax.random.key(4), (2, L, D))
  carry = stack.initial_carry((2,))
  carry = (att.with_features(params["stack"]["layer_0"], carry[0], feats), carry[1])

  def step(p, c, tok):
    c, y = stack.step(p["stack"], c, p["emb"][tok])
    return c, y @ p["out"]

  toks, final = decoding.generate(step, params, carry, jnp.array([[1], [1]]), length=6,
                                  key=jax.random.key(0), temperature=0, end_token=2)
  beams = decoding.beam_search(step, params, carry, jnp.array([[1], [1]]), beam_size=1,
                               max_length=6, end_token=2)
  np.testing.assert_array_equal(beams["tokens"][:, 0], toks)
  # Teacher forcing through apply equals stepping.
  xs = params["emb"][toks]
  ys, _ = stack.apply(params["stack"], xs, initial_carry=carry)
  c = carry
  for t in range(6):
    c, y = stack.step(params["stack"], c, xs[:, t])
    np.testing.assert_allclose(y, ys[:, t], rtol=1e-5, atol=1e-6)


def test_probes_reach_the_attention_decoders_hidden_state():
  att, p, _, carry, xs = setup()
  loss = lambda probes: jnp.sum(rz.unroll(att, p, xs, initial_carry=carry,
                                          hidden_probes=probes)[0] ** 2)
  g = jax.grad(loss)(jnp.zeros((B, T, H)))
  # dL/dh_T = 2 h_T at the last step (the output is h).
  ys = rz.unroll(att, p, xs, initial_carry=carry)[0]
  np.testing.assert_allclose(g[:, -1], 2 * ys[:, -1], rtol=1e-5, atol=1e-6)
  assert np.all(np.abs(np.asarray(g[:, 0])) > 0)


@pytest.mark.parametrize("make_bad,message", [
    (lambda: rz.AttentionCell.wrap(rz.LSTM(4), num_locations=0, feature_size=3),
     "num_locations must be a positive int, got 0"),
    (lambda: rz.AttentionCell.wrap(rz.LSTM(4), num_locations=2, feature_size=3, mode="x"),
     "mode must be one of ['soft', 'hard'], got 'x'"),
    (lambda: rz.AttentionCell(5, cell=rz.LSTM(4), num_locations=2, feature_size=3),
     "hidden_size must be the wrapped cell's (4), got 5"),
])
def test_bad_options(make_bad, message):
  with pytest.raises(ValueError) as e:
    make_bad()
  assert message in str(e.value)


def test_bad_features_and_missing_key():
  att, p, _, _, _ = setup()
  with pytest.raises(ValueError, match=r"features must have shape \(3, 6, 7\)"):
    att.with_features(p, att.initial_carry((B,)), jnp.ones((B, L + 1, D)))
  hard = rz.AttentionCell.wrap(rz.LSTM(H), num_locations=L, feature_size=D, mode="hard")
  with pytest.raises(ValueError, match="key is required for mode='hard'"):
    hard.with_features(p, hard.initial_carry((B,)), jnp.ones((B, L, D)))


def test_a_carry_without_annotations_is_refused():
  """It ran on all-zero annotations (every hard-attention row sampling the
  same locations): an error when concrete, NaN under jit."""
  att = rz.AttentionCell.wrap(rz.GRU(4), num_locations=3, feature_size=2, mode="soft")
  p = att.init(jax.random.key(0), 1)
  xs = jnp.ones((2, 5, 1))
  match = r"carry has no annotations: set them with with_features\(params, carry, features\)"
  with pytest.raises(ValueError, match=match):
    rz.unroll(att, p, xs)
  with pytest.raises(ValueError, match=match):
    att.step(p, att.initial_carry((2,)), xs[:, 0])
  ys = jax.jit(lambda p, xs: rz.unroll(att, p, xs, initial_carry=att.initial_carry((2,)))[0])
  assert np.all(np.isnan(ys(p, xs)))          # traced: NaN, not zeros' answers
  step = jax.jit(lambda p, c, x: att.step(p, c, x)[1])
  assert np.all(np.isnan(step(p, att.initial_carry((2,)), xs[:, 0])))
  feats = jnp.ones((2, 3, 2))
  ok, _ = rz.unroll(att, p, xs, initial_carry=att.with_features(p, att.initial_carry((2,)), feats))
  assert np.all(np.isfinite(ok))
