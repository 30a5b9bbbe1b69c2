"""The benchmark scripts run end to end on tiny settings and write their reports."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def run(*args, timeout=600, check=True):
  env = dict(os.environ)
  env["PYTHONPATH"] = str(ROOT)
  env.pop("XLA_FLAGS", None)
  proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)
  if check:
    assert proc.returncode == 0, proc.stderr[-4000:]
  return proc


def test_gradient_flow_tiny(tmp_path):
  args = (f"--out={tmp_path}", "--cells=rnn_tanh,lstm_fb1", "--lengths=12",
          "--steps=20", "--seeds=2")
  proc = run("benchmarks.gradient_flow", *args, "--workers=2")
  assert "[1/" in proc.stdout and "[group 1/4" in proc.stdout  # progress
  assert "8 items over 2 worker processes (1 device(s) each)" in proc.stdout
  results = json.loads((tmp_path / "results.json").read_text())
  assert {d["cell"] for d in results["init"]} == {"rnn_tanh", "lstm_fb1"}
  init = results["init"][0]
  assert init["precision"] == "float64"
  assert len(init["grad_norms"][0]) == 12 and all(v > 0 for v in init["grad_norms"][0])
  train = results["train"]
  # 2 cells x 2 seeds x (adding, copy) + the clipping ablation (2 cells,
  # the quick preset's clip_ablation_seeds=1).
  assert len(train) == 10
  assert {(r["cell"], r["seed"]) for r in train} == {
      (c, s) for c in ("rnn_tanh", "lstm_fb1") for s in (0, 1)}
  assert [(r["cell"], r["seed"]) for r in train if r["clip_norm"] == 0] == [
      ("rnn_tanh", 0), ("lstm_fb1", 0)]
  for r in train:
    assert r["steps"] == 20 and len(r["grad_trace"]) == 20
    assert r["final_over_baseline"] == pytest.approx(r["final_loss"] / r["baseline"])
    assert [s for s, _ in r["horizon"]] == [0]
  # The seeds are different runs.
  a = [r["final_loss"] for r in train if r["cell"] == "rnn_tanh" and r["task"] == "copy"]
  assert a[0] != a[1]
  report = (tmp_path / "report.md").read_text()
  assert "## Findings" in report and "Published results beside ours" in report
  assert "Sensitivity to the recurrent parameters (Zucchet" in report
  assert [d["positions"] for d in results["sensitivity"]] == [[9, 11]] * 2
  assert (tmp_path / "parameter_sensitivity_at_init.png").stat().st_size > 1000
  assert "(mean ± std)" in report and "float64" in report
  for name in ("grad_norm_at_init_T12.png", "jacobians_at_init_T12.png",
               "loss_adding_T12.png", "loss_copy_T12.png", "horizon_adding_T12.png",
               "grad_norm_trace_clipping.png"):
    assert (tmp_path / name).stat().st_size > 1000, name
    assert f"]({name})" in report
  # Run again into the same folder: every group is read back, not retrained.
  again = run("benchmarks.gradient_flow", *args)
  # 4 groups and the 2 cells' diagnostics at initialization.
  assert again.stdout.count("done before, read from") == 4 + 2
  assert "at init (float64)" not in again.stdout and "parameter sensitivity" not in again.stdout
  assert json.loads((tmp_path / "results.json").read_text())["train"] == train
  # The same numbers from one process (the workers have 1 device each): the
  # workers change where a result is computed, not what it is.
  one = tmp_path / "one_process"
  run("benchmarks.gradient_flow", *args[1:], f"--out={one}", "--cells=lstm_fb1",
      "--workers=1", "--devices=1")
  single = json.loads((one / "results.json").read_text())
  assert single["workers"] == 1 and results["workers"] == 2
  assert single["init"][0]["grad_norms"][0] == pytest.approx(
      [d for d in results["init"] if d["cell"] == "lstm_fb1"][0]["grad_norms"][0], rel=1e-9)
  ours = [r for r in train if r["cell"] == "lstm_fb1"]
  assert [(r["task"], r["seed"], r["clip_norm"]) for r in single["train"]] == [
      (r["task"], r["seed"], r["clip_norm"]) for r in ours]
  for a, b in zip(single["train"], ours):
    assert a["final_loss"] == pytest.approx(b["final_loss"], rel=1e-6)
    assert a["grad_trace"] == pytest.approx(b["grad_trace"], rel=1e-6)


def test_gradient_flow_linear_preset_tiny(tmp_path):
  """The linear preset's LRU through the init diagnostics (no W_hh: its
  sensitivity is to lambda's params) and the grid (its complex scan under
  vmap and jit)."""
  run("benchmarks.gradient_flow", "--preset=linear", f"--out={tmp_path}", "--cells=lru",
      "--lengths=12", "--steps=10", "--seeds=1", "--workers=1")
  results = json.loads((tmp_path / "results.json").read_text())
  assert [(r["cell"], r["task"]) for r in results["train"]] == [("lru", "adding"), ("lru", "copy")]
  assert all(r["final_loss"] > 0 and r["nonfinite_steps"] == 0 for r in results["train"])
  init = results["init"][0]
  assert init["weight_stats"] == {} and all(v > 0 for v in init["grad_norms"][0])
  assert results["sensitivity"][0]["recurrent"][0] > 0
  assert "| adding | 12 | 10 | 0.003 | 32 | LRU |" in (tmp_path / "report.md").read_text()


def test_grid_benchmark_tiny(tmp_path):
  run("benchmarks.grid", f"--out={tmp_path}", "--runs=2", "--steps=4",
      "--seq_len=6", "--hidden=4", "--batch=4")
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["runs"] == 2
  # The speedup is the ratio of the two times the report gives.
  (t_single, t_grid) = results["seconds"].values()
  assert t_single > 0 and t_grid > 0
  assert results["speedup"] == pytest.approx(t_single / t_grid)
  assert results["model_steps_per_s"] == pytest.approx(
      {k: 2 * 4 / v for k, v in results["seconds"].items()})
  assert results["max_relative_final_loss_gap"] < 1e-3
  assert "| grid (train_group, " in (tmp_path / "report.md").read_text()


def test_gradient_flow_bad_cells(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  proc = subprocess.run([sys.executable, "-m", "benchmarks.gradient_flow",
                         f"--out={tmp_path}", "--cells=lstm,transformer"],
                        cwd=ROOT, env=env, capture_output=True, text=True)
  assert proc.returncode != 0
  assert "--cells must name cells from" in proc.stderr and "'transformer'" in proc.stderr
  for bad in ("fast", "0", "1e-3,-1"):
    proc = run("benchmarks.gradient_flow", f"--out={tmp_path}", f"--lrs={bad}", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "error: --lrs must be positive numbers, got"), proc.stderr[-500:]


def test_throughput_tiny(tmp_path):
  run("benchmarks.throughput", f"--out={tmp_path}", "--shapes=2x5x3x4,2x5x3x4x2",
      "--rounds=1", "--no_torch")
  results = json.loads((tmp_path / "results.json").read_text())
  assert [(r["cell"], r["mode"], r["shape"][-1]) for r in results["rows"]] == [
      (c, m, l) for c in ("lstm", "gru") for l in (1, 2) for m in ("train", "infer")]
  best_rate = max(results["gemm_gflops"], results["gemm_gflops_after"]) * 1e9
  for row in results["rows"]:
    one_layer = row["shape"][-1] == 1
    assert set(row["impls"]) == ({"rnn_zoo", "rnn_zoo[scan]", "rnn_zoo[autodiff]", "flax"}
                                 if one_layer else {"rnn_zoo", "rnn_zoo[scan]", "flax"})
    assert row["floor_ms"] == pytest.approx(row["flops"] / best_rate * 1e3)
  report = (tmp_path / "report.md").read_text()
  assert "| lstm | infer | 2×5×3×4 | flax |" in report
  assert "| gru | infer | 2×5×3×4 | rnn_zoo[scan] |" in report
  assert "| gru | train | 2×5×3×4 ×2 layers | rnn_zoo |" in report


def test_native_ab_times_two_builds_and_compares_their_bits(tmp_path):
  # Both versions from the working tree: every kernel runs, and two loaded
  # copies of one build give the same bits.
  proc = run("benchmarks.native_ab", f"--out={tmp_path}", "--base=", "--new=",
             "--shapes=3x5x20x24,7x3x5x17", "--rounds=2", "--threads=2")
  results = json.loads((tmp_path / "results.json").read_text())
  assert [(r["kernel"], r["shape"]) for r in results["rows"]] == [
      (k, s) for k in ("forward", "forward_train", "backward", "weight_grads")
      for s in ([3, 5, 20, 24], [7, 3, 5, 17])]
  for r in results["rows"]:
    assert r["max_abs_diff"] == 0.0 and r["base_ms"] > 0 and r["new_ms"] > 0
    assert len(r["base_all_ms"]) == len(r["new_all_ms"]) == 2
  assert "| weight_grads | 7×3×5×17 |" in (tmp_path / "report.md").read_text()
  assert "new/base" in proc.stdout
  bad = run("benchmarks.native_ab", f"--out={tmp_path}", "--base=no-such-revision",
            check=False)
  assert bad.returncode != 0 and "no rnn_zoo/native/rnn.cc at git revision" in bad.stderr
  bad = run("benchmarks.native_ab", f"--out={tmp_path}", "--kernels=gemm", check=False)
  assert bad.returncode != 0 and "--kernels must name kernels from" in bad.stderr


def test_throughput_bfloat16_and_the_device_flag(tmp_path):
  run("benchmarks.throughput", f"--out={tmp_path}", "--shapes=2x5x3x4",
      "--rounds=1", "--dtype=bfloat16", "--cells=lstm", "--modes=train",
      "--impls=rnn_zoo,rnn_zoo[scan],flax,torch")
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["dtype"] == "bfloat16" and results["device"] == "cpu"
  (row,) = results["rows"]
  # In bfloat16 the default is the scan runner: no [scan] row beside it.
  have_torch = importlib.util.find_spec("torch") is not None
  # oneDNN runs a bfloat16 LSTM only on CPUs with AVX-512: elsewhere the row
  # says why torch is missing.
  torch_ran = have_torch and not row["torch_unavailable"]
  assert set(row["impls"]) == {"rnn_zoo", "flax"} | ({"torch"} if torch_ran else set())
  report = (tmp_path / "report.md").read_text()
  assert "compute dtype bfloat16" in report
  if torch_ran:
    assert row["torch_output_dtype"] == "bfloat16"  # torch.autocast's LSTM
    assert "PyTorch's output dtype: lstm bfloat16" in report
  elif have_torch:
    assert row["torch_unavailable"].startswith("torch bfloat16 lstm on cpu: ")
    assert (f"No PyTorch row where it cannot run here: {row['torch_unavailable']}."
            in report)
    assert "avx512" not in open("/proc/cpuinfo").read()  # only where oneDNN lacks it
  if jax.default_backend() != "gpu":
    bad = run("benchmarks.throughput", f"--out={tmp_path}", "--device=gpu", check=False)
    assert bad.returncode != 0
    assert "--device=gpu but JAX sees no GPU here (its backend is cpu)" in bad.stderr


def test_throughput_linear_cells_beside_the_lstm(tmp_path):
  run("benchmarks.throughput", f"--out={tmp_path}", "--shapes=2x6x3x4,2x6x3x4x2",
      "--cells=lstm,mingru,lru", "--modes=train", "--rounds=1", "--no_torch",
      "--impls=rnn_zoo,rnn_zoo[sequential]")
  results = json.loads((tmp_path / "results.json").read_text())
  rows = {(r["cell"], r["shape"][-1]): r for r in results["rows"]}
  assert set(rows) == {(c, l) for c in ("lstm", "mingru", "lru") for l in (1, 2)}
  assert set(rows["lstm", 1]["impls"]) == {"rnn_zoo"}
  assert set(rows["mingru", 2]["impls"]) == {"rnn_zoo", "rnn_zoo[sequential]"}
  # No recurrent matmul: the floor counts the input projection alone
  # (minGRU 2 gate blocks, the LRU's one block of real and imaginary parts).
  assert rows["mingru", 1]["flops"] == 3 * 2 * 2 * 6 * 3 * 2 * 4
  assert rows["lru", 1]["flops"] == 3 * 2 * 2 * 6 * 3 * 1 * 4
  assert rows["lstm", 1]["flops"] == 3 * 2 * 2 * 6 * (3 + 4) * 4 * 4
  report = (tmp_path / "report.md").read_text()
  assert "## The linear recurrences beside the zoo's LSTM" in report
  assert "| lru | train | 2×6×3×4 ×2 layers |" in report
  bad = run("benchmarks.throughput", f"--out={tmp_path}", "--cells=lstm,s4",
            check=False)
  assert bad.returncode != 0 and "--cells must name" in bad.stderr and "'s4'" in bad.stderr


def test_data_parallel_tiny(tmp_path):
  run("benchmarks.data_parallel", f"--out={tmp_path}", "--devices=1,2",
      "--cells=mingru", "--seq_len=6", "--hidden=4", "--steps=2", "--rounds=1",
      "--batch_per_device=2", "--global_batch=4")
  results = json.loads((tmp_path / "results.json").read_text())
  rows = {(r["mode"], r["devices"]): r for r in results["rows"]}
  assert set(rows) == {(m, n) for m in ("weak", "strong") for n in (1, 2)}
  assert rows["weak", 2]["batch"] == 4 and rows["strong", 2]["batch"] == 4
  assert rows["weak", 1]["batch"] == 2
  for r in rows.values():
    assert r["step_s"] > 0 and r["efficiency"] == pytest.approx(r["speedup"] / r["devices"])
    assert r["speedup"] == pytest.approx(
        r["examples_per_s"] / rows[r["mode"], 1]["examples_per_s"])
  assert rows["weak", 1]["speedup"] == 1.0
  assert "| mingru | strong | 2 | 4 |" in (tmp_path / "report.md").read_text()
  assert (tmp_path / "data_parallel.png").stat().st_size > 0
  bad = run("benchmarks.data_parallel", f"--out={tmp_path}", "--devices=1,3",
            "--global_batch=4", check=False)
  assert bad.returncode != 0
  assert "--global_batch=4 does not divide by --devices [3]" in bad.stderr


def test_sampling_tiny(tmp_path):
  proc = run("benchmarks.sampling", f"--out={tmp_path}", "--length=20",
             "--batches=1,2", "--hidden=8", "--rounds=1")
  results = json.loads((tmp_path / "results.json").read_text())
  assert [r["batch"] for r in results["rows"]] == [1, 2]
  assert all(r["identical_samples"] for r in results["rows"])
  assert "| 2 |" in (tmp_path / "report.md").read_text()
  assert "speedup" not in proc.stderr
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
    for r in results["rows"]:
      assert r["torch_cells_ms"] > 0 and r["scan_ms"] > 0
      for how in ("cells", "lstm"):
        assert r[f"torch_{how}_vs_scan"] == pytest.approx(r[f"torch_{how}_ms"] / r["scan_ms"])
  except ImportError:
    assert "torch_lstm_ms" not in results["rows"][0]


def test_char_rnn_throughput_tiny(tmp_path):
  run("benchmarks.char_rnn", f"--out={tmp_path}", "--shapes=4x10x8", "--rounds=1",
      "--steps=2")
  results = json.loads((tmp_path / "results.json").read_text())
  impls = [r["impl"] for r in results["rows"]]
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
    assert impls == ["rnn_zoo", "torch"]
    zoo, anchor = results["rows"]
    assert anchor["x_anchor"] == pytest.approx(anchor["ms_per_step"] / zoo["ms_per_step"])
  except ImportError:
    assert impls == ["rnn_zoo"]
  for r in results["rows"]:
    assert r["vocab"] > 50
    assert r["chars_per_s"] == pytest.approx(4 * 10 / (r["ms_per_step"] / 1e3))
  assert "| 4×10×8 | " in (tmp_path / "report.md").read_text()


def test_char_rnn_throughput_other_cells(tmp_path):
  run("benchmarks.char_rnn", f"--out={tmp_path}", "--shapes=4x10x8", "--rounds=1",
      "--steps=2", "--cells=lstm,mingru", "--no_torch")
  rows = {r["impl"]: r for r in json.loads((tmp_path / "results.json").read_text())["rows"]}
  assert set(rows) == {"rnn_zoo", "rnn_zoo[mingru]"}
  assert rows["rnn_zoo[mingru]"]["x_zoo_lstm"] == pytest.approx(
      rows["rnn_zoo"]["ms_per_step"] / rows["rnn_zoo[mingru]"]["ms_per_step"])
  assert "| 4×10×8 | " in (tmp_path / "report.md").read_text()
  bad = run("benchmarks.char_rnn", f"--out={tmp_path}", "--cells=lstm,s4", check=False)
  assert bad.returncode != 0 and "--cells must name cells from" in bad.stderr


def test_decoding_tiny(tmp_path):
  run("benchmarks.decoding", f"--out={tmp_path}", "--batch=3", "--beams=1,2",
      "--vocab=12", "--hidden=8", "--embed=4", "--max_length=5", "--rounds=1")
  results = json.loads((tmp_path / "results.json").read_text())
  assert [r["beam_size"] for r in results["rows"]] == [1, 2]
  assert all(r["identical_to_loop"] for r in results["rows"])
  assert results["rows"][0]["width1_equals_greedy"] is True
  assert "| 2 |" in (tmp_path / "report.md").read_text()


def test_vqa_speed_tiny(tmp_path):
  run("benchmarks.vqa", f"--out={tmp_path}", "--questions=20",
      "--fusions=concat,relation_pairs", "--rounds=1")
  results = json.loads((tmp_path / "results.json").read_text())
  rows = {(r["fusion"], r["layout"], r["mode"]): r for r in results["rows"]}
  assert len(rows) == 8 and results["anchor"] == "concat, single questions"
  assert rows[("concat", "questions", "train")]["speedup_vs_anchor"] == 1.0
  assert all(r["ms"] > 0 for r in rows.values())
  assert "| relation_pairs |" in (tmp_path / "report.md").read_text()
  bad = run("benchmarks.vqa", f"--out={tmp_path}", "--fusions=relation,pairs", check=False)
  assert bad.returncode != 0 and bad.stderr.strip().splitlines()[-1] == (
      "error: --fusions: unknown fusion 'pairs', use some of ['concat', 'product', "
      "'attention', 'relation', 'relation_pairs']")


def test_scaling_tiny(tmp_path):
  run("benchmarks.scaling", f"--out={tmp_path}", "--lengths=8,32", "--batch=2",
      "--input=3", "--hidden=4", "--rounds=1")
  results = json.loads((tmp_path / "results.json").read_text())
  assert [r["T"] for r in results["rows"]] == [8, 32]
  for row in results["rows"]:
    assert set(row["impls"]) == {"lstm", "lstm[unroll=8]", "lstm[remat=64]", "gru", "mingru[seq]",
                                 "mingru[par]", "mingru[log]", "minlstm[par]", "lru[seq]", "lru[par]"}
    assert all(m["train_ms"] > 0 and m["temp_mib"] >= 0 for m in row["impls"].values())
  report = (tmp_path / "report.md").read_text()
  assert "## Crossover" in report and "](scaling_time.png)" in report
  assert "- training: lru[par] is faster than lstm" in report
  assert "- training: lru[par] is faster than lru[seq]" in report
  assert (tmp_path / "scaling_memory.png").stat().st_size > 1000


def test_scan_precision_tiny(tmp_path):
  run("benchmarks.scan_precision", f"--out={tmp_path}", "--lengths=16",
      "--batch=2", "--input=3", "--hidden=4")
  results = json.loads((tmp_path / "results.json").read_text())
  assert [(r["cell"], r["T"]) for r in results["rows"]] == [
      ("mingru", 16), ("minlstm", 16), ("lstm", 16), ("gru", 16)]
  for r in results["rows"]:
    modes = ("scan", "native") if r["cell"] in ("lstm", "gru") else (
        "sequential", "associative", "log")
    for m in modes:
      assert 0 <= r["modes"][m]["outputs"] < 1e-4 and 0 <= r["modes"][m]["gradients"] < 1e-4
  report = (tmp_path / "report.md").read_text()
  assert "| mingru | 16 |" in report and "| gru | 16 |" in report
  assert "native outputs | native gradients" in report


def test_gradient_flow_pixels_preset_tiny(tmp_path):
  """Pixel-by-pixel digits and permuted digits (T=64) through the grid with
  a learning-rate sweep chosen on validation data, and MNIST / permuted
  MNIST (T=784) from IDX files with --mnist_dir."""
  from zoo_helpers import write_tiny_mnist  # pylint: disable=g-import-not-at-top
  mnist = tmp_path / "mnist"
  mnist.mkdir()
  write_tiny_mnist(mnist)
  out = tmp_path / "out"
  # --lrs replaces the preset's four rates (and sweeps the MNIST runs too).
  run("benchmarks.gradient_flow", "--preset=pixels_sweep", f"--out={out}",
      "--cells=rnn_tanh", "--steps=10", "--seeds=2", f"--mnist_dir={mnist}",
      "--lrs=3e-3,1e-3")
  results = json.loads((out / "results.json").read_text())
  train = results["train"]
  assert sorted({(r["task"], r["T"], r["cell"]) for r in train}) == sorted(
      [(t, 64, "rnn_tanh") for t in ("digits", "permuted_digits")]
      + [(t, 784, "rnn_tanh") for t in ("mnist", "permuted_mnist")])
  for r in train:
    assert r["baseline"] == pytest.approx(2.302585, rel=1e-5)
    assert 0.0 <= r["final_metrics"]["accuracy"] <= 1.0
    # Validation data (a tenth of the training images) is not the test data.
    assert r["final_valid_over_baseline"] != r["final_over_baseline"]
  swept = [r for r in train if r["task"] == "digits"]
  assert sorted({r["lr"] for r in swept}) == [1e-3, 3e-3]
  assert len(swept) == 4  # 2 rates x 2 seeds, one group
  assert sorted({r["lr"] for r in train if r["task"] == "mnist"}) == [1e-3, 3e-3]
  from benchmarks import gradient_flow as gf  # pylint: disable=g-import-not-at-top
  every = gf.aggregate(train)
  (best,) = [a for a in gf.choose_rates(every) if a["task"] == "digits"]
  assert best["valid_mean"] == min(a["valid_mean"] for a in every if a["task"] == "digits")
  report = (out / "report.md").read_text()
  assert "Test accuracy (mean ± std over seeds; chance 0.10)" in report
  assert "Learning rates chosen on validation data (digits, T=64)" in report
  assert f"| digits | 64 | tanh RNN (default init) | 1 | **{best['lr']:g}** |" in report
  assert "](loss_permuted_digits_T64.png)" in report
  assert "](loss_permuted_mnist_T784.png)" in report
  bad = run("benchmarks.gradient_flow", "--preset=pixels", f"--out={tmp_path}/bad",
            f"--mnist_dir={tmp_path}/nowhere", check=False)
  assert bad.returncode != 0 and "error: --mnist_dir=" in bad.stderr
  assert "IDX" in bad.stderr


def test_xla_flags_tiny(tmp_path):
  """Each XLA setting in its own child process, compared row by row."""
  run("benchmarks.xla_flags", f"--out={tmp_path}", "--shapes=2x5x3x4", "--rounds=1",
      "--cells=gru", "--settings=xla defaults,fast math")
  results = json.loads((tmp_path / "results.json").read_text())
  assert sorted(results["rows"]) == sorted(
      json.dumps(["gru", m, [2, 5, 3, 4, 1]]) for m in ("train", "infer"))
  for cells in results["rows"].values():
    assert set(cells) == {"xla defaults", "fast math"}
  for k, best in results["best"].items():
    assert best in results["rows"][k]
  report = (tmp_path / "report.md").read_text()
  assert "| gru | infer | 2×5×3×4 |" in report
  assert "`--xla_cpu_enable_fast_math=true`" in report
  again = run("benchmarks.xla_flags", f"--out={tmp_path}", "--shapes=2x5x3x4", "--rounds=1",
              "--cells=gru", "--settings=xla defaults,fast math")
  assert again.stdout.count("read back from") == 2  # resume: nothing re-timed
  bad = run("benchmarks.xla_flags", f"--out={tmp_path}/bad", "--settings=fastest", check=False)
  assert bad.returncode != 0 and "error: --settings must name settings from" in bad.stderr


def test_step_profile_tiny(tmp_path):
  proc = run("benchmarks.step_profile", f"--out={tmp_path}", "--shape=2x5x3x4", "--rounds=1")
  results = json.loads((tmp_path / "results.json").read_text())
  assert set(results["us_per_step"]) == {
      "zoo forward", "input projection", "recurrent matmul", "pointwise",
      "torch forward", "torch recurrent matmul"}
  assert all(v > 0 for v in results["us_per_step"].values())
  assert "Sum of the zoo's parts" in proc.stdout
  bad = run("benchmarks.step_profile", "--shape=2x5", check=False)
  assert bad.returncode != 0 and "error: --shape must be BxTxIxH" in bad.stderr


def test_remat_memory_tiny(tmp_path):
  run("benchmarks.remat_memory", f"--out={tmp_path}", "--lengths=64,512", "--batch=2",
      "--input=3", "--hidden=8", "--chunks=0,16,sqrt")
  results = json.loads((tmp_path / "results.json").read_text())
  assert [r["T"] for r in results["rows"]] == [64, 512]
  big = results["rows"][1]["mib"]
  assert big["16"] < big["0"] and big["sqrt"] < big["0"]
  assert "| 512 |" in (tmp_path / "report.md").read_text()
  assert (tmp_path / "remat_memory.png").stat().st_size > 1000
  bad = run("benchmarks.remat_memory", f"--out={tmp_path}/bad", "--chunks=x", check=False)
  assert bad.returncode != 0 and "--chunks must be ints >= 0 or 'sqrt', got 'x'" in bad.stderr


def test_remat_memory_trains_in_child_processes(tmp_path):
  run("benchmarks.remat_memory", f"--out={tmp_path}", "--lengths=32", "--batch=2",
      "--input=3", "--hidden=4", "--chunks=0,8", "--train_steps=2")
  trained = json.loads((tmp_path / "results.json").read_text())["rows"][0]["trained"]
  assert set(trained) == {"0", "8"}
  for t in trained.values():
    assert t["peak_rss_mib"] >= t["start_rss_mib"] > 0 and t["step_s"] > 0
  # remat recomputes, it does not change the numbers.
  assert trained["0"]["loss"] == pytest.approx(trained["8"]["loss"], rel=1e-5)
  assert "| 32 | remat=8 |" in (tmp_path / "report.md").read_text()
  bad = run("benchmarks.remat_memory", f"--out={tmp_path}/bad", "--train_steps=-1",
            check=False)
  assert bad.returncode != 0 and "--train_steps must be >= 0, got -1" in bad.stderr


def test_gpu_check_script_parses_and_names_tests_that_exist():
  script = ROOT / "benchmarks" / "gpu_check.sh"
  assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
  text = script.read_text()
  for node in ("tests/test_cudnn.py",
               "tests/cells/test_cells.py::test_bfloat16_compute_trains_in_a_jitted_step"):
    assert node in text
    path, _, name = node.partition("::")
    assert (ROOT / path).exists() and (not name or f"def {name}(" in (ROOT / path).read_text())


def test_beam_length_tiny(tmp_path):
  run("benchmarks.beam_length", f"--out={tmp_path}", "--lengths=10,40", "--rounds=1")
  results = json.loads((tmp_path / "results.json").read_text())
  rows = results["rows"]
  assert [(r["max_length"], r["steps"]) for r in rows] == [(10, 10), (40, 40)]
  for r in rows:
    assert r["us_per_step"] == pytest.approx(r["s"] / r["steps"] * 1e6)
  assert results["per_step_growth"] == pytest.approx(rows[1]["us_per_step"] / rows[0]["us_per_step"])
  assert "| 40 | 40 |" in (tmp_path / "report.md").read_text()
  bad = run("benchmarks.beam_length", f"--out={tmp_path}", "--beam=9", check=False)
  assert bad.returncode != 0 and "--beam must be at most --vocab=8, got 9" in bad.stderr


def test_nnx_overhead_tiny(tmp_path):
  run("benchmarks.nnx_overhead", f"--out={tmp_path}", "--cells=gru", "--shapes=2x5x3x4",
      "--rounds=2", "--calls=1")
  results = json.loads((tmp_path / "results.json").read_text())
  (row,) = results["rows"]
  assert row["cell"] == "gru" and row["shape"] == [2, 5, 3, 4, 1]
  assert set(row["ratio"]) == {"functional", "linen", "nnx.jit", "nnx cached", "jax.jit pytree"}
  assert row["ratio"]["functional"] == 1.0
  for name, ms in row["median_ms"].items():
    assert row["ratio"][name] == pytest.approx(ms / row["median_ms"]["functional"])
    assert len(row["times_s"][name]) == 2
  report = (tmp_path / "report.md").read_text()
  assert "| gru | 2×5×3×4 |" in report and "- nnx.jit: largest ratio" in report
  assert row["nnx_jit_empty_ms"] > 0 and "nnx_jit_empty_ms" not in row["ratio"]
  bad = run("benchmarks.nnx_overhead", f"--out={tmp_path}", "--cells=lsmt", check=False)
  assert bad.returncode != 0 and "--cells entries must be among" in bad.stderr
