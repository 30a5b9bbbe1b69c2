"""Fault injection: SIGTERM at every phase of a step (the train step, its
log row, its evaluation, its checkpoint), then the same command again: the
metrics, the trace and the params equal an uninterrupted run's."""

import json
import os
import signal

import pytest

from experiments.long_range import config as lr_config
from experiments.long_range import workload as lr_workload
import helpers
from rnn_zoo import training
from rnn_zoo.training import checkpoint as ckpt_lib
from rnn_zoo.training import loop
from rnn_zoo.training import metrics as metrics_lib
from rnn_zoo.training import preemption

pytestmark = pytest.mark.slow


def config():
  c = lr_config.get_config("smoke")
  c.update(dict(num_steps=12, log_every=2, eval_every=3, checkpoint_every=4,
                async_checkpoint=False))
  return c


def train(workdir):
  c = config()
  return training.train_and_evaluate(c, str(workdir), lr_workload.long_range(c))


def read(workdir, name):
  with open(workdir / name) as f:
    return [json.loads(l) for l in f]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("reference")
  train(workdir)
  return (helpers.final_params(workdir)[1], read(workdir, "metrics.jsonl"),
          read(workdir, "trace.jsonl"))


def _once(fn, when):
  """``fn`` that sends this process SIGTERM the first time ``when(args)``."""
  fired = []

  def wrapped(*args, **kwargs):
    if not fired and when(*args, **kwargs):
      fired.append(True)
      os.kill(os.getpid(), signal.SIGTERM)
    return fn(*args, **kwargs)
  return wrapped


PHASES = {
    # step 1: no log, eval or checkpoint of its own
    "train": (loop._LogWindow, "add", lambda self, step, m: step == 1),  # pylint: disable=protected-access
    "log": (metrics_lib.MetricWriter, "write",
            lambda self, step, scalars, split="train": step == 2 and split == "train"),
    "eval": (metrics_lib.MetricWriter, "write",
             lambda self, step, scalars, split="train": step == 3 and split == "eval"),
    "checkpoint": (ckpt_lib.Checkpointer, "save", lambda self, step, *a, **k: step == 4),
    "log_and_eval": (metrics_lib.MetricWriter, "write",
                     lambda self, step, scalars, split="train": step == 6 and split == "train"),
}


@pytest.mark.parametrize("phase", sorted(PHASES))
def test_a_signal_in_any_phase_of_a_step_loses_nothing(tmp_path, reference, monkeypatch, phase):
  cls, name, when = PHASES[phase]
  monkeypatch.setattr(cls, name, _once(getattr(cls, name), when))
  with pytest.raises(preemption.Preempted) as e:
    train(tmp_path)
  assert 1 <= e.value.step < 12
  monkeypatch.undo()
  train(tmp_path)
  ref_params, ref_rows, ref_trace = reference
  assert read(tmp_path, "metrics.jsonl") == ref_rows
  assert read(tmp_path, "trace.jsonl") == ref_trace
  helpers.assert_trees_equal(helpers.final_params(tmp_path)[1], ref_params)
