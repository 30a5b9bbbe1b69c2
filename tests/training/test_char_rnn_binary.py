"""The char-rnn binaries end to end: train, sample, report, resume, 1 vs 4
devices, errors."""

import json
import math
import subprocess
import sys

import jax
import numpy as np
import pytest

import helpers
from rnn_zoo.data import text as text_lib

pytestmark = pytest.mark.slow
SMOKE = "--config=experiments/char_rnn/config.py:smoke"


def train(workdir, *overrides, check=True, devices=None):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.char_rnn", f"--workdir={workdir}", SMOKE,
       *overrides], cwd=helpers.ROOT, env=helpers.env(devices), capture_output=True,
      text=True, timeout=300)
  if check and proc.returncode:
    raise AssertionError(f"exit {proc.returncode}\n{proc.stderr[-4000:]}")
  return proc


def sample(workdir, *flags, check=True):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.char_rnn.sample", f"--workdir={workdir}",
       *flags], cwd=helpers.ROOT, env=helpers.env(), capture_output=True,
      text=True, timeout=300)
  if check and proc.returncode:
    raise AssertionError(f"exit {proc.returncode}\n{proc.stderr[-4000:]}")
  return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("char_rnn")
  train(workdir, "--config.log_every=1")
  return workdir


def test_smoke_run_logs_bits_per_char_samples_and_saves_the_vocab(trained):
  records = [json.loads(l) for l in open(trained / "metrics.jsonl")]
  evals = [r for r in records if r.get("split") == "eval"]
  assert [r["step"] for r in evals] == [15, 30]
  for r in evals:
    assert r["bits_per_char"] == pytest.approx(r["nats_per_char"] / math.log(2))
  from rnn_zoo.training import checkpoint  # pylint: disable=g-import-not-at-top
  ckpt = checkpoint.load_latest(str(trained))
  assert ckpt["step"] == 30
  text, _ = text_lib.get_corpus("stdlib", 20_000)
  train_text, _ = text_lib.split(text, 0.1, 1_000)
  vocab = text_lib.Vocab.from_json(ckpt["vocab"])
  assert vocab == text_lib.Vocab.build(train_text)
  # The first logged loss is ln(vocab) (min-char-rnn's check).
  first = json.loads(open(trained / "trace.jsonl").readline())
  assert first["steps"][0] == 1
  assert first["loss"][0] == pytest.approx(math.log(vocab.size), rel=0.02)
  # The carried state is part of the checkpoint, one row per stream.
  assert [c["h"].shape for c in ckpt["state"]["carry"]] == [(8, 32), (8, 32)]
  samples = (trained / "samples.txt").read_text(encoding="utf-8")
  assert samples.count("===== step") == 2


def test_sample_binary_is_reproducible_and_argmax_is_deterministic(trained):
  a = sample(trained, "--prime=The ", "--length=40", "--temperature=0.8", "--seed=3",
             "--num_samples=2").stdout
  b = sample(trained, "--prime=The ", "--length=40", "--temperature=0.8", "--seed=3",
             "--num_samples=2").stdout
  assert a == b and a.count("===== sample") == 2 and a.count("The ") >= 2
  c = sample(trained, "--prime=The ", "--length=40", "--temperature=0.8", "--seed=4",
             "--num_samples=2").stdout
  assert c != a
  assert "--prime holds characters" not in sample(trained, "--prime=The ", "--length=5").stderr
  odd = sample(trained, "--prime=Th\u00e9 \u20ac", "--length=5")   # not in the corpus
  assert "--prime holds characters the corpus never had, read as the unknown token: " \
      "\u00e9\u20ac" in odd.stderr
  g1 = sample(trained, "--length=40", "--temperature=0", "--seed=1").stdout
  g2 = sample(trained, "--length=40", "--temperature=0", "--seed=2").stdout
  assert g1 == g2 and g1.startswith("The ")


def test_report_measures_argmax_against_sampling(trained):
  sample(trained, "--report", "--length=300", "--num_samples=4")
  result = json.loads((trained / "sampling_report.json").read_text())
  sources = [r["source"] for r in result["rows"]]
  assert sources == ["argmax", "sampling T=0.5", "sampling T=0.8", "sampling T=1",
                     "validation text"]
  for r in result["rows"]:
    assert 0 <= r["distinct_8"] <= 1 and 0 <= r["repeated_substring_rate"] <= 1
  assert "| argmax |" in (trained / "sampling_report.md").read_text()


@pytest.mark.parametrize("flags,message", [
    (["--temperature=-1"], "error: temperature must be >= 0 (0: argmax), got -1.0"),
    (["--length=0"], "error: --length must be a positive int, got 0"),
    (["--prime="], "error: --prime must be a non-empty string, got ''"),
    (["--top_k=100000"], "error: top_k must be at most the vocabulary size"),
])
def test_sample_bad_flags(trained, flags, message):
  proc = sample(trained, *flags, check=False)
  assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(message)
  assert "Traceback" not in proc.stderr


