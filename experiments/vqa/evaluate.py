"""After training: answer every question of the evaluation split, score by
kind and subtype, write the predictions, the attention maps and a report.

Writes to the workdir: ``predictions_<split>.json`` (``{question_index:
answer}``: anyone can rescore it), ``results.json``, ``report.md`` and, for
the attention fusion, ``attention_<split>.png`` (image, question, predicted
and true answer, the map of each hop).
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from rnn_zoo.data import sort_of_clevr as soc
from rnn_zoo.data import vqa as vqa_data
from rnn_zoo.metrics import attention_maps

# Published accuracies (non-relational / relational), ../shared/REFERENCES.md.
PUBLISHED = (("CNN+MLP (Santoro et al. 2017)", None, 0.63),
             ("CNN+RN (Santoro et al. 2017)", 0.94, 0.94),
             ("reimplementation: CNN+MLP", 0.66, 0.66),
             ("reimplementation: RN", 0.99, 0.89))


def predict(task, params, source, batch_size: int, by_image: bool = False):
  """A dict of arrays over ``source``, in its order: ``pred``, ``true``,
  ``subtype``, ``index`` (question index), ``maps`` (``[N, hops, L]``
  attention; None without attention) and ``pointing`` (``[N, hops, 2]``:
  each hop's share of attention on the named object's pixels and on the
  locations touching it, :func:`rnn_zoo.metrics.attention_maps.mass_on_mask`; None
  without attention or without object masks, i.e. off Sort-of-CLEVR)."""
  model = task.model
  ds = vqa_data.batches(source, batch_size=batch_size, seed=0, train=False,
                        by_image=by_image)
  run = jax.jit(model.apply)
  out = {k: [] for k in ("pred", "true", "subtype", "index", "maps", "pointing")}
  flat = lambda x: np.asarray(x).reshape((-1,) + np.shape(x)[2:]) if by_image else x
  for i in range(len(ds)):
    b = ds[i]
    logits, maps = run(params, jnp.asarray(b["image"]), jnp.asarray(b["question"]))
    out["pred"].append(flat(np.asarray(jnp.argmax(logits, -1))))
    for k, name in (("true", "answer"), ("subtype", "subtype"), ("index", "question_index")):
      out[k].append(flat(b[name]))
    if maps is not None:
      maps = flat(np.asarray(maps))
      out["maps"].append(maps)
      if "colour" in b:
        images = np.round(np.asarray(b["image"]) * 255.0).astype(np.uint8)
        if by_image:
          images = np.repeat(images, b["question"].shape[1], axis=0)
        out["pointing"].append(np.asarray(
            [[attention_maps.mass_on_mask(m, soc.object_mask(image, colour)) for m in hops]
             for image, colour, hops in zip(images, flat(b["colour"]), maps)]))
  return {k: np.concatenate(v) if v else None for k, v in out.items()}


def pointing_scores(task, pointing, subtype) -> dict:
  """Per kind and hop: the mean share of attention on the named object
  (``pixels``; ``cells``, the locations touching it) and ``lands``, the
  share of questions with more than half the map on those locations."""
  out = {}
  for kind, members in task.kinds.items():
    m = np.isin(subtype, members)
    if m.any():
      out[kind] = [{"pixels": float(pointing[m, h, 0].mean()),
                    "cells": float(pointing[m, h, 1].mean()),
                    "lands": float(np.mean(pointing[m, h, 1] > 0.5))}
                   for h in range(pointing.shape[1])]
  return out


def scores(task, pred, true, subtype) -> dict:
  """Accuracy overall, per kind and per subtype, and the confusion matrix
  over answers (rows: true, columns: predicted)."""
  right = pred == true
  out = {"questions": int(len(true)), "accuracy": float(right.mean()), "kinds": {},
         "subtypes": {}}
  for kind, members in task.kinds.items():
    m = np.isin(subtype, members)
    if m.any():
      out["kinds"][kind] = {"questions": int(m.sum()), "accuracy": float(right[m].mean())}
  for s, name in enumerate(task.subtypes):
    m = subtype == s
    if m.any():
      out["subtypes"][name] = {"questions": int(m.sum()), "accuracy": float(right[m].mean())}
  n = len(task.answers)
  confusion = np.zeros((n, n), np.int64)
  np.add.at(confusion, (true, pred), 1)
  out["confusion"] = confusion.tolist()
  return out


def evaluate_run(config, workdir: str, task) -> dict:
  """Scores the run's final params on the evaluation split; writes files."""
  started = common.run_header("vqa", workdir)
  if started is None:
    return {}
  params, header = started
  split = "test" if "test" in task.sources else "validation"
  source = task.sources[split]
  # Sort-of-CLEVR is answered by whole scenes (each image encoded once).
  by_image = hasattr(source, "scenes")
  per_image = 2 * soc.QUESTIONS_PER_KIND
  batch = (config.batch_size if config.by_image or not by_image
           else max(1, config.batch_size // per_image))
  p = predict(task, params, source, batch, by_image=by_image)
  pred, true, subtype, index, maps = p["pred"], p["true"], p["subtype"], p["index"], p["maps"]
  results = {**header, "fusion": config.fusion, "split": split,
             **scores(task, pred, true, subtype)}
  if p["pointing"] is not None:
    results["pointing"] = pointing_scores(task, p["pointing"], subtype)
  with open(os.path.join(workdir, f"predictions_{split}.json"), "w", encoding="utf-8") as f:
    json.dump({str(int(q)): task.answers[int(p)] for q, p in zip(index, pred)}, f)
  if maps is not None:
    results["figure"] = _attention_figure(workdir, split, task, source, pred, subtype,
                                          index, maps, config.figure_questions)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=1)
  _write_report(workdir, task, results)
  return results


def _attention_figure(workdir, split, task, source, pred, subtype, index, maps, per):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  picks = []
  for s in range(len(task.subtypes)):
    picks += list(np.flatnonzero(subtype == s)[:per])
  if not picks:
    return None
  hops = maps.shape[1]
  fig, axes = plt.subplots(len(picks), 1 + hops, figsize=(2.2 * (1 + hops), 2.3 * len(picks)),
                           squeeze=False)
  for r, n in enumerate(picks):
    item = source[int(n)]
    assert int(item["question_index"]) == int(index[n])   # predictions are in source order
    image = np.asarray(item["image"]) / 255.0
    words = [task.question_words[i] for i in np.asarray(item["question"]) if i]
    axes[r, 0].imshow(image)
    axes[r, 0].set_title(f"{' '.join(words)}\npredicted {task.answers[pred[n]]}, "
                         f"true {task.answers[int(item['answer'])]}", fontsize=6, loc="left")
    side = int(round(np.sqrt(maps.shape[-1])))
    for h in range(hops):
      axes[r, 1 + h].imshow(image.mean(-1), cmap="gray", vmin=0, vmax=1)
      axes[r, 1 + h].imshow(maps[n, h].reshape(side, side), cmap="inferno", alpha=0.6,
                            extent=(0, image.shape[1], image.shape[0], 0),
                            interpolation="nearest")
      axes[r, 1 + h].set_title(f"hop {h + 1}", fontsize=7)
  for ax in axes.ravel():
    ax.axis("off")
  fig.tight_layout(pad=0.3)
  name = f"attention_{split}.png"
  fig.savefig(os.path.join(workdir, name), dpi=90)
  plt.close(fig)
  return name


def _write_report(workdir: str, task, r: dict) -> None:
  lines = [f"# VQA: {r['fusion']} fusion", "",
           f"Command: `{r['command']}`  ",
           f"Date: {r['date']}; {r['device']}; checkpoint step {r['step']}; split "
           f"{r['split']} ({r['questions']} questions).", "",
           f"Accuracy: **{r['accuracy']:.3f}**", "",
           "| kind | questions | accuracy |", "|---|---:|---:|"]
  lines += [f"| {k} | {v['questions']} | {v['accuracy']:.3f} |" for k, v in r["kinds"].items()]
  lines += ["", "| subtype | questions | accuracy |", "|---|---:|---:|"]
  lines += [f"| {k} | {v['questions']} | {v['accuracy']:.3f} |"
            for k, v in r["subtypes"].items()]
  if set(r["kinds"]) == {"non-relational", "relational"}:
    lines += ["", "Published (Sort-of-CLEVR; non-relational / relational): "
              + "; ".join(f"{n} {'–' if a is None else f'{a:.2f}'} / {b:.2f}"
                          for n, a, b in PUBLISHED) + "."]
  if r.get("pointing"):
    lines += ["", "Where attention looked: the share of each hop's map on the object the "
              "question names (pixels: inside its mask; cells: on the 5x5 locations "
              "touching it; lands: questions with over half the map on those "
              "locations). For relational questions the named object is only the "
              "anchor.", "", "| kind | hop | pixels | cells | lands |",
              "|---|---:|---:|---:|---:|"]
    lines += [f"| {k} | {h + 1} | {v['pixels']:.3f} | {v['cells']:.3f} | {v['lands']:.3f} |"
              for k, hops in r["pointing"].items() for h, v in enumerate(hops)]
  lines += ["", "Confusion (rows: true answer, columns: predicted):", "",
            "| | " + " | ".join(task.answers) + " |",
            "|---|" + "---:|" * len(task.answers)]
  for a, row in zip(task.answers, r["confusion"]):
    lines.append(f"| **{a}** | " + " | ".join(str(v) for v in row) + " |")
  if r.get("figure"):
    lines += ["", "Attention of each hop, per question subtype:", "",
              f"![attention]({r['figure']})"]
  with open(os.path.join(workdir, "report.md"), "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  print(f"wrote {os.path.join(workdir, 'report.md')}", flush=True)
