r"""Captions image files with a trained captioner; draws where it looked.

  python -m experiments.captioning.sample --workdir=/tmp/cap_soft \
      --images=cat.png,dog.jpg --decoding=beam --beam_size=3
  python -m experiments.captioning.sample --workdir=/tmp/cap_soft \
      --images=scene.png --decoding=sample --temperature=0.7 --top_k=5 --seed=1

Reads the newest checkpoint, its config and its word vocabulary from
--workdir (the training run's). Images (PNG, JPEG, anything PIL reads) are
converted to RGB and resized to the run's ``image_size``. Decoding, jitted
and batched over the images: ``beam`` (width ``--beam_size``, ranking
``logprob / length**--length_penalty``), ``greedy`` (beam width 1, token for
token the argmax) or ``sample`` (softmax with ``--temperature``, among the
``--top_k`` likeliest words; the same ``--seed`` gives the same captions).
Prints one ``file: caption`` line per image and writes ``--output``
(``[{"file_name", "caption"}]``); for an attention decoder also ``--figure``,
the image and one attention map per generated word.
"""

from __future__ import annotations

import json
import os

from absl import flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import common
from experiments import launch
from experiments.captioning import config as cap_config
from experiments.captioning import evaluate
from experiments.captioning import figures
from experiments.captioning import workload
from rnn_zoo.data import captions as captions_lib
from rnn_zoo.data import images as images_lib
from rnn_zoo.data import shape_language
from rnn_zoo.errors import UserError


_WORKDIR = flags.DEFINE_string("workdir", None, "The training run's workdir.",
                               required=True)
_IMAGES = flags.DEFINE_list("images", None, "Image files to caption (comma-separated).",
                            required=True)
_DECODING = flags.DEFINE_enum("decoding", "beam", evaluate.DECODINGS, "How words are chosen.")
_BEAM_SIZE = flags.DEFINE_integer("beam_size", 3, "beam: the beam width.")
_LENGTH_PENALTY = flags.DEFINE_float("length_penalty", None, "beam: ranking exponent "
                                     "(default: the run's config).")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "sample: softmax temperature "
                                  "(0: argmax).")
_TOP_K = flags.DEFINE_integer("top_k", 0, "sample: among the k likeliest words (0: all).")
_SEED = flags.DEFINE_integer("seed", 0, "sample (and hard attention): the PRNG seed.")
_HARD_DECODING = flags.DEFINE_enum("hard_decoding", None, ("sample", "expectation"),
                                   "Hard attention: sample a location per step or use "
                                   "the expected context (default: the run's config).")
_MAX_LENGTH = flags.DEFINE_integer("max_length", 0, "Words per caption at most (0: the "
                                   "run's max_length).")
_OUTPUT = flags.DEFINE_string("output", None, "Captions JSON (default: "
                              "<workdir>/samples.json).")
_FIGURE = flags.DEFINE_string("figure", None, "Attention PNG (default: "
                              "<workdir>/samples_attention.png).")


def load(workdir: str):
  """``(model, params, vocab, config, step)`` of a captioning workdir's newest
  checkpoint."""
  loaded = common.load_trained(workdir, "captioning", ("mode", "embed_size"))
  config = ml_collections.ConfigDict(loaded["config"])
  vocab = captions_lib.WordVocab.from_json(loaded["vocab"])
  for field, default in cap_config.get_config().items():
    if field not in config:               # runs from before the field: its default
      config[field] = default
  model = workload.make_model(config, vocab.size)
  params = jax.tree.map(jnp.asarray, loaded["state"]["params"])
  return model, params, vocab, config, loaded["step"]


def read_image(path: str, size: int) -> np.ndarray:
  """``[size, size, 3]`` float32 in [0, 1] from an image file."""
  if not os.path.isfile(path):
    raise UserError(f"--images names {path!r}, which is not a file")
  try:
    return images_lib.read_rgb(path, size).astype(np.float32) / 255.0
  except UserError as e:
    raise UserError(f"--images: {e}") from None


def caption_images(model, params, images, *, decoding_mode: str, max_length: int,
                   beam_size: int = 3, length_penalty: float = 0.0,
                   temperature: float = 1.0, top_k: int = 0, seed: int = 0):
  """``(tokens [B, max_length + 1], alphas [B, max_length + 1, L] or None)``:
  the captions of ``images`` ``[B, S, S, 3]`` (floats in [0, 1]) and, for an
  attention decoder, where it looked while reading each one back."""
  run = evaluate.captioner_fn(model, decoding_mode=decoding_mode, max_length=max_length,
                              beam_size=beam_size, length_penalty=length_penalty,
                              temperature=temperature, top_k=top_k)
  k_init, k_sample = jax.random.split(jax.random.key(seed))
  return run(params, jnp.asarray(images, jnp.float32), k_init, k_sample)


def run():
  model, params, vocab, config, step = load(_WORKDIR.value)
  common.check_output("--output", _OUTPUT.value)
  common.check_output("--figure", _FIGURE.value)
  if _MAX_LENGTH.value < 0:
    raise UserError(f"--max_length must be >= 0 (0: the run's), got {_MAX_LENGTH.value}")
  max_length = _MAX_LENGTH.value or config.max_length
  if _HARD_DECODING.value:
    config.hard_decoding = _HARD_DECODING.value
  model = workload.test_model(config, model)
  if not _IMAGES.value:
    raise UserError("--images must name at least one image file, got ''")
  paths = _IMAGES.value
  images = np.stack([read_image(p, config.image_size) for p in paths])
  if _DECODING.value == "beam" and _BEAM_SIZE.value > vocab.size:
    raise UserError(f"--beam_size must be at most the vocabulary size {vocab.size}, "
                    f"got {_BEAM_SIZE.value}")
  tokens, alphas = caption_images(
      model, params, images, decoding_mode=_DECODING.value, max_length=max_length,
      beam_size=_BEAM_SIZE.value,
      length_penalty=(_LENGTH_PENALTY.value if _LENGTH_PENALTY.value is not None
                      else config.get("length_penalty", 0.0)),
      temperature=_TEMPERATURE.value, top_k=_TOP_K.value, seed=_SEED.value)
  texts = [vocab.decode(t) for t in np.asarray(tokens)]
  for p, t in zip(paths, texts):
    print(f"{p}: {t}")
  output = _OUTPUT.value or os.path.join(_WORKDIR.value, "samples.json")
  with open(output, "w", encoding="utf-8") as f:
    json.dump([{"file_name": p, "caption": t} for p, t in zip(paths, texts)], f, indent=0)
  print(f"wrote {output} (checkpoint step {step}, {_DECODING.value} decoding)")
  if alphas is not None:
    figure = _FIGURE.value or os.path.join(_WORKDIR.value, "samples_attention.png")
    figures.attention_grid(figure, [
        {"image": im, "words": shape_language.tokenize(t), "alphas": a,
         "title": os.path.basename(p)}
        for im, t, a, p in zip(images, texts, np.asarray(alphas), paths)])
    print(f"wrote {figure}")


def main():
  launch.run(run)


if __name__ == "__main__":
  main()
