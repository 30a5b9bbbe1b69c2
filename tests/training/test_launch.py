"""The binaries' error contract: user mistakes are one line and exit 2;
everything else keeps its traceback."""

import subprocess
import sys

import pytest

import helpers


pytestmark = pytest.mark.slow  # runs the binaries


def run_launch(body: str):
  code = ("import sys; sys.argv = ['prog']\n"
          "from experiments import launch\n"
          "import rnn_zoo as rz\n"
          f"def train():\n  {body}\n"
          "launch.run(train)\n")
  return subprocess.run([sys.executable, "-c", code], cwd=helpers.ROOT,
                        env=helpers.env(), capture_output=True, text=True,
                        timeout=120)


def test_user_error_is_one_line_and_exit_2():
  proc = run_launch("raise rz.UserError('config.x must be 1, got 2')")
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == "error: config.x must be 1, got 2"
  assert "Traceback" not in proc.stderr


def test_a_bug_keeps_its_traceback():
  """A plain ValueError (from JAX, orbax or our own code) is not hidden."""
  proc = run_launch("raise ValueError('shapes (3,) and (4,) do not match inside jax')")
  assert proc.returncode == 1
  assert "Traceback" in proc.stderr
  assert "ValueError: shapes (3,) and (4,) do not match inside jax" in proc.stderr


@pytest.mark.parametrize("workdir,message", [
    ("FILE", "exists and is not a directory"),
    ("/proc/no/such/dir", "cannot be created"),
])
def test_bad_workdir_is_one_line(tmp_path, workdir, message):
  if workdir == "FILE":
    workdir = tmp_path / "a_file"
    workdir.write_text("x")
  proc = helpers.run(workdir, check=False)
  assert proc.returncode == 2
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith(f"error: workdir '{workdir}'") and message in last
  assert "Traceback" not in proc.stderr


def test_unwritable_workdir_is_a_user_error(tmp_path, monkeypatch):
  """(Root can write anywhere, so the permission is taken away by hand.)"""
  import os  # pylint: disable=g-import-not-at-top
  import rnn_zoo as rz  # pylint: disable=g-import-not-at-top
  from rnn_zoo.training import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(os, "access", lambda path, mode: False)
  with pytest.raises(rz.UserError, match=f"workdir '{tmp_path}' is not writable"):
    workdir_lib.check_workdir(str(tmp_path))


def test_missing_config_file_is_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "experiments.long_range", f"--workdir={tmp_path}",
       "--config=experiments/long_range/nope.py:smoke"], cwd=helpers.ROOT,
      env=helpers.env(), capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1] == (
      "error: --config could not be loaded from 'experiments/long_range/nope.py:smoke': "
      "[Errno 2] No such file or directory: 'experiments/long_range/nope.py'")
  assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("binary,config_module", [
    ("experiments.long_range", "experiments.long_range.config"),
    ("experiments.char_rnn", "experiments.char_rnn.config"),
])
def test_help_lists_presets_and_every_field(binary, config_module):
  import importlib  # pylint: disable=g-import-not-at-top
  from experiments import common  # pylint: disable=g-import-not-at-top
  module = importlib.import_module(config_module)
  proc = subprocess.run([sys.executable, "-m", binary, "--help"], cwd=helpers.ROOT,
                        env=helpers.env(), capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1  # absl's --help
  text = " ".join(proc.stdout.split())
  for preset in module.PRESETS:
    if preset:
      assert f"'{preset}'" in text
  comments = common.field_comments(module)
  c = module.get_config("")
  for key in c.keys():
    first_words = " ".join(comments[key].split()[:3])
    assert f"{key} = {c[key]!r}: {first_words}" in text, key


def test_binary_applies_the_xla_flags_measured_for_its_cell(tmp_path):
  """The training loop runs under the flags rnn_zoo.xla_config measured best
  for the config's cell, set before the first JAX computation."""
  from rnn_zoo import xla_config  # pylint: disable=g-import-not-at-top
  proc = helpers.run(tmp_path, "--config.cell=gru", "--config.num_steps=2",
                     "--config.checkpoint_every=2", extra=["--verbosity=1"])
  want = " ".join(xla_config.recommended_cpu_flags("gru", "train"))
  assert f"XLA flags added for cell 'gru': {want}" in proc.stderr
  assert xla_config.XNN_GREEDY in want
  assert "malloc keeps freed memory for reuse (xla_config.use_recommended_malloc): True" in proc.stderr
  # And it says whether the native kernels run (one CPU device here).
  from rnn_zoo import native  # pylint: disable=g-import-not-at-top
  if native.available():
    assert f"native CPU kernels (rnn_zoo.native): {native.status()}" in proc.stderr
    assert native.status().startswith("used for float32 LSTM and GRU"
                                      if native.untuned_cpu() is None else
                                      "not used: the native kernels are tuned for AVX-512")


def test_recommended_malloc_applies_on_glibc():
  from rnn_zoo import xla_config  # pylint: disable=g-import-not-at-top
  import platform  # pylint: disable=g-import-not-at-top
  applied = xla_config.use_recommended_malloc()
  assert applied == (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_recommended_cpu_flags_per_cell_and_mode(monkeypatch):
  from rnn_zoo import xla_config  # pylint: disable=g-import-not-at-top
  assert xla_config.recommended_cpu_flags("lstm", "infer") == (xla_config.XNN_GREEDY,)
  assert xla_config.recommended_cpu_flags("gru", "infer") == (xla_config.NO_FUSION_EMITTERS,)
  assert xla_config.recommended_cpu_flags("mingru") == xla_config.RECOMMENDED_CPU_FLAGS
  assert xla_config.recommended_cpu_flags(None, "infer") == xla_config.RECOMMENDED_CPU_FLAGS
  with pytest.raises(ValueError, match="mode must be one of \\['train', 'infer'\\], got 'eval'"):
    xla_config.recommended_cpu_flags("lstm", "eval")
  # This process's backend has started: nothing is added (XLA read its flags).
  import jax  # pylint: disable=g-import-not-at-top
  jax.numpy.zeros(1).block_until_ready()
  monkeypatch.setenv("XLA_FLAGS", "")
  assert xla_config.use_recommended_cpu_flags(cell="lstm") == []
  assert __import__("os").environ["XLA_FLAGS"] == ""
