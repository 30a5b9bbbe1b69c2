"""char-rnn: stream batches, the carried state, truncation at window
boundaries, sampling, diversity measures, corpora."""

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.char_rnn import workload as workloads
from rnn_zoo.data import text as text_lib
from rnn_zoo.metrics import text as text_metrics
from rnn_zoo.training import loop
from rnn_zoo.training import optim
from rnn_zoo.training.state import TrainState

from experiments.char_rnn import config as cr_config


def small_config(tmp_path, **overrides):
  c = cr_config.get_config("smoke")
  corpus = tmp_path / "corpus.txt"
  rng = np.random.default_rng(0)
  words = ["the ", "cat ", "sat ", "on ", "a ", "mat. ", "dog\n", "ran "]
  corpus.write_text("".join(rng.choice(words, 600)), encoding="utf-8")
  c.corpus = str(corpus)
  c.max_chars = 0
  c.batch_size = 4
  c.seq_len = 10
  c.val_fraction = 0.2
  c.val_block = 0
  c.hidden_size = 16
  c.update(overrides)
  return c


def test_stream_batches_cover_each_stream_in_order_and_wrap(tmp_path):
  c = small_config(tmp_path)
  w = workloads.char_rnn(c)
  n = w.info["train_windows_per_epoch"]
  text = open(c.corpus, encoding="utf-8").read()
  train_text, _ = text_lib.split(text, c.val_fraction, c.val_block)
  vocab = text_lib.Vocab.from_json(w.vocab)
  ids = vocab.encode(train_text)
  per_stream = (len(ids) - 1) // c.batch_size
  batches = [w.train_batch(None, s) for s in range(n + 1)]
  for b in range(c.batch_size):
    stream = np.concatenate([np.asarray(batches[s]["inputs"][b]) for s in range(n)])
    np.testing.assert_array_equal(stream, ids[b * per_stream: b * per_stream + n * c.seq_len])
    targets = np.concatenate([np.asarray(batches[s]["targets"][b]) for s in range(n)])
    np.testing.assert_array_equal(targets, ids[b * per_stream + 1: b * per_stream + n * c.seq_len + 1])
  resets = [bool(batches[s]["reset"][0]) for s in range(n + 1)]
  assert resets == [True] + [False] * (n - 1) + [True]   # epoch wrap resets
  np.testing.assert_array_equal(batches[n]["inputs"], batches[0]["inputs"])
  stateless = workloads.char_rnn(small_config(tmp_path, stateful=False))
  assert all(bool(stateless.train_batch(None, s)["reset"][0]) for s in range(3))


def _window_losses(w, params, batches, carry):
  out = []
  for batch in batches:
    loss, (_, carry) = w.loss_fn(params, batch, jax.random.key(0), False, carry=carry)
    out.append(float(loss))
  return out


@pytest.mark.slow
@pytest.mark.parametrize("cell", ["lstm", "mingru", "lru"])
def test_carried_state_equals_one_pass_over_the_whole_stream(tmp_path, cell):
  c = small_config(tmp_path, cell=cell)
  w = workloads.char_rnn(c)
  lm = workloads.make_char_lm(c, text_lib.Vocab.from_json(w.vocab).size)
  params = lm.init(key=jax.random.key(1))
  params["head"]["w"] = params["head"]["w"] * 50   # make the state matter
  batches = [w.train_batch(None, s) for s in range(3)]
  stateful = _window_losses(w, params, batches, w.init_carry(c.batch_size))
  inputs = jnp.concatenate([b["inputs"] for b in batches], axis=1)
  targets = jnp.concatenate([b["targets"] for b in batches], axis=1)
  logits, _ = lm.apply(params, inputs)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  whole = [float(ce[:, k * c.seq_len:(k + 1) * c.seq_len].mean()) for k in range(3)]
  np.testing.assert_allclose(stateful, whole, rtol=1e-5)
  # Stateless windows start from zeros, so window 1 differs (and window 2,
  # by more than rounding, for the LSTM; the minGRU at init forgets half its
  # state per step, so by its window 2 the two almost agree).
  ws = workloads.char_rnn(small_config(tmp_path, stateful=False, cell=cell))
  fresh = _window_losses(ws, params, [ws.train_batch(None, s) for s in range(3)],
                         ws.init_carry(c.batch_size))
  assert fresh[0] == pytest.approx(whole[0], rel=1e-5)
  assert abs(fresh[1] - whole[1]) > 1e-4
  if cell == "lstm":
    assert abs(fresh[2] - whole[2]) > 1e-4


