"""Parts of the gradient-flow benchmark: per-task cells, early stopping once
every run has solved its task, and the published findings checked against
a run's numbers."""

import copy

import pytest

from benchmarks import gradient_flow as gf
from rnn_zoo.data import synthetic


def tiny_preset(**over):
  p = dict(gf.PRESETS["quick"], hidden=4, batch=4, log_every=2, eval_every=2,
           eval_batches=1, steps_per_call=2, diagnose_every=0, clip_ablation=(),
           train=(dict(task="adding", T=6, steps=6, lr=1e-2),
                  dict(task="adding", T=8, steps=6, lr=1e-2, cells=("lstm_fb1",))))
  p.update(over)
  return p


def test_train_jobs_per_task_cells():
  jobs = gf.train_jobs(tiny_preset(clip_ablation=("rnn_tanh",)), ["rnn_tanh", "lstm_fb1"], 2)
  assert [(j["T"], j["cell"], j["seed"], j["clip_norm"]) for j in jobs] == [
      (6, "rnn_tanh", 0, 1.0), (6, "rnn_tanh", 0, 0.0), (6, "rnn_tanh", 1, 1.0),
      (6, "lstm_fb1", 0, 1.0), (6, "lstm_fb1", 1, 1.0),
      (8, "lstm_fb1", 0, 1.0), (8, "lstm_fb1", 1, 1.0)]
  assert all("cells" not in j for j in jobs)


@pytest.mark.slow
@pytest.mark.parametrize("stop", [False, True])
def test_stop_when_solved(tmp_path, monkeypatch, stop):
  """With stop_when_solved, a group stops at the first evaluation where
  every run has solved (here: is_solved forced true)."""
  monkeypatch.setattr(synthetic, "is_solved", lambda task, T, loss: True)
  preset = tiny_preset(stop_when_solved=stop)
  jobs = gf.train_jobs(preset, ["lstm_fb1"], 2)
  rows = gf.train_all(jobs, preset, tmp_path, 0.0)
  for r in rows:
    assert r["steps"] == 6
    assert r["steps_trained"] == (2 if stop else 6)
    assert len(r["grad_trace"]) == r["steps_trained"]
    assert r["solved_step"] == 2
  agg = gf.aggregate(rows)
  assert {a["steps_trained"] for a in agg} == {2 if stop else 6}


def _row(task, T, cell, final, solved=None, seed=0, steps=3000):
  base = synthetic.baseline_loss(task, T)
  return dict(task=task, T=T, cell=cell, seed=seed, clip_norm=1.0, steps=steps,
              steps_trained=steps, lr=1e-3, hidden=128, seconds=1.0,
              final_over_baseline=final, final_loss=final * base,
              beats_step=100 if final < 0.5 else None, solved_step=solved)


def fake_results():
  rows = []
  for seed in range(3):
    rows += [_row("adding", 100, "rnn_tanh", 1.0, seed=seed),
             _row("adding", 100, "irnn", 0.3, seed=seed),
             _row("adding", 100, "lstm_fb1", 0.01, solved=500, seed=seed),
             _row("adding", 750, "lstm_fb1", 1.0, seed=seed),
             _row("adding", 750, "lstm_chrono", 0.01, solved=400 + 100 * seed, seed=seed),
             _row("copy", 100, "rnn_tanh", 1.0, seed=seed),
             _row("copy", 100, "lstm_fb1", 0.99, seed=seed),
             _row("copy", 200, "lstm_fb1", 1.0, seed=seed)]
  n = [10.0 ** (-30 * (1000 - t) / 1000) for t in range(1000)]
  init = [dict(cell="rnn_tanh_orth", T=1000, decay_orders=14.1, grad_norms=[n]),
          dict(cell="lstm_fb1", T=1000, decay_orders=30.0, grad_norms=[n])]
  return {"train": rows, "init": init, "preset_values": {"batch": 32}}


