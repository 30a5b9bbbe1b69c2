"""Trains a character-level language model (char-rnn). See config.py."""

from absl import flags
from ml_collections import config_flags

from experiments import common
from experiments import launch
from experiments.char_rnn import config as experiment_config
from rnn_zoo import training
from experiments.char_rnn import workload

_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, logs, metrics, samples.",
                               required=True)
_CONFIG = config_flags.DEFINE_config_file(
    "config", "experiments/char_rnn/config.py",
    common.describe_config(experiment_config), lock_config=True)


def train():
  config = _CONFIG.value
  return training.train_and_evaluate(config, _WORKDIR.value, workload.char_rnn(config))


def main():
  launch.run(train)


if __name__ == "__main__":
  main()
