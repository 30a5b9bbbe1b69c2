"""After training: decode captions for the evaluation splits, score them,
write them in the COCO formats and a report.

For each split: ``captions_<split>.json`` (COCO results format:
``[{"image_id", "caption"}]``) and ``references_<split>.json`` (COCO
annotations format), so anyone can rescore them with pycocoevalcap; BLEU-1..4
and CIDEr-D from pycocoevalcap (METEOR and SPICE need Java); for the shapes
data, caption truth (the share of captions whose claim is true of the scene
graph) and object recall (the share of the scene's objects a true reading
names), for scenes of 1-2 and of 3-4 objects. ``report.md`` and
``results.json`` in the workdir.
"""

from __future__ import annotations

import json
import os

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from experiments.captioning import figures
from experiments.captioning import workload
from rnn_zoo import checks
from rnn_zoo import decoding
from rnn_zoo.data import captions as captions_lib
from rnn_zoo.data import shape_language
from rnn_zoo.metrics import attention_maps


DECODINGS = ("beam", "greedy", "sample")


def captioner_fn(model, *, decoding_mode: str, max_length: int, beam_size: int = 3,
                 length_penalty: float = 0.0, temperature: float = 1.0, top_k: int = 0):
  """A jitted ``(params, images, init_key, sample_key) -> (tokens [B,
  max_length + 1], alphas [B, max_length + 1, L] or None)``: the captions of
  ``images`` (floats in [0, 1]) decoded by ``decoding_mode`` (beam,
  greedy = beam width 1, or sampling with ``sample_key``) and, for an
  attention decoder, where it looked while reading each one back (teacher
  forcing on the generated words; hard attention: its distribution over
  locations). ``init_key`` seeds hard attention's locations."""
  checks.choice("decoding", decoding_mode, DECODINGS)
  checks.positive_int("max_length", max_length)
  if decoding_mode == "sample":
    decoding.check_options(temperature, top_k, max_length + 1)
  elif decoding_mode == "beam":
    checks.positive_int("beam_size", beam_size)
  n = max_length + 1                                   # the words and <END>

  @jax.jit
  def run(params, images, init_key, sample_key):
    carry = model.initial_carry(params, images, key=init_key)
    prompt = jnp.full((images.shape[0], 1), captions_lib.START, jnp.int32)
    if decoding_mode == "sample":
      tokens, _ = decoding.generate(model.step, params, carry, prompt, length=n,
                                    key=sample_key, temperature=temperature, top_k=top_k,
                                    end_token=captions_lib.END)
    else:
      width = beam_size if decoding_mode == "beam" else 1
      out = decoding.beam_search(model.step, params, carry, prompt, beam_size=width,
                                 max_length=n, end_token=captions_lib.END,
                                 length_penalty=length_penalty)
      tokens = out["tokens"][:, 0]
    if model.mode == "plain":
      return tokens, None
    read = jnp.concatenate([prompt, tokens], axis=1)
    # The decoder's initial carry holds the encoded images: no second CNN pass.
    return tokens, model.attention_maps(params, images, read, carry=carry)

  return run


def decode(task, params, source, config) -> tuple[list[str], list | None]:
  """``(captions, alphas)`` for every image of ``source``, decoded as the
  config says (beam search; :func:`captioner_fn`); ``alphas`` (each
  caption's ``[T, L]`` attention weights) is None for the plain decoder."""
  model, vocab = workload.test_model(config, task.model), task.vocab
  ds = captions_lib.batches(source, vocab, batch_size=config.batch_size,
                            max_length=config.max_length, seed=config.seed, train=False)
  run = captioner_fn(model, decoding_mode="beam", max_length=config.max_length,
                     beam_size=config.beam_size, length_penalty=config.length_penalty)
  attention = model.mode != "plain"
  texts, alphas = [], [] if attention else None
  for i in range(len(ds)):
    batch = ds[i]
    key = jax.random.key(config.seed + i)
    toks, alpha = run(params, jnp.asarray(batch["image"]), key, key)
    texts += [vocab.decode(t) for t in np.asarray(toks)]
    if attention:
      alphas += list(np.asarray(alpha, np.float32))
  return texts, alphas


