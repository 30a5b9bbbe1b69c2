"""Running the experiment binaries as real subprocesses."""

import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = "experiments/long_range/config.py:smoke"


def env(devices: int | None = None) -> dict:
  e = dict(os.environ)
  e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
  e.pop("XLA_FLAGS", None)
  if devices:
    e["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  return e


def command(workdir, *overrides, binary="experiments.long_range"):
  return [sys.executable, "-m", binary, f"--workdir={workdir}",
          f"--config={CONFIG}", *overrides]


def run(workdir, *overrides, devices=None, check=True, timeout=300, extra=()):
  proc = subprocess.run(command(workdir, *overrides) + list(extra), cwd=ROOT,
                        env=env(devices), capture_output=True, text=True,
                        timeout=timeout)
  if check and proc.returncode:
    raise AssertionError(f"exit {proc.returncode}\n{proc.stderr[-4000:]}")
  return proc


def run_smoke(binary: str, workdir, data_dir, *overrides, check=True):
  """``python -m experiments.<binary>`` with its smoke preset and a tfds
  data dir (the captioning and VQA binaries)."""
  proc = subprocess.run(
      [sys.executable, "-m", f"experiments.{binary}", f"--workdir={workdir}",
       f"--config=experiments/{binary}/config.py:smoke", f"--config.data_dir={data_dir}",
       *overrides], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
  if check and proc.returncode:
    raise AssertionError(f"exit {proc.returncode}\n{proc.stderr[-4000:]}")
  return proc


def final_params(workdir):
  from rnn_zoo.training import checkpoint  # pylint: disable=g-import-not-at-top
  loaded = checkpoint.load_latest(str(workdir))
  return loaded["step"], loaded["state"]["params"]


def assert_trees_equal(a, b):
  import jax  # pylint: disable=g-import-not-at-top
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(x, y)
