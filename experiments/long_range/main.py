"""Trains a zoo cell on the adding or copy task. See config.py for launch lines."""

from absl import flags
from ml_collections import config_flags

from experiments import common
from experiments import launch
from experiments.long_range import config as experiment_config
from rnn_zoo import training
from experiments.long_range import workload

_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, logs, metrics.",
                               required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/long_range/config.py",
    common.describe_config(experiment_config), lock_config=True)


def train():
  config = _CONFIG.value
  return training.train_and_evaluate(config, _WORKDIR.value,
                                     workload.long_range(config))


def main():
  launch.run(train)


if __name__ == "__main__":
  main()
