"""The LSTM through cuDNN (rnn_zoo.cudnn) against the scan runner.

On a CPU the path runs on JAX's reference implementation of the cuDNN call
(``rz.cudnn.emulated()``): the packing, lengths, reversal, carries and
gradients are all ours and are checked here. On a GPU the same checks run
against cuDNN itself (the tests marked ``gpu``, skipped elsewhere).
"""

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnn_zoo as rz
from rnn_zoo import cudnn

ON_GPU = jax.default_backend() == "gpu" and cudnn.status().startswith("available")
needs_gpu = pytest.mark.skipif(not ON_GPU, reason="cuDNN needs an NVIDIA GPU")

B, T, I, H = 4, 6, 3, 8
LENGTHS = np.array([6, 0, 3, 1])


def _setup(key=0):
  cell = rz.LSTM(H)
  k = jax.random.split(jax.random.key(key), 5)
  p = cell.init(k[0], I)
  p["b"] = p["b"] + 0.3 * jax.random.normal(k[1], p["b"].shape)
  xs = jax.random.normal(k[2], (B, T, I))
  c0 = rz.LSTMCarry(h=0.5 * jax.random.normal(k[3], (B, H)),
                    c=0.5 * jax.random.normal(k[4], (B, H)))
  return cell, p, xs, c0


def test_packing_is_the_layout_jax_unpacks():
  from jax.experimental import rnn as jax_rnn
  _, p, _, _ = _setup()
  w = cudnn.pack_lstm_weights(p)
  assert w.shape == (jax_rnn.get_num_params_in_lstm(I, H, 1, False),)
  w_ih, w_hh, b_ih, b_hh = jax_rnn.unpack_lstm_weights(w, I, H, 1, False)
  np.testing.assert_array_equal(w_ih[0], p["w_ih"].T)
  np.testing.assert_array_equal(w_hh[0], p["w_hh"].T)
  np.testing.assert_array_equal(b_ih[0], p["b"])
  np.testing.assert_array_equal(b_hh[0], np.zeros(4 * H))


LAYOUTS = {
    "batch_major": {},
    "time_major": {"time_major": True},
    "reverse": {"reverse": True},
    "lengths": {"lengths": LENGTHS},
    "reverse_lengths": {"reverse": True, "lengths": LENGTHS},
}


def _compare(layout, context, atol):
  cell, p, xs, c0 = _setup()
  kw = dict(LAYOUTS[layout])
  if kw.get("time_major"):
    xs = jnp.swapaxes(xs, 0, 1)
  if "lengths" in kw:
    # Padding may hold NaN: nothing of it may reach values or gradients.
    pad = np.arange(T)[None, :] >= LENGTHS[:, None]
    xs = jnp.where(pad[..., None], jnp.nan, xs)
    kw["lengths"] = jnp.asarray(LENGTHS)
  r = jax.random.normal(jax.random.key(9), xs.shape[:2] + (H,))

  def run(p, xs, c0, use):
    return rz.unroll(cell, p, xs, initial_carry=c0, impl="cudnn" if use else "fused",
                     **kw)

  def loss(p, xs, c0, use):
    ys, c = run(p, xs, c0, use)
    return jnp.sum(ys * r) + jnp.sum(jnp.sin(c.h)) + 2 * jnp.sum(jnp.sin(c.c))

  with context():
    got = jax.jit(run, static_argnums=3)(p, xs, c0, True)
    g_got = jax.jit(jax.grad(loss, (0, 1, 2)), static_argnums=3)(p, xs, c0, True)
  want = jax.jit(run, static_argnums=3)(p, xs, c0, False)
  g_want = jax.jit(jax.grad(loss, (0, 1, 2)), static_argnums=3)(p, xs, c0, False)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, atol=atol, rtol=atol)
  for a, b in zip(jax.tree.leaves(g_got), jax.tree.leaves(g_want)):
    assert np.all(np.isfinite(a))
    np.testing.assert_allclose(a, b, atol=10 * atol, rtol=10 * atol)
  if "lengths" in kw:
    ys, carry = got
    t_axis = 0 if kw.get("time_major") else 1
    assert float(jnp.abs(jnp.take(ys, 1, axis=1 - t_axis)).max()) == 0.0
    np.testing.assert_array_equal(carry.h[1], c0.h[1])  # length 0: the initial state


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_emulated_path_matches_the_scan_runner(layout):
  _compare(layout, cudnn.emulated, atol=2e-6)


@needs_gpu
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_cudnn_matches_the_scan_runner_on_a_gpu(layout):
  # Full float32 on both sides (cuDNN and XLA use TF32 by default).
  _compare(layout, lambda: jax.default_matmul_precision("highest"), atol=2e-5)


@needs_gpu
def test_cudnn_is_what_runs_on_a_gpu():
  cell, p, xs, _ = _setup()
  hlo = jax.jit(lambda p, x: rz.unroll(cell, p, x, impl="cudnn")[0]).lower(p, xs).as_text()
  assert "cudnn_rnn" in hlo


def test_a_bidirectional_stack_trains_through_it_like_the_scan():
  stack = rz.StackedRNN.of(rz.LSTM(H), 2, bidirectional=True)
  p = stack.init(jax.random.key(0), I)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  target = jax.random.normal(jax.random.key(2), (B, T, 2 * H))
  lengths = jnp.asarray(LENGTHS)

  def loss(p, use):
    ys, _ = stack.apply(p, xs, lengths=lengths, impl="cudnn" if use else "auto")
    return jnp.mean((ys - target) ** 2)

  with cudnn.emulated():
    g = jax.jit(jax.grad(loss), static_argnums=1)(p, True)
  g_ref = jax.jit(jax.grad(loss), static_argnums=1)(p, False)
  for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(a, b, atol=2e-6, rtol=2e-5)


