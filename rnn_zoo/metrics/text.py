"""How varied generated text is: distinct n-grams, verbatim repeats and loops
(a sampler stuck in a cycle). For characters (a string) or tokens (a list).
"""

from __future__ import annotations

from typing import Sequence

from rnn_zoo import checks


def distinct_ngrams(seq: Sequence, n: int) -> float:
  """Distinct n-grams over all n-grams of ``seq`` (a string or token list):
  1.0 when nothing repeats, near 0 for a loop."""
  checks.positive_int("n", n)
  seq = list(seq)
  grams = [tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)]
  return len(set(grams)) / len(grams) if grams else 0.0


def repeated_substring_rate(seq: Sequence, length: int = 20) -> float:
  """The fraction of positions whose next ``length`` tokens already occurred
  earlier in ``seq``: near 1 once generation falls into a loop; natural text
  rarely repeats 20 characters verbatim."""
  checks.positive_int("length", length)
  seq = list(seq)
  seen, repeats, total = set(), 0, 0
  for i in range(len(seq) - length + 1):
    gram = tuple(seq[i:i + length])
    repeats += gram in seen
    total += 1
    seen.add(gram)
  return repeats / total if total else 0.0


def loop_period(seq: Sequence, tail: int = 200) -> int | None:
  """The smallest period p <= tail // 2 with which the last ``tail`` tokens
  repeat exactly (a sample stuck in a loop), or None."""
  seq = list(seq)[-tail:]
  for p in range(1, len(seq) // 2 + 1):
    if all(seq[i] == seq[i - p] for i in range(p, len(seq))):
      return p
  return None


def diversity(seq: Sequence, ns: Sequence[int] = (4, 8, 16), repeat_len: int = 20) -> dict:
  """``distinct_<n>`` for each n, ``repeated_substring_rate`` and
  ``loop_period`` (0 when not looping) of one sample."""
  out = {f"distinct_{n}": distinct_ngrams(seq, n) for n in ns}
  out["repeated_substring_rate"] = repeated_substring_rate(seq, repeat_len)
  out["loop_period"] = loop_period(seq) or 0
  return out


__all__ = ["distinct_ngrams", "repeated_substring_rate", "loop_period", "diversity"]