def test_compare_published_computes_verdicts():
  rows = {c["claim"]: c for c in gf.compare_published(fake_results())}
  irnn = next(c for k, c in rows.items() if "IRNN never" in k)
  assert irnn["verdict"].startswith("disagrees") and "T=100" in irnn["verdict"]
  tanh = next(c for k, c in rows.items() if "tanh RNN never" in k)
  assert tanh["verdict"] == "agrees"
  indrnn = next(c for k, c in rows.items() if "every model but" in k)
  assert indrnn["verdict"] == "disagrees for IRNN" and "3000 steps × batch 32" in indrnn["why"]
  chrono = next(c for k, c in rows.items() if "chrono" in k)
  # chrono's median 500 against a forget-bias-1 budget of 3000: at least 6x.
  assert "at least 6.0× faster" in chrono["ours"] and chrono["verdict"].startswith("agrees")
  copy_lstm = next(c for k, c in rows.items() if "LSTM beats the baseline only" in k)
  assert copy_lstm["verdict"] == "disagrees"  # 0.99x at T=100 is not beating it
  assert next(c for k, c in rows.items() if "sits on" in k)["verdict"] == "agrees"
  assert next(c for k, c in rows.items() if "T=1000: LSTM and IRNN" in k)["verdict"] == "not measured"
  orth = next(c for k, c in rows.items() if "14 orders" in k)
  assert orth["verdict"] == "agrees"
  lstm_init = next(c for k, c in rows.items() if "1e-24" in k)
  assert lstm_init["verdict"] == "disagrees"  # 30 * 550 / 1000 = 16.5 orders at t=450
  # A better LSTM turns the verdicts around: computed, not written down.
  better = copy.deepcopy(fake_results())
  for r in better["train"]:
    if (r["task"], r["T"], r["cell"]) == ("copy", 100, "lstm_fb1"):
      r["final_over_baseline"] = 0.8
  rows = {c["claim"]: c for c in gf.compare_published(better)}
  assert next(c for k, c in rows.items() if "LSTM beats the baseline only" in k)["verdict"] == "agrees"


def test_compare_published_pixel_mnist():
  """Pixel MNIST verdicts from the measured test accuracy; a pixels-only run
  has no adding rows, so no adding claim is listed as 'not measured'."""
  import math  # pylint: disable=g-import-not-at-top
  rows = []
  for seed in range(2):
    for task, cell, acc in (("mnist", "lstm_fb1", 0.975), ("mnist", "irnn", 0.5),
                            ("permuted_mnist", "lstm_fb1", 0.80)):
      r = dict(task=task, T=784, cell=cell, seed=seed, clip_norm=1.0, steps=2000,
               steps_trained=2000, lr=1e-3, hidden=128, seconds=1.0,
               final_over_baseline=0.1, final_loss=0.1 * math.log(10),
               beats_step=100, solved_step=None, final_metrics={"accuracy": acc})
      rows.append(r)
  got = {c["claim"]: c for c in gf.compare_published(
      {"train": rows, "init": [], "preset_values": {"batch": 32}})}
  assert got["mnist: LSTM (forget bias 1) test error 1.8%"]["verdict"] == "agrees (within 2 points)"
  irnn = got["mnist: IRNN test error 5.0%"]
  assert irnn["verdict"] == "disagrees" and irnn["ours"].startswith("50.0%")
  assert "2000 steps × batch 32" in irnn["why"]
  assert got["permuted mnist: LSTM (forget bias 1) test error 12.0%"]["verdict"] == "disagrees"
  assert not any("adding" in k for k in got)


def test_dead_runs_are_told_from_vanishing_ones():
  """A run whose gradient reaches no step before the last is dead at its
  rate (the IRNN at Adam 3e-3), not "at chance"; one whose gradient decays
  step by step is not."""
  from benchmarks import gradient_flow as gf  # pylint: disable=g-import-not-at-top
  dead = {"grad_norms_during_training": [[0, [1e-3, 2e-3, 3e-2]], [500, [0.0, 0.0, 3e-2]]]}
  vanishing = {"grad_norms_during_training": [[500, [1e-30, 1e-12, 3e-2]]]}
  revived = {"grad_norms_during_training": [[500, [0.0, 0.0, 3e-2]], [1000, [0.0, 1e-9, 3e-2]]]}
  assert gf.dead_run(dead) and not gf.dead_run(vanishing) and not gf.dead_run(revived)
  assert not gf.dead_run({}) and not gf.dead_run({"grad_norms_during_training": []})
  row = lambda r, seed: dict(r, task="digits", T=3, cell="irnn", clip_norm=1.0, steps=10,
                             lr=0.003, hidden=4, final_over_baseline=1.0, beats_step=None,
                             solved_step=None, seconds=1.0, seed=seed,
                             final_metrics={"accuracy": 0.07})
  (agg,) = gf.aggregate([row(dead, 0), row(dead, 1)])
  assert agg["dead"] == 2
  text = " ".join(gf._findings_who_learns([agg]))
  assert "IRNN 0.070 ± 0.000 (dead)" in text
  assert "Dead at its learning rate in every seed" in text and "IRNN (lr 0.003)" in text
  assert "At or above the baseline in every seed" not in text
  (mixed,) = gf.aggregate([row(dead, 0), row(vanishing, 1)])
  assert mixed["dead"] == 1
  assert "Dead at its learning rate" not in " ".join(gf._findings_who_learns([mixed]))


