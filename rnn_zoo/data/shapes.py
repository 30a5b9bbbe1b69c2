"""Synthetic captioning scenes: images of shapes, their scene graph, masks and
captions from a small grammar, and a checker of what a caption claims.

Each scene is a 64x64 RGB image of 1-4 objects (a shape, a colour and a size
at a position; later objects may occlude earlier ones, each keeps at least
a third of its pixels visible). Stored with each scene: the objects'
attributes and centres (the scene graph), each object's mask of visible
pixels, and several reference captions, every one of them true of the scene
(:func:`caption_truth` checks that, and checks generated captions the same
way). Scenes are a pure function of ``(split, index)``.

Grammar of the captions (lower case, words separated by spaces)::

  caption   := object | "there is" object | object relation object
             | object "and" object | "one shape" | count "shapes"
  object    := "a" [size] colour shape
  relation  := "above" | "below" | "left of" | "right of"
  count     := "two" | "three" | "four"

``above`` / ``below`` / ``left of`` / ``right of`` compare the two centres
along the axis where they differ most. The **compositional** split holds the
colour-shape pairs of :data:`HELD_OUT`, which no other split contains.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy
import numpy as np

from rnn_zoo import checks
from rnn_zoo import compat

IMAGE_SIZE = 64
MAX_OBJECTS = 4
SHAPES = ("circle", "square", "triangle")
COLOURS = ("red", "green", "blue", "yellow", "purple")
SIZES = ("small", "large")
RGB = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 90, 230),
       "yellow": (230, 210, 40), "purple": (160, 60, 200)}
RADIUS = {"small": 6, "large": 11}
RELATIONS = ("above", "below", "left of", "right of")
COUNTS = ("one", "two", "three", "four")
# Colour-shape pairs seen only in the compositional split.
HELD_OUT = (("red", "triangle"), ("green", "circle"), ("blue", "square"))
SPLITS = {"train": 0, "validation": 1, "test": 2, "compositional": 3}
NUM_REFERENCES = 5
SEED = 20261128


class Scene(NamedTuple):
  """One scene: the image, what is in it, and its reference captions."""
  image: numpy.ndarray      # [64, 64, 3] uint8
  shape: numpy.ndarray      # [MAX_OBJECTS] int32 index into SHAPES (-1: no object)
  colour: numpy.ndarray     # [MAX_OBJECTS] int32 index into COLOURS
  size: numpy.ndarray       # [MAX_OBJECTS] int32 index into SIZES
  centre: numpy.ndarray     # [MAX_OBJECTS, 2] float32 (x, y) in pixels, y downwards
  masks: numpy.ndarray      # [MAX_OBJECTS, 64, 64] bool visible pixels of each object
  captions: list         # NUM_REFERENCES strings

  @property
  def num_objects(self) -> int:
    return int(np.sum(self.shape >= 0))

  def objects(self) -> list[dict]:
    return [{"shape": SHAPES[self.shape[i]], "colour": COLOURS[self.colour[i]],
             "size": SIZES[self.size[i]], "x": float(self.centre[i, 0]),
             "y": float(self.centre[i, 1])} for i in range(self.num_objects)]


def _footprint(shape: str, cx: float, cy: float, r: int) -> np.ndarray:
  yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE] + 0.5
  if shape == "circle":
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
  if shape == "square":
    h = r * 0.85
    return (np.abs(xx - cx) <= h) & (np.abs(yy - cy) <= h)
  # An upward triangle of height 2r: the half width grows from the apex.
  top, bottom = cy - r, cy + r
  half = (yy - top) / (2 * r) * r * 1.15
  return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half)


def footprint_size(obj: dict) -> int:
  """Pixels an object covers when nothing occludes it."""
  return int(np.sum(_footprint(obj["shape"], obj["x"], obj["y"], RADIUS[obj["size"]])))


def relation(a: dict, b: dict) -> str:
  """How ``a`` lies relative to ``b`` (image y grows downwards)."""
  dx, dy = a["x"] - b["x"], a["y"] - b["y"]
  if abs(dy) >= abs(dx):
    return "above" if dy < 0 else "below"
  return "left of" if dx < 0 else "right of"


def _phrase(obj: dict, with_size: bool) -> str:
  return " ".join(["a"] + ([obj["size"]] if with_size else []) +
                  [obj["colour"], obj["shape"]])


def _references(objs: list[dict], rng: np.random.Generator) -> list[str]:
  """NUM_REFERENCES true captions (distinct while the scene allows)."""
  pool = []
  for o in objs:
    for with_size in (True, False):
      pool.append(_phrase(o, with_size))
      pool.append("there is " + _phrase(o, with_size))
  for a, b in itertools.permutations(range(len(objs)), 2):
    for sa, sb in ((True, True), (False, False), (True, False)):
      pool.append(f"{_phrase(objs[a], sa)} {relation(objs[a], objs[b])} {_phrase(objs[b], sb)}")
    if a < b:
      pool.append(f"{_phrase(objs[a], True)} and {_phrase(objs[b], True)}")
  pool.append("one shape" if len(objs) == 1 else f"{COUNTS[len(objs) - 1]} shapes")
  # Relations say the most about a scene: prefer them when there are any.
  rich = [p for p in pool if any(f" {r} " in p for r in RELATIONS) or " and " in p]
  first = rich if rich else pool
  out = list(rng.choice(first, size=min(len(first), 3), replace=False))
  rest = [p for p in pool if p not in out]
  out += list(rng.choice(rest, size=min(len(rest), NUM_REFERENCES - len(out)),
                         replace=False))
  while len(out) < NUM_REFERENCES:
    out.append(out[len(out) % max(1, len(out))])
  return [str(c) for c in out]


def make_scene(split: str, index: int) -> Scene:
  """The scene ``index`` of ``split`` (deterministic)."""
  checks.choice("split", split, tuple(SPLITS))
  checks.int_at_least("index", index, 0)
  rng = np.random.default_rng([SEED, SPLITS[split], index])
  n = int(rng.integers(1, MAX_OBJECTS + 1))
  image = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), 24, np.int32)
  image += rng.integers(-6, 7, size=image.shape)
  owner = np.full((IMAGE_SIZE, IMAGE_SIZE), -1, np.int32)
  objs: list = []
  shape: list = []
  colour: list = []
  size: list = []
  centre = np.zeros((MAX_OBJECTS, 2), np.float32)
  for _ in range(n):
    i = len(objs)
    while True:
      s, c = SHAPES[rng.integers(len(SHAPES))], COLOURS[rng.integers(len(COLOURS))]
      held = (c, s) in HELD_OUT
      if split == "compositional" and i == 0:
        c, s = HELD_OUT[rng.integers(len(HELD_OUT))]
        break
      if split == "compositional" or not held:
        break
    z = SIZES[rng.integers(len(SIZES))]
    r = RADIUS[z]
    for _ in range(50):  # a position that leaves every object a third visible
      cx, cy = rng.uniform(r + 1, IMAGE_SIZE - r - 1, size=2)
      fp = _footprint(s, cx, cy, r)
      new_owner = np.where(fp, i, owner)
      ok = all(np.sum(new_owner == j) >= footprint_size(objs[j]) / 3 for j in range(i))
      if ok:
        break
    if not ok:  # no room left: the scene keeps the objects it has
      continue
    owner = new_owner
    image[fp] = RGB[c]
    objs.append({"shape": s, "colour": c, "size": z, "x": float(cx), "y": float(cy)})
    shape.append(SHAPES.index(s))
    colour.append(COLOURS.index(c))
    size.append(SIZES.index(z))
    centre[i] = (cx, cy)
  n = len(objs)
  pad = lambda v: np.asarray(v + [-1] * (MAX_OBJECTS - n), np.int32)
  masks = np.stack([owner == j for j in range(MAX_OBJECTS)])
  return Scene(image=np.clip(image, 0, 255).astype(np.uint8), shape=pad(shape),
               colour=pad(colour), size=pad(size), centre=centre, masks=masks,
               captions=_references(objs, rng))


# Moved: the caption parser to rnn_zoo.data.shape_language, the pointing
# evaluation to rnn_zoo.metrics.attention_maps.
__getattr__ = compat.moved(__name__, {
    **{n: "rnn_zoo.data.shape_language" for n in (
        "tokenize", "parse", "caption_truth", "object_words")},
    **{n: "rnn_zoo.metrics.attention_maps" for n in (
        "upsample_attention", "attention_pointing")}})
