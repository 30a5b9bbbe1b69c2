"""tensorflow-datasets' own catalogue datasets (tiny_shakespeare,
coco_captions, ...): an optional extra. Preparing them needs TensorFlow and
the internet; offline, tfds retries downloads for minutes, so
:func:`catalog_builder` checks both first and fails in seconds, saying what
to do instead."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import socket
import tempfile
import types
from typing import Any, Callable

import numpy as np

from rnn_zoo.errors import UserError

HOST = ("storage.googleapis.com", 443)


def online(host: str = HOST[0], port: int = HOST[1], timeout: float = 3.0) -> bool:
  """Whether a TCP connection to ``host:port`` opens within ``timeout`` s."""
  try:
    socket.create_connection((host, port), timeout=timeout).close()
    return True
  except OSError:
    return False


def catalog_builder(name: str, data_dir: str | None, *, what: str, alternative: str,
                    **builder_kwargs: Any) -> Any:
  """tfds's builder for catalogue dataset ``name``, prepared.

  Args:
    name: the tfds name (``"coco_captions"``).
    data_dir: the tfds data dir (None: tfds's default).
    what: how the error names the request (``"corpus 'tiny_shakespeare'"``).
    alternative: what the user can do without it (ends each error).
    **builder_kwargs: passed to ``tfds.builder`` (``file_format`` ...).

  Raises:
    UserError: within seconds, when tensorflow-datasets or TensorFlow is
      missing, or the dataset is not prepared and the internet cannot be
      reached.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError(f"{what} needs tensorflow-datasets: pip install -e '.[tfds]' "
                    f"tensorflow; {alternative}") from None
  try:
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    raise UserError(f"{what} needs TensorFlow to prepare and read tfds's catalogue "
                    f"datasets: pip install tensorflow; {alternative}") from None
  root = os.path.expanduser(data_dir or os.environ.get(
      "TFDS_DATA_DIR", os.path.join("~", "tensorflow_datasets")))
  # name/version/ or name/config/version/ holds dataset_info.json once prepared.
  prepared = (glob.glob(os.path.join(root, name, "*", "dataset_info.json"))
              or glob.glob(os.path.join(root, name, "*", "*", "dataset_info.json")))
  if not prepared and not online():
    raise UserError(
        f"{what} is not prepared in {root} and the internet is unreachable "
        f"({HOST[0]}:{HOST[1]}): prepare it on a connected machine with `python -c "
        f"\"import tensorflow_datasets as tfds; tfds.builder('{name}')"
        f".download_and_prepare()\"` and copy the tfds data dir over, {alternative}")
  with _no_leaked_tempdirs():
    builder = tfds.builder(name, data_dir=data_dir, **builder_kwargs)
  if not os.path.isfile(os.path.join(builder.data_dir, "dataset_info.json")):
    builder.download_and_prepare()
  return builder


def import_tfds(what: str) -> types.ModuleType:
  """The ``tensorflow_datasets`` module, or a one-line error naming ``what``
  needs it (a dependency of rnn_zoo: installed unless removed)."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError(f"{what} needs tensorflow-datasets, a dependency of rnn_zoo: "
                    "reinstall it (pip install -e .)") from None
  return tfds


def generated_builder(class_name: str, *, what: str, description: str, sizes: dict,
                      features: Any, generate: Callable[[str, int], dict]) -> type:
  """A tfds builder class for a dataset the zoo generates (no download).

  Args:
    class_name: the class's name, from which tfds names the dataset
      (``"ShapeCaptions"`` -> ``shape_captions``).
    what: the data, for the error when tfds is missing.
    description: the dataset's description.
    sizes: ``{config name: {split: number of examples}}``.
    features: ``features(tfds) -> {name: tfds feature}``; an int64
      ``index`` (the example's number in its split) is added.
    generate: ``generate(split, i) -> {name: value}``, example ``i``.
  """
  tfds = import_tfds(what)

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, description=description,
        features=tfds.features.FeaturesDict(
            {"index": tfds.features.Scalar(dtype=np.int64), **features(tfds)}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split, n)
            for split, n in sizes[self.builder_config.name].items()}

  def _generate_examples(self, split, n):
    for i in range(n):
      yield i, {"index": i, **generate(split, i)}

  return type(class_name, (tfds.core.GeneratorBasedBuilder,), {
      "__doc__": description, "__module__": __name__,
      "VERSION": tfds.core.Version("1.0.0"),
      "BUILDER_CONFIGS": [tfds.core.BuilderConfig(name=n, description=f"{s}")
                          for n, s in sizes.items()],
      "_info": _info, "_split_generators": _split_generators,
      "_generate_examples": _generate_examples})


@contextlib.contextmanager
def _no_leaked_tempdirs():
  """Removes the empty ``/tmp/tmp*tfds`` folders tfds makes while it looks
  for precomputed dataset info (``DatasetInfo.initialize_from_bucket``
  creates one per builder and leaves it, empty, when there is nothing to
  fetch). Only folders that appear during the block and are empty go."""
  root = tempfile.gettempdir()
  listing = lambda: {n for n in os.listdir(root) if n.startswith("tmp") and n.endswith("tfds")}
  before = listing()
  try:
    yield
  finally:
    for name in listing() - before:
      try:
        os.rmdir(os.path.join(root, name))   # only if empty
      except OSError:
        pass


def prepare_own(builder_class: type, data_dir: str, config: str) -> dict:
  """``{split: data source}`` of one of the project's generated builders,
  prepared as array_record into ``data_dir`` on first use (no download, no
  TensorFlow). Runs started together prepare it once: the first holds a
  lock file in ``data_dir`` while it writes, the others wait and read."""
  tfds = import_tfds(builder_class.__name__)
  tfds.disable_progress_bar()
  os.makedirs(data_dir, exist_ok=True)
  lock_path = os.path.join(data_dir, f".{builder_class.__name__}-{config}.lock")
  with open(lock_path, "w", encoding="utf-8") as lock:
    # (Two preparations at once both wrote, and the second crashed renaming
    # its finished folder onto the first's.)
    fcntl.flock(lock, fcntl.LOCK_EX)
    with _no_leaked_tempdirs():
      builder = builder_class(data_dir=data_dir, config=config, file_format="array_record")
      builder.download_and_prepare()
  return dict(builder.as_data_source())
