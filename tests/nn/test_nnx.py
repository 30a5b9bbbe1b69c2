"""rz.nnx: the Flax NNX front-end computes what the functional API and the
Linen module compute, bit for bit, and runs the way NNX users run it."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from flax import nnx

import rnn_zoo as rz
import zoo_helpers


def _loss(ys):
  return jnp.sum(jnp.sin(ys))


def _three_ways(cell, xs, lengths, num_layers):
  """Outputs and gradients of the same params through the functional stack,
  rz.nn.RNN and rz.nnx.RNN, each under its own jit."""
  stack = rz.StackedRNN.of(cell, num_layers)
  params = zoo_helpers.randomize(stack.init(jax.random.key(1), xs.shape[-1]),
                                 jax.random.key(2))

  @jax.jit
  def functional(p):
    return jax.value_and_grad(lambda p: _loss(stack.apply(p, xs, lengths=lengths)[0]))(p)

  linen = rz.nn.RNN(cell, num_layers=num_layers)

  @jax.jit
  def through_linen(p):
    return jax.value_and_grad(lambda p: _loss(linen.apply(
        {"params": {"stack": p}}, xs, lengths=lengths)))(p)

  module = rz.nnx.RNN.from_params(cell, params, num_layers=num_layers)

  @nnx.jit
  def through_nnx(m):
    return nnx.value_and_grad(lambda m: _loss(m(xs, lengths=lengths)))(m)

  value, grads = through_nnx(module)
  grads = rz.nnx.to_arrays(grads.params)
  return functional(params), through_linen(params), (value, grads)


@pytest.mark.parametrize("name", sorted(zoo_helpers.CELL_FACTORIES))
@pytest.mark.parametrize("dtype", ["float32", pytest.param("float64", marks=pytest.mark.slow)])
def test_every_cell_is_bit_identical_through_functional_linen_and_nnx(name, dtype):
  with jax.enable_x64(dtype == "float64"):
    dt = jnp.dtype(dtype)
    cell = zoo_helpers.make(name, hidden=5, dtype=dt, param_dtype=dt)
    xs = jax.random.normal(jax.random.key(0), (3, 6, 4), dt)
    lengths = jnp.array([6, 0, 3])
    runs = _three_ways(cell, xs, lengths, num_layers=2)
    (v0, g0), rest = runs[0], runs[1:]
    assert v0.dtype == dt
    for v, g in rest:
      assert v == v0
      jax.tree.map(np.testing.assert_array_equal, g, g0)


def test_params_convert_both_ways_exactly():
  cell = rz.GRU(7)
  module = rz.nnx.RNN(cell, 3, num_layers=2, rngs=nnx.Rngs(0))
  params = module.to_params()
  assert sorted(params) == ["layer_0", "layer_1"]
  assert all(isinstance(a, jax.Array) for a in jax.tree.leaves(params))
  again = rz.nnx.RNN.from_params(cell, params, num_layers=2)
  jax.tree.map(np.testing.assert_array_equal, again.to_params(), params)
  # Initialization: the functional init from the same "params" key.
  want = rz.StackedRNN.of(cell, 2).init(nnx.Rngs(0).params(), 3)
  jax.tree.map(np.testing.assert_array_equal, params, want)


def test_linen_conversion_both_ways():
  linen = rz.nn.RNN(rz.LSTM(6), num_layers=2, bidirectional=True, merge="sum")
  xs = jax.random.normal(jax.random.key(0), (2, 5, 3))
  variables = linen.init(jax.random.key(1), xs)
  module = rz.nnx.RNN.from_linen(linen, variables)
  np.testing.assert_array_equal(module(xs), linen.apply(variables, xs))
  back, back_vars = module.to_linen()
  assert back == linen
  np.testing.assert_array_equal(back.apply(back_vars, xs), linen.apply(variables, xs))


def test_training_with_nnx_jit_grad_and_an_nnx_optimizer():
  class Classifier(nnx.Module):
    def __init__(self, rngs):
      self.rnn = rz.nnx.RNN(rz.GRU(8), 2, num_layers=2, dropout_rate=0.2,
                            return_carry=True, rngs=rngs)
      self.head = nnx.Linear(8, 1, rngs=rngs)

    def __call__(self, xs):
      _, carries = self.rnn(xs)
      return self.head(carries[-1].h)[:, 0]

  xs = jax.random.normal(jax.random.key(0), (16, 6, 2))
  target = (xs[:, 0, 0] > 0).astype(jnp.float32)
  model = Classifier(nnx.Rngs(params=1, dropout=2))
  optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

  @nnx.jit
  def step(model, optimizer):
    def loss(m):
      return optax.sigmoid_binary_cross_entropy(m(xs), target).mean()
    value, grads = nnx.value_and_grad(loss)(model)
    optimizer.update(model, grads)
    return value

  model.train()
  losses = [float(step(model, optimizer)) for _ in range(60)]
  assert losses[-1] < 0.5 * losses[0]
  model.eval()
  assert model.rnn.deterministic is True
  np.testing.assert_array_equal(model(xs), model(xs))


def test_dropout_follows_the_stream_and_eval():
  module = rz.nnx.RNN(rz.SimpleRNN(4), 3, num_layers=2, dropout_rate=0.5,
                      rngs=nnx.Rngs(0))
  xs = jnp.ones((2, 3, 3))
  clean = rz.StackedRNN.of(rz.SimpleRNN(4), 2).apply(module.to_params(), xs)[0]
  first, second = module(xs), module(xs)  # the held stream: dropout
  assert not np.array_equal(first, second)
  assert not np.array_equal(first, clean)
  module.eval()
  np.testing.assert_array_equal(module(xs), clean)
  # A call's rngs override the module's setting only with deterministic=False.
  np.testing.assert_array_equal(module(xs, rngs=jax.random.key(3)), clean)
  want = rz.StackedRNN.of(rz.SimpleRNN(4), 2, dropout_rate=0.5).apply(
      module.to_params(), xs, key=jax.random.key(3))[0]
  np.testing.assert_array_equal(
      module(xs, deterministic=False, rngs=jax.random.key(3)), want)
  # Without a stream, deterministic=False is the zoo's one-line error.
  bare = rz.nnx.RNN.from_params(rz.SimpleRNN(4), module.to_params(), num_layers=2,
                                dropout_rate=0.5)
  with pytest.raises(rz.UserError, match="key is required"):
    bare(xs, deterministic=False)


def test_split_merge_and_orbax_restore(tmp_path):
  module = rz.nnx.RNN(rz.LSTM(5), 3, rngs=nnx.Rngs(0))
  xs = jax.random.normal(jax.random.key(0), (2, 4, 3))
  graphdef, state = nnx.split(module)
  np.testing.assert_array_equal(nnx.merge(graphdef, state)(xs), module(xs))

  ckpt = ocp.StandardCheckpointer()
  ckpt.save(tmp_path / "state", nnx.state(module))
  ckpt.wait_until_finished()
  fresh = rz.nnx.RNN(rz.LSTM(5), 3, rngs=nnx.Rngs(9))
  assert not np.array_equal(fresh(xs), module(xs))
  abstract = nnx.state(nnx.eval_shape(lambda: rz.nnx.RNN(rz.LSTM(5), 3, rngs=nnx.Rngs(9))))
  nnx.update(fresh, ckpt.restore(tmp_path / "state", abstract))
  np.testing.assert_array_equal(fresh(xs), module(xs))


def test_vmap_over_an_ensemble():
  cell = rz.LSTM(4)

  @nnx.split_rngs(splits=3)
  @nnx.vmap(in_axes=(0,), out_axes=0)
  def make(rngs):
    return rz.nnx.RNN(cell, 2, rngs=rngs)

  ensemble = make(nnx.Rngs(0))
  xs = jax.random.normal(jax.random.key(0), (5, 7, 2))

  @nnx.vmap(in_axes=(0, None), out_axes=0)
  def forward(m, xs):
    return m(xs)

  ys = forward(ensemble, xs)
  assert ys.shape == (3, 5, 7, 4)
  params = ensemble.to_params()
  for i in range(3):
    member = jax.tree.map(lambda a: a[i], params)
    np.testing.assert_allclose(
        ys[i], rz.StackedRNN.of(cell, 1).apply(member, xs)[0], rtol=1e-6, atol=1e-7)
  assert not np.allclose(ys[0], ys[1])


def test_hidden_probes_give_the_functional_gradient_norms():
  cell = rz.SimpleRNN(6)
  module = rz.nnx.RNN(cell, 3, num_layers=2, rngs=nnx.Rngs(0))
  xs = jax.random.normal(jax.random.key(0), (4, 9, 3))
  probes = (jnp.zeros((4, 9, 6)), jnp.zeros((4, 9, 6)))
  got = rz.gradflow.hidden_grad_norms(
      lambda pr: _loss(module(xs, hidden_probes=pr)), probes)
  stack = rz.StackedRNN.of(cell, 2)
  want = rz.gradflow.hidden_grad_norms(
      lambda pr: _loss(stack.apply(module.to_params(), xs, hidden_probes=pr)[0]), probes)
  jax.tree.map(np.testing.assert_array_equal, got, want)


def test_bidirectional_and_reverse_match_the_functional_runner():
  cell = rz.GRU(5)
  rngs = nnx.Rngs(0)
  fw, bw = rz.nnx.RNN(cell, 3, rngs=rngs), rz.nnx.RNN(cell, 3, rngs=rngs)
  bi = rz.nnx.Bidirectional(fw, bw, return_carry=True)
  xs = jax.random.normal(jax.random.key(0), (3, 6, 3))
  lengths = jnp.array([6, 1, 4])
  ys, (c_f, c_b) = bi(xs, lengths=lengths)
  params = {"forward": fw.to_params()["layer_0"], "backward": bw.to_params()["layer_0"]}
  want, (w_f, w_b) = rz.bidirectional(cell, params, xs, lengths=lengths)
  np.testing.assert_array_equal(ys, want)
  jax.tree.map(np.testing.assert_array_equal, (c_f[0], c_b[0]), (w_f, w_b))

  rev = rz.nnx.RNN.from_params(cell, bw.to_params(), reverse=True)
  want_rev, _ = rz.unroll(cell, params["backward"], xs, lengths=lengths, reverse=True)
  np.testing.assert_array_equal(rev(xs, lengths=lengths), want_rev)


def test_a_stack_of_different_cells():
  stack = rz.StackedRNN((rz.LSTM(6), rz.GRU(4)))
  module = rz.nnx.RNN(stack, 3, rngs=nnx.Rngs(0))
  xs = jnp.ones((2, 5, 3))
  np.testing.assert_array_equal(module(xs), stack.apply(module.to_params(), xs)[0])
  with pytest.raises(rz.UserError, match="one cell for every layer"):
    module.to_linen()


@pytest.mark.parametrize("kwargs, match", [
    ({"cell": "lstm", "in_features": 3}, "cell must be a zoo Cell"),
    ({"cell": rz.LSTM(4)}, "in_features is required"),
    ({"cell": rz.LSTM(4), "in_features": 0}, "in_features must be"),
    ({"cell": rz.LSTM(4), "in_features": 3, "impl": "fast"}, "impl"),
    ({"cell": rz.LSTM(4), "in_features": 3, "bidirectional": True, "reverse": True},
     "reverse=True with bidirectional=True"),
    ({"cell": rz.StackedRNN.of(rz.LSTM(4), 2), "in_features": 3, "num_layers": 2},
     "num_layers=2 is set by the StackedRNN"),
    ({"cell": rz.LSTM(4), "in_features": 3, "deterministic": "yes"}, "deterministic must be"),
])
def test_bad_arguments_name_themselves(kwargs, match):
  with pytest.raises(rz.UserError, match=match):
    rz.nnx.RNN(rngs=nnx.Rngs(0), **kwargs)


def test_missing_rngs_and_foreign_params():
  with pytest.raises(rz.UserError, match="rngs is required"):
    rz.nnx.RNN(rz.LSTM(4), 3)
  with pytest.raises(rz.UserError, match="params of StackedRNN must have keys"):
    rz.nnx.RNN.from_params(rz.LSTM(4), {"w": jnp.zeros(3)})
  with pytest.raises(rz.UserError, match="model must follow"):
    rz.nnx.Model(rz.LSTM(4), rngs=nnx.Rngs(0))


def test_char_lm_module_matches_the_functional_model_and_trains():
  lm = rz.nnx.CharLM(vocab_size=11, cell=rz.LSTM(16), num_layers=2, embed_size=8,
                     dropout_rate=0.1, rngs=nnx.Rngs(params=0, dropout=1))
  functional = lm.model
  tokens = jax.random.randint(jax.random.key(0), (4, 12), 0, 11)
  targets = jnp.roll(tokens, -1, axis=1)
  lm.eval()
  logits, _ = lm(tokens)
  want, _ = functional.apply(lm.to_params(), tokens)
  np.testing.assert_array_equal(logits, want)
  (value, _), grads = nnx.jit(nnx.value_and_grad(
      lambda m: m.loss(tokens, targets), has_aux=True))(lm)
  (want_value, _), want_grads = jax.jit(jax.value_and_grad(
      lambda p: functional.loss(p, tokens, targets), has_aux=True))(lm.to_params())
  assert value == want_value
  jax.tree.map(np.testing.assert_array_equal, rz.nnx.to_arrays(grads.params), want_grads)

  lm.train()
  optimizer = nnx.Optimizer(lm, optax.adam(3e-2), wrt=nnx.Param)

  @nnx.jit
  def step(lm, optimizer):
    (value, _), grads = nnx.value_and_grad(
        lambda m: m.loss(tokens, targets), has_aux=True)(lm)
    optimizer.update(lm, grads)
    return value

  losses = [float(step(lm, optimizer)) for _ in range(40)]
  assert losses[-1] < 0.5 * losses[0]
  carry, logits = lm.call("step", functional.initial_carry(4), tokens[:, 0])
  assert logits.shape == (4, 11)


def test_soft_attention_captioner_module_matches_the_functional_model():
  cap = rz.nnx.Captioner(vocab_size=9, cell=rz.LSTM(8), mode="soft", encoder="features",
                         feature_shape=(4, 6), embed_size=5, rngs=nnx.Rngs(0))
  feats = jax.random.normal(jax.random.key(0), (3, 4, 6))
  captions = jax.random.randint(jax.random.key(1), (3, 7), 4, 9)
  (value, _), grads = nnx.jit(nnx.value_and_grad(
      lambda m: m.loss(feats, captions), has_aux=True))(cap)
  (want, _), want_grads = jax.jit(jax.value_and_grad(
      lambda p: cap.model.loss(p, feats, captions), has_aux=True))(cap.to_params())
  assert value == want
  jax.tree.map(np.testing.assert_array_equal, rz.nnx.to_arrays(grads.params), want_grads)
  with pytest.raises(rz.UserError, match="method must be one of"):
    cap.call("no_such_method")
