r"""Tabulates finished VQA runs: mean ± standard deviation over seeds, one
row per label (a fusion, a variant).

  python -m experiments.vqa.compare \
      --runs=attention:/tmp/vqa/attention_0,attention:/tmp/vqa/attention_1,concat:/tmp/vqa/concat_0 \
      --output=/tmp/vqa/compare.md

Each run is ``label:workdir``; the numbers are read from each workdir's
``results.json`` (what the training binary's evaluation wrote), so the
table can be rebuilt at any time. Columns: accuracy overall, by kind and by
Sort-of-CLEVR subtype, and for attention where the maps looked on
non-relational questions (share of questions with over half of the hop's
map on the named object's locations; mean share of the map there).
"""

from __future__ import annotations

from absl import app
from absl import flags

from experiments import common
from rnn_zoo.data import sort_of_clevr as soc

COLUMNS = ((("accuracy", ("accuracy",)),)
           + tuple((k, ("kinds", k, "accuracy")) for k in soc.KINDS)
           + tuple((s, ("subtypes", s, "accuracy")) for s in soc.SUBTYPE_NAMES)
           + tuple((f"lands, hop {h + 1}", ("pointing", "non-relational", h, "lands"))
                   for h in range(2))
           + tuple((f"on object (cells), hop {h + 1}",
                    ("pointing", "non-relational", h, "cells")) for h in range(2)))


def table(groups: dict) -> str:
  """The markdown table: ``mean ± std`` per column (a column no run has is
  dropped)."""
  columns = [(name, path) for name, path in COLUMNS
             if any(common.get_path(r, path) is not None
                    for rs in groups.values() for r in rs)]
  lines = ["| fusion | seeds | " + " | ".join(c for c, _ in columns) + " |",
           "|---|---:|" + "---:|" * len(columns)]
  for label, results in groups.items():
    cells = [common.mean_std([common.get_path(r, path) for r in results])
             for _, path in columns]
    lines.append(f"| {label} | {len(results)} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  common.print_table(lambda: table(common.read_results(flags.FLAGS.runs, "vqa")),
                     flags.FLAGS.output)


if __name__ == "__main__":
  # (Defined here, not at import: captioning's compare has the same flags and
  # the tests import both.)
  flags.DEFINE_list("runs", None, "label:workdir, ...", required=True)
  flags.DEFINE_string("output", None, "Markdown file (default: print only).")
  app.run(main)
