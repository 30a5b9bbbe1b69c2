"""Generation (temperature, top-k, END, priming) and character-level text."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_zoo as rz
from rnn_zoo import decoding
from rnn_zoo.data import text

V, H = 7, 16


def char_model(key):
  """A tiny embedding -> GRU -> logits step function over V tokens."""
  cell = rz.GRU(H)
  k1, k2, k3 = jax.random.split(key, 3)
  params = {"emb": jax.random.normal(k1, (V, 5)), "cell": cell.init(k2, 5),
            "out": jax.random.normal(k3, (H, V)) * 2}

  def step(p, carry, tok):
    carry, h = cell.step(p["cell"], carry, p["emb"][tok])
    return carry, h @ p["out"]
  return cell, params, step


@pytest.fixture(scope="module")
def model():
  return char_model(jax.random.key(0))


def test_temperature_zero_is_argmax_decoding(model):
  cell, p, step = model
  prompt = jnp.array([[1, 2, 3], [4, 4, 4]])
  toks, _ = decoding.generate(step, p, cell.initial_carry((2,)), prompt,
                              length=12, key=jax.random.key(1), temperature=0)
  # By hand: prime, then feed back the argmax each step.
  c = cell.initial_carry((2,))
  for t in range(2):
    c, _ = step(p, c, prompt[:, t])
  tok, want = prompt[:, -1], []
  for _ in range(12):
    c, logits = step(p, c, tok)
    tok = jnp.argmax(logits, -1)
    want.append(tok)
  np.testing.assert_array_equal(toks, jnp.stack(want, 1))


def test_scan_equals_python_loop_and_seed_is_reproducible(model):
  cell, p, step = model
  prompt = jnp.array([[1, 2], [3, 0], [5, 6]])
  kw = dict(length=20, key=jax.random.key(7), temperature=0.8, top_k=4)
  a, ca = decoding.generate(step, p, cell.initial_carry((3,)), prompt, **kw)
  b, cb = decoding.generate_loop(step, p, cell.initial_carry((3,)), prompt, **kw)
  np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(ca.h, cb.h, rtol=1e-5)
  again, _ = jax.jit(lambda k: decoding.generate(
      step, p, cell.initial_carry((3,)), prompt, length=20, key=k,
      temperature=0.8, top_k=4))(jax.random.key(7))
  np.testing.assert_array_equal(a, again)
  other, _ = decoding.generate(step, p, cell.initial_carry((3,)), prompt,
                               length=20, key=jax.random.key(8), temperature=0.8, top_k=4)
  assert not np.array_equal(a, other)


def test_sampling_follows_the_softmax_and_top_k():
  probs = np.array([0.5, 0.3, 0.15, 0.05])
  logits = jnp.log(jnp.asarray(probs))[None].repeat(20000, 0)
  toks = decoding.choose(logits, jax.random.key(0), temperature=1.0)
  freq = np.bincount(np.asarray(toks), minlength=4) / 20000
  np.testing.assert_allclose(freq, probs, atol=0.015)
  toks = decoding.choose(logits, jax.random.key(1), temperature=1.0, top_k=2)
  freq = np.bincount(np.asarray(toks), minlength=4) / 20000
  np.testing.assert_allclose(freq, [0.625, 0.375, 0, 0], atol=0.015)
  # Low temperature sharpens towards the argmax.
  toks = decoding.choose(logits, jax.random.key(2), temperature=0.1)
  assert np.mean(np.asarray(toks) == 0) > 0.99


def test_end_token_stops_a_sequence():
  # Token t -> t + 1; 3 is END.
  table = jnp.eye(5)[jnp.array([1, 2, 3, 4, 0])] * 10.0
  step = lambda p, c, tok: (c + 1, p[tok])
  toks, steps = decoding.generate(step, table, jnp.zeros((2,)), jnp.array([[0], [2]]),
                                  length=6, key=jax.random.key(0), temperature=0,
                                  end_token=3)
  assert toks.tolist() == [[1, 2, 3, 3, 3, 3], [3, 3, 3, 3, 3, 3]]
  # The carry stops changing once a sequence is done.
  assert steps.tolist() == [3.0, 1.0]


@pytest.mark.parametrize("kw,message", [
    (dict(temperature=-1.0), "temperature must be >= 0 (0: argmax), got -1.0"),
    (dict(top_k=-2), "top_k must be an int >= 0 (0: no limit), got -2"),
    (dict(length=0), "length must be a positive int, got 0"),
])
def test_generate_bad_arguments(model, kw, message):
  cell, p, step = model
  args = dict(length=3, key=jax.random.key(0)) | kw
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    decoding.generate(step, p, cell.initial_carry((1,)), jnp.array([[1]]), **args)
  with pytest.raises(ValueError, match="prompt must hold integer token ids"):
    decoding.generate(step, p, cell.initial_carry((1,)), jnp.array([[1.0]]),
                      length=3, key=jax.random.key(0))


def test_default_corpus_and_vocab_round_trip():
  corpus, source = text.default_corpus()
  assert len(corpus) > 400_000 and "pydoc_data" in source
  assert corpus == text.default_corpus()[0]  # deterministic
  train, val = text.split(corpus, 0.05)
  assert train + val == corpus and len(val) == int(len(corpus) * 0.05)
  vocab = text.Vocab.build(train)
  assert list(vocab.chars) == sorted(set(train)) and vocab.size == len(vocab.chars) + 1
  assert vocab.decode(vocab.encode(val[:500])) == "".join(
      c if c in vocab.chars else text.UNK for c in val[:500])
  assert text.Vocab.from_json(vocab.to_json()) == vocab
  assert vocab.encode("\u2603").tolist() == [0]  # unseen -> <unk>
  with pytest.raises(ValueError, match=r"token ids must lie in \[0, "):
    vocab.decode([vocab.size])


def test_load_corpus_errors(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    text.load_corpus(str(tmp_path / "missing.txt"))
  (tmp_path / "empty.txt").write_text("")
  with pytest.raises(ValueError, match="is empty"):
    text.load_corpus(str(tmp_path / "empty.txt"))
  (tmp_path / "bad.txt").write_bytes(b"ok \xff\xfe")
  with pytest.raises(ValueError, match="is not valid UTF-8"):
    text.load_corpus(str(tmp_path / "bad.txt"))
  (tmp_path / "short.txt").write_text("abc")
  with pytest.raises(ValueError, match="has 3 characters; at least 10"):
    text.load_corpus(str(tmp_path / "short.txt"), min_chars=10)
  (tmp_path / "ok.txt").write_text("héllo wörld", encoding="utf-8")
  assert text.load_corpus(str(tmp_path / "ok.txt")) == "héllo wörld"


def test_stream_windows_cover_the_corpus_in_order():
  ids = np.arange(103, dtype=np.int32)
  inputs, targets = text.stream_windows(ids, batch=4, window=5)
  # (103 - 1) // 4 = 25 per stream -> 5 windows of 5.
  assert inputs.shape == targets.shape == (5, 4, 5)
  for b in range(4):
    stream = inputs[:, b].reshape(-1)
    np.testing.assert_array_equal(stream, np.arange(b * 25, b * 25 + 25))
    np.testing.assert_array_equal(targets[:, b].reshape(-1), stream + 1)
  # Window k+1 of a stream continues window k: the carry can flow across.
  np.testing.assert_array_equal(inputs[1, :, 0], inputs[0, :, -1] + 1)
  with pytest.raises(ValueError, match="too few"):
    text.stream_windows(ids[:10], batch=4, window=5)