def test_outcomes_verdicts_and_the_interval_of_the_mean():
  """A verdict is the outcome every seed shares; seeds on both sides of a
  threshold make it "mixed", listed with their values."""
  import math  # pylint: disable=g-import-not-at-top
  row = lambda final, seed, cell="lstm_fb1": _row("adding", 200, cell, final, seed=seed)
  assert [gf.run_outcome(row(f, 0)) for f in (0.01, 0.3, 0.7, 0.95, float("nan"))] == [
      "solved", "beats", "partly", "at baseline", "diverged"]
  assert set(gf.OUTCOMES) == {"solved", "beats", "partly", "at baseline", "dead", "diverged"}
  # Thresholds: 5% is solved's upper end (exclusive), 90% at-baseline's lower.
  assert gf.run_outcome(row(0.05, 0)) == "beats" and gf.run_outcome(row(0.9, 0)) == "at baseline"
  assert gf.verdict(["beats", "beats"]) == "beats"
  assert gf.verdict(["partly", "at baseline"]) == "mixed" and gf.verdict([]) == "mixed"
  lo, hi = gf.mean_ci95([1.0, 2.0, 3.0])  # mean 2, std 1, t(0.975, 2) = 4.303
  assert math.isclose(lo, 2 - 4.302653 / math.sqrt(3), rel_tol=1e-5)
  assert math.isclose(hi, 2 + 4.302653 / math.sqrt(3), rel_tol=1e-5)
  assert gf.mean_ci95([0.5]) == (0.5, 0.5)
  # Forget bias 1 at adding T=200 as the paper preset measured it: a mean of
  # 0.96 would read "at the baseline"; its seeds disagree.
  agg = {a["cell"]: a for a in gf.aggregate(
      [row(f, s) for s, f in enumerate((1.17, 0.80, 0.90))]
      + [row(0.002, s, "lstm_chrono") for s in range(3)])}
  fb1 = agg["lstm_fb1"]
  assert fb1["verdict"] == "mixed"
  assert fb1["per_seed"] == [(0, 1.17, "at baseline"), (1, 0.80, "partly"), (2, 0.90, "at baseline")]
  assert agg["lstm_chrono"]["verdict"] == "solved"
  text = " ".join(gf._findings_who_learns(list(agg.values())))
  assert ("Mixed, no verdict (the seeds disagree; final loss over the baseline per "
          "seed): LSTM (forget bias 1) (1.170 at baseline, 0.800 partly, 0.900 at baseline)") in text
  assert "At or above the baseline in every seed" not in text
  assert "a cap: every run stops there, solved or not" in text
  assert "verdict: mixed (1.170 at baseline" in " ".join(gf._findings_forget_bias(list(agg.values())))


def test_committed_reports_are_what_their_results_give():
  """Every committed gradient-flow report is what this version writes from
  its committed results.json.gz (python -m benchmarks.gradient_flow
  --report_from=<folder>): no finding or verdict written by hand."""
  import pathlib  # pylint: disable=g-import-not-at-top
  folders = sorted((pathlib.Path(__file__).resolve().parents[2] / "docs" / "reports")
                   .glob("gradient_flow*"))
  assert len(folders) >= 5
  for folder in folders:
    committed = (folder / "report.md").read_text()
    assert gf.rerender(folder) == committed, (
        f"{folder.name}: run python -m benchmarks.gradient_flow --report_from={folder}")


@pytest.mark.slow
def test_report_from_rewrites_a_report_from_its_numbers(tmp_path):
  """The flag through the binary: a folder with results and a report whose
  findings are stale gets them anew; its note and figures stay."""
  import gzip, json, shutil, subprocess, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  import pathlib  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(__file__).resolve().parents[2]
  src = root / "docs" / "reports" / "gradient_flow_linear_block"
  shutil.copy(src / "results.json.gz", tmp_path / "results.json.gz")
  text = (src / "report.md").read_text()
  stale = text.replace("## Findings\n", "> A note written by hand.\n\n## Findings\n\nstale words\n", 1)
  (tmp_path / "report.md").write_text(stale)
  run = lambda folder: subprocess.run(
      [sys.executable, "-m", "benchmarks.gradient_flow", f"--report_from={folder}"],
      cwd=root, capture_output=True, text=True, timeout=300)
  proc = run(tmp_path)
  assert proc.returncode == 0, proc.stderr[-2000:]
  new = (tmp_path / "report.md").read_text()
  assert "stale words" not in new and "> A note written by hand." in new
  assert new.replace("> A note written by hand.\n\n", "", 1) == text
  empty = tmp_path / "empty"
  empty.mkdir()
  proc = run(empty)
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines()[-1] == (
      f"error: --report_from={str(empty)!r} holds no results.json or results.json.gz")
  json.loads(gzip.decompress((tmp_path / "results.json.gz").read_bytes()))  # left as it was


