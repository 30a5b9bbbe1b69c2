"""Sort-of-CLEVR (Santoro et al. 2017), generated: images of six objects and
questions about them, relational and not, as token sequences.

Each image is 75x75 RGB with six objects, one of each colour of
:data:`COLOURS`, each a square or a circle of radius :data:`OBJECT_SIZE`,
placed without overlap. Per image, :data:`QUESTIONS_PER_KIND` questions of
each kind, the colour and subtype of each drawn at random:

==============  ============  ===============================================
kind            subtype       question (answer)
==============  ============  ===============================================
non-relational  shape         what shape is the red object ? (square, circle)
non-relational  horizontal    is the red object on the left or right ? (left, right)
non-relational  vertical      is the red object on the top or bottom ? (top, bottom)
relational      closest       what shape is the object closest to the red object ?
relational      furthest      what shape is the object furthest from the red object ?
relational      count         how many objects have the same shape as the red object ? (1-6)
==============  ============  ===============================================

Questions are word ids over :data:`QUESTION_WORDS` (read by an RNN); the
paper's 11-bit encoding (colour one-hot, kind one-hot, subtype one-hot) is
kept beside them (:func:`question_bits`). Answers are ids over
:data:`ANSWERS`. Scenes and questions are a pure function of ``(split,
index)``; :func:`answer` computes any question's answer from the scene, so
tests (and users) can check every stored answer.
"""

from __future__ import annotations

from typing import NamedTuple

from numpy.typing import ArrayLike

import numpy as np

from rnn_zoo import checks
from rnn_zoo.errors import UserError

IMAGE_SIZE = 75
NUM_OBJECTS = 6
OBJECT_SIZE = 5           # half the side of a square, the radius of a circle
COLOURS = ("red", "green", "blue", "orange", "gray", "yellow")
RGB = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255),
       "orange": (255, 156, 0), "gray": (128, 128, 128), "yellow": (255, 255, 0)}
SHAPES = ("square", "circle")
KINDS = ("non-relational", "relational")
SUBTYPES = (("shape", "horizontal", "vertical"), ("closest", "furthest", "count"))
SUBTYPE_NAMES = tuple(s for kind in SUBTYPES for s in kind)   # index = kind * 3 + subtype
QUESTIONS_PER_KIND = 10
SPLITS = {"train": 0, "validation": 1, "test": 2}
SEED = 20261128_2
ANSWERS = ("square", "circle", "left", "right", "top", "bottom", "1", "2", "3", "4", "5",
           "6")
NULL = 0
_TEMPLATES = {
    "shape": "what shape is the {c} object ?",
    "horizontal": "is the {c} object on the left or right ?",
    "vertical": "is the {c} object on the top or bottom ?",
    "closest": "what shape is the object closest to the {c} object ?",
    "furthest": "what shape is the object furthest from the {c} object ?",
    "count": "how many objects have the same shape as the {c} object ?",
}
QUESTION_WORDS = ("<NULL>",) + tuple(sorted(
    {w for t in _TEMPLATES.values() for w in t.format(c="").split()} | set(COLOURS)))
MAX_QUESTION_LENGTH = max(len(t.format(c="red").split()) for t in _TEMPLATES.values())


class Scene(NamedTuple):
  image: np.ndarray       # [75, 75, 3] uint8
  shape: np.ndarray       # [6] int32: SHAPES index of the object of colour i
  centre: np.ndarray      # [6, 2] float32 (x, y) pixel centres
  questions: np.ndarray   # [20, MAX_QUESTION_LENGTH] int32 word ids, NULL-padded
  answers: np.ndarray     # [20] int32 ANSWERS index
  subtype: np.ndarray     # [20] int32 SUBTYPE_NAMES index (kind = subtype // 3)
  colour: np.ndarray      # [20] int32 the colour each question asks about
  bits: np.ndarray        # [20, 11] float32 the paper's question encoding


def question_text(subtype: str, colour: str) -> str:
  checks.choice("subtype", subtype, SUBTYPE_NAMES)
  checks.choice("colour", colour, COLOURS)
  return _TEMPLATES[subtype].format(c=colour)


def encode_question(text: str) -> np.ndarray:
  """``[MAX_QUESTION_LENGTH]`` int32 word ids of a question, NULL-padded."""
  words = text.lower().split()
  unknown = [w for w in words if w not in QUESTION_WORDS[1:]]
  if unknown or not words:
    raise UserError(f"question {text!r} has words outside the question vocabulary: "
                    f"{unknown or '(empty)'}")
  if len(words) > MAX_QUESTION_LENGTH:
    raise UserError(f"question {text!r} has {len(words)} words, more than "
                    f"{MAX_QUESTION_LENGTH}")
  ids = [QUESTION_WORDS.index(w) for w in words]
  return np.asarray(ids + [NULL] * (MAX_QUESTION_LENGTH - len(ids)), np.int32)


