"""PyTorch state_dict layout, both ways; against torch itself when installed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_zoo as rz

STACKS = {
    "rnn_tanh": rz.StackedRNN.of(rz.SimpleRNN(5), 1),
    "rnn_relu_2x_bi": rz.StackedRNN.of(rz.SimpleRNN(5, activation="relu"), 2, bidirectional=True),
    "lstm_2x": rz.StackedRNN.of(rz.LSTM(5), 2),
    "lstm_bi": rz.StackedRNN.of(rz.LSTM(5), 1, bidirectional=True),
    "gru_2x_bi": rz.StackedRNN.of(rz.GRU(5), 2, bidirectional=True),
}


def randomized(stack, key):
  p = stack.init(key, 3)
  leaves, tree = jax.tree.flatten(p)
  ks = jax.random.split(jax.random.key(7), len(leaves))
  return jax.tree.unflatten(tree, [l + 0.3 * jax.random.normal(k, l.shape) for l, k in zip(leaves, ks)])


@pytest.mark.parametrize("name", sorted(STACKS))
def test_round_trip_is_exact_in_function(name):
  stack = STACKS[name]
  p = randomized(stack, jax.random.key(0))
  sd = rz.interop.to_torch_state_dict(stack, p)
  G = stack.cells[0].num_gates
  assert sd["weight_ih_l0"].shape == (G * 5, 3)
  assert sd["weight_hh_l0"].shape == (G * 5, 5)
  if stack.bidirectional:
    assert "bias_hh_l0_reverse" in sd
  back = rz.interop.from_torch_state_dict(stack, sd)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), p, back)


def test_single_cell_uses_l0_names_and_splits_gru_bias():
  cell = rz.GRU(4)
  p = cell.init(jax.random.key(0), 2)
  p["b"] = jnp.arange(12.0)
  p["b_hn"] = jnp.arange(4.0) + 100
  sd = rz.interop.to_torch_state_dict(cell, p)
  assert sorted(sd) == ["bias_hh_l0", "bias_ih_l0", "weight_hh_l0", "weight_ih_l0"]
  np.testing.assert_array_equal(sd["bias_hh_l0"], [0] * 8 + [100, 101, 102, 103])
  # Biases from torch are summed, except the n part of bias_hh.
  sd["bias_hh_l0"] = np.arange(12.0) * 10
  back = rz.interop.from_torch_state_dict(cell, sd)
  np.testing.assert_array_equal(back["b"], np.arange(12.0) + np.r_[np.arange(8.0) * 10, [0] * 4])
  np.testing.assert_array_equal(back["b_hn"], [80, 90, 100, 110])


def test_interop_errors():
  with pytest.raises(ValueError, match="GRU variant='cho' has no PyTorch equivalent"):
    rz.interop.to_torch_state_dict(rz.GRU(3, variant="cho"),
                                   rz.GRU(3, variant="cho").init(jax.random.key(0), 2))
  with pytest.raises(ValueError, match=r"missing keys \['bias_hh_l1', 'bias_ih_l1', 'weight_hh_l1', 'weight_ih_l1'\]"):
    stack = rz.StackedRNN.of(rz.LSTM(3), 2)
    sd = rz.interop.to_torch_state_dict(rz.LSTM(3), rz.LSTM(3).init(jax.random.key(0), 2))
    rz.interop.from_torch_state_dict(stack, sd)
  with pytest.raises(ValueError, match=r"weight_ih_l0'\] must have shape \(12, 2\) for 1 layer\(s\) of LSTM\(3\), got \(16, 2\)"):
    sd = rz.interop.to_torch_state_dict(rz.LSTM(4), rz.LSTM(4).init(jax.random.key(0), 2))
    rz.interop.from_torch_state_dict(rz.LSTM(3), sd)


def test_strict_like_torch_load_state_dict():
  """A state_dict is loaded only into the model it fits (torch's strict=True)."""
  two = rz.StackedRNN.of(rz.LSTM(3), 2)
  sd2 = rz.interop.to_torch_state_dict(two, two.init(jax.random.key(0), 2))
  # A 2-layer state_dict into a 1-layer model: the extra layer is not dropped.
  with pytest.raises(ValueError, match=r"unexpected keys \['bias_hh_l1', 'bias_ih_l1', 'weight_hh_l1', 'weight_ih_l1'\]"):
    rz.interop.from_torch_state_dict(rz.LSTM(3), sd2)
  # A transposed weight_ih is not read as some other input size.
  sd = rz.interop.to_torch_state_dict(rz.LSTM(3), rz.LSTM(3).init(jax.random.key(0), 2))
  bad = dict(sd, weight_ih_l0=sd["weight_ih_l0"].T)
  with pytest.raises(ValueError, match=r"weight_hh_l0'\] must have shape \(12, 12\)|weight_ih_l0'\] must have shape"):
    rz.interop.from_torch_state_dict(rz.LSTM(3), bad)
  # Every array's shape is checked, biases included.
  with pytest.raises(ValueError, match=r"state_dict\['bias_hh_l0'\] must have shape \(12,\).*got \(11,\)"):
    rz.interop.from_torch_state_dict(rz.LSTM(3), dict(sd, bias_hh_l0=sd["bias_hh_l0"][:11]))
  # Layer 1 of a stack reads layer 0's width.
  sd2_bad = dict(sd2, weight_ih_l1=np.zeros((12, 5), np.float32))
  with pytest.raises(ValueError, match=r"weight_ih_l1'\] must have shape \(12, 3\)"):
    rz.interop.from_torch_state_dict(two, sd2_bad)
  with pytest.raises(ValueError, match="unexpected keys \\['extra'\\]"):
    rz.interop.from_torch_state_dict(rz.LSTM(3), dict(sd, extra=np.zeros(1)))


def _torch_bias_grads(stack, gp):
  """The zoo's bias gradients in PyTorch's two-bias layout: ``b`` feeds both
  ``bias_ih`` and ``bias_hh`` (sum), except the GRU's n part of ``bias_hh``,
  which is ``b_hn``."""
  out = {}
  for i, cell in enumerate(stack.cells):
    layer = gp[f"layer_{i}"]
    dirs = [("", layer)] if not stack.bidirectional else [("", layer["forward"]), ("_reverse", layer["backward"])]
    for suffix, g in dirs:
      b = np.asarray(g["b"])
      out[f"bias_ih_l{i}{suffix}"] = b
      if isinstance(cell, rz.GRU):
        H = cell.hidden_size
        out[f"bias_hh_l{i}{suffix}"] = np.concatenate([b[:2 * H], np.asarray(g["b_hn"])])
      else:
        out[f"bias_hh_l{i}{suffix}"] = b
  return out


@pytest.mark.parametrize("name", sorted(STACKS))
def test_outputs_and_gradients_match_torch(name):
  torch = pytest.importorskip("torch", reason="torch not installed (pip install -e '.[torch]')")
  torch.manual_seed(0)
  stack = STACKS[name]
  module = rz.interop.make_torch_module(stack, input_size=3).double()
  p = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32),
                   rz.interop.from_torch_state_dict(stack, module.state_dict()))
  x = np.random.default_rng(0).normal(size=(2, 6, 3))
  xt = torch.tensor(x, requires_grad=True)
  out_t, _ = module(xt)
  (out_t ** 2).sum().backward()
  ys, _ = stack.apply(p, jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(ys, out_t.detach().numpy(), rtol=1e-4, atol=1e-5)
  gx = jax.grad(lambda x: jnp.sum(stack.apply(p, x)[0] ** 2))(jnp.asarray(x, jnp.float32))
  np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-4, atol=1e-4)
  # Parameter gradients, mapped through the same layout.
  gp = jax.grad(lambda p: jnp.sum(stack.apply(p, jnp.asarray(x, jnp.float32))[0] ** 2))(p)
  gsd = rz.interop.to_torch_state_dict(stack, gp) | _torch_bias_grads(stack, gp)
  names = [k for k, _ in module.named_parameters()]
  assert sum(k.startswith("bias") for k in names) == sum(k.startswith("weight") for k in names)
  for k, v in module.named_parameters():  # weights and both biases
    np.testing.assert_allclose(gsd[k], v.grad.numpy(), rtol=1e-4, atol=1e-4, err_msg=k)
