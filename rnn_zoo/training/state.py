"""The train state: everything a checkpoint must hold to resume exactly."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax


@flax.struct.dataclass
class TrainState:
  """Params, optimizer state, step and RNG key (raw uint32 key data, so it
  checkpoints like any array), and for stateful workloads (char-rnn's
  truncated BPTT across batches) the model's recurrent carry, sharded like
  the batch."""
  step: jax.Array          # int32 scalar: updates applied so far.
  params: Any              # the model's params pytree.
  opt_state: Any           # the optax state.
  key: jax.Array           # uint32 key data; per-step keys fold in the step.
  nonfinite_steps: jax.Array  # int32: updates skipped for a non-finite loss/grad.
  carry: Any = None        # the recurrent state carried to the next batch.
