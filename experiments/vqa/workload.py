"""The VQA glue: config -> data, vocabularies, model and loss.

``vqa(config)`` returns a :class:`Task`: the training loop's
:class:`~rnn_zoo.training.Workload` (host-side grain batches, a pure
function of the step) and what evaluation needs.
"""

from __future__ import annotations

import dataclasses
import os


from experiments import common
from rnn_zoo import checks
from rnn_zoo.data import sort_of_clevr as soc
from rnn_zoo.data import vqa as vqa_data
from rnn_zoo.errors import UserError
from rnn_zoo.models.vqa import FUSIONS, VQA
from rnn_zoo.training.loop import Workload

SHAPE_FIELDS = ("dataset", "data_config", "clevr_train", "image_size", "fusion", "cell",
                "hidden_size", "gru_variant", "bidirectional", "embed_size", "channels",
                "skip", "fusion_size", "hops", "mlp_size", "g_layers", "g_size",
                "g_pool")
DEFAULT_DATA_DIR = os.path.join("~", ".cache", "rnn_zoo", "tfds")


@dataclasses.dataclass(frozen=True)
class Task:
  workload: Workload
  model: VQA
  sources: dict            # split -> question source
  answers: tuple           # answer words
  subtypes: tuple          # subtype names (index = a question's "subtype")
  kinds: dict              # kind name -> subtype indices
  question_words: tuple
  info: dict


def load(config):
  """``(sources, answers, question words, subtypes, kinds, description)``."""
  checks.choice("config.dataset", config.dataset, ("sort_of_clevr", "clevr"))
  if config.dataset == "sort_of_clevr":
    if config.image_size != soc.IMAGE_SIZE:
      raise UserError(f"config.image_size must be {soc.IMAGE_SIZE} for Sort-of-CLEVR, "
                      f"got {config.image_size}")
    data_dir = os.path.expanduser(config.data_dir or DEFAULT_DATA_DIR)
    sources = vqa_data.sort_of_clevr(data_dir, config.data_config)
    kinds = {k: tuple(range(3 * i, 3 * i + 3)) for i, k in enumerate(soc.KINDS)}
    return (sources, soc.ANSWERS, soc.QUESTION_WORDS, soc.SUBTYPE_NAMES, kinds,
            f"Sort-of-CLEVR/{config.data_config} in {data_dir}")
  for field in ("clevr_train", "clevr_val", "clevr_train_images", "clevr_val_images"):
    if not config[field]:
      raise UserError(f"config.{field} is required with config.dataset='clevr'")
  sources, words, answers = vqa_data.load_clevr(
      config.clevr_train, config.clevr_val,
      (config.clevr_train_images, config.clevr_val_images),
      image_size=config.image_size, max_length=config.max_question_length)
  return (sources, tuple(answers.words), tuple(words.words), vqa_data.ANSWER_TYPES,
          {"all": tuple(range(len(vqa_data.ANSWER_TYPES)))},
          f"CLEVR-format {config.clevr_train} / {config.clevr_val}")


def make_model(config, num_answers: int, question_vocab: int) -> VQA:
  common.check_cell_fields(config)
  if config.num_layers != 1:
    raise UserError(f"config.num_layers must be 1 for the question reader, got "
                    f"{config.num_layers}")
  checks.choice("config.fusion", config.fusion, FUSIONS)
  checks.choice("config.hops", config.hops, (1, 2))
  return VQA(num_answers=num_answers, question_vocab=question_vocab,
             cell=common.make_cell(config, t_max=config.max_question_length),
             fusion=config.fusion, image_size=config.image_size,
             channels=tuple(config.channels), skip=bool(config.skip), embed_size=config.embed_size,
             bidirectional=config.bidirectional, fusion_size=config.fusion_size,
             hops=config.hops, mlp_size=config.mlp_size, g_layers=config.g_layers,
             g_size=config.g_size, g_pool=config.g_pool, cudnn=config.cudnn)


def vqa(config) -> Task:
  checks.positive_int("config.batch_size", config.batch_size)
  checks.positive_int("config.figure_questions", config.figure_questions)
  sources, answers, words, subtypes, kinds, description = load(config)
  model = make_model(config, len(answers), len(words))
  B = config.batch_size
  # CLEVR-format files are read a question at a time (images have varying
  # numbers of questions): by_image is Sort-of-CLEVR's.
  by_image = bool(config.by_image) and config.dataset == "sort_of_clevr"
  train = vqa_data.batches(sources["train"], batch_size=B, seed=config.seed,
                           by_image=by_image)
  val = sources["validation"].scenes() if by_image else sources["validation"]
  unit = "images" if by_image else "questions"
  if len(val) < B:
    raise UserError(f"the validation split has {len(val)} {unit}, fewer than "
                    f"config.batch_size={B}")
  val_batches = vqa_data.batches(sources["validation"], batch_size=B, seed=config.seed,
                                 train=False, by_image=by_image)
  n_val = len(val) // B

  def strip(batch):
    return {k: batch[k] for k in ("image", "question", "answer")}

  def loss_fn(params, batch, key, train):
    del key, train
    return model.loss(params, batch["image"], batch["question"], batch["answer"])

  def param_groups(grads):
    groups = {"cnn": grads["cnn"], "reader": {k: grads[k] for k in grads
                                              if k in ("embed", "reader", "reader_back")},
              "answer": grads["answer"]}
    rest = {k: v for k, v in grads.items()
            if k not in ("cnn", "embed", "reader", "reader_back", "answer")}
    if rest:
      groups["fusion"] = rest
    return groups

  info = {"data": description, "answers": len(answers), "question_words": len(words),
          **{f"{k}_questions": len(v) for k, v in sources.items()}}
  workload = Workload(
      init_params=lambda key: model.init(key=key), loss_fn=loss_fn,
      train_batch=lambda key, step: strip(train[int(step)]),
      eval_batch=lambda key, i: strip(val_batches[int(i) % n_val]),
      shape_fields=SHAPE_FIELDS,
      vocab={"answers": list(answers), "question_words": list(words),
             "subtypes": list(subtypes)},
      param_groups=param_groups, eval_batches=min(config.eval_batches, n_val), info=info,
      host_data=True)
  return Task(workload=workload, model=model, sources=sources, answers=tuple(answers),
              subtypes=tuple(subtypes), kinds=kinds, question_words=tuple(words), info=info)
