"""The one set of argument validators; every message names the argument and
its value, and every failure is a :class:`rnn_zoo.UserError`.

``name`` is what the user typed: ``"hidden_size"`` for a library argument,
``"config.hidden_size"`` for a config field, ``"--top_k"`` for a flag.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rnn_zoo.errors import UserError


def _is_int(value) -> bool:
  return not isinstance(value, bool) and isinstance(value, (int, np.integer))


def positive_int(name: str, value: Any) -> None:
  if not _is_int(value) or value <= 0:
    raise UserError(f"{name} must be a positive int, got {value!r}")


def int_at_least(name: str, value: Any, low: int, note: str = "") -> None:
  """An int ``>= low``; ``note`` explains a special value (e.g. "0: off")."""
  if not _is_int(value) or value < low:
    extra = f" ({note})" if note else ""
    raise UserError(f"{name} must be an int >= {low}{extra}, got {value!r}")


def choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
  if value not in allowed:
    raise UserError(f"{name} must be one of {list(allowed)}, got {value!r}")


def number_at_least(name: str, value: Any, low: float) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
      or not value >= low:
    raise UserError(f"{name} must be a number >= {low}, got {value!r}")


def positive_number(name: str, value: Any) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
      or not value > 0:
    raise UserError(f"{name} must be > 0, got {value!r}")


def fraction(name: str, value: Any) -> None:
  """A number in ``[0, 1)`` (a dropout rate, a held-out fraction)."""
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
      or not 0.0 <= value < 1.0:
    raise UserError(f"{name} must be in [0, 1), got {value!r}")


def json_int(what: str, value: Any) -> int:
  """An integer read from a file: a JSON number that is an int (not a bool,
  float or string of one); ``what`` names it in the error."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise UserError(f"{what} must be an integer, got {value!r} ({type(value).__name__})")
  return int(value)


def file_inside(folder: str, name: Any, what: str) -> str:
  """``folder/name`` for a relative file name from a data file; a name that
  is not a string, is absolute or leads outside ``folder`` (``..``, a
  symlink) is an error naming it."""
  import os  # pylint: disable=g-import-not-at-top
  if not isinstance(name, str) or not name:
    raise UserError(f"{what} must be a file name, got {name!r}")
  if os.path.isabs(name):
    raise UserError(f"{what} {name!r} is an absolute path; it must name a file "
                    f"inside {folder!r}")
  root = os.path.realpath(folder)
  path = os.path.realpath(os.path.join(folder, name))
  if os.path.commonpath([root, path]) != root:
    raise UserError(f"{what} {name!r} leads outside {folder!r}")
  return os.path.join(folder, name)


def take_rows(table: Any, ids: Any) -> Any:
  """``table[ids]`` (rows of an embedding or a weight) with NaN rows for ids
  outside ``[0, len(table))``: the one token guard of the models. Concrete
  ids are checked before (:func:`ids_in_range`, an error naming them); under
  ``jit`` a bad id poisons the loss, which the training loop's non-finite
  check stops on, instead of reading a clamped or wrapped-around row
  (``jnp.take`` wraps -1 to the last row)."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  size = table.shape[0]
  valid = (ids >= 0) & (ids < size)
  rows = jnp.take(table, jnp.clip(ids, 0, size - 1), axis=0)
  return jnp.where(valid[..., None], rows, jnp.asarray(jnp.nan, rows.dtype))


def ids_in_range(name: str, ids: Any, size: int, size_name: str = "vocab_size") -> None:
  """Concrete integer ids lie in ``[0, size)`` (JAX clamps out-of-range
  indices silently). Traced ids (under ``jit``) are not checked here."""
  import jax  # pylint: disable=g-import-not-at-top
  if isinstance(ids, jax.core.Tracer):
    return
  arr = np.asarray(ids)
  bad = arr[(arr < 0) | (arr >= size)]
  if bad.size:
    raise UserError(f"{name} must lie in [0, {size_name}={size}), got "
                    f"{sorted(set(bad.tolist()))[:10]}")


def optional_bool(name: str, value: Any) -> None:
  """``value`` is None, True or False (e.g. ``deterministic``)."""
  if value is not None and not isinstance(value, (bool, np.bool_)):
    raise UserError(f"{name} must be None, True or False, got {value!r}")


def use_dropout(rate: float, deterministic: bool | None, *, has_key: bool) -> bool:
  """The zoo's one dropout rule, for every ``apply``/``step``/``__call__``
  that takes ``deterministic``: None (every default) means dropout exactly
  when randomness is given (a ``key``, or a Flax ``"dropout"`` RNG stream);
  True means none; False means dropout, and then the key is required."""
  optional_bool("deterministic", deterministic)
  if rate <= 0 or deterministic:
    return False
  if deterministic is None:
    return has_key
  if not has_key:
    raise UserError(f"key is required for dropout_rate={rate} with "
                    "deterministic=False, got key=None")
  return True
