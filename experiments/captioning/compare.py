r"""Tabulates finished captioning runs: mean ± standard deviation over seeds,
one row per (label, split).

  python -m experiments.captioning.compare \
      --runs=plain:/tmp/cap/plain_0,plain:/tmp/cap/plain_1,soft:/tmp/cap/soft_0 \
      --splits=test,compositional --output=/tmp/cap/compare.md

Each run is ``label:workdir`` (the label groups seeds: a mode, a beam width
...); the numbers are read from each workdir's ``results.json`` (what the
training binary's evaluation wrote), so the table can be rebuilt at any time.
"""

from __future__ import annotations

from absl import app
from absl import flags

from experiments import common

COLUMNS = (("BLEU-4", ("BLEU-4",)), ("CIDEr-D", ("CIDEr-D",)),
           ("true (1-2 obj)", ("truth", "1-2 objects", "true")),
           ("true (3-4 obj)", ("truth", "3-4 objects", "true")),
           ("object recall", ("truth", "all", "object_recall")),
           ("pointing > half (pixels)", ("pointing", "over_half")),
           ("pointing > half (cells)", ("pointing", "over_half_cells")),
           ("mean mass (pixels)", ("pointing", "mean_mass")))


def read_runs(runs: list[str]) -> dict:
  """``{label: [results.json dicts]}`` in the order given."""
  return common.read_results(runs, "captioning")


def table(groups: dict, splits: list[str]) -> str:
  """The markdown table: ``mean ± std (n)`` per column."""
  lines = ["| decoder | split | seeds | " + " | ".join(c for c, _ in COLUMNS) + " |",
           "|---|---|---:|" + "---:|" * len(COLUMNS)]
  for label, results in groups.items():
    for split in splits:
      rows = [r["splits"][split] for r in results if split in r["splits"]]
      if not rows:
        continue
      cells = [common.mean_std([common.get_path(r, path) for r in rows])
               for _, path in COLUMNS]
      lines.append(f"| {label} | {split} | {len(rows)} | " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  f = flags.FLAGS
  common.print_table(lambda: table(read_runs(f.runs), f.splits), f.output)


if __name__ == "__main__":
  # (Defined here, not at import: experiments.captioning.sample and VQA's
  # compare define --output too, and the tests import them in one process.)
  flags.DEFINE_list("runs", None, "label:workdir, ...", required=True)
  flags.DEFINE_list("splits", ["test", "compositional"], "Splits tabulated.")
  flags.DEFINE_string("output", None, "Markdown file (default: print only).")
  app.run(main)
