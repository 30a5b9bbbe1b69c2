"""The VQA model: every fusion learns a batch through a jitted step; the
relation network's split first layer equals the plain pairwise MLP and it answers
by the question (zeroing the question fails that test: 0.375); the
question reader honours padding; bad inputs are one-line errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnn_zoo as rz
from rnn_zoo.models import vqa as vqa_lib


def small(fusion, **kw):
  return rz.models.VQA(num_answers=5, question_vocab=11, cell=rz.GRU(16), fusion=fusion,
                       image_size=19, channels=(8, 8, 8), embed_size=8, fusion_size=16,
                       mlp_size=32, g_layers=2, **kw)


def batch(n=12, seed=0):
  rng = np.random.default_rng(seed)
  q = rng.integers(1, 11, size=(n, 6)).astype(np.int32)
  q[::2, 4:] = 0                                     # padded questions
  return (jnp.asarray(rng.random((n, 19, 19, 3)), jnp.float32), jnp.asarray(q),
          jnp.asarray(rng.integers(0, 5, size=n), jnp.int32))


def fit(model, params, opt, data, steps):
  """``steps`` jitted steps on one batch: ``(params, first loss, loss, accuracy)``."""
  state = opt.init(params)

  @jax.jit
  def step(params, state):
    (loss, m), g = jax.value_and_grad(model.loss, has_aux=True)(params, *data)
    updates, state = opt.update(g, state, params)
    return optax.apply_updates(params, updates), state, loss, m["accuracy"]

  first = None
  for _ in range(steps):
    params, state, loss, acc = step(params, state)
    first = loss if first is None else first
  return params, first, loss, acc


@pytest.mark.parametrize("fusion,kw", [("concat", {"bidirectional": True}), ("product", {}),
                                       ("attention", {"skip": True}), ("relation", {})])
def test_each_fusion_learns_a_batch_through_a_jitted_step(fusion, kw):
  model = small(fusion, **kw)
  params = model.init(key=jax.random.key(0))
  images, questions, answers = batch()
  params, first, loss, acc = fit(model, params, optax.adam(3e-3), (images, questions, answers),
                                 150)
  assert float(loss) < 0.1 * float(first) and float(acc) == 1.0
  logits, maps = model.apply(params, images, questions)
  assert logits.shape == (12, 5)
  if fusion == "attention":
    assert maps.shape == (12, model.hops, model.locations)
    np.testing.assert_allclose(maps.sum(-1), 1.0, rtol=1e-5)
  else:
    assert maps is None


@pytest.mark.parametrize("fusion", vqa_lib.FUSIONS)
def test_grouped_questions_equal_one_image_per_question(fusion):
  """``[B, Q, Lq]`` questions (each image encoded once) give what repeating
  every image Q times gives; the loss takes ``[B, Q]`` answers."""
  model = small(fusion)
  params = model.init(key=jax.random.key(3))
  images, questions, answers = batch(12)
  grouped = questions.reshape(4, 3, 6)
  logits, maps = jax.jit(model.apply)(params, images[:4], grouped)
  want, want_maps = model.apply(params, jnp.repeat(images[:4], 3, axis=0), questions)
  assert logits.shape == (4, 3, 5)
  np.testing.assert_allclose(logits.reshape(12, 5), want, rtol=1e-5, atol=1e-5)
  if fusion == "attention":
    assert maps.shape == (4, 3, model.hops, model.locations)
    np.testing.assert_allclose(maps.reshape(want_maps.shape), want_maps, rtol=1e-5, atol=1e-6)
  loss, _ = model.loss(params, images[:4], grouped, answers.reshape(4, 3))
  want_loss, _ = model.loss(params, jnp.repeat(images[:4], 3, axis=0), questions, answers)
  np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
  with pytest.raises(ValueError,
                     match=r"answers must be \[4, 3\] for these questions, got \[12\]"):
    model.loss(params, images[:4], grouped, answers)
  with pytest.raises(ValueError, match="images and questions disagree on the batch: 4 vs 2"):
    model.apply(params, images[:4], grouped[:2])


def test_relation_first_layer_split_equals_the_pairwise_mlp():
  model = small("relation")
  params = model.init(key=jax.random.key(1))
  images, questions, _ = batch()
  regions = model.regions(params, images)
  q = model.read(params, questions)
  fused, _ = model.fuse(params, regions, q)
  B, L, R = regions.shape
  pairs = jnp.concatenate([jnp.repeat(regions, L, axis=1), jnp.tile(regions, (1, L, 1)),
                           jnp.broadcast_to(q[:, None], (B, L * L, q.shape[-1]))], -1)
  want = vqa_lib._mlp(params["g"], pairs, final_relu=True).sum(1)  # pylint: disable=protected-access
  np.testing.assert_allclose(fused, want, rtol=2e-4, atol=2e-4)
  # g_pool="mean": the same g, averaged over the L^2 pairs.
  mean = small("relation", g_pool="mean")
  np.testing.assert_allclose(mean.fuse(params, regions, q)[0], want / L ** 2, rtol=2e-4,
                             atol=2e-6)
  with pytest.raises(ValueError, match="g_pool must be one of .*got 'max'"):
    small("relation", g_pool="max")


def test_padding_is_not_read():
  model = small("concat")
  params = model.init(key=jax.random.key(2))
  q = jnp.asarray([[3, 4, 5, 0, 0, 0]], jnp.int32)
  longer = jnp.asarray([[3, 4, 5, 0, 0, 0, 0, 0]], jnp.int32)
  np.testing.assert_allclose(model.read(params, q), model.read(params, longer), rtol=1e-6)
  assert model.regions(params, batch(1)[0]).shape == (1, model.locations, 10)


def test_skip_regions_carry_the_first_block_pooled():
  """``skip=True``: each region is the plain model's features, the first
  block's map max-pooled over the region, then (x, y); the same CNN."""
  plain, skip = small("attention"), small("attention", skip=True)
  params = skip.init(key=jax.random.key(4))
  shapes = lambda p: jax.tree.map(jnp.shape, p["cnn"])
  assert shapes(params) == shapes(plain.init(key=jax.random.key(4)))
  images = batch(2)[0]
  regions = skip.regions(params, images)
  assert regions.shape == (2, skip.locations, 8 + 8 + 2) and skip.region_size == 18
  np.testing.assert_allclose(regions[..., :8], plain.regions(params, images)[..., :8],
                             rtol=1e-6)
  np.testing.assert_allclose(regions[..., 16:], plain.regions(params, images)[..., 8:])
  # Block 1 alone: 19x19 -> 10x10 (stride 2); the map is 3x3 (19 -> 10 -> 5 -> 3),
  # so region (r, c) pools the block's rows and columns [4r, 4r + 4).
  first = rz.nn.ConvEncoder(channels=(8,), first_stride=2)
  block = np.asarray(first.apply({"params": {"conv_0": params["cnn"]["params"]["conv_0"]}},
                                 images)).reshape(2, 10, 10, 8)
  for r in range(3):
    for c in range(3):
      want = block[:, 4 * r:4 * r + 4, 4 * c:4 * c + 4].max(axis=(1, 2))
      np.testing.assert_allclose(regions[:, 3 * r + c, 8:16], want, rtol=1e-6)


