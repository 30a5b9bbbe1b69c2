"""Each binary's train step and eval step trace (and so compile) once for a
whole run: a step that retraces (a Python value that changes with the step,
a shape that drifts) would recompile at every step and hide in the timings.
The runs go through train_and_evaluate, as the binaries do."""

import pytest

from rnn_zoo.training import loop

from experiments.captioning import config as cap_config
from experiments.char_rnn import config as char_config
from experiments.long_range import config as lr_config
from experiments.vqa import config as vqa_config

pytestmark = pytest.mark.slow


def _long_range(data_dir):
  del data_dir
  from experiments.long_range import workload  # pylint: disable=g-import-not-at-top
  c = lr_config.get_config("smoke")
  return c, lambda c: workload.long_range(c)


def _char_rnn(data_dir):
  del data_dir
  from experiments.char_rnn import workload  # pylint: disable=g-import-not-at-top
  c = char_config.get_config("smoke")
  return c, lambda c: workload.char_rnn(c)


def _captioning(data_dir):
  from experiments.captioning import workload  # pylint: disable=g-import-not-at-top
  c = cap_config.get_config("smoke")
  c.update({"data_dir": str(data_dir), "mode": "hard"})
  return c, lambda c: workload.captioning(c).workload


def _vqa(data_dir):
  from experiments.vqa import workload  # pylint: disable=g-import-not-at-top
  c = vqa_config.get_config("smoke")
  c.update({"data_dir": str(data_dir), "fusion": "attention"})
  return c, lambda c: workload.vqa(c).workload


BINARIES = {"long_range": _long_range, "char_rnn": _char_rnn,
            "captioning": _captioning, "vqa": _vqa}


@pytest.mark.parametrize("binary", sorted(BINARIES))
def test_train_and_eval_steps_trace_once_per_run(binary, tmp_path, data_dir, monkeypatch):
  traces = {"train": 0, "eval": 0}

  def counting(kind, make):
    def make_counted(*args, **kwargs):
      step = make(*args, **kwargs)
      def counted(*a, **k):
        traces[kind] += 1  # Python runs here only while jit traces
        return step(*a, **k)
      return counted
    return make_counted

  monkeypatch.setattr(loop, "make_train_step", counting("train", loop.make_train_step))
  monkeypatch.setattr(loop, "make_eval_step", counting("eval", loop.make_eval_step))
  c, build = BINARIES[binary](data_dir)
  # Steps of every kind: plain, logged, evaluated, checkpointed, the last.
  c.update({"num_steps": 6, "log_every": 1, "eval_every": 2, "checkpoint_every": 3})
  result = loop.train_and_evaluate(c, str(tmp_path / "run"), build(c))
  assert result["step"] == 6
  assert traces == {"train": 1, "eval": 1}, traces
