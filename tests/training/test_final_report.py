"""The final report (a binary's decoding, scoring and results) is part of the
run: the workdir stays locked and signals are watched until it is written."""

import dataclasses
import os
import signal

import pytest

from experiments.char_rnn import config as cr_config
from experiments.char_rnn import workload as cr_workload
from rnn_zoo import training
from rnn_zoo.training import preemption
from rnn_zoo.training import workdir as workdir_lib

pytestmark = pytest.mark.slow


def smoke():
  c = cr_config.get_config("smoke")
  c.update(dict(num_steps=20, eval_every=20, sample_every=20, checkpoint_every=10,
                async_checkpoint=False))
  return c


def signalling_workload(c):
  """The char-rnn workload whose sample hook (a host call the loop makes at
  the last step here, sample_every = num_steps) sends this process SIGTERM:
  a signal during the last step."""
  w = cr_workload.char_rnn(c)
  calls = []

  def sample(params, key):
    calls.append(1)
    if len(calls) == 1:
      os.kill(os.getpid(), signal.SIGTERM)
    return w.sample(params, key)

  return dataclasses.replace(w, sample=sample)


def test_a_signal_in_the_last_step_stops_before_the_report_and_rerun_writes_it(tmp_path):
  c = smoke()
  reports = []
  with pytest.raises(preemption.Preempted, match=r"received SIGTERM at the end of training "
                     r"\(step 20, checkpoint saved\): stopped before the final report"):
    training.train_and_evaluate(c, str(tmp_path), signalling_workload(c),
                                finish=lambda: reports.append("written"))
  assert reports == []
  from rnn_zoo.training import checkpoint  # pylint: disable=g-import-not-at-top
  assert checkpoint.load_latest(str(tmp_path))["step"] == 20
  # The rerun has nothing to train: it goes to the report.
  result = training.train_and_evaluate(c, str(tmp_path), cr_workload.char_rnn(c),
                                       finish=lambda: reports.append("written"))
  assert result["step"] == 20 and reports == ["written"]


def test_the_report_holds_the_workdir_and_a_signal_during_it_lets_it_finish(tmp_path, caplog):
  c = smoke()
  seen = {}

  def finish():
    # Another run on this workdir is refused while the report is written.
    with pytest.raises(workdir_lib.WorkdirBusyError):
      workdir_lib.WorkdirLock(str(tmp_path)).acquire()
    os.kill(os.getpid(), signal.SIGTERM)      # noted by the watcher, not fatal
    seen["finished"] = True

  with caplog.at_level("WARNING"):
    result = training.train_and_evaluate(c, str(tmp_path), cr_workload.char_rnn(c),
                                         finish=finish)
  assert result["step"] == 20 and seen == {"finished": True}
  assert "received SIGTERM during the final report; it was completed" in caplog.text