def test_bad_inputs():
  model = small("attention")
  params = model.init(key=jax.random.key(0))
  images, questions, _ = batch(2)
  with pytest.raises(ValueError, match=r"images must be \[batch, 19, 19, 3\], got shape \(2, 20, 20, 3\)"):
    model.apply(params, jnp.zeros((2, 20, 20, 3)), questions)
  with pytest.raises(ValueError, match="images must be floating"):
    model.apply(params, images.astype(jnp.uint8), questions)
  with pytest.raises(ValueError, match=r"questions must lie in \[0, question_vocab=11\), got \[11\]"):
    model.apply(params, images, questions.at[0, 0].set(11))
  with pytest.raises(ValueError, match="images and questions disagree on the batch: 2 vs 1"):
    model.apply(params, images, questions[:1])
  with pytest.raises(ValueError, match="fusion must be one of"):
    small("sum")
  with pytest.raises(ValueError, match="hops must be one of"):
    small("attention", hops=3)


def test_the_bidirectional_reader_is_rz_bidirectional():
  """read() runs the question through rz.bidirectional: its final carries,
  forward then backward, concatenated."""
  model = rz.models.VQA(num_answers=5, question_vocab=11, cell=rz.GRU(6),
                        fusion="concat", image_size=16, channels=(4, 4),
                        bidirectional=True)
  params = model.init(key=jax.random.key(0))
  questions = jnp.array([[3, 4, 5, 0, 0], [7, 0, 0, 0, 0]])
  xs = jnp.take(params["embed"], questions, axis=0)
  lengths = jnp.array([3, 1])
  _, fwd = rz.unroll(model.cell, params["reader"], xs, lengths=lengths)
  _, back = rz.python_unroll(model.cell, params["reader_back"], xs, lengths=lengths,
                             reverse=True)
  np.testing.assert_allclose(model.read(params, questions),
                             jnp.concatenate([fwd.h, back.h], axis=-1), atol=1e-6)


