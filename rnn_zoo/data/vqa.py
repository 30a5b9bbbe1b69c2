"""Visual question answering data: Sort-of-CLEVR through tensorflow-datasets
(generated, array_record, no TensorFlow) and CLEVR-format question files,
both as random-access sources of single questions, batched by grain.

A question source's item ``j``::

  {"image": uint8 [S, S, 3], "question": int32 [Lq] word ids (0-padded),
   "answer": int32, "subtype": int32, "image_index": int64,
   "question_index": int64}

plus ``"bits"`` (the paper's 11-bit encoding) for Sort-of-CLEVR.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import re
from typing import Any, Iterable, Sequence

import numpy as np

from rnn_zoo import checks
from rnn_zoo.data import catalog
from rnn_zoo.data import images as images_lib
from rnn_zoo.data import sort_of_clevr as soc
from rnn_zoo.errors import UserError

SIZES = {"default": {"train": 9_800, "validation": 200, "test": 500},
         "tiny": {"train": 40, "validation": 8, "test": 8}}

@functools.cache
def _builder_class():
  """The tfds builder class (tfds is imported only when the data is used)."""
  Q, L, S, N = (2 * soc.QUESTIONS_PER_KIND, soc.MAX_QUESTION_LENGTH, soc.IMAGE_SIZE,
                soc.NUM_OBJECTS)

  def features(tfds):
    return {"image": tfds.features.Tensor(shape=(S, S, 3), dtype=np.uint8),
            "shape": tfds.features.Tensor(shape=(N,), dtype=np.int32),
            "centre": tfds.features.Tensor(shape=(N, 2), dtype=np.float32),
            "questions": tfds.features.Tensor(shape=(Q, L), dtype=np.int32),
            "answers": tfds.features.Tensor(shape=(Q,), dtype=np.int32),
            "subtype": tfds.features.Tensor(shape=(Q,), dtype=np.int32),
            "colour": tfds.features.Tensor(shape=(Q,), dtype=np.int32),
            "bits": tfds.features.Tensor(shape=(Q, 11), dtype=np.float32)}

  return catalog.generated_builder(
      "SortOfClevr", what="the Sort-of-CLEVR data",
      description=soc.__doc__.split("\n\n")[0], sizes=SIZES, features=features,
      generate=lambda split, i: soc.make_scene(split, i)._asdict())


class SortOfClevrQuestions:
  """One item per question of an image source of the builder (20 per image).

  Each image's record is read and decoded once and kept (``cache``; the
  default split is ~200 MB decoded): a batch of 64 questions touches 64
  records, and decoding them again for every question cost as much as the
  train step it feeds."""

  FIELDS = ("image", "questions", "answers", "subtype", "colour", "bits", "index")

  def __init__(self, images: Any, cache: bool = True) -> None:
    self.images = images
    self.per_image = 2 * soc.QUESTIONS_PER_KIND
    self._cache: dict | None = {} if cache else None

  def __len__(self):
    return len(self.images) * self.per_image

  def _record(self, i: int) -> dict:
    if self._cache is not None and i in self._cache:
      return self._cache[i]
    ex = self.images[i]
    ex = {k: np.asarray(ex[k]) for k in self.FIELDS}
    if self._cache is not None:
      self._cache[i] = ex
    return ex

  def __getitem__(self, j):
    i, k = divmod(int(j), self.per_image)
    ex = self._record(i)
    return {"image": ex["image"], "question": ex["questions"][k],
            "answer": np.int32(ex["answers"][k]), "subtype": np.int32(ex["subtype"][k]),
            "colour": np.int32(ex["colour"][k]), "bits": ex["bits"][k],
            "image_index": np.int64(ex["index"]),
            # (tfds stores examples in its own order: ids come from the scene.)
            "question_index": np.int64(ex["index"] * self.per_image + k)}

  def scene(self, i: int) -> dict:
    """Image ``i`` with all its questions: ``image``, ``question`` ``[20,
    Lq]``, and ``answer``, ``subtype``, ``colour``, ``question_index`` ``[20]``."""
    ex = self._record(int(i))
    return {"image": ex["image"], "question": ex["questions"], "answer": ex["answers"],
            "subtype": ex["subtype"], "colour": ex["colour"], "bits": ex["bits"],
            "question_index": (ex["index"] * self.per_image
                               + np.arange(self.per_image)).astype(np.int64)}

  def scenes(self) -> "_Scenes":
    """The images as a source: item ``i`` is :meth:`scene` ``(i)``."""
    return _Scenes(self)


class _Scenes:

  def __init__(self, questions: SortOfClevrQuestions):
    self.questions = questions

  def __len__(self):
    return len(self.questions.images)

  def __getitem__(self, i):
    return self.questions.scene(i)


def sort_of_clevr(data_dir: str, config: str = "default") -> dict:
  """``{split: question source}`` of Sort-of-CLEVR, prepared into
  ``data_dir`` on first use (no download, no TensorFlow)."""
  checks.choice("config", config, tuple(SIZES))
  images = catalog.prepare_own(_builder_class(), data_dir, config)
  return {k: SortOfClevrQuestions(v) for k, v in images.items()}


# --------------------------------------------------------------------------
# CLEVR-format questions.

# CLEVR's answers fall in three types (Johnson et al. 2017's breakdown).
ANSWER_TYPES = ("yes/no", "number", "attribute")


def tokenize_question(text: str) -> list[str]:
  """Lower case; ``?``, ``;`` and ``,`` as words of their own."""
  if not isinstance(text, str):
    raise UserError(f"question must be a string, got {type(text).__name__}")
  return re.sub(r"([?;,])", r" \1 ", text.lower()).split()


def answer_type(answer: str) -> int:
  if answer in ("yes", "no"):
    return 0
  return 1 if answer.isdigit() else 2


class Vocab:
  """Words (index 0 = ``<NULL>``, 1 = ``<UNK>``) or answers (no specials)."""

  def __init__(self, words: Iterable[str], specials: bool) -> None:
    self.words, self.specials = list(words), specials
    self.index = {w: i for i, w in enumerate(self.words)}

  @classmethod
  def build(cls, texts: Iterable[str], specials: bool) -> "Vocab":
    seen = sorted(set(texts))
    return cls((["<NULL>", "<UNK>"] if specials else []) + seen, specials)

  @property
  def size(self) -> int:
    return len(self.words)

  def to_json(self) -> dict:
    return {"words": self.words, "specials": self.specials}

  @classmethod
  def from_json(cls, data: dict) -> "Vocab":
    return cls(data["words"], data["specials"])


class ClevrQuestions:
  """A random-access source over a CLEVR-format question file."""

  def __init__(self, records: Sequence[dict], image_dir: str, image_size: int,
               words: Vocab, answers: Vocab, max_length: int) -> None:
    self.records, self.image_dir, self.image_size = records, image_dir, image_size
    self.words, self.answers, self.max_length = words, answers, max_length

  def __len__(self):
    return len(self.records)

  def __getitem__(self, j):
    r = self.records[int(j)]
    image = images_lib.read_rgb(os.path.join(self.image_dir, r["image_filename"]),
                                self.image_size)
    ids = [self.words.index.get(w, 1) for w in r["tokens"][:self.max_length]]
    question = np.zeros(self.max_length, np.int32)
    question[:len(ids)] = ids
    if r["answer"] not in self.answers.index:
      raise UserError(f"question {r['question_index']}: answer {r['answer']!r} is not "
                      f"among the training answers")
    return {"image": image, "question": question,
            "answer": np.int32(self.answers.index[r["answer"]]),
            "subtype": np.int32(answer_type(r["answer"])),
            "image_index": np.int64(r["image_index"]),
            "question_index": np.int64(r["question_index"])}


def _answer(path: str, n: int, answer) -> str:
  """A CLEVR answer is a string (numbers written as words of digits: "2")."""
  if isinstance(answer, bool) or not isinstance(answer, (str, int)):
    raise UserError(f"{path!r}: question {n} has answer {answer!r} "
                    f"({type(answer).__name__}); answers must be strings")
  answer = str(answer)
  if not answer.strip():
    raise UserError(f"{path!r}: question {n} has an empty answer")
  return answer


def _index(path: str, n: int, field: str, value) -> int:
  """An index is an integer (not a float, bool or string of one)."""
  return checks.json_int(f"{path!r}: question {n}'s {field}", value)


def _read_clevr(path: str, image_dir: str) -> list[dict]:
  if not os.path.isfile(path):
    raise UserError(f"questions file {path!r} does not exist")
  if not os.path.isdir(image_dir):
    raise UserError(f"image folder {image_dir!r} does not exist")
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
    records = [{"question": q["question"], "answer": _answer(path, n, q["answer"]),
                "image_filename": q["image_filename"],
                "image_index": _index(path, n, "image_index", q["image_index"]),
                "question_index": _index(path, n, "question_index",
                                         q.get("question_index", n))}
               for n, q in enumerate(data["questions"])]
  except (ValueError, KeyError, TypeError) as e:
    if isinstance(e, UserError):
      raise
    raise UserError(f"questions file {path!r} is not in the CLEVR format (questions: "
                    f"question, answer, image_filename, image_index): "
                    f"{type(e).__name__}: {e}") from None
  seen: dict = {}
  for n, r in enumerate(records):
    first = seen.setdefault(r["question_index"], n)
    if first != n:
      raise UserError(f"{path!r}: questions {first} and {n} share question_index "
                      f"{r['question_index']} (each question's predictions are kept "
                      "under its index: they must be unique)")
  missing: collections.OrderedDict = collections.OrderedDict()
  for r in records:
    r["tokens"] = tokenize_question(r["question"])
    if not r["tokens"]:
      raise UserError(f"{path!r}: question {r['question_index']} is empty")
    if not os.path.isfile(checks.file_inside(
        image_dir, r["image_filename"], f"{path!r}: question {r['question_index']}'s "
        "image_filename")):
      missing.setdefault(r["image_filename"], r["question_index"])
  if missing:
    name, q = next(iter(missing.items()))
    raise UserError(f"image file {os.path.join(image_dir, name)!r} (question {q}) does "
                    f"not exist ({len(missing)} image(s) missing in all)")
  images_lib.check_images(image_dir, [r["image_filename"] for r in records])
  return records


def load_clevr(train_questions: str, val_questions: str, image_dirs: tuple[str, str], *,
               image_size: int, max_length: int = 48) -> tuple[dict, Vocab, Vocab]:
  """CLEVR-format question files (``{"questions": [{"question", "answer",
  "image_filename", "image_index", ...}]}``, as CLEVR v1.0 ships
  ``questions/CLEVR_<split>_questions.json`` beside ``images/<split>/``).

  Returns:
    ``({"train", "validation"}: sources, question words, answers)``: the
    vocabularies come from the training file (unknown validation words
    become ``<UNK>``; an unseen validation answer is an error naming it).
  """
  checks.positive_int("image_size", image_size)
  checks.positive_int("max_length", max_length)
  train = _read_clevr(train_questions, image_dirs[0])
  val = _read_clevr(val_questions, image_dirs[1])
  if not train:
    raise UserError(f"questions file {train_questions!r} holds no questions")
  words = Vocab.build([w for r in train for w in r["tokens"]], specials=True)
  answers = Vocab.build([r["answer"] for r in train], specials=False)
  unseen = sorted({r["answer"] for r in val} - set(answers.words))
  if unseen:
    raise UserError(f"{val_questions!r} has answers the training questions never give: "
                    f"{unseen[:10]}")
  make = lambda recs, d: ClevrQuestions(recs, d, image_size, words, answers, max_length)
  return ({"train": make(train, image_dirs[0]), "validation": make(val, image_dirs[1])},
          words, answers)


def batches(source: Any, *, batch_size: int, seed: int, train: bool = True,
            by_image: bool = False) -> Any:
  """A grain ``MapDataset`` whose item ``s`` is batch ``s``: ``image``
  float32 in [0, 1], ``question``, ``answer``, ``subtype`` (and ``bits``,
  ``colour`` on Sort-of-CLEVR), with ``question_index``. Training batches
  shuffle anew every epoch and never end; evaluation batches go through the
  source once in order. ``by_image`` (Sort-of-CLEVR): ``batch_size`` images,
  each with all its questions (``question`` ``[B, 20, Lq]``, ``answer``
  ``[B, 20]``, ...), so the model encodes each image once per 20 questions."""
  import grain  # pylint: disable=g-import-not-at-top
  checks.positive_int("batch_size", batch_size)
  if len(source) == 0:  # pylint: disable=g-explicit-length-test
    raise UserError("the question source is empty")

  def prepare(ex):
    out = {k: np.asarray(v) for k, v in ex.items() if k != "image_index"}
    out["image"] = np.asarray(ex["image"], np.float32) / 255.0
    return out

  if by_image:
    if not hasattr(source, "scenes"):
      raise UserError(f"by_image batches need a source of whole scenes (Sort-of-CLEVR), "
                      f"not {type(source).__name__}")
    source = source.scenes()
  ds = grain.MapDataset.source(source)
  if train:
    ds = ds.shuffle(seed=seed).repeat(None)
    return ds.map(prepare).batch(batch_size, drop_remainder=True)
  return ds.map(prepare).batch(batch_size)
