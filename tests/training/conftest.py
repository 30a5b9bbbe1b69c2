import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2]))

import pytest  # noqa: E402  (after the path setup above)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """A tfds data dir for the generated datasets, one per test module."""
  return tmp_path_factory.mktemp("tfds")
