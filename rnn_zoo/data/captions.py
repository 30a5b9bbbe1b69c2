"""Captioning data: a word vocabulary, the embedded shapes dataset as a
tensorflow-datasets builder, COCO-format captions, and grain pipelines.

* :class:`WordVocab`: ``<NULL>`` (0, padding), ``<START>`` (1), ``<END>`` (2),
  ``<UNK>`` (3), then the training words seen at least ``min_count`` times.
* :func:`shape_captions`: the scenes of :mod:`rnn_zoo.data.shapes` as a
  tfds builder (``file_format="array_record"``, read with
  ``as_data_source()``; no TensorFlow), prepared into ``data_dir`` on first
  use; splits ``train``, ``validation``, ``test`` and ``compositional``.
* :func:`load_coco_captions`: a ``captions_*.json`` + image folder, as COCO
  and Flickr8k/30k (Karpathy's split) ship them, as a random-access source.
* :func:`batches`: a grain ``MapDataset`` whose item ``s`` is batch ``s``
  (shuffled anew each epoch, one reference caption drawn per example), so a
  batch is a pure function of ``(seed, step)`` and a resumed run reads
  exactly the next batch.
"""

from __future__ import annotations

import collections
import functools
import json
import os
from typing import Any, Iterable, Sequence

from numpy.typing import ArrayLike

import numpy as np

from rnn_zoo import checks
from rnn_zoo.data import catalog
from rnn_zoo.data import images as images_lib
from rnn_zoo.data import shapes
from rnn_zoo.data import shape_language
from rnn_zoo.errors import UserError

NULL, START, END, UNK = 0, 1, 2, 3
SPECIALS = ("<NULL>", "<START>", "<END>", "<UNK>")


class WordVocab:
  """Words <-> ids, with the four special tokens first."""

  def __init__(self, words: Sequence[str]):
    words = list(words)
    if words[:4] != list(SPECIALS):
      words = list(SPECIALS) + [w for w in words if w not in SPECIALS]
    if len(set(words)) != len(words):
      raise UserError("vocabulary words must be distinct")
    self.words = words
    self.index = {w: i for i, w in enumerate(words)}

  @classmethod
  def build(cls, captions: Iterable[str], min_count: int = 1) -> "WordVocab":
    """From training captions (strings); words rarer than ``min_count``
    become ``<UNK>``. Deterministic: by count, then alphabetically."""
    checks.positive_int("min_count", min_count)
    counts = collections.Counter(w for c in captions for w in shape_language.tokenize(c))
    kept = sorted((w for w, n in counts.items() if n >= min_count),
                  key=lambda w: (-counts[w], w))
    if not kept:
      raise UserError("no caption word occurs min_count="
                      f"{min_count} times: the training captions are empty")
    return cls(list(SPECIALS) + kept)

  @property
  def size(self) -> int:
    return len(self.words)

  def encode(self, caption: str, max_length: int) -> np.ndarray:
    """``[max_length + 2]`` int32: ``<START>``, the words (``<UNK>`` for unknown
    ones, cut at ``max_length``), ``<END>``, ``<NULL>`` padding."""
    checks.positive_int("max_length", max_length)
    words = shape_language.tokenize(caption)
    if not words:
      raise UserError(f"caption must hold at least one word, got {caption!r}")
    ids = [START] + [self.index.get(w, UNK) for w in words[:max_length]] + [END]
    return np.asarray(ids + [NULL] * (max_length + 2 - len(ids)), np.int32)

  def decode(self, ids: ArrayLike) -> str:
    """Words up to the first ``<END>``; ``<START>`` and ``<NULL>`` skipped."""
    out = []
    for i in np.asarray(ids).tolist():
      if i == END:
        break
      if i in (NULL, START):
        continue
      if not 0 <= i < self.size:
        raise UserError(f"token id {i} is outside the vocabulary of {self.size}")
      out.append(self.words[i])
    return " ".join(out)

  def to_json(self) -> dict:
    return {"words": self.words}

  @classmethod
  def from_json(cls, data: dict) -> "WordVocab":
    return cls(data["words"])

  def __eq__(self, other):
    return isinstance(other, WordVocab) and self.words == other.words


