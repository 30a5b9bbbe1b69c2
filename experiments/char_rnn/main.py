"""Trains a character-level language model (char-rnn). See config.py."""

from experiments import launch
from experiments.char_rnn import config as experiment_config
from experiments.char_rnn import workload

main = launch.training_binary(
    "char_rnn", experiment_config, workload.char_rnn,
    workdir_holds="Checkpoints, logs, metrics, samples.")

if __name__ == "__main__":
  main()
