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


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  helpers.run(workdir, *STEPS)
  step, params = helpers.final_params(workdir)
  assert step == 60
  return params


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
def test_sigkill_then_resume_is_bit_identical(tmp_path, reference, moment):
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
  steps = [json.loads(l)["step"] for l in open(workdir / "metrics.jsonl")
           if json.loads(l)["split"] == "train"]
  assert steps == list(range(10, 61, 10))