def test_flax_module_option_in_a_jitted_adam_step():
  layer = rz.nn.RNN(rz.LSTM(H), num_layers=2, impl="cudnn")
  ref = rz.nn.RNN(rz.LSTM(H), num_layers=2)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  target = jax.random.normal(jax.random.key(2), (B, T, H))
  variables = ref.init(jax.random.key(0), xs)
  opt = optax.adam(1e-2)

  def train(module, steps=5):
    @jax.jit
    def step(v, s):
      loss, g = jax.value_and_grad(
          lambda v: jnp.mean((module.apply(v, xs) - target) ** 2))(v)
      updates, s = opt.update(g, s, v)
      return optax.apply_updates(v, updates), s, loss
    v, s, losses = variables, opt.init(variables), []
    for _ in range(steps):
      v, s, loss = step(v, s)
      losses.append(float(loss))
    return losses

  with cudnn.emulated():
    losses = train(layer)
  np.testing.assert_allclose(losses, train(ref), rtol=1e-5)
  assert losses[-1] < losses[0]


@pytest.mark.parametrize("make, kw, match", [
    (lambda: rz.GRU(H), {}, "LSTM only .*, not GRU"),
    (lambda: rz.LSTM(H, dtype=jnp.bfloat16), {}, "float32 only .*compute dtype is bfloat16"),
    (lambda: rz.LSTM(H), {"hidden_probes": jnp.zeros((B, T, H))}, "no hidden_probes"),
    (lambda: rz.LSTM(H), {"remat": 2}, "no remat"),
    (lambda: rz.LSTM(H), {"resets": jnp.zeros((B, T), bool)}, "no resets"),
])
def test_impl_cudnn_says_why_it_cannot_run(make, kw, match):
  cell = make()
  p = cell.init(jax.random.key(0), I)
  with cudnn.emulated():  # everything but the platform would do
    with pytest.raises(ValueError, match=f"impl='cudnn' cannot run here: .*{match}"):
      rz.unroll(cell, p, jnp.ones((B, T, I)), impl="cudnn", **kw)


@pytest.mark.skipif(ON_GPU, reason="checks the message off a GPU")
def test_off_a_gpu_it_names_the_backend():
  cell, p, xs, _ = _setup()
  with pytest.raises(ValueError, match="impl='cudnn' cannot run here: cuDNN runs on an "
                                       "NVIDIA GPU, not cpu"):
    rz.unroll(cell, p, xs, impl="cudnn")
  assert cudnn.status() == "not available: cuDNN runs on an NVIDIA GPU, not cpu"
  with cudnn.emulated():
    assert cudnn.status().endswith("[emulated]")


def test_bad_value():
  cell, p, xs, _ = _setup()
  with pytest.raises(ValueError, match="cudnn must be True or False, got 'yes'"):
    rz.unroll(cell, p, xs, cudnn="yes")
  with pytest.raises(ValueError, match=r"impl must be one of \['auto', .*\], got 'cuda'"):
    rz.unroll(cell, p, xs, impl="cuda")


def test_emulation_ends_with_its_block():
  assert not cudnn._emulation["on"]
  with contextlib.suppress(RuntimeError), cudnn.emulated():
    raise RuntimeError
  assert not cudnn._emulation["on"]


def _same_grads(loss, params, atol=2e-6):
  with cudnn.emulated():
    got = jax.jit(jax.grad(lambda p: loss(p, True)))(params)
  want = jax.jit(jax.grad(lambda p: loss(p, False)))(params)
  for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, atol=atol, rtol=1e-4)


def test_char_lm_with_truncated_bptt():
  tokens = jax.random.randint(jax.random.key(1), (3, 12), 0, 9)
  make = lambda use: rz.models.CharLM(vocab_size=9, cell=rz.LSTM(H), cudnn=use)
  params = make(False).init(key=jax.random.key(0))

  def loss(p, use):
    logits, _ = make(use).apply(p, tokens[:, :-1], window=4)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, tokens[:, 1:]))

  _same_grads(loss, params)


def test_vqa_question_reader_with_lengths():
  make = lambda use: rz.models.VQA(num_answers=5, question_vocab=11, cell=rz.LSTM(H),
                                   fusion="concat", image_size=16, channels=(4, 4),
                                   bidirectional=True, cudnn=use)
  params = make(False).init(key=jax.random.key(0))
  questions = jnp.array([[3, 4, 5, 0, 0], [7, 0, 0, 0, 0], [1, 2, 3, 4, 5]])

  def loss(p, use):
    return jnp.sum(jnp.sin(make(use).read(p, questions)))

  _same_grads(loss, params)


def test_sequence_model_probes_run_on_the_scan_runner():
  """The gradient-flow probes need the scan runner: with them a cudnn=True
  model runs there (here, off a GPU, it would raise otherwise)."""
  model = rz.models.SequenceModel(rz.LSTM(H), output_size=1, num_layers=2, cudnn=True)
  xs = jax.random.normal(jax.random.key(1), (B, T, I))
  with cudnn.emulated():
    params = model.init(jax.random.key(0), xs)
  probes = (jnp.zeros((B, T, H)),) * 2
  got = model.apply(params, xs, hidden_probes=probes)
  want = model.clone(cudnn=False).apply(params, xs)
  np.testing.assert_allclose(got, want, atol=1e-6)
