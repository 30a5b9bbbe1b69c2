"""Checkpoint fallback, refusal to overwrite, config mismatch, NaN handling."""

import glob
import json
import os

import jax
import numpy as np
import pytest

from rnn_zoo import training
from experiments.long_range import workload as workloads
from rnn_zoo.training import checkpoint as ckpt_lib

from experiments.long_range import config as lr_config
import helpers


def smoke(**kw):
  c = lr_config.get_config("smoke")
  c.update(kw)
  return c


def train(workdir, **kw):
  c = smoke(**kw)
  return training.train_and_evaluate(c, str(workdir), workloads.long_range(c))


def damage(step_dir):
  """Truncates every data file of a finished checkpoint."""
  files = [f for f in glob.glob(os.path.join(step_dir, "state", "**"), recursive=True)
           if os.path.isfile(f) and os.path.getsize(f) > 0]
  assert files
  for f in files:
    with open(f, "r+b") as fh:
      fh.truncate(os.path.getsize(f) // 3)


def test_damaged_latest_checkpoint_falls_back_to_the_previous(tmp_path, caplog):
  train(tmp_path, num_steps=30, checkpoint_every=10)
  ref_step, ref_params = helpers.final_params(tmp_path)
  assert ref_step == 30
  damage(tmp_path / "checkpoints" / "30")
  # Resuming with a longer budget restores step 20 and redoes 21..40.
  with caplog.at_level("WARNING"):
    result = train(tmp_path, num_steps=40, checkpoint_every=10)
  assert result["step"] == 40
  assert any("step 30" in r.getMessage() and "damaged" in r.getMessage()
             for r in caplog.records)
  # The redone steps are identical: resuming from 20 to 30 gives the same
  # params as the first run had at 30 (deterministic data and keys).
  other = tmp_path / "again"
  train(other, num_steps=40, checkpoint_every=10)
  helpers.assert_trees_equal(helpers.final_params(tmp_path)[1],
                             helpers.final_params(other)[1])


def test_no_usable_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
  train(tmp_path, num_steps=20, checkpoint_every=10, keep_checkpoints=2)
  for step in (10, 20):
    damage(tmp_path / "checkpoints" / str(step))
  with pytest.raises(training.CheckpointError,
                     match=r"holds checkpoints at steps \[10, 20\] but none could be restored"):
    train(tmp_path, num_steps=30, checkpoint_every=10)


def test_config_mismatch_in_model_shape(tmp_path):
  train(tmp_path, num_steps=10, checkpoint_every=10)
  with pytest.raises(training.ConfigMismatchError,
                     match=r"hidden_size: saved 16, requested 8"):
    train(tmp_path, num_steps=20, hidden_size=8)
  # Changing only the budget or the logging is fine.
  assert train(tmp_path, num_steps=20, log_every=5)["step"] == 20


def test_a_model_field_newer_than_the_run_is_assumed_not_a_mismatch(caplog):
  saved = {"cell": "lstm", "hidden_size": 8}
  ckpt_lib.check_config(saved, {"cell": "lstm", "hidden_size": 8, "attention_query": "before"},
                        ("cell", "hidden_size", "attention_query"), "W")
  assert "has no ['attention_query'] (made before the field existed)" in caplog.text
  with pytest.raises(ckpt_lib.ConfigMismatchError, match="hidden_size: saved 8, requested 9"):
    ckpt_lib.check_config(saved, {"cell": "lstm", "hidden_size": 9, "attention_query": "x"},
                          ("cell", "hidden_size", "attention_query"), "W")


def test_nonfinite_stops_naming_step_and_last_good_checkpoint(tmp_path):
  # SGD with an absurd learning rate overflows to inf within a few steps.
  with pytest.raises(training.NonFiniteError) as e:
    train(tmp_path, optimizer="sgd", learning_rate=1e18, clip_norm=0.0,
          num_steps=40, checkpoint_every=1, log_every=1)
  msg = str(e.value)
  assert "non-finite loss or gradient at step" in msg
  bad = int(msg.split("at step ")[1].split()[0])
  assert 1 < bad < 40
  # Every checkpoint written holds finite params, and the message names the
  # newest one.
  manager_steps = sorted(int(p) for p in os.listdir(tmp_path / "checkpoints") if p.isdigit())
  assert manager_steps and max(manager_steps) < bad
  assert f"last good checkpoint: step {max(manager_steps)}" in msg
  assert len(manager_steps) == min(bad - 1, 3)  # keep_checkpoints=3 (smoke)
  for s in manager_steps:
    loaded = ckpt_lib.load_latest(str(tmp_path), step=s)
    assert loaded["step"] == s
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(loaded["state"]["params"]))


def test_nonfinite_before_any_checkpoint_says_restarting_starts_afresh(tmp_path):
  with pytest.raises(training.NonFiniteError) as e:
    train(tmp_path, optimizer="sgd", learning_rate=1e18, clip_norm=0.0,
          num_steps=40, checkpoint_every=40, log_every=1)
  msg = str(e.value)
  assert "no checkpoint yet: restarting starts from the beginning" in msg
  assert "resumes from it" not in msg


def test_nonfinite_skip_policy_skips_updates_and_counts_them(tmp_path):
  result = train(tmp_path, optimizer="sgd", learning_rate=1e18, clip_norm=0.0,
                 num_steps=20, nonfinite="skip")
  assert result["step"] == 20
  loaded = ckpt_lib.load_latest(str(tmp_path))
  assert int(loaded["state"]["nonfinite_steps"]) > 0
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(loaded["state"]["params"]))
  # metrics.jsonl stays strict JSON: the non-finite losses are null.
  def strict(constant):
    raise ValueError(f"not JSON: {constant}")
  rows = [json.loads(l, parse_constant=strict)
          for l in open(tmp_path / "metrics.jsonl") if l.strip()]
  assert any(r.get("loss", 0) is None for r in rows if r["split"] == "train"), rows