def test_one_token_guard_for_every_model_under_jit():
  """Ids outside the vocabulary raise when concrete (each model's own
  message) and give NaN under jit, in the char LM, the captioner and the
  VQA reader alike (never a clamped or wrapped-around row)."""
  from rnn_zoo.data.captions import START  # pylint: disable=g-import-not-at-top
  lm = rz.models.CharLM(vocab_size=5, cell=rz.GRU(4), embed_size=3)
  lp = lm.init(key=jax.random.key(0))
  cap = rz.models.Captioner(vocab_size=9, cell=rz.GRU(4), mode="plain", encoder="features",
                            feature_shape=(1, 3), embed_size=4)
  cp = cap.init(key=jax.random.key(1))
  vqa = rz.models.VQA(num_answers=5, question_vocab=11, cell=rz.GRU(6), fusion="concat",
                      image_size=16, channels=(4, 4))
  vp = vqa.init(key=jax.random.key(2))
  feats = jnp.ones((1, 3))
  runs = {
      "lm": lambda ids: lm.apply(lp, ids)[0],
      # (the last word of a caption is only a target: the ids go before it)
      "captioner": lambda ids: cap.apply(cp, feats, jnp.concatenate(
          [jnp.full((1, 1), START), ids, jnp.ones((1, 1), ids.dtype)], axis=1))[0],
      "vqa": lambda ids: vqa.read(vp, ids),
  }
  for name, run in runs.items():
    good = run(jnp.array([[1, 2]]))
    assert np.isfinite(np.asarray(good)).all(), name
    for bad in (-1, 99):
      ids = jnp.array([[1, bad]])
      with pytest.raises(ValueError, match="must lie in"):
        run(ids)
      assert np.isnan(np.asarray(jax.jit(run)(ids))).any(), (name, bad)


def test_relation_network_answers_by_the_question():
  """The same scenes asked different non-relational questions: fitting their
  answers needs the question (the image alone cannot tell "left or right?"
  from "what shape?" or which object is named), and a relation network fits
  them all through a jitted step."""
  from rnn_zoo.data import sort_of_clevr as soc  # pylint: disable=g-import-not-at-top
  scenes = [soc.make_scene("train", i) for i in range(4)]
  pick = [np.flatnonzero(s.subtype < 3)[:8] for s in scenes]            # non-relational
  images = jnp.asarray(np.stack([s.image for s in scenes]) / 255.0, jnp.float32)
  questions = jnp.asarray(np.stack([s.questions[i] for s, i in zip(scenes, pick)]))
  answers = jnp.asarray(np.stack([s.answers[i] for s, i in zip(scenes, pick)]))
  assert all(len(set(a.tolist())) > 1 for a in answers)                 # per scene: several
  model = rz.models.VQA(num_answers=len(soc.ANSWERS), question_vocab=len(soc.QUESTION_WORDS),
                        cell=rz.GRU(16), fusion="relation", channels=(8, 8, 8, 8), skip=True,
                        embed_size=8, mlp_size=32, g_layers=2, g_size=32)
  params = model.init(key=jax.random.key(0))
  opt = optax.chain(optax.clip_by_global_norm(5.0), optax.adam(3e-3))
  _, _, loss, acc = fit(model, params, opt, (images, questions, answers), 250)
  assert float(acc) == 1.0, (float(loss), float(acc))
