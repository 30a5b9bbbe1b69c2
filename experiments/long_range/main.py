"""Trains a zoo cell on the adding or copy task. See config.py for launch lines."""

from experiments import launch
from experiments.long_range import config as experiment_config
from experiments.long_range import workload

main = launch.training_binary(
    "long_range", experiment_config, workload.long_range,
    workdir_holds="Checkpoints, logs, metrics.")

if __name__ == "__main__":
  main()
