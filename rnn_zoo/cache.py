"""The zoo's on-disk cache: ``$RNN_ZOO_CACHE`` or ``~/.cache/rnn_zoo``.

It holds what is costly to make and safe to remake: the native kernels
(``native/``) and the embedded text corpus (``corpora/``). Deleting it is
always safe; an unwritable cache only costs time.
"""

from __future__ import annotations

import os
import pathlib
import tempfile


def root() -> pathlib.Path:
  """The cache folder (not created here)."""
  return pathlib.Path(os.environ.get("RNN_ZOO_CACHE") or os.path.join(
      os.path.expanduser("~"), ".cache", "rnn_zoo"))


def write_atomically(path: pathlib.Path, data: bytes) -> bool:
  """Writes ``data`` to ``path`` through a temporary file and a rename, so a
  reader never sees half a file; False (nothing written) where the folder
  cannot be made or written."""
  try:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
      with os.fdopen(fd, "wb") as f:
        f.write(data)
      os.replace(tmp, path)
    except BaseException:
      os.unlink(tmp)
      raise
  except OSError:
    return False
  return True
