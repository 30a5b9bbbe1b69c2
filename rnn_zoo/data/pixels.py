"""Pixel-by-pixel image classification: a real-data many-to-one task.

Images are read one pixel per time step (row-major), optionally through a
fixed random permutation of the pixel positions ("permuted", Le et al. 2015).

* ``digits``: the 8x8 digits that scikit-learn ships (1,797 images, T=64),
  so the task works offline; needs the ``digits`` extra (scikit-learn).
* ``mnist``: 28x28 MNIST (T=784), read from the four IDX files MNIST is
  distributed as (``train-images-idx3-ubyte[.gz]`` and the others, in one
  folder), or through tensorflow-datasets when the ``tfds`` extra is
  installed and MNIST is already prepared in its data directory. Nothing is
  downloaded at run time, and a missing dataset is a clear error at once.
"""

from __future__ import annotations

import gzip
import os
import struct
from typing import Any

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


MNIST_FILES = {
    "train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
_IDX_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4",
               0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
  """One IDX file (LeCun's format for MNIST; gzipped when it ends in .gz).

  Raises:
    ValueError: the file is not IDX, or is shorter than its header says.
  """
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    data = f.read()
  if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
    raise UserError(f"{path} is not an IDX file (magic bytes {data[:4]!r})")
  ndim = data[3]
  if len(data) < 4 + 4 * ndim:
    raise UserError(f"{path}: truncated IDX header")
  shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
  dtype = np.dtype(_IDX_DTYPES[data[2]])
  need = int(np.prod(shape)) * dtype.itemsize
  body = data[4 + 4 * ndim:]
  if len(body) < need:
    raise UserError(f"{path}: truncated IDX file ({len(body)} bytes of data, "
                    f"shape {shape} needs {need})")
  return np.frombuffer(body[:need], dtype).reshape(shape)


def _find_idx(data_dir: str, name: str) -> str | None:
  for candidate in (name, name + ".gz", name.replace("-idx", ".idx"),
                    name.replace("-idx", ".idx") + ".gz"):
    path = os.path.join(data_dir, candidate)
    if os.path.exists(path):
      return path
  return None


def load_mnist_idx(data_dir: str, permuted: bool = False) -> dict[str, np.ndarray]:
  """MNIST from its four IDX files in ``data_dir`` as ``[N, 784, 1]``
  sequences in [0, 1] (train: 60,000; test: 10,000 for the real dataset).

  Raises:
    ValueError: a file is missing or malformed, or images and labels differ
      in count.
  """
  paths = {k: _find_idx(data_dir, name) for k, name in MNIST_FILES.items()}
  missing = [MNIST_FILES[k] for k, p in paths.items() if p is None]
  if missing:
    raise UserError(f"data_dir {data_dir!r} lacks the MNIST IDX files {missing} "
                    "(.gz or not)")
  found = {k: p for k, p in paths.items() if p is not None}
  out = {}
  for split in ("train", "test"):
    images = read_idx(found[f"{split}_x"])
    labels = read_idx(found[f"{split}_y"])
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
      raise UserError(f"MNIST {split} split in {data_dir!r}: images {images.shape} "
                      f"and labels {labels.shape} do not match ([N, rows, cols] and [N])")
    out[f"{split}_x"] = _sequences(images / 255.0, permuted)
    out[f"{split}_y"] = labels.astype(np.int32)
  return out


def _has_idx(data_dir: str) -> bool:
  return any(_find_idx(data_dir, name) for name in MNIST_FILES.values())


def load_mnist(permuted: bool = False, data_dir: str | None = None) -> dict[str, np.ndarray]:
  """MNIST from a folder with its IDX files, else ``tfds.data_source``
  (already prepared; never downloads).

  ``data_dir`` (default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``) is
  read as an IDX folder when it holds any of the four files.

  Raises:
    ValueError: neither the IDX files nor a prepared tfds MNIST are there, or
      tensorflow-datasets is missing (say how to get the data).
  """
  if data_dir and _has_idx(data_dir):
    return load_mnist_idx(data_dir, permuted)
  how = ("put the four IDX files (train-images-idx3-ubyte.gz, "
         "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
         "t10k-labels-idx1-ubyte.gz) in a folder and pass it as data_dir, or "
         "prepare tfds's mnist once on a machine with internet and TensorFlow "
         "(python -c \"import tensorflow_datasets as tfds; tfds.builder('mnist', "
         "file_format='array_record').download_and_prepare()\"); use task "
         "'digits' offline")
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise UserError(
        f"MNIST: no IDX files in data_dir {data_dir!r}, and tfds's copy needs "
        f"tensorflow-datasets (pip install -e '.[tfds]'). To get MNIST: {how}") from e
  data_dir = data_dir or os.environ.get("TFDS_DATA_DIR") or os.path.expanduser(
      "~/tensorflow_datasets")
  try:
    sources = tfds.data_source("mnist", data_dir=data_dir, download=False)
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(
        f"MNIST is not prepared in {data_dir} ({type(e).__name__}) and it holds "
        f"no IDX files. To get MNIST: {how}") from e

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
