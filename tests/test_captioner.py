"""The captioner: masked loss, teacher forcing == stepping, ln(V) first loss,
decoding with START/END, attention maps, REINFORCE for hard attention,
precomputed features, errors, and that each mode learns a batch."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnn_zoo as rz
from rnn_zoo import decoding
from rnn_zoo.data.captions import END, NULL, START

V = 12
CAPS = jnp.array([[START, 5, 6, END, NULL, NULL],
                  [START, 7, END, NULL, NULL, NULL],
                  [START, 8, 9, 10, 11, END]])


def model(mode, **kw):
  kw = {"channels": (4, 8), "image_size": 16, "embed_size": 8} | kw
  return rz.models.Captioner(vocab_size=V, cell=rz.LSTM(16), mode=mode, **kw)


def images(n=3, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n, 16, 16, 3))


def loss_kw(mode):
  kw = {"key": jax.random.key(1)}
  if mode == "hard":
    kw["baseline"] = jnp.float32(0.0)
  return kw


@pytest.mark.parametrize("mode", ["plain", "soft", "hard"])
def test_padding_does_not_count_and_the_first_loss_is_ln_v(mode):
  m = model(mode)
  p = m.init(key=jax.random.key(0))
  _, met = m.loss(p, images(), CAPS, **loss_kw(mode))
  assert float(met["nll_per_word"]) == pytest.approx(np.log(V), rel=0.02)
  longer = jnp.concatenate([CAPS, jnp.full((3, 3), NULL)], axis=1)
  a = m.loss(p, images(), CAPS, **loss_kw(mode))
  b = m.loss(p, images(), longer, **loss_kw(mode))
  np.testing.assert_allclose(a[1]["nll_per_word"], b[1]["nll_per_word"], rtol=1e-5)
  if mode == "plain":
    np.testing.assert_allclose(a[0], b[0], rtol=1e-5)


@pytest.mark.parametrize("mode", ["plain", "soft"])
def test_teacher_forcing_equals_stepping(mode):
  m = model(mode, num_layers=2)
  p = m.init(key=jax.random.key(0))
  logits, firsts = m.apply(p, images(), CAPS)
  carry = m.initial_carry(p, images())
  for t in range(CAPS.shape[1] - 1):
    carry, lt = m.step(p, carry, CAPS[:, t])
    np.testing.assert_allclose(lt, logits[:, t], rtol=1e-5, atol=1e-5)
  if mode == "soft":
    np.testing.assert_allclose(firsts.alpha.sum(-1), 1.0, rtol=1e-5)
    assert m.attention_maps(p, images(), CAPS).shape == (3, 5, m.locations)


@pytest.mark.parametrize("mode", ["plain", "soft", "hard"])
def test_decoding_starts_at_start_and_stops_at_end(mode):
  m = model(mode)
  p = m.init(key=jax.random.key(0))
  # Make <END> the likeliest word after the second one.
  carry = m.initial_carry(p, images(), key=jax.random.key(3))
  prompt = jnp.full((3, 1), START)
  toks, _ = decoding.generate(m.step, p, carry, prompt, length=7, key=jax.random.key(0),
                              temperature=0, end_token=END)
  beams = decoding.beam_search(m.step, p, carry, prompt, beam_size=1, max_length=7,
                               end_token=END)
  np.testing.assert_array_equal(beams["tokens"][:, 0], toks)
  for row in np.asarray(toks):
    if END in row:
      assert set(row[list(row).index(END):]) == {END}


def train(m, p, steps, baseline=-5.0):
  """``steps`` jitted Adam steps on the fixed batch: ``(params, metrics of
  every step)``."""
  opt = optax.adam(1e-2)

  @jax.jit
  def step(p, state, key):
    kw = {"key": key} | ({"baseline": jnp.asarray(baseline, jnp.float32)}
                         if m.mode == "hard" else {})
    (_, met), g = jax.value_and_grad(lambda p: m.loss(p, images(), CAPS, **kw),
                                     has_aux=True)(p)
    upd, state = opt.update(g, state, p)
    return optax.apply_updates(p, upd), state, met

  state, history = opt.init(p), []
  for i in range(steps):
    p, state, met = step(p, state, jax.random.key(i))
    history.append(met)
  return p, history


@pytest.mark.parametrize("mode,query", [("plain", "before"), ("soft", "before"),
                                        ("hard", "before"), ("soft", "after"),
                                        ("hard", "after")])
def test_each_mode_learns_a_batch_through_a_jitted_step(mode, query):
  m = model(mode, attention_query=query)
  _, history = train(m, m.init(key=jax.random.key(0)), 60)
  assert float(history[-1]["nll_per_word"]) < 0.5 * float(history[0]["nll_per_word"])


def test_hard_attention_with_rewards_to_go_learns_a_batch_through_a_jitted_step():
  m = model("hard", reinforce_reward="to_go")
  p = m.init(key=jax.random.key(0))
  T = CAPS.shape[1] - 1
  _, history = train(m, p, 60, baseline=np.full((T,), -2.0))
  assert float(history[-1]["nll_per_word"]) < 0.5 * float(history[0]["nll_per_word"])
  # The per-step rewards to update the baseline: the mean over the captions
  # still running at each step (the third caption alone at the last step).
  _, met = m.loss(p, images(), CAPS, key=jax.random.key(1), baseline=jnp.zeros((T,)))
  assert met["reward_to_go"].shape == (T,)
  assert float(met["reward_to_go"][0]) < float(met["reward_to_go"][-1]) < 0.0
  with pytest.raises(ValueError, match=r"reinforce_reward='to_go' needs a baseline per "
                     r"step \[5\] \(or a scalar\), got shape \(3,\)"):
    m.loss(p, images(), CAPS, key=jax.random.key(1), baseline=jnp.zeros((3,)))
  with pytest.raises(ValueError, match="reinforce_reward must be one of"):
    model("hard", reinforce_reward="episode")


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_entropy_penalty_adds_the_maps_entropy_and_sharpens_them_under_jit(mode):
  base, sharp = model(mode), model(mode, entropy_penalty=0.5)
  p = base.init(key=jax.random.key(0))
  kw = loss_kw(mode)
  l0, met = base.loss(p, images(), CAPS, **kw)
  l1, _ = sharp.loss(p, images(), CAPS, **kw)
  words = float(jnp.sum(CAPS[:, 1:] != NULL))
  # Summed over each caption's words, averaged over the batch, like the nll.
  np.testing.assert_allclose(float(l1 - l0), 0.5 * float(met["attention_entropy"]) * words / 3,
                             rtol=1e-4)
  # The same 40 jitted steps with and without the penalty (a uniform map
  # over the 64 locations has ln 64 = 4.16 nats).
  entropy = lambda m: float(train(m, p, 40)[1][-1]["attention_entropy"])
  assert entropy(sharp) < entropy(base) - 1.0


def test_zeros_init_state_sees_the_image_only_through_attention():
  m = model("soft", init_state="zeros")
  p = m.init(key=jax.random.key(0))
  carry = m.initial_carry(p, images())
  assert float(jnp.abs(carry[0].h).max()) == 0.0
  assert float(jnp.abs(carry[0].inner.c).max()) == 0.0
  # The image still reaches the words through the attention context.
  a, _ = m.apply(p, images(seed=0), CAPS)
  b, _ = m.apply(p, images(seed=1), CAPS)
  assert float(jnp.abs(a - b).max()) > 1e-4
  with pytest.raises(ValueError, match="init_state='zeros' needs attention"):
    model("plain", init_state="zeros")
  with pytest.raises(ValueError, match="init_state must be one of"):
    model("soft", init_state="noise")
  with pytest.raises(ValueError, match=r"entropy_penalty must be a number >= 0, got -0.1"):
    model("soft", entropy_penalty=-0.1)


def test_hard_attention_gradient_has_the_reinforce_term():
  m = model("hard", expectation_prob=0.0)
  p = m.init(key=jax.random.key(0))
  g_hi = jax.grad(lambda p: m.loss(p, images(), CAPS, key=jax.random.key(1),
                                   baseline=jnp.float32(10.0))[0])(p)
  g_lo = jax.grad(lambda p: m.loss(p, images(), CAPS, key=jax.random.key(1),
                                   baseline=jnp.float32(-10.0))[0])(p)
  # Only the REINFORCE term depends on the baseline; it reaches the
  # attention parameters.
  d = np.abs(np.asarray(g_hi["stack"]["layer_0"]["att"]["v"] - g_lo["stack"]["layer_0"]["att"]["v"]))
  assert d.max() > 1e-4
  with pytest.raises(ValueError, match="mode='hard' needs the REINFORCE baseline"):
    m.loss(p, images(), CAPS, key=jax.random.key(1))


def test_precomputed_features():
  vec = rz.models.Captioner(vocab_size=V, cell=rz.GRU(8), mode="plain", encoder="features",
                            feature_shape=(1, 6))
  p = vec.init(key=jax.random.key(0))
  loss, _ = vec.loss(p, jnp.ones((3, 6)), CAPS)
  assert np.isfinite(float(loss))
  grid = rz.models.Captioner(vocab_size=V, cell=rz.GRU(8), mode="soft", encoder="features",
                             feature_shape=(4, 6))
  pg = grid.init(key=jax.random.key(0))
  _, firsts = grid.apply(pg, jnp.ones((3, 4, 6)), CAPS)
  assert firsts.alpha.shape == (3, 5, 4)
  with pytest.raises(ValueError, match=r"features must have shape \[batch, 4, 6\], got \(3, 5, 6\)"):
    grid.apply(pg, jnp.ones((3, 5, 6)), CAPS)


def test_bad_inputs():
  m = model("soft")
  p = m.init(key=jax.random.key(0))
  with pytest.raises(ValueError, match=r"images must be \[batch, 16, 16, 3\], got shape \(3, 8, 8, 3\)"):
    m.apply(p, jnp.ones((3, 8, 8, 3)), CAPS)
  with pytest.raises(ValueError, match="images must be floating"):
    m.apply(p, jnp.ones((3, 16, 16, 3), jnp.uint8), CAPS)
  with pytest.raises(ValueError, match=r"captions must lie in \[0, vocab_size=12\), got \[12\]"):
    m.apply(p, images(), CAPS.at[0, 1].set(12))
  with pytest.raises(ValueError, match="captions must be int"):
    m.apply(p, images(), CAPS[:, :1])
  with pytest.raises(ValueError, match="images and captions disagree on the batch"):
    m.apply(p, images(2), CAPS)
  with pytest.raises(ValueError, match="mode must be one of"):
    rz.models.Captioner(vocab_size=V, cell=rz.LSTM(4), mode="glance")
  # The four special tokens and no word is refused, as the message says.
  with pytest.raises(ValueError, match=r"vocab_size must exceed the 4 special tokens .*got 4$"):
    rz.models.Captioner(vocab_size=4, cell=rz.LSTM(4))
  rz.models.Captioner(vocab_size=5, cell=rz.LSTM(4))


def test_submodules_are_built_once_per_model(monkeypatch):
  """The stack, the attention cell and the CNN are built (and validated) on
  first use, not on every access; a model with other fields builds its own."""
  model = rz.models.Captioner(vocab_size=V, cell=rz.LSTM(16), mode="soft",
                              image_size=16, channels=(4, 8))
  built = []
  original = rz.AttentionCell.wrap
  monkeypatch.setattr(rz.AttentionCell, "wrap",
                      lambda *a, **k: built.append(1) or original(*a, **k))
  params = model.init(key=jax.random.key(0))
  images = jnp.zeros((2, 16, 16, 3))
  captions = jnp.array([[START, 5, END], [START, 6, END]])
  model.loss(params, images, captions)
  model.loss(params, images, captions)
  assert model.stack is model.stack and model.cnn is model.cnn
  assert len(built) == 1
  other = model.__class__(**{**{f: getattr(model, f) for f in model.__dataclass_fields__},
                             "mode": "hard"})
  assert other.attention_cell.mode == "hard" and len(built) == 2
  assert hash(other) != hash(model) and other != model


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_a_given_carry_skips_the_encoder_and_gives_the_same_maps(mode, monkeypatch):
  model = rz.models.Captioner(vocab_size=V, cell=rz.LSTM(16), mode=mode,
                              image_size=16, channels=(4, 8))
  params = model.init(key=jax.random.key(0))
  images = jax.random.uniform(jax.random.key(1), (2, 16, 16, 3))
  captions = jnp.array([[START, 5, 7, END], [START, 6, END, NULL]])
  key = jax.random.key(2)
  want = model.attention_maps(params, images, captions, key=key)
  carry = model.initial_carry(params, images, key=key)
  encoded = []
  original = model.__class__.encode
  monkeypatch.setattr(model.__class__, "encode",
                      lambda self, *a: encoded.append(1) or original(self, *a))
  got = model.attention_maps(params, images, captions, carry=carry)
  assert not encoded
  np.testing.assert_array_equal(got, want)


def test_attention_figure_draws_each_word_s_map_where_it_looked(tmp_path):
  """The figure's panels (image, then one per word and <END>): a map that
  puts all its weight on the top-left location is bright there and dark
  in the opposite corner; without attention the word panels are the
  image in gray."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from experiments.captioning import figures  # pylint: disable=g-import-not-at-top
  image = np.zeros((16, 16, 3), np.uint8)
  image[:, :, 0] = 200
  alphas = np.full((3, 4), 0.0)
  alphas[:, 0] = 1.0                              # 2x2 grid: all on the top left
  path = str(tmp_path / "grid.png")
  figures.attention_grid(path, [dict(image=image, words=["a", "b"], alphas=alphas,
                                     title="t")])
  png = np.asarray(Image.open(path).convert("RGB"), np.float64)
  step, top = figures._PANEL + figures._GAP, figures._TITLE  # pylint: disable=protected-access
  assert png.shape[:2] == (top + figures._PANEL, 4 * step)  # pylint: disable=protected-access
  for col in (1, 2, 3):                           # "a", "b", "<END>"
    x0 = col * step
    bright = png[top + 8, x0 + 8].sum()
    dark = png[top + figures._PANEL - 8, x0 + figures._PANEL - 8].sum()  # pylint: disable=protected-access
    assert bright > dark + 200, (col, bright, dark)
  assert png[top + 8, 8, 0] > 150 and png[top + 8, 8, 1] < 60   # the image, in colour
  figures.attention_grid(path, [dict(image=image, words=["a"], alphas=None)])
  png = np.asarray(Image.open(path).convert("RGB"), np.float64)
  gray = png[top + 8, step + 8]
  assert np.ptp(gray) < 2 and abs(gray[0] - 200 / 3) < 3