def pointing_scores(examples: list, texts: list[str], alphas: list) -> dict:
  """Attention pointing over a split: for each generated word that names an
  object of the scene, the share of that step's attention inside the
  object's mask (:func:`rnn_zoo.metrics.attention_maps.attention_pointing`)."""
  rows = []
  for ex, text, alpha in zip(examples, texts, alphas):
    rows += attention_maps.attention_pointing(text, alpha, captions_lib.scene_of(ex), ex["masks"])
  matched = [r for r in rows if r["matched"]]
  if not matched:
    return {"object_words": len(rows), "matched": 0}
  mass = np.asarray([r["mass"] for r in matched], np.float64)
  cells = np.asarray([r["mass_cells"] for r in matched], np.float64)
  return {"object_words": len(rows), "matched": len(matched),
          "mean_mass": float(mass.mean()), "over_half": float(np.mean(mass > 0.5)),
          "mean_mass_cells": float(cells.mean()),
          "over_half_cells": float(np.mean(cells > 0.5))}


def coco_scores(references: dict, candidates: dict) -> dict:
  """BLEU-1..4 and CIDEr-D of ``{image_id: caption}`` against ``{image_id:
  [references]}``, with pycocoevalcap's scorers (captions tokenized as the
  dataset tokenizes them). An empty caption is scored as the empty string,
  exactly as pycocoevalcap scores it: it adds nothing to the matched n-grams
  or the candidate length and its reference length to the brevity penalty
  (a placeholder word would count as one wrong word instead)."""
  from pycocoevalcap.bleu.bleu import Bleu  # pylint: disable=g-import-not-at-top
  from pycocoevalcap.cider.cider import Cider  # pylint: disable=g-import-not-at-top
  gts = {k: [" ".join(shape_language.tokenize(r)) for r in v] for k, v in references.items()}
  res = {k: [" ".join(shape_language.tokenize(candidates[k]))] for k in gts}
  bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
  cider, _ = Cider().compute_score(gts, res)
  return {**{f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)}, "CIDEr-D": float(cider)}


def truth_scores(examples: list, texts: list[str]) -> dict:
  """Caption truth and object recall, overall and by scene size."""
  rows = {"all": [], "1-2 objects": [], "3-4 objects": []}
  for ex, text in zip(examples, texts):
    objs = captions_lib.scene_of(ex)
    t = shape_language.caption_truth(text, objs)
    r = (t["parsed"], t["true"], len(t["named"]) / max(len(objs), 1))
    rows["all"].append(r)
    rows["1-2 objects" if len(objs) <= 2 else "3-4 objects"].append(r)
  out = {}
  for name, rs in rows.items():
    if rs:
      a = np.asarray(rs, np.float64)
      out[name] = {"images": len(rs), "grammatical": float(a[:, 0].mean()),
                   "true": float(a[:, 1].mean()), "object_recall": float(a[:, 2].mean())}
  return out


def evaluate_run(config, workdir: str, task) -> dict:
  """Decodes and scores the run's final params; writes files and report.md."""
  started = common.run_header("captioning", workdir)
  if started is None:
    return {}
  params, header = started
  splits = workload.eval_splits(config, task.sources)
  results = {**header, "mode": config.mode, "beam_size": config.beam_size,
             "hard_decoding": config.hard_decoding if config.mode == "hard" else None,
             "splits": {}}
  for split in splits:
    source = task.sources[split]
    texts, alphas = decode(task, params, source, config)
    attention = alphas is not None
    examples = [source[i] for i in range(len(source))]
    ids = [int(ex.get("image_id", ex.get("index", i))) for i, ex in enumerate(examples)]
    refs = {i: [c.decode() if isinstance(c, bytes) else c for c in ex["captions"]]
            for i, ex in zip(ids, examples)}
    with open(os.path.join(workdir, f"captions_{split}.json"), "w", encoding="utf-8") as f:
      json.dump([{"image_id": i, "caption": t} for i, t in zip(ids, texts)], f, indent=0)
    captions_lib.write_coco_references(source, os.path.join(workdir, f"references_{split}.json"))
    row = {"images": len(texts), **coco_scores(refs, dict(zip(ids, texts))),
           "examples": [{"image_id": i, "caption": t, "references": refs[i][:2]}
                        for i, t in list(zip(ids, texts))[:5]]}
    if config.dataset == "shapes":
      row["truth"] = truth_scores(examples, texts)
      if attention:
        row["pointing"] = pointing_scores(examples, texts, alphas)
    if attention:
      picks = _figure_picks(examples, config.figure_images)
      name = f"attention_{split}.png"
      figures.attention_grid(os.path.join(workdir, name), [
          {"image": examples[i]["image"], "words": shape_language.tokenize(texts[i]),
           "alphas": alphas[i], "title": refs[ids[i]][0]} for i in picks])
      row["figure"] = name
    results["splits"][split] = row
    logging.info("%s: %s", split, {k: round(v, 4) for k, v in row.items()
                                    if isinstance(v, float)})
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  _write_report(workdir, results)
  return results


