"""Names that moved, kept importable from their old module for one release.

A module whose functions moved ends with
``__getattr__ = compat.moved(__name__, {"name": "new.module", ...})``:
reading ``old.name`` then returns the new object with a DeprecationWarning
that names the new place.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable


def moved(module: str, names: dict[str, str]) -> Callable[[str], Any]:
  """A module ``__getattr__`` for the ``names`` that moved to new modules."""

  def __getattr__(name: str) -> Any:  # pylint: disable=invalid-name
    if name not in names:
      raise AttributeError(f"module {module!r} has no attribute {name!r}")
    warnings.warn(f"{module}.{name} is deprecated and will be removed in the next "
                  f"release; use {names[name]}.{name}", DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(names[name]), name)

  return __getattr__