def decode_question(ids: ArrayLike) -> str:
  return " ".join(QUESTION_WORDS[i] for i in np.asarray(ids).tolist() if i != NULL)


def question_bits(subtype: str, colour: str) -> np.ndarray:
  """The paper's 11 bits: colour one-hot (6), kind one-hot (2), subtype
  one-hot within the kind (3)."""
  checks.choice("subtype", subtype, SUBTYPE_NAMES)
  checks.choice("colour", colour, COLOURS)
  s = SUBTYPE_NAMES.index(subtype)
  bits = np.zeros(11, np.float32)
  bits[COLOURS.index(colour)] = 1.0
  bits[6 + s // 3] = 1.0
  bits[8 + s % 3] = 1.0
  return bits


def answer(subtype: str, colour: str, shape: ArrayLike, centre: ArrayLike) -> str:
  """The answer to a question about the scene ``(shape [6], centre [6, 2])``
  (object i has colour i)."""
  checks.choice("subtype", subtype, SUBTYPE_NAMES)
  checks.choice("colour", colour, COLOURS)
  shape, centre = np.asarray(shape), np.asarray(centre, np.float64)
  i = COLOURS.index(colour)
  x, y = centre[i]
  if subtype == "shape":
    return SHAPES[shape[i]]
  if subtype == "horizontal":
    return "left" if x < IMAGE_SIZE / 2 else "right"
  if subtype == "vertical":
    return "top" if y < IMAGE_SIZE / 2 else "bottom"
  if subtype == "count":
    return str(int(np.sum(shape == shape[i])))
  d = np.sum((centre - centre[i]) ** 2, axis=1)
  d[i] = np.inf if subtype == "closest" else -np.inf
  j = int(np.argmin(d) if subtype == "closest" else np.argmax(d))
  return SHAPES[shape[j]]


def _draw(image, shape: str, cx: int, cy: int, rgb) -> None:
  r = OBJECT_SIZE
  yy, xx = np.mgrid[:IMAGE_SIZE, :IMAGE_SIZE]
  if shape == "square":
    inside = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= r)
  else:
    inside = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r + 2   # no one-pixel nubs
  image[inside] = rgb


def object_mask(image: ArrayLike, colour: str | int) -> np.ndarray:
  """``[S, S]`` bool: the pixels of the object of ``colour`` (a name or a
  :data:`COLOURS` index) in a scene's ``[S, S, 3]`` uint8 image (objects
  never overlap and each colour is drawn once, so the mask is exact)."""
  if not isinstance(colour, str):
    checks.choice("colour", int(colour), tuple(range(len(COLOURS))))
    colour = COLOURS[int(colour)]
  checks.choice("colour", colour, COLOURS)
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
    raise UserError(f"image must be [S, S, 3] uint8, got {image.dtype} {image.shape}")
  return np.all(image == np.asarray(RGB[colour], np.uint8), axis=-1)


def make_scene(split: str, index: int) -> Scene:
  """The image ``index`` of ``split`` and its 20 questions (deterministic)."""
  checks.choice("split", split, tuple(SPLITS))
  checks.int_at_least("index", index, 0)
  rng = np.random.default_rng([SEED, SPLITS[split], index])
  image = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
  centres: list = []
  shapes: list = []
  r = OBJECT_SIZE
  for colour in COLOURS:
    while True:   # objects at least 2r + 2 apart (centre to centre, per axis)
      c = rng.integers(r, IMAGE_SIZE - r, size=2)
      if all(np.max(np.abs(c - o)) > 2 * r + 1 for o in centres):
        break
    s = int(rng.integers(len(SHAPES)))
    _draw(image, SHAPES[s], int(c[0]), int(c[1]), RGB[colour])
    centres.append(c)
    shapes.append(s)
  shape = np.asarray(shapes, np.int32)
  centre = np.asarray(centres, np.float32)
  qs, ans, sub, col, bits = [], [], [], [], []
  for kind in range(len(KINDS)):
    for _ in range(QUESTIONS_PER_KIND):
      name = SUBTYPES[kind][int(rng.integers(3))]
      colour = COLOURS[int(rng.integers(NUM_OBJECTS))]
      qs.append(encode_question(question_text(name, colour)))
      ans.append(ANSWERS.index(answer(name, colour, shape, centre)))
      sub.append(SUBTYPE_NAMES.index(name))
      col.append(COLOURS.index(colour))
      bits.append(question_bits(name, colour))
  return Scene(image=image, shape=shape, centre=centre, questions=np.stack(qs),
               answers=np.asarray(ans, np.int32), subtype=np.asarray(sub, np.int32),
               colour=np.asarray(col, np.int32), bits=np.stack(bits))
