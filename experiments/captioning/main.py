"""Trains a captioner, then decodes, scores and reports. See config.py."""

from experiments import launch
from experiments.captioning import config as experiment_config
from experiments.captioning import evaluate
from experiments.captioning import workload

main = launch.training_binary(
    "captioning", experiment_config, workload.captioning,
    workdir_holds="Checkpoints, logs, metrics, captions, report.",
    finish=evaluate.evaluate_run)

if __name__ == "__main__":
  main()
