"""The binaries' accelerator options, through their jitted train steps:
config.compute_dtype (bfloat16 matmuls) and config.cudnn (the LSTM through
cuDNN; on a CPU through rnn_zoo.cudnn's emulation, RNN_ZOO_CUDNN_EMULATE=1)."""

import json
import subprocess

import jax
import numpy as np
import pytest

import helpers
from experiments import common
from experiments.captioning import config as cap_config
from experiments.captioning import workload as cap_workload
from experiments.long_range import config as lr_config
import rnn_zoo as rz

pytestmark = pytest.mark.slow  # runs the binaries


SHORT = ("--config.num_steps=6", "--config.checkpoint_every=6", "--config.eval_every=6",
         "--config.log_every=3")


def _metrics(workdir):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


def _run(workdir, *overrides, emulate=False, check=True):
  env = helpers.env()
  if emulate:
    env["RNN_ZOO_CUDNN_EMULATE"] = "1"
  proc = subprocess.run(helpers.command(workdir, *overrides, *SHORT), cwd=helpers.ROOT,
                        env=env, capture_output=True, text=True, timeout=300)
  if check:
    assert proc.returncode == 0, proc.stderr[-4000:]
  return proc


def test_bfloat16_compute_trains_in_the_binary(tmp_path):
  """--config.compute_dtype=bfloat16 through the binary's jitted train and
  eval steps (that the matmuls are then bfloat16 and the rest float32 is
  tests/cells/test_cells.py's)."""
  proc = _run(tmp_path / "bf16", "--config.compute_dtype=bfloat16")
  assert "config.compute_dtype=bfloat16 on the CPU: the cell runs on the scan runner" in proc.stderr
  metrics = _metrics(tmp_path / "bf16")
  assert {m["split"] for m in metrics} == {"train", "eval"}
  assert all(np.isfinite(m["loss"]) for m in metrics)


def test_cudnn_trains_like_the_scan_runner_in_the_binary(tmp_path):
  """--config.cudnn=True: the same losses as the default run (the emulated
  cuDNN call is the same arithmetic in another order)."""
  proc = _run(tmp_path / "cudnn", "--config.cudnn=True", emulate=True)
  assert "cuDNN (rnn_zoo.cudnn): available" in proc.stderr
  _run(tmp_path / "scan")
  got, want = _metrics(tmp_path / "cudnn"), _metrics(tmp_path / "scan")
  assert [m["split"] for m in got] == [m["split"] for m in want]
  np.testing.assert_allclose([m["loss"] for m in got], [m["loss"] for m in want],
                             rtol=1e-4)


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="checks the message off a GPU")
def test_cudnn_off_a_gpu_is_one_line(tmp_path):
  proc = _run(tmp_path / "w", "--config.cudnn=True", check=False)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: impl='cudnn' cannot run here: cuDNN runs on an NVIDIA GPU, not cpu")


def test_cudnn_with_another_cell_is_refused():
  c = lr_config.get_config("smoke")
  c.cudnn, c.cell = True, "gru"
  with pytest.raises(rz.UserError, match=r"^config.cudnn=True runs an LSTM through "
                                         r"cuDNN; got cell='gru'$"):
    common.check_cell_fields(c)


def test_captioning_refuses_cudnn():
  c = cap_config.get_config("smoke")
  c.cudnn = True
  with pytest.raises(rz.UserError, match="captioning decoder steps its LSTM one token"):
    cap_workload.make_model(c, vocab_size=12)
