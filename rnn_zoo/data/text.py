"""Character-level text: corpora, a deterministic vocabulary, stream batches.

* Embedded corpora, English text every CPython installation carries, so a
  language model trains offline (:func:`get_corpus` by name):

  - ``"stdlib"`` (:func:`stdlib_corpus`, the default): ``pydoc_data.topics``
    (the reference text behind ``help()``, about 465 KB), then the
    docstrings of the standard library's own modules in sorted path order,
    cut at 1,000,000 characters;
  - ``"pydoc_topics"`` (:func:`default_corpus`): the topics alone.
* :func:`load_corpus`: any local UTF-8 text file, with clear errors.
* :func:`tiny_shakespeare`: tfds's ``tiny_shakespeare`` (optional: needs
  tensorflow-datasets, TensorFlow and the internet to prepare; offline it
  fails within seconds, saying what to do).
* :class:`Vocab`: sorted characters of the training text plus ``<unk>`` (id 0)
  for characters unseen in training; round-trips through JSON.
* :func:`stream_windows`: char-rnn's layout for stateful truncated BPTT: the
  token ids cut into ``batch`` contiguous streams; window k of every stream
  is batch k, so the hidden state of stream b flows from window k to k+1.
"""

from __future__ import annotations

from numpy.typing import ArrayLike

import ast
import dataclasses
import functools
import hashlib
import json
import os
import sys
import sysconfig

import numpy as np
from rnn_zoo import cache
from rnn_zoo import checks
from rnn_zoo.data import catalog
from rnn_zoo.errors import UserError

UNK = "<unk>"
STDLIB_CHARS = 1_000_000
CORPORA = ("stdlib", "pydoc_topics", "tiny_shakespeare")
_CORPUS_FORMAT = 1  # bump when _parse_stdlib_corpus changes its output


def default_corpus() -> tuple[str, str]:
  """``(text, description)`` of the embedded default corpus."""
  from pydoc_data import topics  # pylint: disable=g-import-not-at-top
  text = "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
  return text, "pydoc_data.topics (CPython's help() topics, sorted by key)"


@functools.lru_cache(maxsize=2)
def stdlib_corpus(max_chars: int = STDLIB_CHARS) -> tuple[str, str]:
  """``(text, description)``: the pydoc topics, then standard-library
  docstrings (modules, classes, functions; 40 characters or more; tests,
  ``idlelib`` and ``lib2to3`` left out), in sorted file order, cut at
  ``max_chars``. Deterministic for a given Python version.

  Parsing the standard library takes seconds, so the text is kept in the
  zoo's cache (:mod:`rnn_zoo.cache`, ``corpora/``) under a key of the
  Python build, the library's path and ``max_chars``, with its SHA-256: a
  file that does not match is made anew.
  """
  key = hashlib.sha256(repr((_CORPUS_FORMAT, sys.version, sysconfig.get_paths()["stdlib"],
                             max_chars)).encode()).hexdigest()[:16]
  path = cache.root() / "corpora" / f"stdlib-{key}.json"
  try:
    stored = json.loads(path.read_text(encoding="utf-8"))
    if hashlib.sha256(stored["text"].encode()).hexdigest() == stored["sha256"]:
      return stored["text"], stored["description"]
  except (OSError, ValueError, KeyError, TypeError):
    pass
  text, desc = _parse_stdlib_corpus(max_chars)
  cache.write_atomically(path, json.dumps(
      {"sha256": hashlib.sha256(text.encode()).hexdigest(), "description": desc,
       "text": text}).encode())
  return text, desc


def _parse_stdlib_corpus(max_chars: int) -> tuple[str, str]:
  topics, _ = default_corpus()
  parts, total = [topics], len(topics)
  root = sysconfig.get_paths()["stdlib"]
  skip = {"site-packages", "dist-packages", "test", "tests", "idle_test",
          "idlelib", "lib2to3"}
  files = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if d not in skip)
    files += [os.path.join(dirpath, f) for f in sorted(filenames) if f.endswith(".py")]
  for path in sorted(os.path.relpath(f, root) for f in files):
    if total >= max_chars:
      break
    try:
      with open(os.path.join(root, path), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    except (SyntaxError, UnicodeDecodeError, ValueError):
      continue
    for node in ast.walk(tree):
      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                           ast.AsyncFunctionDef)):
        doc = ast.get_docstring(node)
        if doc and len(doc) >= 40:
          parts.append(doc)
          total += len(doc) + 2
  text = "\n\n".join(parts)[:max_chars]
  return text, (f"pydoc_data.topics + standard-library docstrings (Python "
                f"{sysconfig.get_python_version()}), first {len(text):,} characters")


def tiny_shakespeare(data_dir: str | None = None) -> tuple[str, str]:
  """tfds's ``tiny_shakespeare`` (Karpathy's 1.1 MB ``input.txt``): its
  train, validation and test splits joined in order.

  Raises:
    ValueError: within seconds, saying what to do, when tensorflow-datasets
      or TensorFlow is missing, or the dataset is not prepared and the
      internet cannot be reached.
  """
  alternative = ("or train on a local copy of the text with "
                 "--config.corpus=path/to/input.txt")
  builder = catalog.catalog_builder("tiny_shakespeare", data_dir,
                                    what="corpus 'tiny_shakespeare'",
                                    alternative=alternative)
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  parts = []
  for split_name in ("train", "validation", "test"):
    ds = tfds.as_numpy(builder.as_dataset(split=split_name))
    parts += [ex["text"].decode("utf-8") for ex in ds]
  text = "".join(parts)
  return text, f"tfds tiny_shakespeare ({len(text):,} characters)"


