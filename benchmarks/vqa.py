r"""VQA step speed per fusion: the jitted train step (loss, gradients, Adam)
and the forward pass, each on a batch of single questions (one image per
question) and on a batch of whole scenes (each image encoded once for its
20 questions, ``config.by_image``).

The models are the presets of ``experiments/vqa/config.py`` (Sort-of-CLEVR
sizes: 75x75 images, 12 answers, 29 question words); the data is random
(speed does not depend on it). Prints and writes (``results.json``,
``report.md`` in the run folder) ms per step and questions per second, and
each row's ratio to the anchor: concat fusion, single questions.

Usage::

  python -m benchmarks.vqa                         # ~3 min on 2 CPU cores
  python -m benchmarks.vqa --fusions=attention,relation --questions=320
  python -m benchmarks.vqa --fusions=relation,relation_pairs  # the split first layer

``relation_pairs`` is the relation preset computed as the paper writes it:
g's first layer on the concatenation ``[o_i, o_j, q]`` of each of the 625
pairs, where the model (``relation``) applies it to each region once and
adds the pair's two projections (the same function, tested in
tests/test_vqa_model.py): the anchor for what the split saves.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import sys

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import common
from experiments.vqa import config as vqa_config
from experiments.vqa import workload
from rnn_zoo.data import sort_of_clevr as soc
from rnn_zoo.models import vqa as vqa_lib

FUSIONS = ("concat", "product", "attention", "relation", "relation_pairs")

_FUSIONS = flags.DEFINE_list("fusions", ["concat", "product", "attention", "relation"],
                             f"Presets of experiments/vqa/config.py to time, of {FUSIONS}.")
_QUESTIONS = flags.DEFINE_integer(
    "questions", 320, "Questions per step: as many images, or questions/20 scenes.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Timed rounds (medians, interleaved).")
_OUT = flags.DEFINE_string("out", None, "Run folder (default runs/vqa_speed/<timestamp>).")

PER_IMAGE = 2 * soc.QUESTIONS_PER_KIND


def batch(key, images: int, per_image: int | None):
  """Random images and questions: ``per_image`` None -> one question per
  image (``[B, Lq]``), else ``[B, per_image, Lq]``."""
  k1, k2, k3 = jax.random.split(key, 3)
  S, Lq = soc.IMAGE_SIZE, soc.MAX_QUESTION_LENGTH
  shape = (images,) if per_image is None else (images, per_image)
  return (jax.random.uniform(k1, (images, S, S, 3)),
          jax.random.randint(k2, shape + (Lq,), 1, len(soc.QUESTION_WORDS)),
          jax.random.randint(k3, shape, 0, len(soc.ANSWERS)))


@dataclasses.dataclass(frozen=True)
class PairwiseVQA(vqa_lib.VQA):
  """The relation network with g's first layer on every concatenated pair."""

  def fuse(self, params, regions, q):
    B, L, _ = regions.shape
    pairs = jnp.concatenate([jnp.repeat(regions, L, axis=1), jnp.tile(regions, (1, L, 1)),
                             jnp.broadcast_to(q[:, None], (B, L * L, q.shape[-1]))], -1)
    g = vqa_lib._mlp(params["g"], pairs, final_relu=True)  # pylint: disable=protected-access
    return self.pool_pairs(g, axis=1), None