def test_every_reader_falls_back_over_a_damaged_newest_checkpoint(tmp_path, caplog):
  """load_latest (what the sample binary and analysis read) takes the same
  fallback as training, and says which step it skipped."""
  train(tmp_path, num_steps=30, checkpoint_every=10)
  damage(tmp_path / "checkpoints" / "30")
  with caplog.at_level("WARNING"):
    loaded = ckpt_lib.load_latest(str(tmp_path))
  assert loaded["step"] == 20
  assert any("step 30" in r.getMessage() for r in caplog.records)
  assert os.path.isdir(tmp_path / "checkpoints" / "30")  # readers move nothing
  damage(tmp_path / "checkpoints" / "20")
  damage(tmp_path / "checkpoints" / "10")
  with pytest.raises(training.CheckpointError, match="none could be restored"):
    ckpt_lib.load_latest(str(tmp_path))


@pytest.mark.slow
def test_all_checkpoints_damaged_is_one_line_in_the_binary(tmp_path):
  helpers.run(tmp_path, "--config.num_steps=20", "--config.checkpoint_every=10")
  for step in (10, 20):
    damage(tmp_path / "checkpoints" / str(step))
  proc = helpers.run(tmp_path, "--config.num_steps=30", check=False)
  assert proc.returncode == 2
  assert "Traceback" not in proc.stderr
  assert proc.stderr.strip().splitlines()[-1].startswith(
      "error: ") and "none could be restored" in proc.stderr.strip().splitlines()[-1]


def _flip(path, count=8):
  """Flips ``count`` bytes in the middle of a file (bit rot that keeps its
  size and, often, its format)."""
  data = bytearray(open(path, "rb").read())
  mid = len(data) // 2
  for i in range(mid, min(mid + count, len(data))):
    data[i] ^= 0xFF
  open(path, "wb").write(bytes(data))


def test_bit_rot_in_any_file_of_a_checkpoint_falls_back_to_the_previous(tmp_path, caplog):
  """Every file of the newest step, one at a time: orbax would restore
  flipped bytes without a word; the digests written after each save make the
  step damaged, and the previous one is read."""
  import shutil  # pylint: disable=g-import-not-at-top
  run = tmp_path / "run"
  train(run, num_steps=30, checkpoint_every=10)
  digests = sorted(os.listdir(run / "checkpoints" / "digests"))
  assert digests == ["10.json", "20.json", "30.json"]
  assert ckpt_lib.verify_step(str(run / "checkpoints"), 30)
  step30 = run / "checkpoints" / "30"
  files = sorted(os.path.relpath(f, step30) for f in glob.glob(str(step30 / "**"), recursive=True)
                 if os.path.isfile(f) and os.path.getsize(f) > 0)
  assert any(f.startswith("state") for f in files) and any(f.startswith("config") for f in files)
  for name in files:
    copy = tmp_path / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(run, copy)
    _flip(copy / "checkpoints" / "30" / name)
    with pytest.raises(ckpt_lib.DigestMismatchError, match=f"file {name} of step 30 changed"):
      ckpt_lib.verify_step(str(copy / "checkpoints"), 30)
    caplog.clear()
    with caplog.at_level("WARNING"):
      assert helpers.final_params(copy)[0] == 20, name
    assert any("step 30" in r.getMessage() for r in caplog.records), name
  # Training resumes from the previous step, sets the rotten one aside and
  # writes the new step's digest.
  with caplog.at_level("WARNING"):
    assert train(copy, num_steps=40, checkpoint_every=10)["step"] == 40
  assert os.path.isdir(copy / "checkpoints" / "damaged-30")
  assert sorted(os.listdir(copy / "checkpoints" / "digests")) == ["20.json", "30.json", "40.json"]
  assert ckpt_lib.verify_step(str(copy / "checkpoints"), 30)


def test_a_vocabulary_change_is_described():
  assert ckpt_lib.describe_vocab_change(
      {"chars": ["a", "b", "c"]}, {"chars": ["X", "Y", "a", "b", "c"]}) == (
          "3 symbols saved, 5 now; new: 'X', 'Y'")
  assert ckpt_lib.describe_vocab_change(
      {"words": ["a", "b"]}, {"words": ["b", "a"]}) == (
          "2 symbols saved, 2 now; the same symbols in another order")
  assert ckpt_lib.describe_vocab_change(
      {"words": ["a", "b"]}, {"words": ["a"]}) == "2 symbols saved, 1 now; gone: 'b'"


def test_a_failed_write_logs_its_message_without_traceback_and_drops_asyncio_leftovers():
  """After a failed save, asyncio logged one "Task exception was never
  retrieved" record per array being written (0 to 30 of them, two lines each,
  by timing): a CI run's one-line error came with 86 lines of stderr."""
  import logging  # pylint: disable=g-import-not-at-top
  flt = ckpt_lib._WriteFailureTracebacks()  # pylint: disable=protected-access
  failure = ValueError('OUT_OF_RANGE: Error writing "params/0": File too large [errno=27]')
  other = ValueError("something else")

  def record(name, msg, exc):
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (), (type(exc), exc, None))

  leftover = record("asyncio", "Task exception was never retrieved\nfuture: <Task ...>", failure)
  assert not flt.filter(leftover)
  assert flt.filter(record("asyncio", "Task exception was never retrieved", other))
  kept = record("absl", "Save Finalize thread failed.", failure)
  assert flt.filter(kept) and kept.exc_info is None
  assert kept.getMessage().startswith("Save Finalize thread failed.: ValueError: OUT_OF_RANGE")
