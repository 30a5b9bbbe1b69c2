"""Beam search: width 1 is greedy, wide beams find the exhaustive optimum,
END masking and early stop, the loop reference, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_zoo as rz
from rnn_zoo import decoding

V, H, END = 5, 12, 4


def lm(key, vocab=V):
  """A small GRU language model whose next-token law depends on the prefix."""
  cell = rz.GRU(H)
  k1, k2, k3 = jax.random.split(key, 3)
  params = {"emb": jax.random.normal(k1, (vocab, 6)), "cell": cell.init(k2, 6),
            "out": jax.random.normal(k3, (H, vocab)) * 2.0}

  def step(p, carry, tok):
    carry, h = cell.step(p["cell"], carry, p["emb"][tok])
    return carry, h @ p["out"]
  return cell, params, step


def sequence_logprob(step, p, carry, prompt_row, tokens):  # pylint: disable=redefined-outer-name
  """log p(tokens | prompt) by feeding them one at a time (stops after END)."""
  c = carry
  for tok in prompt_row[:-1]:
    c, _ = step(p, c, jnp.array([tok]))
  total, last = 0.0, prompt_row[-1]
  for tok in tokens:
    c, logits = step(p, c, jnp.array([last]))
    total += float(jax.nn.log_softmax(logits[0])[tok])
    if tok == END:
      break
    last = tok
  return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_width_one_is_greedy_token_for_token(seed):
  cell, p, step = lm(jax.random.key(seed))
  prompt = jnp.array([[0, 1], [2, 2], [3, 0]])
  out = decoding.beam_search(step, p, cell.initial_carry((3,)), prompt, beam_size=1,
                             max_length=9, end_token=END)
  greedy, _ = decoding.generate(step, p, cell.initial_carry((3,)), prompt, length=9,
                                key=jax.random.key(0), temperature=0, end_token=END)
  np.testing.assert_array_equal(out["tokens"][:, 0], greedy)


@pytest.mark.parametrize("seed", [3, 4, 8])
def test_beams_are_the_exhaustive_top_k(seed):
  """V=9, two steps, K=9: nothing is pruned before the last step, so the K
  beams are exactly the K most likely of all sequences (cut at END), with
  their log-probabilities."""
  vocab, end, K = 9, 8, 9
  cell, p, step = lm(jax.random.key(seed), vocab=vocab)
  carry = cell.initial_carry((1,))
  out = decoding.beam_search(step, p, carry, jnp.array([[0]]), beam_size=K,
                             max_length=2, end_token=end)
  _, logits0 = step(p, carry, jnp.array([0]))
  lp0 = np.asarray(jax.nn.log_softmax(logits0[0]), np.float64)
  every = {(end,): lp0[end]}
  for a in range(vocab):
    if a == end:
      continue
    _, logits1 = step(p, step(p, carry, jnp.array([0]))[0], jnp.array([a]))
    lp1 = np.asarray(jax.nn.log_softmax(logits1[0]), np.float64)
    for b in range(vocab):
      every[(a, b)] = lp0[a] + lp1[b]
  want = sorted(every.items(), key=lambda kv: -kv[1])[:K]
  got = []
  for k in range(K):
    toks = out["tokens"][0, k].tolist()
    got.append((tuple(toks[:toks.index(end) + 1]) if end in toks else tuple(toks),
                float(out["logprobs"][0, k])))
  assert [g[0] for g in got] == [w[0] for w in want]
  np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], atol=1e-4)


@pytest.mark.parametrize("seed", [5, 6])
def test_beam_is_at_least_as_likely_as_greedy(seed):
  cell, p, step = lm(jax.random.key(seed))
  prompt = jnp.array([[0], [1], [2], [3]])
  kw = dict(max_length=8, end_token=END)
  g = decoding.beam_search(step, p, cell.initial_carry((4,)), prompt, beam_size=1, **kw)
  b = decoding.beam_search(step, p, cell.initial_carry((4,)), prompt, beam_size=4, **kw)
  assert np.all(np.asarray(b["logprobs"][:, 0]) >= np.asarray(g["logprobs"][:, 0]) - 1e-5)
  # Scores are sorted best first, and each is its sequence's log-prob.
  assert np.all(np.diff(np.asarray(b["scores"]), axis=1) <= 1e-6)
  row = b["tokens"][2, 1].tolist()
  np.testing.assert_allclose(float(b["logprobs"][2, 1]),
                             sequence_logprob(step, p, cell.initial_carry((1,)), [2], row),
                             atol=1e-4)


def test_end_masks_the_rest_and_the_loop_stops_early():
  # A bigram table where END is certain after token 1.
  table = jnp.log(jnp.array([[0.1, 0.8, 0.05, 0.05], [1e-6, 1e-6, 1e-6, 1.0],
                             [0.25] * 4, [0.25] * 4]))
  step = lambda p, c, tok: (c, p[tok])
  out = decoding.beam_search(step, table, (), jnp.array([[0], [0]]), beam_size=2,
                             max_length=20, end_token=3)
  assert out["tokens"][0, 0].tolist()[:2] == [1, 3]
  assert set(out["tokens"][0, 0].tolist()[2:]) == {3}
  assert int(out["lengths"][0, 0]) == 2
  assert int(out["steps"]) < 20  # every beam ended well before max_length


def test_length_penalty_reranks_finished_beams():
  table = jnp.log(jnp.array([[0.01, 0.55, 0.44], [0.3, 0.01, 0.69], [1 / 3] * 3]))
  step = lambda p, c, tok: (c, p[tok])
  kw = dict(beam_size=3, max_length=2, end_token=2)
  raw = decoding.beam_search(step, table, (), jnp.array([[0]]), length_penalty=0.0, **kw)
  long = decoding.beam_search(step, table, (), jnp.array([[0]]), length_penalty=2.0, **kw)
  # log .44 = -0.82 (length 1) vs log(.55 * .69) = -0.97 (length 2): alpha=0
  # prefers the short one; divided by 2**2 the long one wins (-0.24).
  assert raw["tokens"][0, 0].tolist() == [2, 2]
  assert long["tokens"][0, 0].tolist() == [1, 2]
  np.testing.assert_allclose(long["scores"][0, 0], np.log(.55 * .69) / 4, rtol=1e-5)


def test_jitted_loop_equals_python_loop_and_jit_works():
  cell, p, step = lm(jax.random.key(7))
  prompt = jnp.array([[0, 1], [3, 2]])
  kw = dict(beam_size=3, max_length=7, end_token=END, length_penalty=0.6)
  a = decoding.beam_search(step, p, cell.initial_carry((2,)), prompt, **kw)
  b = decoding.beam_search_loop(step, p, cell.initial_carry((2,)), prompt, **kw)
  c = jax.jit(lambda p, prompt: decoding.beam_search(
      step, p, cell.initial_carry((2,)), prompt, **kw))(p, prompt)
  for k in ("tokens", "lengths"):
    np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(a[k], c[k])
  np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5)


def test_char_lm_beam_search():
  lm_model = rz.models.CharLM(vocab_size=6, cell=rz.LSTM(8), num_layers=2)
  p = lm_model.init(key=jax.random.key(0))
  out = decoding.beam_search(lm_model.step, p, lm_model.initial_carry(2),
                             jnp.array([[1, 2], [3, 4]]), beam_size=3, max_length=5,
                             end_token=0)
  assert out["tokens"].shape == (2, 3, 5)


@pytest.mark.parametrize("kwargs,message", [
    ({"beam_size": 0}, "beam_size must be a positive int, got 0"),
    ({"beam_size": 9}, "beam_size must be at most the vocabulary size 5, got 9"),
    ({"max_length": 0}, "max_length must be a positive int, got 0"),
    ({"end_token": 5}, r"end_token must lie in \[0, vocab=5\), got 5"),
    ({"length_penalty": -1.0}, "length_penalty must be a number >= 0.0, got -1.0"),
])
def test_bad_options(kwargs, message):
  cell, p, step = lm(jax.random.key(0))
  kw = {"beam_size": 2, "max_length": 4, "end_token": END} | kwargs
  with pytest.raises(ValueError, match=message):
    decoding.beam_search(step, p, cell.initial_carry((1,)), jnp.array([[0]]), **kw)


def test_each_step_touches_its_own_tokens_only_and_the_length_is_bounded():
  """Every step used to copy the [B, K, max_length] prefixes (quadratic in
  max_length: 32,000 tokens took 9.7 s). Now the loop body writes one
  [B, K] slice of tokens and backpointers; no op of the body makes a
  max_length-sized array otherwise."""
  table = jnp.log(jnp.full((5, 5), 0.2))
  step = lambda p, c, tok: (c, p[tok])
  L = 977  # a size no other dimension has
  jaxpr = jax.make_jaxpr(lambda p: decoding.beam_search(
      step, p, (), jnp.array([[0]]), beam_size=3, max_length=L, end_token=4))(table)
  loops = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "while"]
  assert len(loops) == 1
  body = loops[0].params["body_jaxpr"].jaxpr
  big = sorted({e.primitive.name for e in body.eqns
                for v in e.outvars if L in getattr(v.aval, "shape", ())})
  assert big == ["dynamic_update_slice"], big
  with pytest.raises(ValueError, match=r"max_length must be at most 65,536 for beam_search"):
    decoding.beam_search(step, table, (), jnp.array([[0]]), beam_size=2,
                         max_length=decoding.MAX_BEAM_LENGTH + 1, end_token=4)