def make_model(fusion: str):
  """The preset's model; ``relation_pairs``: the relation preset's as a
  :class:`PairwiseVQA` (the same params)."""
  config = vqa_config.get_config(fusion.replace("_pairs", ""))
  model = workload.make_model(config, len(soc.ANSWERS), len(soc.QUESTION_WORDS))
  if fusion == "relation_pairs":
    model = PairwiseVQA(**{f.name: getattr(model, f.name) for f in dataclasses.fields(model)})
  return model


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  Q = _QUESTIONS.value
  if Q <= 0 or Q % PER_IMAGE:
    sys.exit(f"error: --questions must be a positive multiple of {PER_IMAGE}, got {Q}")
  if _ROUNDS.value <= 0:
    sys.exit(f"error: --rounds must be positive, got {_ROUNDS.value}")
  for f in _FUSIONS.value:
    if f not in FUSIONS:
      sys.exit(f"error: --fusions: unknown fusion {f!r}, use some of {list(FUSIONS)}")
  out = pathlib.Path(_OUT.value or os.path.join(
      "runs", "vqa_speed", datetime.datetime.now().strftime("%Y%m%d-%H%M%S")))
  out.mkdir(parents=True, exist_ok=True)
  opt = optax.adam(1e-3)
  fns, sizes = {}, {}
  for fusion in _FUSIONS.value:
    model = make_model(fusion)
    params = model.init(key=jax.random.key(0))
    state = (params, opt.init(params))
    sizes[fusion] = int(sum(x.size for x in jax.tree.leaves(params)))

    @jax.jit
    def train_step(state, images, questions, answers, model=model):
      params, opt_state = state
      grads = jax.grad(lambda p: model.loss(p, images, questions, answers)[0])(params)
      updates, opt_state = opt.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state

    forward = jax.jit(lambda p, i, q, model=model: model.apply(p, i, q)[0])
    for layout, data in (("questions", batch(jax.random.key(1), Q, None)),
                         ("scenes", batch(jax.random.key(1), Q // PER_IMAGE, PER_IMAGE))):
      fns[(fusion, layout, "train")] = (
          lambda s=state, d=data, f=train_step: jax.block_until_ready(f(s, *d)))
      fns[(fusion, layout, "forward")] = (
          lambda p=params, d=data, f=forward: jax.block_until_ready(f(p, *d[:2])))
  times = {k: float(np.median(v)) for k, v in
           common.time_round_robin(fns, _ROUNDS.value).items()}
  anchor_fusion = "concat" if "concat" in _FUSIONS.value else _FUSIONS.value[0]
  anchor = {m: times[(anchor_fusion, "questions", m)] for m in ("train", "forward")}
  rows = []
  for (fusion, layout, mode), t in times.items():
    rows.append({"fusion": fusion, "layout": layout, "mode": mode, "ms": t * 1e3,
                 "questions_per_s": Q / t, "speedup_vs_anchor": anchor[mode] / t,
                 "params": sizes[fusion]})
    print(f"{fusion:9s} {layout:9s} {mode:7s} {t * 1e3:8.1f} ms  {Q / t:9,.0f} questions/s  "
          f"{anchor[mode] / t:5.2f}x anchor", flush=True)
  anchor_name = f"{anchor_fusion}, single questions"
  results = {"command": "python -m benchmarks.vqa " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "environment": common.environment(), "questions_per_step": Q,
             "anchor": anchor_name, "rows": rows}
  (out / "results.json").write_text(json.dumps(results, indent=1))
  env = results["environment"]
  lines = ["# VQA step speed", "", f"Command: `{results['command']}`  ",
           f"Date: {results['date']}; {env['device_kind']} ({env['cpu_count']} cores, "
           f"{env['processor'] or env['machine']}); jax {env['jax']}; {Q} questions per step "
           f"(questions: {Q} images; scenes: {Q // PER_IMAGE} images x {PER_IMAGE}); "
           f"{_ROUNDS.value} interleaved rounds, medians; anchor: {anchor_name}.", "",
           "| fusion | params | batch of | step | ms | questions/s | vs anchor |",
           "|---|---:|---|---|---:|---:|---:|"]
  lines += [f"| {r['fusion']} | {r['params']:,} | {r['layout']} | {r['mode']} | "
            f"{r['ms']:.1f} | {r['questions_per_s']:,.0f} | {r['speedup_vs_anchor']:.2f}x |"
            for r in rows]
  common.write_report(out, lines)


if __name__ == "__main__":
  common.run_main(main)
