"""Training infrastructure: train state, optax, sharding, orbax, logging."""

from rnn_zoo.training.checkpoint import (CheckpointError, Checkpointer,
                                         ConfigMismatchError, load_latest)
from rnn_zoo.training.loop import NonFiniteError, Workload, train_and_evaluate
from rnn_zoo.training.optim import OPTIMIZERS, SCHEDULES, clip_stats, make_optimizer
from rnn_zoo.training.sharding import initialize_distributed, make_mesh
from rnn_zoo.training.preemption import Preempted
from rnn_zoo.training.state import TrainState
from rnn_zoo.training.workdir import WorkdirBusyError

__all__ = ["train_and_evaluate", "Workload", "TrainState", "Checkpointer",
           "CheckpointError", "ConfigMismatchError", "NonFiniteError",
           "load_latest", "make_optimizer", "clip_stats", "make_mesh",
           "initialize_distributed", "OPTIMIZERS", "SCHEDULES", "Preempted",
           "WorkdirBusyError"]
