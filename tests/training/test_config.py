"""Every preset builds, every key is read, bad values are one-line errors."""

import ml_collections
import pytest

import rnn_zoo as rz
from rnn_zoo import training
from rnn_zoo.training import loop

from experiments import common
from experiments.long_range import config as lr_config
from experiments.long_range import workload as lr_workload
from experiments.char_rnn import workload as cr_workload
import helpers

PRESETS = ["", "smoke", "copy", "digits"]


class RecordingConfig(ml_collections.ConfigDict):
  """A ConfigDict that remembers which fields were read."""

  def __init__(self, base):
    super().__init__(base.to_dict())
    object.__setattr__(self, "_read", set())

  def __getattr__(self, name):
    if not name.startswith("_"):
      object.__getattribute__(self, "_read").add(name)
    return super().__getattr__(name)

  def __getitem__(self, name):
    object.__getattribute__(self, "_read").add(name)
    return super().__getitem__(name)

  def to_dict(self, *args, **kwargs):
    # Copying the whole config (to save it beside checkpoints) reads nothing.
    read = set(object.__getattribute__(self, "_read"))
    out = super().to_dict(*args, **kwargs)
    object.__setattr__(self, "_read", read)
    return out


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_build_and_every_field_is_commented(preset):
  c = lr_config.get_config(preset)
  w = lr_workload.long_range(c)
  loop._check_training_config(c)
  training.make_optimizer(c)
  assert w.shape_fields
  assert_fields_commented(lr_config, c)


def test_recording_config_records_reads_only():
  c = RecordingConfig(lr_config.get_config("smoke"))
  c.to_dict()
  assert c._read == set()
  _ = c.cell
  assert c._read == {"cell"}


def fields_read(tmp_path, get_config, build, run_overrides, branch_overrides=None):
  """Config fields read by one short real run, plus those read when each
  branch (cell, optimizer, schedule) is chosen."""
  c = RecordingConfig(get_config("smoke"))
  c.update(run_overrides)
  c._read.clear()
  training.train_and_evaluate(c, str(tmp_path), build(c))
  read = set(c._read)
  for cell in rz.CELL_NAMES:
    for optimizer in training.OPTIMIZERS:
      for schedule in training.SCHEDULES:
        c = RecordingConfig(get_config("smoke"))
        c.update({"cell": cell, "optimizer": optimizer, "schedule": schedule,
                  **(branch_overrides or {})})
        c._read.clear()
        build(c)
        training.make_optimizer(c)
        read |= c._read
  return read


def assert_fields_commented(config_module, c):
  comments = common.field_comments(config_module)
  for key in c.keys():
    assert comments.get(key), f"config field {key} has no comment"


@pytest.mark.slow
def test_every_key_is_read(tmp_path):
  """One real run reads the loop's fields; the options of each branch
  (cells, optimizers, schedules) are read when that branch is chosen."""
  read = fields_read(tmp_path, lr_config.get_config, lr_workload.long_range,
                     {"num_steps": 2, "checkpoint_every": 1})
  unread = set(lr_config.get_config("smoke").keys()) - read
  assert not unread, f"config fields never read: {sorted(unread)}"


def test_unknown_preset():
  with pytest.raises(ValueError, match="unknown preset 'smok'"):
    lr_config.get_config("smok")


@pytest.mark.parametrize("override,message", [
    ("--config.hiden_size=3", "error: unknown config field 'hiden_size' Did you mean \"hidden_size\""),
    ("--config.cell=transformer", "error: config.cell must be one of ['rnn', 'irnn', 'lstm', 'gru', 'mingru', 'minlstm', 'lru', 'exprnn', 'indrnn', 'cornn'], got 'transformer'"),
    ("--config.hidden_size=0", "error: config.hidden_size must be a positive int, got 0"),
    ("--config.num_steps=-5", "error: config.num_steps must be a positive int, got -5"),
    ("--config.optimizer=lion", "error: config.optimizer must be one of ['sgd', 'momentum', 'rmsprop', 'adam', 'adamw', 'adagrad'], got 'lion'"),
    ("--config.task=sorting", "error: config.task must be one of ['adding', 'copy', 'variable_copy', 'digits', 'permuted_digits', 'mnist', 'permuted_mnist'], got 'sorting'"),
    ("--config.compute_dtype=float16", "error: config.compute_dtype must be one of ['float32', 'bfloat16'], got 'float16'"),
])
@pytest.mark.slow
def test_bad_config_is_one_line_and_nonzero(tmp_path, override, message):
  proc = helpers.run(tmp_path / "w", override, check=False, timeout=120)
  assert proc.returncode == 2
  last = proc.stderr.strip().splitlines()[-1]
  assert last == message or last.startswith(message), proc.stderr[-2000:]
  assert "Traceback" not in proc.stderr


# -- char_rnn ------------------------------------------------------------------
from experiments.char_rnn import config as cr_config  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.mark.parametrize("preset", ["", "smoke", "karpathy"])
def test_char_rnn_presets_build_and_every_field_is_commented(preset):
  c = cr_config.get_config(preset)
  c.max_chars = c.max_chars or 200_000   # building the vocabulary is all we need
  w = cr_workload.char_rnn(c)
  loop._check_training_config(c, w)
  training.make_optimizer(c)
  assert w.init_carry is not None and w.vocab["chars"]
  assert_fields_commented(cr_config, c)
  with pytest.raises(ValueError, match="unknown preset 'big'"):
    cr_config.get_config("big")


@pytest.mark.slow
def test_char_rnn_every_key_is_read(tmp_path):
  read = fields_read(tmp_path, cr_config.get_config, cr_workload.char_rnn,
                     {"num_steps": 2, "checkpoint_every": 1, "sample_every": 1},
                     {"chrono": True})
  unread = set(cr_config.get_config("smoke").keys()) - read
  assert not unread, f"config fields never read: {sorted(unread)}"
