"""Data parallelism over every device, and over processes / hosts.

The batch is sharded along a ``data`` mesh axis, params are replicated. With
several processes (``jax.distributed``), the mesh spans every process's
devices, and each process computes only its own shard of every batch
(batches are generated inside jit with ``out_shardings``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from absl import logging
from rnn_zoo.errors import UserError


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Starts ``jax.distributed`` when asked (or on a cluster JAX detects).

  On CPU, collectives across processes go through gloo.
  """
  if coordinator_address is None and num_processes is None and process_id is None:
    return
  if num_processes is not None and num_processes < 1:
    raise UserError(f"num_processes must be >= 1, got {num_processes}")
  if (process_id is not None and num_processes is not None
      and not 0 <= process_id < num_processes):
    raise UserError(
        f"process_id must be in [0, num_processes={num_processes}), got {process_id}")
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address=coordinator_address,
                             num_processes=num_processes, process_id=process_id)
  logging.info("process %d of %d; %d local / %d global devices",
               jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())


def make_mesh() -> Mesh:
  """A 1-D ``data`` mesh over every device of every process."""
  return Mesh(np.asarray(jax.devices()), ("data",))


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise UserError(
        f"batch_size={batch_size} does not divide evenly over {n} devices; "
        f"use a multiple of {n}")


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def state_shardings(shapes: Any, mesh: Mesh) -> Any:
  """Shardings for a ``TrainState`` shaped like ``shapes``: everything
  replicated but the carry, which is sharded along ``data`` like the batch."""
  repl, data = replicated(mesh), batch_sharding(mesh)
  return jax.tree.map(lambda _: repl, shapes).replace(
      carry=jax.tree.map(lambda _: data, shapes.carry))


def place_host_batch(batch: Any, sharding: NamedSharding) -> Any:
  """A global batch of NumPy arrays (the same on every process) as arrays
  sharded along ``data``: each process puts only its own rows on its
  devices."""
  n, i = jax.process_count(), jax.process_index()

  def place(a):
    a = np.asarray(a)
    rows = a.shape[0] // n
    local = a[i * rows:(i + 1) * rows]
    return jax.make_array_from_process_local_data(sharding, local, a.shape)
  return jax.tree.map(place, batch)