def test_sample_falls_back_over_a_damaged_newest_checkpoint(tmp_path):
  """The sample binary reads checkpoints through the same fallback as
  training (it crashed with 550 lines before)."""
  import shutil  # pylint: disable=g-import-not-at-top
  from test_checkpoint import damage  # pylint: disable=g-import-not-at-top
  train(tmp_path, "--config.num_steps=20", "--config.async_checkpoint=false")
  copy = tmp_path.parent / (tmp_path.name + "_copy")
  shutil.copytree(tmp_path, copy)
  damage(tmp_path / "checkpoints" / "20")
  shutil.rmtree(copy / "checkpoints" / "20")
  args = ["--length=30", "--temperature=0", "--prime=a"]
  proc = sample(tmp_path, *args)
  assert "Traceback" not in proc.stderr and "Event loop is closed" not in proc.stderr
  assert len(proc.stderr.splitlines()) < 20   # 185-192 lines of asyncio tracebacks before
  assert "checkpoint at step 20" in proc.stderr  # the warning names the step skipped
  assert proc.stdout == sample(copy, *args).stdout  # what step 10 gives
  for step in ("10", "20"):
    damage(tmp_path / "checkpoints" / step)
  proc = sample(tmp_path, *args, check=False)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert "none could be restored" in proc.stderr.strip().splitlines()[-1]


def test_sample_without_checkpoints(tmp_path):
  proc = sample(tmp_path, check=False)
  assert proc.returncode == 2
  assert "holds no checkpoints (train first" in proc.stderr.strip().splitlines()[-1]


def test_resume_restores_the_carried_state_bit_identically(tmp_path):
  common = ["--config.schedule=constant", "--config.async_checkpoint=false"]
  train(tmp_path / "straight", *common)
  train(tmp_path / "split", *common, "--config.num_steps=15")
  train(tmp_path / "split", *common)
  from rnn_zoo.training import checkpoint  # pylint: disable=g-import-not-at-top
  a = checkpoint.load_latest(str(tmp_path / "straight"))
  b = checkpoint.load_latest(str(tmp_path / "split"))
  assert a["step"] == b["step"] == 30
  helpers.assert_trees_equal(a["state"]["params"], b["state"]["params"])
  helpers.assert_trees_equal(a["state"]["carry"], b["state"]["carry"])


def test_corpus_errors_and_a_changed_corpus(tmp_path):
  proc = train(tmp_path / "w", "--config.corpus=/nonexistent/input.txt", check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "error: corpus file '/nonexistent/input.txt' does not exist")
  proc = train(tmp_path / "w", f"--config.corpus={tmp_path}", check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith(
      f"error: corpus '{tmp_path}' is a directory, not a text file")
  bad = tmp_path / "latin1.txt"
  bad.write_bytes("caf\xe9 ".encode("latin-1") * 100)
  proc = train(tmp_path / "w", f"--config.corpus={bad}", check=False)
  assert proc.returncode == 2 and "is not valid UTF-8" in proc.stderr
  corpus = tmp_path / "c.txt"
  corpus.write_text("abcdefgh " * 2000)
  train(tmp_path / "v", f"--config.corpus={corpus}", "--config.max_chars=0",
        "--config.num_steps=10")
  corpus.write_text("ABCDEFGH " * 2000)
  proc = train(tmp_path / "v", f"--config.corpus={corpus}", "--config.max_chars=0",
               "--config.num_steps=20", check=False)
  assert proc.returncode == 2 and "different vocabulary" in proc.stderr
  # Two new characters change the params' shapes: said before the state is
  # read, not taken for damaged checkpoints.
  corpus.write_text("yz" + "abcdefgh " * 2000)
  proc = train(tmp_path / "v", f"--config.corpus={corpus}", "--config.max_chars=0",
               "--config.num_steps=20", check=False)
  last = proc.stderr.strip().splitlines()[-1]
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert last.startswith("error: the checkpoints in ") and (
      "different vocabulary (9 symbols saved, 11 now; new: 'y', 'z')" in last), last
  assert "the checkpoints are intact" in last and "damaged" not in proc.stderr


def test_four_devices_shard_the_streams_and_agree_with_one(tmp_path):
  """The carry is sharded like the batch (2 streams per device) and the run
  matches one device."""
  from rnn_zoo.training import checkpoint  # pylint: disable=g-import-not-at-top
  train(tmp_path / "one", "--config.num_steps=20", devices=1)
  train(tmp_path / "four", "--config.num_steps=20", devices=4)
  a = checkpoint.load_latest(str(tmp_path / "one"))
  b = checkpoint.load_latest(str(tmp_path / "four"))
  for x, y in zip(jax.tree.leaves((a["state"]["params"], a["state"]["carry"])),
                  jax.tree.leaves((b["state"]["params"], b["state"]["carry"]))):
    np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)


