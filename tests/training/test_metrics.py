"""The metric writer: TensorBoard events and metrics.jsonl, without PyTorch."""

import subprocess
import sys

import helpers
import pytest

pytestmark = pytest.mark.slow  # a subprocess

_PROGRAM = r"""
import glob, json, os, sys
from rnn_zoo.training import metrics
w = metrics.MetricWriter(sys.argv[1])
w.write(3, {"loss": 1.5})
w.close()
assert "torch" not in sys.modules, "tensorboardX pulled in torch"
rows = [json.loads(l) for l in open(os.path.join(sys.argv[1], "metrics.jsonl"))]
assert rows == [{"step": 3, "split": "train", "loss": 1.5}], rows
events = glob.glob(os.path.join(sys.argv[1], "tensorboard", "events.out.tfevents.*"))
assert len(events) == 1 and os.path.getsize(events[0]) > 0, events
import torch  # the absent-mark is gone: torch imports as usual afterwards
print("ok", torch.tensor([1.0]).sum().item())
"""


def test_the_writer_writes_events_without_importing_torch(tmp_path):
  proc = subprocess.run([sys.executable, "-c", _PROGRAM, str(tmp_path)],
                        cwd=helpers.ROOT, env=helpers.env(), capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.split() == ["ok", "1.0"]
