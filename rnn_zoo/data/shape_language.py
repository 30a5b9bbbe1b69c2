"""What a caption of the synthetic shapes scenes (:mod:`rnn_zoo.data.shapes`)
claims: the tokenizer every caption goes through, the parser of the
captions' grammar (see :mod:`rnn_zoo.data.shapes`), and the checker of a
caption against a scene graph. The same code reads the reference captions
and the generated ones.
"""

from __future__ import annotations

import itertools

from rnn_zoo.data.shapes import COLOURS, COUNTS, RELATIONS, SHAPES, SIZES, relation
from rnn_zoo.errors import UserError


def tokenize(caption: str) -> list[str]:
  """Lower case, punctuation dropped, split on spaces (the PTB tokenizer
  needs Java; this is what every caption here goes through)."""
  if not isinstance(caption, str):
    raise UserError(f"caption must be a string, got {type(caption).__name__}")
  keep = "".join(ch if ch.isalnum() or ch.isspace() or ch == "'" else " "
                 for ch in caption.lower())
  return keep.split()


def _parse_object(words: list[str], i: int):
  """``(attributes dict, next index)`` of ``a [size] colour shape`` at i."""
  if i >= len(words) or words[i] != "a":
    return None, i
  j, attrs = i + 1, {}
  if j < len(words) and words[j] in SIZES:
    attrs["size"], j = words[j], j + 1
  if j < len(words) and words[j] in COLOURS:
    attrs["colour"], j = words[j], j + 1
  else:
    return None, i
  if j < len(words) and words[j] in SHAPES:
    attrs["shape"], j = words[j], j + 1
  else:
    return None, i
  return attrs, j


def parse(caption: str) -> tuple | None:
  """The caption's claim, or None when it is not in the grammar.

  Returns one of ``("exists", obj)``, ``("relation", obj, rel, obj)``,
  ``("and", obj, obj)``, ``("count", n)``.
  """
  words = tokenize(caption)
  if len(words) == 2 and words[0] in COUNTS and words[1] == (
      "shape" if words[0] == "one" else "shapes"):
    return ("count", COUNTS.index(words[0]) + 1)
  i = 2 if words[:2] == ["there", "is"] else 0
  first, j = _parse_object(words, i)
  if first is None:
    return None
  if j == len(words):
    return ("exists", first)
  if i:
    return None
  rest = " ".join(words[j:])
  for rel in RELATIONS:
    if rest.startswith(rel + " "):
      second, k = _parse_object(words, j + len(rel.split()))
      if second is not None and k == len(words):
        return ("relation", first, rel, second)
  if words[j] == "and":
    second, k = _parse_object(words, j + 1)
    if second is not None and k == len(words):
      return ("and", first, second)
  return None


def _matches(attrs: dict, obj: dict) -> bool:
  return all(obj[k] == v for k, v in attrs.items())


def caption_truth(caption: str, objects: list[dict]) -> dict:
  """What a caption gets right about a scene's objects (:meth:`Scene.objects`).

  Returns:
    ``{"parsed": bool, "true": bool, "named": set of object indices a true
    reading names}``; a caption outside the grammar is neither parsed nor
    true and names nothing.
  """
  claim = parse(caption)
  if claim is None:
    return {"parsed": False, "true": False, "named": set()}
  n = len(objects)
  if claim[0] == "count":
    return {"parsed": True, "true": claim[1] == n, "named": set()}
  if claim[0] == "exists":
    named = {i for i in range(n) if _matches(claim[1], objects[i])}
    return {"parsed": True, "true": bool(named), "named": named}
  named, true = set(), False
  for a, b in itertools.permutations(range(n), 2):
    if not (_matches(claim[1], objects[a]) and _matches(claim[-1], objects[b])):
      continue
    if claim[0] == "and" or relation(objects[a], objects[b]) == claim[2]:
      true = True
      named |= {a, b}
  return {"parsed": True, "true": true, "named": named}


def object_words(caption: str) -> list[tuple[int, dict]]:
  """``(position of the shape word, attributes)`` of each object phrase, for
  checking where attention looked when the word was generated."""
  words, out, i = tokenize(caption), [], 0
  while i < len(words):
    attrs, j = _parse_object(words, i)
    if attrs is None:
      i += 1
    else:
      out.append((j - 1, attrs))
      i = j
  return out


__all__ = ["tokenize", "parse", "caption_truth", "object_words"]
