"""A run killed with SIGKILL at any moment resumes to bit-identical params."""

import json
import os
import signal
import subprocess
import time

import pytest

import helpers

pytestmark = pytest.mark.slow

STEPS = ["--config.num_steps=60", "--config.checkpoint_every=10",
         "--config.log_every=10", "--config.eval_every=30"]


def rows(workdir, name="metrics.jsonl"):
  with open(workdir / name) as f:
    return [json.loads(l) for l in f]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  helpers.run(workdir, *STEPS)
  step, params = helpers.final_params(workdir)
  assert step == 60
  return params, rows(workdir)


@pytest.fixture(scope="module")
def reference(reference_run):
  return reference_run[0]


def kill_when(workdir, condition, timeout=240):
  """Starts the binary and SIGKILLs it as soon as ``condition()`` holds."""
  proc = subprocess.Popen(helpers.command(workdir, *STEPS), cwd=helpers.ROOT,
                          env=helpers.env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.monotonic() + timeout
  try:
    while time.monotonic() < deadline:
      if condition():
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
      if proc.poll() is not None:
        return False  # finished before the moment came
      time.sleep(0.001)
    raise TimeoutError("the run neither reached the kill point nor ended")
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()


def ckpt_entries(workdir):
  d = workdir / "checkpoints"
  return os.listdir(d) if d.is_dir() else []


MOMENTS = {
    # Right after the first training steps, before any checkpoint.
    "before_first_checkpoint": lambda w: (w / "metrics.jsonl").exists(),
    # While a save is in flight (orbax's tmp folder exists).
    "during_save": lambda w: any("tmp" in e for e in ckpt_entries(w)
                                 if e.startswith(("20", "30", "40"))),
    # Between checkpoints, after the one at step 30 landed.
    "after_step_30": lambda w: "30" in ckpt_entries(w),
}


@pytest.mark.parametrize("moment", sorted(MOMENTS))
def test_sigkill_then_resume_is_bit_identical(tmp_path, reference_run, moment):
  reference, reference_rows = reference_run
  workdir = tmp_path / "run"
  killed = kill_when(workdir, lambda: MOMENTS[moment](workdir))
  assert killed, f"the run ended before the kill point {moment!r}"
  had_checkpoint = any(e.isdigit() for e in ckpt_entries(workdir))
  proc = helpers.run(workdir, *STEPS)
  expected = "resumed from the checkpoint" if had_checkpoint else "starting from scratch"
  assert expected in proc.stderr
  step, params = helpers.final_params(workdir)
  assert step == 60
  helpers.assert_trees_equal(params, reference)
  # metrics.jsonl reads like one uninterrupted run: every log step once.
  steps = [r["step"] for r in rows(workdir) if r["split"] == "train"]
  assert steps == list(range(10, 61, 10))
  assert rows(workdir) == reference_rows


def test_rerunning_a_finished_run_adds_no_rows(tmp_path, reference_run):
  helpers.run(tmp_path, *STEPS)
  before = rows(tmp_path)
  proc = helpers.run(tmp_path, *STEPS)
  assert "already reached num_steps=60" in proc.stderr
  assert rows(tmp_path) == before == reference_run[1]
  assert f"results in {tmp_path}" in proc.stdout


# -- SIGTERM / SIGINT: save at the current step, one line, resume exactly --------

LONG = ["--config.num_steps=1500", "--config.checkpoint_every=500",
        "--config.log_every=10", "--config.eval_every=500"]


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("long_reference")
  helpers.run(workdir, *LONG)
  return helpers.final_params(workdir)[1], rows(workdir), rows(workdir, "trace.jsonl")


def signal_when(workdir, signum, condition, timeout=240):
  proc = subprocess.Popen(helpers.command(workdir, *LONG), cwd=helpers.ROOT,
                          env=helpers.env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.monotonic() + timeout
  while not condition():
    if time.monotonic() > deadline or proc.poll() is not None:
      proc.kill()
      raise AssertionError("the run ended or stalled before the signal")
    time.sleep(0.01)
  proc.send_signal(signum)
  out, err = proc.communicate(timeout=timeout)
  return proc.returncode, out, err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_the_current_step_and_resumes_bit_identically(
    tmp_path, long_reference, signum):
  ref_params, ref_rows, ref_trace = long_reference
  workdir = tmp_path / "run"
  # Once the first metrics row is written, between two checkpoints.
  code, _, err = signal_when(workdir, signum, lambda: (workdir / "metrics.jsonl").exists())
  assert code == 128 + signum
  assert "Traceback" not in err
  last = err.strip().splitlines()[-1]
  name = signal.Signals(signum).name
  assert last.startswith(f"stopped by {name} after step "), err[-2000:]
  stopped = int(last.split("after step ")[1].split(";")[0])
  assert 10 <= stopped < 1500
  assert f"checkpoint saved in {workdir / 'checkpoints'}" in last
  assert "run the same command again" in last
  saved = sorted(int(e) for e in os.listdir(workdir / "checkpoints") if e.isdigit())
  assert saved[-1] == stopped  # the step the signal arrived at, not the last multiple of 500
  # Restart: the same command ends bit-identical to the uninterrupted run,
  # and its logs read the same.
  proc = helpers.run(workdir, *LONG)
  assert f"resumed from the checkpoint at step {stopped}" in proc.stderr
  helpers.assert_trees_equal(helpers.final_params(workdir)[1], ref_params)
  assert rows(workdir) == ref_rows
  assert rows(workdir, "trace.jsonl") == ref_trace


def test_changing_num_steps_on_resume_warns(tmp_path):
  helpers.run(tmp_path, *STEPS)
  proc = helpers.run(tmp_path, *STEPS[1:], "--config.num_steps=80")
  assert ("config.num_steps changed on resume: the checkpoints were made with "
          "num_steps=60, this run asks for num_steps=80") in proc.stderr


# -- one run per workdir ---------------------------------------------------------

def test_a_second_run_on_the_same_workdir_refuses_and_a_killed_lock_does_not_block(tmp_path):
  workdir = tmp_path / "w"
  # Long enough to be still running when the second run starts (1,500
  # steps were not, once the LSTM ran through the native kernels), and no
  # checkpoint before it is killed, so the restart's 520 steps are all new.
  endless = ["--config.num_steps=1000000", "--config.checkpoint_every=1000000",
             "--config.log_every=10", "--config.eval_every=1000000"]
  first = subprocess.Popen(helpers.command(workdir, *endless), cwd=helpers.ROOT,
                           env=helpers.env(), stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 120
    while not (workdir / "metrics.jsonl").exists():
      assert time.monotonic() < deadline and first.poll() is None
      time.sleep(0.01)
    second = helpers.run(workdir, *endless, check=False)
    assert second.returncode == 2
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: workdir '{workdir}' is in use by another run (pid {first.pid} ")
    assert "--workdir=" in last and "Traceback" not in second.stderr
  finally:
    first.send_signal(signal.SIGKILL)
    first.wait()
  # The killed run's lock is gone with its process: the restart resumes.
  proc = helpers.run(workdir, *LONG[1:], "--config.num_steps=520")
  assert "is in use" not in proc.stderr
  assert helpers.final_params(workdir)[0] == 520
