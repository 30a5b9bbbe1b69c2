"""Trains a VQA model, then answers, scores and reports. See config.py."""

from absl import flags
from ml_collections import config_flags

from experiments import common
from experiments import launch
from experiments.vqa import config as experiment_config
from experiments.vqa import evaluate
from experiments.vqa import workload
from rnn_zoo import training

_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, logs, metrics, predictions, "
                               "report.", required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/vqa/config.py",
    common.describe_config(experiment_config), lock_config=True)


def train():
  config = _CONFIG.value
  task = workload.vqa(config)
  result = training.train_and_evaluate(config, _WORKDIR.value, task.workload)
  evaluate.evaluate_run(config, _WORKDIR.value, task)
  return result


def main():
  launch.run(train)


if __name__ == "__main__":
  main()
