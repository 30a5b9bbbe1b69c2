"""Pixel-by-pixel digits: the real-data many-to-one task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_zoo.data import pixels


@pytest.fixture(scope="module")
def digits():
  pytest.importorskip("sklearn", reason="scikit-learn not installed (pip install -e '.[digits]')")
  return pixels.load_digits(), pixels.load_digits(permuted=True)


def test_digits_split_shapes_and_values(digits):
  d, _ = digits
  assert d["train_x"].shape == (1500, 64, 1) and d["test_x"].shape == (297, 64, 1)
  assert d["train_x"].dtype == np.float32
  assert d["train_x"].min() == 0.0 and d["train_x"].max() == 1.0
  for split in ("train_y", "test_y"):
    counts = np.bincount(d[split], minlength=10)
    assert (counts > 0).all() and counts.max() < 2.5 * counts.min()
  again = pixels.load_digits()
  np.testing.assert_array_equal(again["test_x"], d["test_x"])


def test_permuted_is_a_fixed_permutation_of_the_pixels(digits):
  d, p = digits
  perm = pixels.pixel_permutation(64)
  assert sorted(perm.tolist()) == list(range(64)) and (perm != np.arange(64)).any()
  np.testing.assert_array_equal(p["train_x"], d["train_x"][:, perm])
  np.testing.assert_array_equal(p["train_y"], d["train_y"])


def test_sample_batch_is_a_function_of_the_key(digits):
  d, _ = digits
  xs, ys = jnp.asarray(d["train_x"]), jnp.asarray(d["train_y"])
  a = jax.jit(lambda k: pixels.sample_batch(k, xs, ys, 16))(jax.random.key(3))
  b = pixels.sample_batch(jax.random.key(3), xs, ys, 16)
  np.testing.assert_array_equal(a["inputs"], b["inputs"])
  assert a["inputs"].shape == (16, 64, 1) and a["targets"].shape == (16,)


def test_an_lstm_learns_digits_well_above_chance(digits, tmp_path):
  from experiments.long_range import config as lr_config
  from rnn_zoo import training
  from experiments.long_range import workload as workloads
  c = lr_config.get_config("digits")
  c.update(dict(hidden_size=32, num_steps=200, eval_every=200, log_every=100,
                checkpoint_every=200, eval_batches=4))
  result = training.train_and_evaluate(c, str(tmp_path), workloads.long_range(c))
  assert result["accuracy"] > 0.35  # chance is 0.1
  assert result["loss"] < np.log(10)


def test_mnist_without_prepared_data_fails_fast_and_says_what_to_do(tmp_path):
  with pytest.raises(ValueError) as e:
    pixels.load_mnist(data_dir=str(tmp_path))
  msg = str(e.value)
  assert "pip install -e '.[tfds]'" in msg or f"MNIST is not prepared in {tmp_path}" in msg
  assert "digits" in msg
