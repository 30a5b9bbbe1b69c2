"""The Flax linen wrapper: params in the Flax tree, same values as the runner."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnn_zoo as rz


def test_module_matches_pure_stack():
  layer = rz.nn.RNN(rz.LSTM(6), num_layers=2, bidirectional=True)
  xs = jax.random.normal(jax.random.key(0), (3, 5, 4))
  lengths = jnp.array([5, 2, 4])
  variables = layer.init(jax.random.key(1), xs)
  stack_params = variables["params"]["stack"]
  assert stack_params["layer_1"]["forward"]["w_ih"].shape == (12, 24)
  ys = layer.apply(variables, xs, lengths=lengths)
  want, _ = rz.StackedRNN.of(rz.LSTM(6), 2, bidirectional=True).apply(
      stack_params, xs, lengths=lengths)
  np.testing.assert_allclose(ys, want, rtol=1e-6)


def test_module_composes_and_trains_inside_a_flax_model():
  class Classifier(nn.Module):
    @nn.compact
    def __call__(self, xs, *, deterministic=True):
      ys, carries = rz.nn.RNN(rz.GRU(8), num_layers=2, dropout_rate=0.2,
                              return_carry=True)(xs, deterministic=deterministic)
      return nn.Dense(1)(carries[-1].h)[:, 0]

  model = Classifier()
  xs = jax.random.normal(jax.random.key(0), (16, 6, 2))
  target = (xs[:, 0, 0] > 0).astype(jnp.float32)
  params = model.init(jax.random.key(1), xs)["params"]
  opt = optax.adam(1e-2)
  state = opt.init(params)

  @jax.jit
  def step(params, state, key):
    def loss(p):
      logits = model.apply({"params": p}, xs, deterministic=False,
                           rngs={"dropout": key})
      return optax.sigmoid_binary_cross_entropy(logits, target).mean()
    l, g = jax.value_and_grad(loss)(params)
    upd, state = opt.update(g, state)
    return optax.apply_updates(params, upd), state, l

  losses = []
  for i in range(60):
    params, state, l = step(params, state, jax.random.fold_in(jax.random.key(2), i))
    losses.append(float(l))
  assert losses[-1] < 0.5 * losses[0]


def test_module_dropout_uses_the_dropout_stream():
  layer = rz.nn.RNN(rz.SimpleRNN(4), num_layers=2, dropout_rate=0.5)
  xs = jnp.ones((2, 3, 3))
  v = layer.init(jax.random.key(0), xs)
  a = layer.apply(v, xs, deterministic=False, rngs={"dropout": jax.random.key(1)})
  b = layer.apply(v, xs, deterministic=False, rngs={"dropout": jax.random.key(2)})
  c = layer.apply(v, xs)
  assert not np.allclose(a, b) and not np.allclose(a, c)


# -- SequenceModel's residual GLU block (the LRU paper's) ----------------------

def test_residual_glu_block_structure_probes_and_errors():
  model = rz.models.SequenceModel(rz.LRU(8), output_size=3, num_layers=2,
                                  block="residual_glu")
  xs = jax.random.normal(jax.random.key(1), (4, 9, 2))
  params = model.init(jax.random.key(0), xs)
  assert model.apply(params, xs).shape == (4, 3)
  seq = rz.models.SequenceModel(rz.LRU(8), output_size=3, num_layers=2,
                                block="residual_glu", readout="all")
  assert seq.apply(params, xs).shape == (4, 9, 3)
  # With the GLUs' output weights at zero every block adds nothing: the head
  # reads the encoder's output at the last step (the skip path).
  p = jax.tree_util.tree_map(lambda x: x, params)
  for i in range(2):
    p["params"][f"glu_{i}"]["kernel"] = jnp.zeros_like(p["params"][f"glu_{i}"]["kernel"])
    p["params"][f"glu_{i}"]["bias"] = jnp.zeros_like(p["params"][f"glu_{i}"]["bias"])
  enc = p["params"]["encoder"]
  x_last = xs[:, -1] @ enc["kernel"] + enc["bias"][None]
  head = p["params"]["head"]
  np.testing.assert_allclose(model.apply(p, xs), x_last @ head["kernel"] + head["bias"][None],
                             rtol=1e-5, atol=1e-6)
  # One probe per recurrent layer: dL/dh_t of each block's recurrence.
  probes = (jnp.zeros((4, 9, 8)), jnp.zeros((4, 9, 8)))
  norms = rz.gradflow.hidden_grad_norms(
      lambda pr: jnp.sum(model.apply(params, xs, hidden_probes=pr)), probes)
  assert len(norms) == 2 and all(n.shape == (9,) and bool(jnp.all(n > 0)) for n in norms)
  with pytest.raises(rz.UserError, match="block must be one of \\['none', 'residual_glu'\\], got 'mlp'"):
    rz.models.SequenceModel(rz.LRU(8), output_size=3, block="mlp").init(jax.random.key(0), xs)


def test_inputs_of_another_size_are_the_runners_one_line_error():
  """Flax's ScopeParamShapeError came out before."""
  layer = rz.nn.RNN(rz.LSTM(4))
  variables = layer.init(jax.random.key(0), jnp.ones((2, 5, 3)))
  with pytest.raises(rz.UserError, match="7"):
    layer.apply(variables, jnp.ones((2, 5, 7)))