def _figure_picks(examples: list, n: int) -> list[int]:
  """The first ``n`` images, or half with 1-2 objects, half with 3-4 when the
  scenes say."""
  if "shape" not in examples[0]:
    return list(range(min(n, len(examples))))
  sizes = [int(np.sum(np.asarray(ex["shape"]) >= 0)) for ex in examples]
  few = [i for i, k in enumerate(sizes) if k <= 2][:n - n // 2]
  many = [i for i, k in enumerate(sizes) if k > 2][:n - len(few)]
  return sorted(few + many)


def _write_report(workdir: str, results: dict) -> None:
  lines = [f"# Captioning: {results['mode']} decoder", "",
           f"Command: `{results['command']}`  ",
           f"Date: {results['date']}; {results['device']}; checkpoint step "
           f"{results['step']}; beam width {results['beam_size']}.", "",
           "BLEU and CIDEr-D from pycocoevalcap (captions tokenized by "
           "`rnn_zoo.data.shape_language.tokenize`); truth = the caption's claim is true "
           "of the scene graph; recall = share of the scene's objects it names.", "",
           "| split | images | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | CIDEr-D | true (1-2 obj) "
           "| true (3-4 obj) | object recall |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for split, r in results["splits"].items():
    t = r.get("truth", {})
    cell = lambda k, f: f"{t[k][f]:.3f}" if k in t else "–"
    lines.append(f"| {split} | {r['images']} | {r['BLEU-1']:.3f} | {r['BLEU-2']:.3f} | "
                 f"{r['BLEU-3']:.3f} | {r['BLEU-4']:.3f} | {r['CIDEr-D']:.3f} | "
                 f"{cell('1-2 objects', 'true')} | {cell('3-4 objects', 'true')} | "
                 f"{cell('all', 'object_recall')} |")
  pointed = {s: r["pointing"] for s, r in results["splits"].items() if "pointing" in r}
  if pointed:
    lines += ["", "Attention pointing: for each generated word naming an object of the "
              "scene, the share of that step's attention inside the object's mask "
              "(pixels: each location's weight spread over its pixels; cells: the "
              "locations that overlap the mask).", "",
              "| split | object words | of them in the scene | mean mass (pixels) "
              "| over half (pixels) | mean mass (cells) | over half (cells) |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for split, p in pointed.items():
      if p["matched"]:
        lines.append(f"| {split} | {p['object_words']} | {p['matched']} | "
                     f"{p['mean_mass']:.3f} | {p['over_half']:.3f} | "
                     f"{p['mean_mass_cells']:.3f} | {p['over_half_cells']:.3f} |")
  figs = [(s, r["figure"]) for s, r in results["splits"].items() if "figure" in r]
  for split, name in figs:
    lines += ["", f"Attention while generating each word ({split}; title: a reference):",
              "", f"![attention, {split}]({name})"]
  lines += ["", "Examples (generated | references):", ""]
  for split, r in results["splits"].items():
    for e in r["examples"][:3]:
      lines.append(f"- {split} {e['image_id']}: **{e['caption']}** | "
                   + " / ".join(e["references"]))
  with open(os.path.join(workdir, "report.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  print(f"wrote {os.path.join(workdir, 'report.md')}", flush=True)