def get_corpus(name_or_path: str, max_chars: int = 0) -> tuple[str, str]:
  """``(text, description)`` for a corpus name in :data:`CORPORA` or the path
  of a UTF-8 file; ``max_chars > 0`` keeps only the first ``max_chars``."""
  if not isinstance(name_or_path, str) or not name_or_path:
    raise UserError(f"corpus must be one of {list(CORPORA)} or a file path, "
                     f"got {name_or_path!r}")
  checks.int_at_least("max_chars", max_chars, 0)
  if name_or_path == "stdlib":
    text, desc = stdlib_corpus()
  elif name_or_path == "pydoc_topics":
    text, desc = default_corpus()
  elif name_or_path == "tiny_shakespeare":
    text, desc = tiny_shakespeare()
  else:
    text, desc = load_corpus(name_or_path), f"file {os.path.abspath(name_or_path)}"
  if max_chars and len(text) > max_chars:
    text, desc = text[:max_chars], f"{desc}, first {max_chars:,} characters"
  return text, desc


def load_corpus(path: str, min_chars: int = 2) -> str:
  """Reads a UTF-8 text file; a missing, empty, undecodable or too short
  file is a ValueError naming the path."""
  if os.path.isdir(path):
    raise UserError(f"corpus {path!r} is a directory, not a text file "
                    f"(embedded corpora: {list(CORPORA)})")
  if not os.path.isfile(path):
    raise UserError(f"corpus file {path!r} does not exist (embedded corpora: "
                    f"{list(CORPORA)})")
  with open(path, "rb") as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise UserError(f"corpus file {path!r} is not valid UTF-8 ({e.reason} at "
                     f"byte {e.start})") from e
  if not text:
    raise UserError(f"corpus file {path!r} is empty")
  if len(text) < min_chars:
    raise UserError(f"corpus file {path!r} has {len(text)} characters; at least "
                     f"{min_chars} are needed")
  return text


def split(text: str, val_fraction: float, block: int = 0) -> tuple[str, str]:
  """A fixed train/validation split.

  ``block == 0``: the last ``val_fraction`` of the text is validation
  (char-rnn's layout). ``block > 0``: the text is cut into blocks of
  ``block`` characters and every k-th block (k = round(1 / val_fraction),
  ending with the last whole block) is validation, the rest training, each
  joined in order: both splits then sample the whole corpus, which matters
  for a corpus that is a concatenation of different documents (the
  ``stdlib`` one ends with the docstrings of a few packages).
  """
  if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) \
      or not 0.0 < val_fraction < 1.0:
    raise UserError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
  checks.int_at_least("val_block", block, 0, "0: the tail")
  if block:
    k = max(2, round(1 / val_fraction))
    blocks = [text[i:i + block] for i in range(0, len(text), block)]
    last = len(text) // block - 1   # the last whole block is validation
    if last < k - 1:
      raise UserError(f"{len(text):,} characters are too few for validation "
                       f"blocks of val_block={block} (one in {k})")
    is_val = [(last - i) % k == 0 for i in range(len(blocks))]   # the partial tail trains
    return ("".join(b for b, v in zip(blocks, is_val) if not v),
            "".join(b for b, v in zip(blocks, is_val) if v))
  n_val = max(1, int(len(text) * val_fraction))
  return text[:-n_val], text[-n_val:]


@dataclasses.dataclass(frozen=True)
class Vocab:
  """Characters sorted by code point after ``<unk>`` (id 0)."""
  chars: tuple[str, ...]

  @classmethod
  def build(cls, text: str) -> "Vocab":
    if not text:
      raise UserError("cannot build a vocabulary from empty text")
    return cls(tuple(sorted(set(text))))

  @property
  def size(self) -> int:
    return len(self.chars) + 1

  def encode(self, text: str) -> np.ndarray:
    index = {c: i + 1 for i, c in enumerate(self.chars)}
    return np.fromiter((index.get(c, 0) for c in text), np.int32, len(text))

  def decode(self, ids: ArrayLike) -> str:
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= self.size):
      raise UserError(f"token ids must lie in [0, {self.size}), got "
                       f"[{ids.min()}, {ids.max()}]")
    return "".join(UNK if i == 0 else self.chars[i - 1] for i in ids.tolist())

  def to_json(self) -> dict:
    return {"chars": list(self.chars), "unk": UNK}

  @classmethod
  def from_json(cls, data: dict) -> "Vocab":
    return cls(tuple(data["chars"]))


def stream_windows(ids: np.ndarray, batch: int, window: int) -> tuple[np.ndarray, np.ndarray]:
  """char-rnn's batches for stateful truncated BPTT.

  Returns:
    ``(inputs, targets)``, each ``[num_windows, batch, window]`` int32:
    stream b is ``ids[b * L : (b + 1) * L + 1]`` with L = len(ids) // batch
    (the tail that does not fill every stream is dropped); window k of
    stream b covers its characters ``k * window .. (k + 1) * window``, and the
    targets are the inputs shifted by one character.
  """
  checks.positive_int("batch", batch)
  checks.positive_int("window", window)
  ids = np.asarray(ids, np.int32)
  per_stream = (len(ids) - 1) // batch
  n = per_stream // window
  if n == 0:
    raise UserError(
        f"{len(ids)} characters are too few for batch={batch} streams of at "
        f"least one window of {window} (+1 for the targets)")
  L = n * window
  starts = np.arange(batch) * per_stream
  idx = starts[:, None] + np.arange(L + 1)[None, :]
  streams = ids[idx]                                   # [batch, L + 1]
  inputs = streams[:, :-1].reshape(batch, n, window).transpose(1, 0, 2)
  targets = streams[:, 1:].reshape(batch, n, window).transpose(1, 0, 2)
  return np.ascontiguousarray(inputs), np.ascontiguousarray(targets)