# --------------------------------------------------------------------------
# The embedded dataset, through tensorflow-datasets.

SIZES = {"default": {"train": 10_000, "validation": 1_000, "test": 1_000,
                     "compositional": 1_000},
         "tiny": {"train": 48, "validation": 8, "test": 8, "compositional": 8}}

@functools.cache
def _builder_class():
  """The tfds builder class (tfds is imported only when the data is used)."""
  M, S = shapes.MAX_OBJECTS, shapes.IMAGE_SIZE

  def features(tfds):
    return {"image": tfds.features.Tensor(shape=(S, S, 3), dtype=np.uint8),
            "captions": tfds.features.Sequence(tfds.features.Text()),
            "shape": tfds.features.Tensor(shape=(M,), dtype=np.int32),
            "colour": tfds.features.Tensor(shape=(M,), dtype=np.int32),
            "size": tfds.features.Tensor(shape=(M,), dtype=np.int32),
            "centre": tfds.features.Tensor(shape=(M, 2), dtype=np.float32),
            "masks": tfds.features.Tensor(shape=(M, S, S), dtype=np.bool_)}

  def generate(split, i):
    scene = shapes.make_scene(split, i)
    return {"image": scene.image, "captions": scene.captions, "shape": scene.shape,
            "colour": scene.colour, "size": scene.size, "centre": scene.centre,
            "masks": scene.masks}

  return catalog.generated_builder(
      "ShapeCaptions", what="the shapes captioning data",
      description=shapes.__doc__.split("\n\n")[0], sizes=SIZES, features=features,
      generate=generate)


def shape_captions(data_dir: str, config: str = "default") -> dict:
  """``{split: random-access source}`` of the embedded dataset, prepared into
  ``data_dir`` on first use (seconds for ``tiny``, about a minute for
  ``default``; no download, no TensorFlow)."""
  checks.choice("config", config, tuple(SIZES))
  return catalog.prepare_own(_builder_class(), data_dir, config)


def scene_of(example: dict) -> list[dict]:
  """The scene graph of a dataset example (what :func:`shape_language.caption_truth`
  reads)."""
  n = int(np.sum(np.asarray(example["shape"]) >= 0))
  return [{"shape": shapes.SHAPES[example["shape"][i]],
           "colour": shapes.COLOURS[example["colour"][i]],
           "size": shapes.SIZES[example["size"][i]],
           "x": float(example["centre"][i][0]), "y": float(example["centre"][i][1])}
          for i in range(n)]


# --------------------------------------------------------------------------
# COCO-format captions.

class CocoCaptions:
  """A random-access source over a COCO-format caption file.

  Item i: ``{"image_id", "file_name", "image": uint8 [S, S, 3],
  "captions": list of str}`` (images resized to ``image_size``).
  """

  def __init__(self, records: list[dict], image_dir: str, image_size: int):
    self.records, self.image_dir, self.image_size = records, image_dir, image_size

  def __len__(self):
    return len(self.records)

  def __getitem__(self, i):
    r = self.records[i]
    image = images_lib.read_rgb(os.path.join(self.image_dir, r["file_name"]),
                                self.image_size)
    return {"image_id": r["image_id"], "file_name": r["file_name"], "image": image,
            "captions": list(r["captions"])}

  def captions_of(self, i: int) -> tuple[int, list[str]]:
    """``(image_id, captions)`` of item ``i``, without reading its image."""
    r = self.records[i]
    return r["image_id"], list(r["captions"])