def _file_size_limit(limit_bytes):
  """A child whose writes fail past ``limit_bytes`` per file (EFBIG), as on a
  full disk, instead of being killed by SIGXFSZ."""
  def preexec():
    import resource  # pylint: disable=g-import-not-at-top
    import signal  # pylint: disable=g-import-not-at-top
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
  return preexec


def test_a_save_that_cannot_write_is_one_line_and_the_next_start_cleans_up(tmp_path):
  """A full disk during a save gave a 472-line orbax traceback and left its
  .orbax-checkpoint-tmp folder behind."""
  train(tmp_path, "--config.num_steps=10")
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.char_rnn", f"--workdir={tmp_path}", SMOKE,
       "--config.num_steps=30"], cwd=helpers.ROOT, env=helpers.env(), capture_output=True,
      text=True, timeout=300, preexec_fn=_file_size_limit(50_000))
  assert proc.returncode == 2, proc.stderr[-3000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and errors[0].startswith(
      f"error: saving the checkpoint at step 20 in {tmp_path}/checkpoints failed (")
  assert errors[0].endswith("; the checkpoints at steps [10] are kept: free disk space (or "
                            "raise the file size limit) and rerun to resume from the last "
                            "of them")
  assert "Traceback" not in proc.stderr and "Event loop is closed" not in proc.stderr
  assert len(proc.stderr.splitlines()) < 60
  assert (tmp_path / "checkpoints" / "20.orbax-checkpoint-tmp").exists()
  again = train(tmp_path, "--config.num_steps=30")
  assert "removed the unfinished checkpoint" in again.stderr
  assert "resumed from the checkpoint at step 10" in again.stderr
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
      "10", "20", "30", "digests"]


def test_a_time_budget_only_chooses_num_steps_and_a_resume_keeps_the_plan(tmp_path):
  """With config.time_budget_minutes the run measures the machine, writes
  its plan, and trains exactly what --config.num_steps=<planned> trains; a
  run cut short resumes to the same params without measuring again."""
  common = ["--config.schedule=cosine", "--config.warmup_steps=5",
            "--config.async_checkpoint=false", "--config.checkpoint_every=20",
            "--config.eval_every=20", "--config.sample_every=20"]
  # A budget that fits the cap of 60 steps on any machine: the plan is 60.
  budget = train(tmp_path / "budget", *common, "--config.time_budget_minutes=10",
                 "--config.num_steps=60")
  plan = json.loads((tmp_path / "budget" / "budget.json").read_text())
  assert plan["num_steps"] == plan["cap"] == 60 and plan["time_budget_minutes"] == 10
  assert plan["step_seconds"] > 0 and set(plan["periodic"]) == {
      "eval", "sample", "checkpoint", "log"}
  assert "time budget 10 min: 60 steps (train step" in budget.stderr
  assert not (tmp_path / "budget" / ".budget-probe").exists()
  train(tmp_path / "steps", *common, "--config.num_steps=60")
  step_a, a = helpers.final_params(tmp_path / "budget")
  step_b, b = helpers.final_params(tmp_path / "steps")
  assert step_a == step_b == 60
  helpers.assert_trees_equal(a, b)
  # Lose the last checkpoint, as a kill before it would: the rerun resumes
  # from step 40 with the saved plan (another budget asked for is refused
  # with a warning) and ends where the uninterrupted run did.
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(tmp_path / "budget" / "checkpoints" / "60")
  (tmp_path / "budget" / "checkpoints" / "digests" / "60.json").unlink()
  again = train(tmp_path / "budget", *common, "--config.time_budget_minutes=0.01",
                "--config.num_steps=60")
  assert "resumed from the checkpoint at step 40" in again.stderr
  assert "it keeps its plan of 60 steps" in again.stderr
  assert json.loads((tmp_path / "budget" / "budget.json").read_text()) == plan
  step_c, c = helpers.final_params(tmp_path / "budget")
  assert step_c == 60
  helpers.assert_trees_equal(a, c)


def test_a_budget_that_leaves_no_time_is_one_line(tmp_path):
  proc = train(tmp_path, "--config.time_budget_minutes=0.001", check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "error: config.time_budget_minutes=0.001 leaves no time to train: time budget")
  assert not (tmp_path / "budget.json").exists()
  assert not (tmp_path / ".budget-probe").exists()


def test_a_budget_asked_of_a_run_started_without_one_is_one_line(trained):
  proc = train(trained, "--config.time_budget_minutes=5", check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "error: config.time_budget_minutes=5, but the run in ")
  assert not (trained / "budget.json").exists()
