"""Reading image files for the caption and question loaders: one error
naming the file for anything PIL cannot decode, a bound on the pixel count
(decompression bombs), and a decode check at preparation whose results are
cached, so that a bad file stops the run at its start, not mid-training.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import warnings
from typing import Iterable

import numpy as np

from rnn_zoo import cache
from rnn_zoo.errors import UserError

# The largest image the loaders decode, in pixels: PIL's own default bound
# (about 89.5 million, e.g. 9,459 x 9,459). A larger file, or one whose
# header claims more, is refused as a possible decompression bomb.
MAX_IMAGE_PIXELS = 89_478_485


def _decode(path: str):
  """The opened and fully decoded RGB image (PIL), or a UserError naming
  ``path``."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      with Image.open(path) as im:
        if im.width * im.height > MAX_IMAGE_PIXELS:
          raise UserError(f"image file {path!r} is {im.width} x {im.height} pixels, over "
                          f"the loaders' bound of {MAX_IMAGE_PIXELS:,} (a decompression "
                          "bomb?)")
        return im.convert("RGB")   # decodes every pixel: a truncated file fails here
  except UserError:
    raise
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    raise UserError(f"image file {path!r} is too large to decode safely: {e}") from None
  except (OSError, SyntaxError, ValueError, EOFError) as e:
    raise UserError(f"image file {path!r} cannot be read as an image "
                    f"({type(e).__name__}: {e})") from None


def read_rgb(path: str, size: int) -> np.ndarray:
  """``uint8 [size, size, 3]``: the image at ``path`` resized (bilinear)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  im = _decode(path)
  if im.size != (size, size):
    im = im.resize((size, size), Image.Resampling.BILINEAR)
  return np.asarray(im, np.uint8)


def _record_path(folder: str) -> pathlib.Path:
  key = hashlib.sha256(os.path.realpath(folder).encode()).hexdigest()[:16]
  return cache.root() / "checked_images" / f"{key}.json"


def _stamp(path: str) -> list[int]:
  st = os.stat(path)
  return [st.st_size, st.st_mtime_ns]


def check_images(folder: str, names: Iterable[str]) -> int:
  """Decodes every image ``folder/name`` once; raises a UserError naming the
  first file that cannot be read. Files already checked with the same size
  and modification time are skipped (the record lives in the zoo's cache,
  ``$RNN_ZOO_CACHE/checked_images``). Returns how many files were decoded."""
  record_path = _record_path(folder)
  try:
    record = json.loads(record_path.read_text())
    if not isinstance(record, dict):
      record = {}
  except (OSError, ValueError):
    record = {}
  decoded = 0
  try:
    for name in dict.fromkeys(names):
      path = os.path.join(folder, name)
      stamp = _stamp(path)
      if record.get(name) == stamp:
        continue
      _decode(path)
      record[name] = stamp
      decoded += 1
  finally:
    if decoded:
      try:
        record_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = record_path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, record_path)
      except OSError:
        pass  # an unwritable cache only costs a re-check next time
  return decoded
