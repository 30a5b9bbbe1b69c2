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

import datetime
import json
import os
import sys

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from experiments.captioning import workload
from rnn_zoo import decoding
from rnn_zoo.data import captions as captions_lib
from rnn_zoo.data import shapes
from rnn_zoo.training import checkpoint


def decode(task, params, source, *, beam_size: int, max_length: int,
           length_penalty: float, batch_size: int, seed: int) -> list[str]:
  """Captions for every image of ``source`` (beam search, jitted)."""
  model, vocab = task.model, task.vocab
  ds = captions_lib.batches(source, vocab, batch_size=batch_size, max_length=max_length,
                            seed=seed, train=False)

  @jax.jit
  def run(params, images, key):
    carry = model.initial_carry(params, images, key=key)
    prompt = jnp.full((images.shape[0], 1), captions_lib.START, jnp.int32)
    out = decoding.beam_search(model.step, params, carry, prompt, beam_size=beam_size,
                               max_length=max_length + 1, end_token=captions_lib.END,
                               length_penalty=length_penalty)
    return out["tokens"][:, 0]

  texts = []
  for i in range(len(ds)):
    batch = ds[i]
    toks = run(params, jnp.asarray(batch["image"]), jax.random.key(seed + i))
    texts += [vocab.decode(t) for t in np.asarray(toks)]
  return texts


def coco_scores(references: dict, candidates: dict) -> dict:
  """BLEU-1..4 and CIDEr-D of ``{image_id: caption}`` against ``{image_id:
  [references]}``, with pycocoevalcap's scorers (captions tokenized as the
  dataset tokenizes them)."""
  from pycocoevalcap.bleu.bleu import Bleu  # pylint: disable=g-import-not-at-top
  from pycocoevalcap.cider.cider import Cider  # pylint: disable=g-import-not-at-top
  gts = {k: [" ".join(shapes.tokenize(r)) for r in v] for k, v in references.items()}
  res = {k: [" ".join(shapes.tokenize(candidates[k])) or "<empty>"] for k in gts}
  bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
  cider, _ = Cider().compute_score(gts, res)
  return {**{f"BLEU-{n + 1}": float(b) for n, b in enumerate(bleu)}, "CIDEr-D": float(cider)}


def truth_scores(examples: list, texts: list[str]) -> dict:
  """Caption truth and object recall, overall and by scene size."""
  rows = {"all": [], "1-2 objects": [], "3-4 objects": []}
  for ex, text in zip(examples, texts):
    objs = captions_lib.scene_of(ex)
    t = shapes.caption_truth(text, objs)
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
  if jax.process_index() != 0:
    return {}
  loaded = checkpoint.load_latest(workdir)
  params = jax.tree.map(jnp.asarray, loaded["state"]["params"])
  splits = workload.eval_splits(config, task.sources)
  results = {"command": "python -m experiments.captioning " + " ".join(sys.argv[1:]),
             "date": datetime.datetime.now().isoformat(timespec="seconds"),
             "step": loaded["step"], "mode": config.mode, "beam_size": config.beam_size,
             "device": jax.devices()[0].device_kind, "splits": {}}
  for split in splits:
    source = task.sources[split]
    texts = decode(task, params, source, beam_size=config.beam_size,
                   max_length=config.max_length, length_penalty=config.length_penalty,
                   batch_size=config.batch_size, seed=config.seed)
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
    results["splits"][split] = row
    logging.info("%s: %s", split, {k: round(v, 4) for k, v in row.items()
                                    if isinstance(v, float)})
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  _write_report(workdir, results)
  return results


def _write_report(workdir: str, results: dict) -> None:
  lines = [f"# Captioning: {results['mode']} decoder", "",
           f"Command: `{results['command']}`  ",
           f"Date: {results['date']}; {results['device']}; checkpoint step "
           f"{results['step']}; beam width {results['beam_size']}.", "",
           "BLEU and CIDEr-D from pycocoevalcap (captions tokenized by "
           "`rnn_zoo.data.shapes.tokenize`); truth = the caption's claim is true "
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
  lines += ["", "Examples (generated | references):", ""]
  for split, r in results["splits"].items():
    for e in r["examples"][:3]:
      lines.append(f"- {split} {e['image_id']}: **{e['caption']}** | "
                   + " / ".join(e["references"]))
  with open(os.path.join(workdir, "report.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  print(f"wrote {os.path.join(workdir, 'report.md')}", flush=True)