def load_coco_captions(annotations: str, image_dir: str, *,
                       image_size: int = shapes.IMAGE_SIZE) -> CocoCaptions:
  """Reads ``captions_*.json`` (``images``: id + file_name; ``annotations``:
  image_id + caption) and checks that every image file exists and decodes
  (:func:`rnn_zoo.data.images.check_images`: once per file, remembered in
  the zoo's cache).

  Raises:
    UserError: a missing or malformed file, an annotation of an unknown
      image, an image without captions or an empty caption, a missing image
      file — each naming what is wrong.
  """
  checks.positive_int("image_size", image_size)
  if not os.path.isfile(annotations):
    raise UserError(f"annotations file {annotations!r} does not exist")
  if not os.path.isdir(image_dir):
    raise UserError(f"image folder {image_dir!r} does not exist")
  try:
    with open(annotations, encoding="utf-8") as f:
      data = json.load(f)
    images: dict = {}
    for n, im in enumerate(data["images"]):
      image_id = checks.json_int(f"{annotations!r}: images[{n}].id", im["id"])
      if image_id in images:
        raise UserError(f"{annotations!r}: images[{n}] repeats image id {image_id} "
                        f"(of {images[image_id]!r}); ids must be unique")
      images[image_id] = im["file_name"]
    anns = [(checks.json_int(f"{annotations!r}: annotations[{n}].image_id", a["image_id"]),
             a["caption"]) for n, a in enumerate(data["annotations"])]
  except (ValueError, KeyError, TypeError) as e:
    if isinstance(e, UserError):
      raise
    raise UserError(f"annotations file {annotations!r} is not in the COCO captions "
                    f"format (images: id, file_name; annotations: image_id, "
                    f"caption): {type(e).__name__}: {e}") from None
  captions = collections.defaultdict(list)
  for image_id, caption in anns:
    if image_id not in images:
      raise UserError(f"{annotations!r}: an annotation names image_id {image_id}, "
                      "which is not among its images")
    if not isinstance(caption, str):
      raise UserError(f"{annotations!r}: image {image_id} has a caption that is not "
                      f"a string: {caption!r} ({type(caption).__name__})")
    if not shape_language.tokenize(caption):
      raise UserError(f"{annotations!r}: image {image_id} has an empty caption")
    captions[image_id].append(caption)
  records = []
  for image_id in sorted(images):
    if not captions[image_id]:
      raise UserError(f"{annotations!r}: image {image_id} has no caption")
    path = checks.file_inside(image_dir, images[image_id],
                              f"{annotations!r}: the file_name of image {image_id}")
    if not os.path.isfile(path):
      raise UserError(f"image file {path!r} (image_id {image_id}) does not exist")
    records.append({"image_id": image_id, "file_name": images[image_id],
                    "captions": captions[image_id]})
  images_lib.check_images(image_dir, [r["file_name"] for r in records])
  return CocoCaptions(records, image_dir, image_size)


class TfdsCocoCaptions:
  """A random-access source over a split of tfds's ``coco_captions`` (items
  as :class:`CocoCaptions`'s)."""

  def __init__(self, source: Any, image_size: int) -> None:
    self.source, self.image_size = source, image_size

  def __len__(self):
    return len(self.source)

  def __getitem__(self, i):
    from PIL import Image  # pylint: disable=g-import-not-at-top
    ex = self.source[i]
    im = Image.fromarray(np.asarray(ex["image"], np.uint8)).convert("RGB")
    image = np.asarray(im.resize((self.image_size, self.image_size), Image.BILINEAR))
    name = ex["image/filename"]
    return {"image_id": int(ex["image/id"]),
            "file_name": name.decode() if isinstance(name, bytes) else str(name),
            "image": image,
            "captions": [t.decode() if isinstance(t, bytes) else str(t)
                         for t in ex["captions"]["text"]]}


