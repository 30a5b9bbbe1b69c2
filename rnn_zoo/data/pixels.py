"""Pixel-by-pixel image classification: a real-data many-to-one task.

Images are read one pixel per time step (row-major), optionally through a
fixed random permutation of the pixel positions ("permuted", Le et al. 2015).

* ``digits``: the 8x8 digits that scikit-learn ships (1,797 images, T=64),
  so the task works offline; needs the ``digits`` extra (scikit-learn).
* ``mnist``: 28x28 MNIST (T=784) through tensorflow-datasets, when the
  ``tfds`` extra is installed and MNIST is already prepared in its data
  directory: nothing is downloaded at run time, and a missing dataset is a
  clear error at once.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from rnn_zoo.errors import UserError

DIGITS_TEST = 297  # held-out images (1,500 train / 297 test)
PERMUTATION_SEED = 1234  # the fixed pixel permutation of the permuted variants


def _sequences(images: np.ndarray, permuted: bool) -> np.ndarray:
  n = images.shape[0]
  seq = images.reshape(n, -1).astype(np.float32)
  if permuted:
    seq = seq[:, pixel_permutation(seq.shape[1])]
  return seq[..., None]  # [N, T, 1]


def pixel_permutation(length: int) -> np.ndarray:
  """The fixed permutation the permuted variants apply to pixel positions."""
  return np.random.default_rng(PERMUTATION_SEED).permutation(length)


def load_digits(permuted: bool = False) -> dict[str, np.ndarray]:
  """scikit-learn's 8x8 digits as ``[N, 64, 1]`` sequences in [0, 1].

  Returns ``train_x``, ``train_y``, ``test_x``, ``test_y`` (a fixed split:
  the images shuffled with seed 0, the last 297 held out).
  """
  try:
    from sklearn import datasets  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError(
        "the digits task needs scikit-learn: pip install -e '.[digits]'") from e
  d = datasets.load_digits()
  order = np.random.default_rng(0).permutation(len(d.target))
  x = _sequences(d.images[order] / 16.0, permuted)
  y = d.target[order].astype(np.int32)
  return {"train_x": x[:-DIGITS_TEST], "train_y": y[:-DIGITS_TEST],
          "test_x": x[-DIGITS_TEST:], "test_y": y[-DIGITS_TEST:]}


def load_mnist(permuted: bool = False, data_dir: str | None = None) -> dict[str, np.ndarray]:
  """MNIST through ``tfds.data_source`` (already prepared; never downloads).

  Raises:
    ValueError: tensorflow-datasets is missing, or MNIST is not prepared in
      ``data_dir`` (say how to prepare it).
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError(
        "the mnist task needs tensorflow-datasets: pip install -e '.[tfds]', "
        "then prepare MNIST once on a machine with internet and TensorFlow "
        "(python -c \"import tensorflow_datasets as tfds; tfds.builder('mnist', "
        "file_format='array_record').download_and_prepare()\"); use task "
        "'digits' offline") from e
  data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser(
      "~/tensorflow_datasets")
  try:
    sources = tfds.data_source("mnist", data_dir=data_dir, download=False)
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(
        f"MNIST is not prepared in {data_dir} ({type(e).__name__}); prepare it "
        "once with internet and TensorFlow (see rnn_zoo.data.pixels), or use "
        "task 'digits' offline") from e

  def arrays(split):
    src = sources[split]
    imgs = np.stack([np.asarray(src[i]["image"]) for i in range(len(src))])
    labels = np.asarray([src[i]["label"] for i in range(len(src))], np.int32)
    return _sequences(imgs[..., 0] / 255.0, permuted), labels
  train_x, train_y = arrays("train")
  test_x, test_y = arrays("test")
  return {"train_x": train_x, "train_y": train_y, "test_x": test_x, "test_y": test_y}


def sample_batch(key: jax.Array, xs: jax.Array, ys: jax.Array,
                 batch_size: int) -> dict[str, jax.Array]:
  """``batch_size`` examples drawn uniformly (with replacement) by ``key``."""
  idx = jax.random.randint(key, (batch_size,), 0, xs.shape[0])
  return {"inputs": jnp.take(xs, idx, axis=0), "targets": jnp.take(ys, idx, axis=0)}
