"""The model protocol (rnn_zoo.models.protocol): init(*, key), apply with
key/deterministic under one dropout rule, loss -> (scalar, aux)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_zoo as rz
from rnn_zoo.models import protocol

KEY = jax.random.key(0)


def _models():
  return {
      "char_lm": rz.models.CharLM(vocab_size=7, cell=rz.GRU(8), num_layers=2,
                                  dropout_rate=0.3),
      "captioner": rz.models.Captioner(vocab_size=9, cell=rz.LSTM(8), mode="soft",
                                       embed_size=6, image_size=16, channels=(4, 4)),
      "vqa": rz.models.VQA(num_answers=3, question_vocab=6, cell=rz.GRU(8),
                           fusion="concat", image_size=16, channels=(4, 4),
                           mlp_size=8),
  }


def _batch(name):
  k1, k2 = jax.random.split(jax.random.key(1))
  if name == "char_lm":
    tokens = jax.random.randint(k1, (2, 5), 0, 7)
    return (tokens, jnp.roll(tokens, -1, axis=1))
  images = jax.random.uniform(k1, (2, 16, 16, 3))
  if name == "captioner":
    return (images, jnp.array([[1, 4, 5, 2], [1, 6, 2, 0]]))
  return (images, jax.random.randint(k2, (2, 4), 1, 6), jnp.array([0, 2]))


@pytest.mark.parametrize("name", ["char_lm", "captioner", "vqa"])
def test_every_model_follows_the_protocol(name):
  model = _models()[name]
  assert isinstance(model, protocol.Model)
  params = model.init(key=KEY)
  with pytest.warns(DeprecationWarning, match=r"init\(key\) is deprecated.*init\(key=key\)"):
    old = model.init(KEY)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(old)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match="needs key="):
    model.init()
  with pytest.raises(ValueError, match="takes one keyword argument, key="):
    model.init(KEY, KEY)
  batch = _batch(name)
  loss, aux = jax.jit(lambda p: model.loss(p, *batch))(params)
  assert loss.shape == () and np.isfinite(loss)
  metrics = aux[0] if name == "char_lm" else aux
  assert isinstance(metrics, dict) and "accuracy" in metrics
  inputs = batch[:2] if name != "char_lm" else batch[:1]
  plain = model.apply(params, *inputs)
  keyed = model.apply(params, *inputs, key=jax.random.key(3), deterministic=True)
  for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(keyed)):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match="deterministic must be None, True or False, got 'no'"):
    model.apply(params, *inputs, deterministic="no")


def _dropout_fronts():
  """(name, run(deterministic, key) -> outputs) for every front-end with dropout."""
  xs = jax.random.normal(jax.random.key(2), (3, 6, 4))
  stack = rz.StackedRNN.of(rz.LSTM(8), 2, dropout_rate=0.5)
  sp = stack.init(KEY, 4)
  lm = rz.models.CharLM(vocab_size=7, cell=rz.LSTM(8), num_layers=2, dropout_rate=0.5)
  lp = lm.init(key=KEY)
  tokens = jax.random.randint(jax.random.key(4), (3, 6), 0, 7)
  layer = rz.nn.RNN(rz.GRU(8), num_layers=2, dropout_rate=0.5)
  lv = layer.init(KEY, xs)
  seq = rz.models.SequenceModel(cell=rz.GRU(8), output_size=2, num_layers=2,
                                dropout_rate=0.5, readout="all")
  qv = seq.init(KEY, xs)

  def flax_run(module, variables):
    def run(deterministic, key):
      rngs = {} if key is None else {"dropout": key}
      kw = {} if deterministic == "default" else {"deterministic": deterministic}
      return module.apply(variables, xs, rngs=rngs, **kw)
    return run

  def fn_run(call):
    def run(deterministic, key):
      kw = {} if deterministic == "default" else {"deterministic": deterministic}
      return call(key=key, **kw)
    return run

  carry = stack.initial_carry((3,))
  return {
      "StackedRNN.apply": fn_run(lambda **kw: stack.apply(sp, xs, **kw)[0]),
      "StackedRNN.step": fn_run(lambda **kw: stack.step(sp, carry, xs[:, 0], **kw)[1]),
      "CharLM.apply": fn_run(lambda **kw: lm.apply(lp, tokens, **kw)[0]),
      "nn.RNN": flax_run(layer, lv),
      "SequenceModel": flax_run(seq, qv),
  }


@pytest.mark.parametrize("front", sorted(_dropout_fronts()))
def test_one_dropout_rule_everywhere(front):
  """deterministic=None (every default): dropout exactly when randomness is
  given; False without a key is an error naming it."""
  run = _dropout_fronts()[front]
  key = jax.random.key(7)
  det = run(True, key)
  np.testing.assert_array_equal(run("default", None), det)
  dropped = run("default", key)
  np.testing.assert_array_equal(dropped, run(False, key))
  assert not np.allclose(dropped, det)
  with pytest.raises(ValueError, match=r"key is required for dropout_rate=0.5 with deterministic=False"):
    run(False, None)


def test_one_rule_for_bad_ids_an_error_when_concrete_nan_under_jit():
  """Every model: an out-of-range id is an error naming the argument when
  concrete; under jit its row's logits are NaN, and decoding gives the
  token -1 (not a valid-looking 0)."""
  from rnn_zoo import decoding  # pylint: disable=g-import-not-at-top
  models = _models()
  cap, vqa, lm = models["captioner"], models["vqa"], models["char_lm"]
  images = jax.random.uniform(jax.random.key(1), (2, 16, 16, 3))
  cp, vp, lp = cap.init(key=KEY), vqa.init(key=KEY), lm.init(key=KEY)
  carry = cap.initial_carry(cp, images)
  _, logits = jax.jit(cap.step)(cp, carry, jnp.array([3, 99]))
  assert np.isfinite(logits[0]).all() and np.isnan(logits[1]).all()
  with pytest.raises(ValueError, match=r"tokens must lie in \[0, vocab_size=9\), got \[99\]"):
    cap.step(cp, carry, jnp.array([3, 99]))
  questions = jnp.array([[1, 2, 3, 99], [1, 2, 3, 4]])
  logits, _ = jax.jit(vqa.apply)(vp, images, questions)
  assert np.isnan(logits[0]).all() and np.isfinite(logits[1]).all()
  with pytest.raises(ValueError, match=r"must lie in \[0, "):
    vqa.apply(vp, images, questions)
  good = jnp.array([[1, 2, 3, 4], [1, 2, 3, 4]])
  with pytest.raises(ValueError, match=r"answers must lie in \[0, num_answers=3\), got \[7\]"):
    vqa.loss(vp, images, good, jnp.array([0, 7]))
  assert np.isnan(jax.jit(vqa.loss)(vp, images, good, jnp.array([0, 7]))[0])
  with pytest.raises(ValueError, match="answers must be integer answer ids, got float32"):
    vqa.loss(vp, images, good, jnp.array([0.0, 1.0]))

  def sample(prompt, temperature):
    return jax.jit(lambda p, prompt: decoding.generate(
        lm.step, p, lm.initial_carry(2), prompt, length=3, key=jax.random.key(0),
        temperature=temperature))(lp, prompt)[0]
  for temperature in (0.0, 1.0):
    toks = np.asarray(sample(jnp.array([[2], [9]]), temperature))
    assert np.all(toks[1] == -1) and np.all((toks[0] >= 0) & (toks[0] < 7)), toks
