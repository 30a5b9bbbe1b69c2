"""The char-level LM: sequence apply == token steps, first loss ~ ln(V), errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnn_zoo as rz
from rnn_zoo import decoding


@pytest.mark.parametrize("embed_size,cell", [
    (None, "lstm"), (8, "lstm"),
    # The linear cells: apply runs the parallel scan, step the sequential cell.
    (None, "mingru"), (8, "lru")])
def test_apply_equals_stepping_token_by_token(embed_size, cell):
  lm = rz.models.CharLM(vocab_size=11, cell=rz.make_cell(cell, 16), num_layers=2,
                        embed_size=embed_size)
  p = lm.init(key=jax.random.key(0))
  p["head"]["w"] = p["head"]["w"] * 100  # make logits non-trivial
  toks = jax.random.randint(jax.random.key(1), (3, 9), 0, 11)
  logits, carry = lm.apply(p, toks)
  c = lm.initial_carry(3)
  for t in range(9):
    c, lt = lm.step(p, c, toks[:, t])
    np.testing.assert_allclose(lt, logits[:, t], rtol=1e-4, atol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), c, carry)
  # Truncated BPTT gives the same forward values.
  tl, _ = lm.apply(p, toks, window=4)
  np.testing.assert_allclose(tl, logits, rtol=1e-5, atol=1e-6)


def test_first_loss_is_ln_vocab():
  V = 65
  lm = rz.models.CharLM(vocab_size=V, cell=rz.GRU(32))
  p = lm.init(key=jax.random.key(0))
  toks = jax.random.randint(jax.random.key(1), (8, 40), 0, V)
  logits, _ = lm.apply(p, toks[:, :-1])
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, toks[:, 1:]).mean()
  assert float(loss) == pytest.approx(np.log(V), rel=0.01)


def test_out_of_range_tokens_are_an_error():
  lm = rz.models.CharLM(vocab_size=5, cell=rz.GRU(4))
  p = lm.init(key=jax.random.key(0))
  with pytest.raises(ValueError, match=r"tokens must lie in \[0, vocab_size=5\), got \[5\]"):
    lm.apply(p, jnp.array([[0, 5]]))
  with pytest.raises(ValueError, match=r"tokens must lie in \[0, vocab_size=5\), got \[-1\]"):
    lm.step(p, lm.initial_carry(2), jnp.array([-1, 2]))
  with pytest.raises(ValueError, match=r"prompt token ids must lie in \[0, vocab=5\), got \[7\]"):
    decoding.generate(lm.step, p, lm.initial_carry(1), jnp.array([[1, 7]]),
                      length=3, key=jax.random.key(0))
  with pytest.raises(ValueError, match="tokens must be integer ids"):
    lm.apply(p, jnp.array([[0.0, 1.0]]))


def test_generation_with_the_lm_is_reproducible():
  lm = rz.models.CharLM(vocab_size=9, cell=rz.LSTM(8), num_layers=1)
  p = lm.init(key=jax.random.key(0))
  prompt = jnp.array([[1, 2, 3]] * 4)
  kw = dict(length=30, key=jax.random.key(5), temperature=1.0)
  a, _ = decoding.generate(lm.step, p, lm.initial_carry(4), prompt, **kw)
  b, _ = decoding.generate_loop(lm.step, p, lm.initial_carry(4), prompt, **kw)
  np.testing.assert_array_equal(a, b)
  assert a.shape == (4, 30) and int(a.max()) < 9


@pytest.mark.parametrize("embed_size", [None, 3])
def test_out_of_range_tokens_under_jit_are_nan(embed_size):
  """Under jit ids cannot be checked: they give NaN, never a clamped row,
  a wrapped-around -1 or an all-zero one-hot."""
  lm = rz.models.CharLM(vocab_size=5, cell=rz.LSTM(4), embed_size=embed_size)
  p = lm.init(key=jax.random.key(0))
  logits, _ = jax.jit(lm.apply)(p, jnp.array([[0, 1, 2], [3, 5, 4]]))
  assert np.isfinite(np.asarray(logits[0])).all()
  assert np.isnan(np.asarray(logits[1, 1:])).all()   # from the bad id on
  assert np.isfinite(np.asarray(logits[1, 0])).all()
  _, step_logits = jax.jit(lm.step)(p, lm.initial_carry(2), jnp.array([-1, 2]))
  assert np.isnan(np.asarray(step_logits[0])).all()
  assert np.isfinite(np.asarray(step_logits[1])).all()
  gen = jax.jit(lambda p, prompt: decoding.generate(
      lm.step, p, lm.initial_carry(2), prompt, length=4, key=jax.random.key(0),
      temperature=0)[1])
  carry = gen(p, jnp.array([[1, 9], [1, 2]]))
  assert np.isnan(np.asarray(carry[0].h[0])).all()


def test_generate_checks_its_options_against_the_model():
  lm = rz.models.CharLM(vocab_size=5, cell=rz.GRU(4), num_layers=1)
  p = lm.init(key=jax.random.key(0))
  kw = dict(length=3, key=jax.random.key(0))
  with pytest.raises(ValueError, match="top_k must be at most the vocabulary size 5, got 6"):
    decoding.generate(lm.step, p, lm.initial_carry(1), jnp.array([[1]]), top_k=6, **kw)
  with pytest.raises(ValueError, match="carry and prompt disagree on the batch: prompt has 2 rows"):
    decoding.generate(lm.step, p, lm.initial_carry(3), jnp.array([[1], [2]]), **kw)
  with pytest.raises(ValueError, match=r"end_token must lie in \[0, vocab=5\), got 5"):
    decoding.generate(lm.step, p, lm.initial_carry(1), jnp.array([[1]]), end_token=5, **kw)


def test_stack_step_is_the_lm_step():
  """CharLM.step goes through StackedRNN.step and equals apply token by token."""
  lm = rz.models.CharLM(vocab_size=7, cell=rz.GRU(5), num_layers=3)
  p = lm.init(key=jax.random.key(0))
  toks = jnp.array([[1, 4, 6, 0], [2, 2, 3, 5]])
  logits, final = lm.apply(p, toks)
  carry = lm.initial_carry(2)
  for t in range(4):
    carry, lt = lm.step(p, carry, toks[:, t])
    np.testing.assert_allclose(lt, logits[:, t], rtol=1e-5, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), carry, final)
