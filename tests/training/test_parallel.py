"""Data parallelism: 1 vs 4 devices, and two processes over loopback."""

import socket
import subprocess

import jax
import numpy as np
import pytest

import helpers

pytestmark = pytest.mark.slow

STEPS = ["--config.num_steps=20", "--config.checkpoint_every=10",
         "--config.batch_size=16"]


def assert_close(a, b):
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("one")
  helpers.run(workdir, *STEPS, devices=1)
  return helpers.final_params(workdir)[1]


def test_four_devices_agree_with_one(tmp_path, one_device):
  helpers.run(tmp_path, *STEPS, devices=4, extra=["--verbosity=1"])
  params = helpers.final_params(tmp_path)[1]
  assert_close(params, one_device)


def test_batch_not_divisible_over_devices_is_a_clear_error(tmp_path):
  proc = helpers.run(tmp_path, "--config.batch_size=6", devices=4, check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: batch_size=6 does not divide evenly over 4 devices; use a multiple of 4")


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start_two_processes(workdir, steps):
  """The binary as two processes with one device each, on loopback."""
  port = free_port()
  return [subprocess.Popen(
      helpers.command(workdir, *steps) + [
          f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
          f"--process_id={i}"],
      cwd=helpers.ROOT, env=helpers.env(devices=1), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True) for i in range(2)]


def test_two_processes_on_loopback_match_one_process(tmp_path, one_device):
  workdir = tmp_path / "shared"
  procs = start_two_processes(workdir, STEPS)
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-4000:]
  # Two processes with one device each: a 2-device mesh across processes.
  assert "process 0 of 2; 1 local / 2 global devices" in outs[0][1]
  assert "process 1 of 2; 1 local / 2 global devices" in outs[1][1]
  # Only process 0 logs progress.
  assert "step 20/20" in outs[0][1] and "step 20/20" not in outs[1][1]
  step, params = helpers.final_params(workdir)
  assert step == 20
  assert_close(params, one_device)


def test_sigterm_to_one_process_stops_both_at_the_same_step(tmp_path):
  """JAX's preemption service: the signal reaches one process, every process
  saves at the same step and exits with 143."""
  import signal  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / "shared"
  steps = ["--config.num_steps=20000", "--config.checkpoint_every=10000",
           "--config.batch_size=16", "--config.eval_every=10000"]
  procs = start_two_processes(workdir, steps)
  try:
    deadline = time.monotonic() + 180
    while not (workdir / "metrics.jsonl").exists():
      assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
      time.sleep(0.05)
    procs[1].send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=180) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  lines = [err.strip().splitlines()[-1] for _, err in outs]
  assert [p.returncode for p in procs] == [143, 143], lines
  assert lines[0] == lines[1] and lines[0].startswith("stopped by SIGTERM after step ")
  step = int(lines[0].split("after step ")[1].split(";")[0])
  assert step < 20000
  assert helpers.final_params(workdir)[0] == step
