"""Pixel-by-pixel digits: the real-data many-to-one task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_zoo.data import pixels
from zoo_helpers import write_idx, write_tiny_mnist


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


@pytest.mark.slow
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
  assert "digits" in msg and "IDX" in msg


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_reads_idx_files(tmp_path, gz):
  truth = write_tiny_mnist(tmp_path, gz=gz)
  d = pixels.load_mnist(data_dir=str(tmp_path))
  assert d["train_x"].shape == (40, 784, 1) and d["test_x"].shape == (12, 784, 1)
  assert d["train_x"].dtype == np.float32 and d["train_y"].dtype == np.int32
  np.testing.assert_allclose(d["train_x"][..., 0], truth["train"][0].reshape(40, -1) / 255.0,
                             rtol=1e-6)
  np.testing.assert_array_equal(d["test_y"], truth["test"][1])
  p = pixels.load_mnist(permuted=True, data_dir=str(tmp_path))
  np.testing.assert_array_equal(p["train_x"][:, :, 0],
                                d["train_x"][:, pixels.pixel_permutation(784), 0])


def test_mnist_idx_errors_name_the_file(tmp_path):
  truth = write_tiny_mnist(tmp_path)
  (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
  with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte"):
    pixels.load_mnist(data_dir=str(tmp_path))
  write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", truth["test"][1][:5])
  with pytest.raises(ValueError, match=r"test split .* do not match"):
    pixels.load_mnist(data_dir=str(tmp_path))
  bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
  import gzip
  with gzip.open(bad, "wb") as f:
    f.write(b"PK\x03\x04 not idx")
  with pytest.raises(ValueError, match="is not an IDX file"):
    pixels.load_mnist(data_dir=str(tmp_path))


@pytest.mark.slow
def test_mnist_task_trains_through_the_binary(tmp_path):
  """The mnist and permuted_mnist tasks (T=784) through the jitted train
  step of the long_range binary, from IDX files."""
  from experiments.long_range import config as lr_config
  from experiments.long_range import workload as workloads
  from rnn_zoo import training
  data = tmp_path / "mnist"
  data.mkdir()
  write_tiny_mnist(data)
  for task in ("mnist", "permuted_mnist"):
    c = lr_config.get_config()
    c.update(dict(task=task, data_dir=str(data), hidden_size=8, batch_size=4,
                  num_steps=2, eval_every=2, log_every=1, checkpoint_every=2,
                  eval_batches=1))
    result = training.train_and_evaluate(c, str(tmp_path / task), workloads.long_range(c))
    assert np.isfinite(result["loss"]) and 0.0 <= result["accuracy"] <= 1.0
  c = lr_config.get_config()
  c.data_dir = str(data)
  with pytest.raises(ValueError, match="config.data_dir is read by the mnist tasks only; "
                     "task 'adding' got data_dir="):
    workloads.long_range(c)