def tfds_coco_captions(data_dir: str | None, *, image_size: int = shapes.IMAGE_SIZE) -> dict:
  """tfds's ``coco_captions`` (COCO 2014 in Karpathy's splits), prepared as
  array_record: ``{"train", "validation", "test"}`` sources.

  An optional extra: preparing it needs TensorFlow and the internet (about
  20 GB of downloads); offline or without TensorFlow this fails in seconds,
  saying what to do (among others: the same data as COCO-format files,
  :func:`load_coco_captions`).
  """
  checks.positive_int("image_size", image_size)
  builder = catalog.catalog_builder(
      "coco_captions", data_dir or None, what="dataset 'coco_captions'",
      alternative="or point the COCO-format loader at captions_*.json and the image "
                  "folder: --config.dataset=coco --config.coco_train=... "
                  "--config.coco_val=... --config.coco_images=...",
      file_format="array_record")
  src = builder.as_data_source()
  return {"train": TfdsCocoCaptions(src["train"], image_size),
          "validation": TfdsCocoCaptions(src["val"], image_size),
          "test": TfdsCocoCaptions(src["test"], image_size)}


def captions_of(source: Any, i: int) -> tuple[int, list[str]]:
  """``(image_id, captions)`` of item ``i`` of a caption source: through the
  source's ``captions_of`` when it has one (no image decoded: a COCO folder
  is not re-read at each start), else from the item (image ids = indices
  for the shapes dataset)."""
  if hasattr(source, "captions_of"):
    return source.captions_of(i)
  ex = source[i]
  return int(ex.get("image_id", ex.get("index", i))), _texts(ex["captions"])


def write_coco_references(source: Any, path: str) -> None:
  """The source's reference captions in the COCO annotations format (what
  pycocoevalcap reads), image ids = indices for the shapes dataset."""
  images: list = []
  anns: list = []
  for i in range(len(source)):
    image_id, texts = captions_of(source, i)
    images.append({"id": image_id})
    for c in texts:
      anns.append({"image_id": image_id, "id": len(anns), "caption": c})
  with open(path, "w", encoding="utf-8") as f:
    json.dump({"images": images, "annotations": anns, "type": "captions",
               "info": {}, "licenses": []}, f)


# --------------------------------------------------------------------------
# grain pipelines.

def _texts(captions) -> list[str]:
  return [c.decode() if isinstance(c, bytes) else str(c) for c in captions]


def batches(source: Any, vocab: WordVocab, *, batch_size: int, max_length: int,
            seed: int, train: bool = True) -> Any:
  """A grain ``MapDataset`` whose item ``s`` is batch ``s``.

  Each example becomes ``{"image": float32 [S, S, 3] in [0, 1], "tokens":
  int32 [max_length + 2]}`` (one reference caption; drawn at random per
  example and epoch in training, the first otherwise) plus its ``index``.
  Training batches shuffle anew every epoch and never end; evaluation
  batches go through the source once in order (the last one may be short).
  """
  import grain  # pylint: disable=g-import-not-at-top
  checks.positive_int("batch_size", batch_size)
  checks.positive_int("max_length", max_length)
  if len(source) == 0:  # pylint: disable=g-explicit-length-test
    raise UserError("the caption source is empty")  # noqa
  n = len(source)
  ds = grain.MapDataset.source(source)
  # (After repeat, grain passes global indices: the example's is i mod n.)
  ds = ds.map_with_index(lambda i, ex: (i % n, ex))

  def encode(item, pick: int):
    i, ex = item
    texts = _texts(ex["captions"])
    return {"image": np.asarray(ex["image"], np.float32) / 255.0,
            "tokens": vocab.encode(texts[pick % len(texts)], max_length),
            "index": np.int64(i)}

  if train:
    ds = ds.shuffle(seed=seed).repeat(None)
    ds = ds.random_map(lambda item, rng: encode(item, int(rng.integers(1 << 30))),
                       seed=seed + 1)
    return ds.batch(batch_size, drop_remainder=True)
  return ds.map(lambda item: encode(item, 0)).batch(batch_size)
