"""Character-level text: corpora, a deterministic vocabulary, stream batches.

* :func:`default_corpus`: English reference text every CPython installation
  carries (``pydoc_data.topics``, the text of ``help()``'s topics, joined in
  sorted key order: about 465 KB), so a language model trains offline.
* :func:`load_corpus`: any local UTF-8 text file, with clear errors.
* :class:`Vocab`: sorted characters of the training text plus ``<unk>`` (id 0)
  for characters unseen in training; round-trips through JSON.
* :func:`stream_windows`: char-rnn's layout for stateful truncated BPTT: the
  token ids cut into ``batch`` contiguous streams; window k of every stream
  is batch k, so the hidden state of stream b flows from window k to k+1.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

UNK = "<unk>"


def default_corpus() -> tuple[str, str]:
  """``(text, description)`` of the embedded default corpus."""
  from pydoc_data import topics  # pylint: disable=g-import-not-at-top
  text = "\n\n".join(topics.topics[k] for k in sorted(topics.topics))
  return text, "pydoc_data.topics (CPython's help() topics, sorted by key)"


def load_corpus(path: str, min_chars: int = 2) -> str:
  """Reads a UTF-8 text file; a missing, empty, undecodable or too short
  file is a ValueError naming the path."""
  if not os.path.isfile(path):
    raise ValueError(f"corpus file {path!r} does not exist")
  with open(path, "rb") as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise ValueError(f"corpus file {path!r} is not valid UTF-8 ({e.reason} at "
                     f"byte {e.start})") from e
  if not text:
    raise ValueError(f"corpus file {path!r} is empty")
  if len(text) < min_chars:
    raise ValueError(f"corpus file {path!r} has {len(text)} characters; at least "
                     f"{min_chars} are needed")
  return text


def split(text: str, val_fraction: float) -> tuple[str, str]:
  """A fixed split: the last ``val_fraction`` of the text is validation."""
  if not 0.0 < val_fraction < 1.0:
    raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
  n_val = max(1, int(len(text) * val_fraction))
  return text[:-n_val], text[-n_val:]


@dataclasses.dataclass(frozen=True)
class Vocab:
  """Characters sorted by code point after ``<unk>`` (id 0)."""
  chars: tuple[str, ...]

  @classmethod
  def build(cls, text: str) -> "Vocab":
    if not text:
      raise ValueError("cannot build a vocabulary from empty text")
    return cls(tuple(sorted(set(text))))

  @property
  def size(self) -> int:
    return len(self.chars) + 1

  def encode(self, text: str) -> np.ndarray:
    index = {c: i + 1 for i, c in enumerate(self.chars)}
    return np.fromiter((index.get(c, 0) for c in text), np.int32, len(text))

  def decode(self, ids) -> str:
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= self.size):
      raise ValueError(f"token ids must lie in [0, {self.size}), got "
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
  if batch <= 0 or window <= 0:
    raise ValueError(f"batch and window must be positive, got {batch}, {window}")
  ids = np.asarray(ids, np.int32)
  per_stream = (len(ids) - 1) // batch
  n = per_stream // window
  if n == 0:
    raise ValueError(
        f"{len(ids)} characters are too few for batch={batch} streams of at "
        f"least one window of {window} (+1 for the targets)")
  L = n * window
  starts = np.arange(batch) * per_stream
  idx = starts[:, None] + np.arange(L + 1)[None, :]
  streams = ids[idx]                                   # [batch, L + 1]
  inputs = streams[:, :-1].reshape(batch, n, window).transpose(1, 0, 2)
  targets = streams[:, 1:].reshape(batch, n, window).transpose(1, 0, 2)
  return np.ascontiguousarray(inputs), np.ascontiguousarray(targets)