def test_the_rate_is_chosen_by_validation_never_by_the_held_out_data():
  """Each cell's rate: the lowest mean validation loss over its seeds (a
  diverged seed makes its rate's mean infinite); the findings and the
  published comparison read the chosen rate's rows."""
  rows = []
  for seed in range(2):
    for lr, valid, test in ((1e-4, 0.60, 0.10), (1e-3, 0.20, 0.40),
                            (3e-3, float("nan") if seed else 0.01, 0.01)):
      r = _row("adding", 100, "irnn", test, seed=seed)
      rows.append(dict(r, lr=lr, final_valid_over_baseline=valid))
  every = gf.aggregate(rows)
  (best,) = gf.choose_rates(every)
  assert best["lr"] == 1e-3 and best["valid_mean"] == pytest.approx(0.2)
  assert [a["chosen"] for a in sorted(every, key=lambda a: a["lr"])] == [False, True, False]
  assert next(a for a in every if a["lr"] == 3e-3)["valid_mean"] == float("inf")
  text = " ".join(gf._findings_sweep(every))
  assert "Learning rates chosen on validation data (adding, T=100)" in text
  assert "IRNN lr 0.001 (validation 0.200 of the baseline; test verdict partly" not in text
  assert "IRNN lr 0.001 (validation 0.200 of the baseline; test verdict beats" in text
  assert "rate swept" not in text  # 1e-3 lies inside the sweep
  assert "lr 0.0001 beats; lr 0.003 solved; its paper: RMSprop 1e-3, batch 20" in text
  edge = [dict(r, final_valid_over_baseline=0.05) if r["lr"] == 3e-3 else r for r in rows]
  every = gf.aggregate(edge)
  assert gf.choose_rates(every)[0]["lr"] == 3e-3
  assert ("IRNN lr 0.003, the largest rate swept: a larger one may do better"
          in " ".join(gf._findings_sweep(every)))
  no_valid = [dict(r, final_valid_over_baseline=None) for r in rows]
  with pytest.raises(ValueError, match="have no validation loss to choose by"):
    gf.choose_rates(gf.aggregate(no_valid))
  # One rate: nothing to choose, no mark.
  (only,) = gf.choose_rates(gf.aggregate([r for r in no_valid if r["lr"] == 1e-4]))
  assert "chosen" not in only


PRESET_KEYS = {"cells", "init_lengths", "seeds", "train", "hidden", "batch", "clip",
               "log_every", "eval_every", "eval_batches", "steps_per_call", "diagnose_every",
               "jacobian_positions", "jacobian_iters", "jacobian_examples", "clip_ablation",
               "clip_ablation_seeds", "stop_when_solved", "sensitivity_positions",
               "sensitivity_examples", "valid_fraction"}
RUN_KEYS = {"task", "T", "steps", "lr", "lrs", "hidden", "cells", "seeds", "data_dir"}


@pytest.mark.parametrize("name", sorted(gf.PRESETS))
def test_every_preset_trains_what_it_names(name):
  """Each preset's fields are ones the script reads; each task entry has one
  rate (lr) or a sweep (lrs), and every cell it names is one of the preset's
  cells, so that it trains (a cell outside them would be skipped silently)."""
  preset = gf.PRESETS[name]
  assert set(preset) <= PRESET_KEYS, set(preset) - PRESET_KEYS
  cells = list(preset.get("cells", gf.CLASSIC_CELLS))
  assert set(cells) <= set(gf.CELLS)
  jobs = gf.train_jobs(preset, cells, preset["seeds"])
  for run in preset["train"]:
    assert set(run) <= RUN_KEYS, set(run) - RUN_KEYS
    assert ("lr" in run) != ("lrs" in run), run
    assert run["task"] in gf.PIXEL_TASKS + ("adding", "copy"), run["task"]
    for cell in run.get("cells", cells):
      assert cell in cells, f"{name}: {run['task']} T={run['T']} names {cell}, not a preset cell"
      assert any(j["cell"] == cell and j["task"] == run["task"] and j["T"] == run["T"]
                 for j in jobs)
