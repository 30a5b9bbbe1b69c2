"""Trains a VQA model, then answers, scores and reports. See config.py."""

from experiments import launch
from experiments.vqa import config as experiment_config
from experiments.vqa import evaluate
from experiments.vqa import workload

main = launch.training_binary(
    "vqa", experiment_config, workload.vqa,
    workdir_holds="Checkpoints, logs, metrics, predictions, report.",
    finish=evaluate.evaluate_run)

if __name__ == "__main__":
  main()