@pytest.mark.parametrize("cell", ["lstm", "mingru"])
def test_train_step_carries_state_and_cuts_the_gradient_at_the_boundary(tmp_path, cell):
  c = small_config(tmp_path, clip_norm=0.0, cell=cell)
  w = workloads.char_rnn(c)
  optimizer = optim.make_optimizer(c)
  step = jax.jit(loop.make_train_step(w, optimizer, c))
  params = w.init_params(jax.random.key(0))
  params["head"]["w"] = params["head"]["w"] * 50
  state = TrainState(step=jnp.zeros((), jnp.int32), params=params,
                     opt_state=optimizer.init(params),
                     key=jax.random.key_data(jax.random.key(2)),
                     nonfinite_steps=jnp.zeros((), jnp.int32),
                     carry=w.init_carry(c.batch_size))
  b0, b1 = w.train_batch(None, 0), w.train_batch(None, 1)
  state1, _ = step(state, b0)
  # The carry after step 0 is the state at the end of window 0.
  _, (_, c0) = w.loss_fn(params, b0, None, True, carry=w.init_carry(c.batch_size))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               state1.carry, c0)
  _, m = step(state1, b1)
  p1 = state1.params
  truncated = jax.grad(lambda p: w.loss_fn(p, b1, None, True, carry=state1.carry)[0])(p1)

  def through_both(p):  # full BPTT across the boundary
    _, (_, carry) = w.loss_fn(p, b0, None, True, carry=w.init_carry(c.batch_size))
    return w.loss_fn(p, b1, None, True, carry=carry)[0]
  full = jax.grad(through_both)(p1)
  assert float(m["grad_norm"]) == pytest.approx(float(optax.tree.norm(truncated)), rel=1e-4)
  assert abs(float(optax.tree.norm(full)) - float(optax.tree.norm(truncated))) > 1e-4


def test_first_loss_is_ln_vocab_and_metrics_in_bits(tmp_path):
  c = small_config(tmp_path)
  w = workloads.char_rnn(c)
  params = w.init_params(jax.random.key(0))
  loss, (m, _) = w.loss_fn(params, w.train_batch(None, 0), None, False,
                           carry=w.init_carry(c.batch_size))
  V = w.info["vocab_size"]
  assert float(loss) == pytest.approx(math.log(V), rel=0.01)
  assert float(m["bits_per_char"]) == pytest.approx(float(loss) / math.log(2), rel=1e-6)


def test_sampler_argmax_seed_and_prime(tmp_path):
  c = small_config(tmp_path)
  w = workloads.char_rnn(c)
  vocab = text_lib.Vocab.from_json(w.vocab)
  lm = workloads.make_char_lm(c, vocab.size)
  params = lm.init(key=jax.random.key(3))
  params["head"]["w"] = params["head"]["w"] * 100
  greedy = workloads.make_sampler(lm, vocab, length=30, temperature=0)
  out = greedy(params, "the ", jax.random.key(0))[0]
  # Temperature 0 is argmax decoding, step by step.
  carry = lm.initial_carry(1)
  for t in vocab.encode("the ")[:-1]:
    carry, _ = lm.step(params, carry, jnp.array([t]))
  tok, expected = jnp.array([vocab.encode("the ")[-1]]), []
  for _ in range(30):
    carry, logits = lm.step(params, carry, tok)
    tok = jnp.argmax(logits[:, 1:], -1) + 1   # <unk> is never generated
    expected.append(int(tok[0]))
  assert out == vocab.decode(expected)
  sampler = workloads.make_sampler(lm, vocab, length=60, temperature=1.0)
  a = sampler(params, "the ", jax.random.key(5), 3)
  assert a == sampler(params, "the ", jax.random.key(5), 3)
  assert a != sampler(params, "the ", jax.random.key(6), 3)
  assert len(set(a)) == 3 and all(len(s) == 60 and "<unk>" not in s for s in a)


@pytest.mark.parametrize("kw,message", [
    (dict(temperature=-1.0), "temperature must be >= 0"),
    (dict(top_k=-2), "top_k must be an int >= 0"),
    (dict(length=0), "length must be a positive int, got 0"),
])
def test_sampler_bad_arguments(tmp_path, kw, message):
  c = small_config(tmp_path)
  w = workloads.char_rnn(c)
  vocab = text_lib.Vocab.from_json(w.vocab)
  lm = workloads.make_char_lm(c, vocab.size)
  args = dict(length=10, temperature=1.0, top_k=0)
  args.update(kw)
  with pytest.raises(ValueError, match=message):
    workloads.make_sampler(lm, vocab, **args)
  with pytest.raises(ValueError, match="prime must be a non-empty string"):
    workloads.make_sampler(lm, vocab, length=5, temperature=1.0)(lm.init(key=jax.random.key(0)), "", None)


@pytest.mark.parametrize("overrides,message", [
    (dict(seq_len=5000), r"the training split \(.* characters; config.val_fraction=0.2\) is too short for config.batch_size=4 streams of at least one config.seq_len=5000 window"),
    (dict(val_fraction=0.001), r"the validation split"),
    (dict(val_fraction=1.5), r"val_fraction must be in \(0, 1\), got 1.5"),
    (dict(max_chars=-1), r"max_chars must be an int >= 0, got -1"),
    (dict(val_block=-1), r"val_block must be an int >= 0 \(0: the tail\), got -1"),
    (dict(val_block=2000), r"characters are too few for validation blocks of val_block=2000 \(one in 5\)"),
    (dict(embed_size=-3), r"config.embed_size must be an int >= 0 \(0: one-hot\), got -3"),
    (dict(corpus="shakespeare.txt"), r"corpus file 'shakespeare.txt' does not exist \(embedded corpora: \['stdlib', 'pydoc_topics', 'tiny_shakespeare'\]\)"),
    (dict(sample_temperature=-0.5), r"temperature must be >= 0 \(0: argmax\), got -0.5"),
])
def test_bad_config_values(tmp_path, overrides, message):
  with pytest.raises(ValueError, match=message):
    workloads.char_rnn(small_config(tmp_path, **overrides))


