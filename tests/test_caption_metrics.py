"""The caption scores: our path through pycocoevalcap gives the known values
of BLEU and CIDEr-D, and the truth and pointing summaries count right."""

import math
import os

import numpy as np
import pytest

from experiments.captioning import evaluate


def test_bleu_and_cider_on_known_examples():
  refs = {1: ["a red circle above a blue square"], 2: ["a small green triangle"],
          3: ["two shapes"]}
  exact = evaluate.coco_scores(refs, {k: v[0] for k, v in refs.items()})
  for n in range(1, 5):
    assert exact[f"BLEU-{n}"] == pytest.approx(1.0, abs=1e-6)
  # CIDEr-D: 10 x the mean over n = 1..4 of the tf-idf cosine (1 when exact),
  # so 10 for captions with 4-grams; "two shapes" has no 3- or 4-gram: 5.
  assert exact["CIDEr-D"] == pytest.approx((10 + 10 + 5) / 3, abs=1e-6)
  # A 3-word prefix of a 7-word reference: every n-gram it has is right, so
  # BLEU-n is the brevity penalty exp(1 - 7/3) for n <= 3 (BLEU-4 has no
  # 4-gram). One image, so the scores are corpus = sentence scores.
  short = evaluate.coco_scores({1: refs[1]}, {1: "a red circle"})
  bp = math.exp(1 - 7 / 3)
  for n in range(1, 4):
    assert short[f"BLEU-{n}"] == pytest.approx(bp, rel=1e-4)
  # No 4-gram: pycocoevalcap smooths the precision to tiny / small = 1e-15 / 1e-9.
  assert short["BLEU-4"] == pytest.approx(bp * 1e-6 ** 0.25, rel=1e-4)
  # Punctuation and case are tokenized away, as for the references.
  assert evaluate.coco_scores(refs, {1: "A red circle, above a blue square.",
                                     2: "a small green triangle", 3: "two shapes"}) == exact
  # An empty caption scores zero, not an error.
  empty = evaluate.coco_scores({1: refs[1]}, {1: ""})
  assert empty["BLEU-1"] < 1e-6


def test_an_empty_caption_scores_as_pycocoevalcap_scores_it():
  """Two empty captions beside an exact one: they add no n-gram and no
  length, so every BLEU-n is the brevity penalty exp(1 - 13/7) = 0.424
  (closest references of 7, 4 and 2 words, 7 candidate words), and the
  scores are pycocoevalcap's on the empty string. A placeholder word
  ("<empty>") gave BLEU-1 0.499, BLEU-4 0.602."""
  from pycocoevalcap.bleu.bleu import Bleu  # pylint: disable=g-import-not-at-top
  from pycocoevalcap.cider.cider import Cider  # pylint: disable=g-import-not-at-top
  refs = {1: ["a red circle above a blue square"], 2: ["a small green triangle"],
          3: ["two shapes", "a big shape"]}
  ours = evaluate.coco_scores(refs, {1: "A red circle above a blue square.", 2: "", 3: ""})
  bp = math.exp(1 - (7 + 4 + 2) / 7)                     # the closest reference to 0 words: 2
  for n in range(1, 5):
    assert ours[f"BLEU-{n}"] == pytest.approx(bp, rel=1e-6)
  res = {1: ["a red circle above a blue square"], 2: [""], 3: [""]}
  bleu, _ = Bleu(4).compute_score(refs, res, verbose=0)
  cider, _ = Cider().compute_score(refs, res)
  assert [ours[f"BLEU-{n}"] for n in range(1, 5)] == bleu
  assert ours["CIDEr-D"] == cider


def test_pointing_summary_counts_matched_words_only():
  masks = np.zeros((4, 64, 64), bool)
  masks[0, :32] = True                                   # a red circle: the top half
  ex = {"shape": np.array([0, -1, -1, -1]), "colour": np.array([0, -1, -1, -1]),
        "size": np.array([0, -1, -1, -1]), "centre": np.zeros((4, 2)), "masks": masks}
  top = np.zeros((4, 64))
  top[:, :32] = 1 / 32                                   # all attention on the top half
  bottom = np.zeros((4, 64))
  bottom[:, 32:] = 1 / 32
  out = evaluate.pointing_scores([ex, ex, ex], ["a red circle", "a red circle",
                                                "a blue square"], [top, bottom, top])
  assert out["object_words"] == 3 and out["matched"] == 2
  assert out["mean_mass"] == pytest.approx(0.5) and out["over_half"] == 0.5


def test_compare_tabulates_mean_and_spread_over_seeds(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  from experiments.captioning import compare  # pylint: disable=g-import-not-at-top
  runs = []
  for label, seed, bleu in (("plain", 0, 0.5), ("plain", 1, 0.7), ("soft", 0, 0.9)):
    d = tmp_path / f"{label}{seed}"
    d.mkdir()
    split = {"BLEU-4": bleu, "CIDEr-D": 2.0, "truth": {"all": {"object_recall": 0.25}}}
    if label == "soft":
      split["pointing"] = {"over_half": 0.75}
    (d / "results.json").write_text(json.dumps({"splits": {"test": split}}))
    runs.append(f"{label}:{d}")
  text = compare.table(compare.read_runs(runs), ["test", "compositional"])
  lines = text.splitlines()
  assert len(lines) == 4                          # header, rule, plain, soft
  assert lines[2].startswith("| plain | test | 2 | 0.600 ± 0.141 | 2.000 ± 0.000 | – | – |"
                             " 0.250 ± 0.000 | – |")
  assert lines[3].startswith("| soft | test | 1 | 0.900 | 2.000 |") and "| 0.750 |" in lines[3]
  with pytest.raises(ValueError, match="label:workdir, got 'nolabel'"):
    compare.read_runs(["nolabel"])
  with pytest.raises(ValueError, match="has no results.json"):
    compare.read_runs([f"x:{tmp_path}"])


@pytest.mark.slow  # a subprocess
def test_compare_names_a_broken_or_foreign_results_file_and_exits_2(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from experiments.captioning import compare  # pylint: disable=g-import-not-at-top
  d = tmp_path / "run"
  d.mkdir()
  (d / "results.json").write_text('{"splits": {"test": ')          # killed mid-write
  with pytest.raises(ValueError, match=r"results.json is not valid JSON .* killed while"):
    compare.read_runs([f"x:{d}"])
  for foreign in ({}, {"accuracy": 0.5}):                            # {} and a VQA run's
    (d / "results.json").write_text(json.dumps(foreign))
    with pytest.raises(ValueError, match=r"is not the results of a captioning run \(no 'splits'\)"):
      compare.read_runs([f"x:{d}"])
  proc = subprocess.run([sys.executable, "-m", "experiments.vqa.compare", f"--runs=x:{d}/nope"],
                        capture_output=True, text=True, timeout=120,
                        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(
      "error: --runs names "), proc.stderr[-1000:]