def test_interleaved_split_takes_every_kth_block_ending_with_the_last():
  text = "".join(chr(65 + i // 10) for i in range(105))   # blocks AAAA.., BBBB..
  train, val = text_lib.split(text, 0.25, 10)
  # k = 4: blocks 9 (the last whole one), 5 and 1; the partial block K trains.
  assert val == "B" * 10 + "F" * 10 + "J" * 10
  assert train == "A" * 10 + "CCCCCCCCCCDDDDDDDDDDEEEEEEEEEE" + "G" * 10 + "H" * 10 + "I" * 10 + "K" * 5
  assert text_lib.split(text, 0.25) == (text[:-26], text[-26:])


def test_diversity_measures():
  loop_text = "the cat " * 40
  assert text_metrics.distinct_ngrams("abcabcabc", 3) == pytest.approx(3 / 7)
  assert text_metrics.loop_period(loop_text) == 8
  assert text_metrics.loop_period("abcdefghij" * 3 + "xyz") is None
  assert text_metrics.repeated_substring_rate(loop_text) > 0.9
  rng = np.random.default_rng(0)
  random_text = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz "), 500))
  d = text_metrics.diversity(random_text)
  assert d["repeated_substring_rate"] == 0.0 and d["loop_period"] == 0
  assert d["distinct_8"] == 1.0
  with pytest.raises(ValueError, match="n must be a positive int, got 0"):
    text_metrics.distinct_ngrams("abc", 0)


def test_stdlib_corpus_is_deterministic_english():
  a, desc = text_lib.get_corpus("stdlib")
  b, _ = text_lib.stdlib_corpus()
  assert a == b and len(a) == text_lib.STDLIB_CHARS
  assert "docstrings" in desc
  words = a.split()
  assert sum(w.lower() in ("the", "a", "of", "to", "is") for w in words) / len(words) > 0.08
  short, desc = text_lib.get_corpus("pydoc_topics", max_chars=1000)
  assert len(short) == 1000 and "first 1,000 characters" in desc


def test_stdlib_corpus_is_kept_in_the_cache_and_remade_when_damaged(tmp_path, monkeypatch):
  monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path))
  max_chars = 50_000  # another size than the default's, so lru_cache is bypassed
  fresh = text_lib._parse_stdlib_corpus(max_chars)  # pylint: disable=protected-access
  assert text_lib.stdlib_corpus.__wrapped__(max_chars) == fresh
  (stored,) = (tmp_path / "corpora").glob("stdlib-*.json")
  assert text_lib.stdlib_corpus.__wrapped__(max_chars) == fresh  # read back
  damaged = stored.read_text().replace("the", "teh", 1)
  stored.write_text(damaged)
  assert text_lib.stdlib_corpus.__wrapped__(max_chars) == fresh  # digest caught it
  assert stored.read_text() != damaged  # and the file was remade
  stored.write_text("{not json")
  assert text_lib.stdlib_corpus.__wrapped__(max_chars) == fresh
  monkeypatch.setenv("RNN_ZOO_CACHE", str(tmp_path / "file"))
  (tmp_path / "file").write_text("")  # a cache that cannot be made costs time only
  assert text_lib.stdlib_corpus.__wrapped__(max_chars) == fresh


def test_tiny_shakespeare_fails_fast_offline():
  start = time.monotonic()
  with pytest.raises(ValueError, match=r"tiny_shakespeare.*--config.corpus=path/to/input.txt"):
    text_lib.get_corpus("tiny_shakespeare")
  assert time.monotonic() - start < 15


def test_the_sample_binary_refuses_a_workdir_of_another_task(tmp_path, binary_module):
  """A captioning workdir (a word vocabulary, no corpus in its config) was
  a KeyError: 'chars' traceback."""
  sample = binary_module("experiments.char_rnn.sample")
  from rnn_zoo.training import checkpoint  # pylint: disable=g-import-not-at-top
  ckpt = checkpoint.Checkpointer(str(tmp_path / "checkpoints"), save_every=1, keep=1,
                                 async_save=False)
  ckpt.save(1, {"params": {"w": np.zeros(3, np.float32)}},
            {"mode": "soft", "embed_size": 8}, vocab={"words": ["<NULL>", "a"]})
  ckpt.close()
  with pytest.raises(ValueError, match=r"is not a char_rnn run \(no vocabulary or config"):
    sample.load(str(tmp_path))
