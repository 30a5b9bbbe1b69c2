"""The wheel users install: typed (py.typed) and carrying the native
kernels' C++ sources it compiles on the user's machine."""

import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_holds_the_typing_marker_and_the_native_sources(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
       "--wheel-dir", str(tmp_path), str(ROOT)],
      capture_output=True, text=True, timeout=600, cwd=tmp_path)
  assert proc.returncode == 0, proc.stderr[-3000:]
  (wheel,) = tmp_path.glob("rnn_zoo-*.whl")
  names = set(zipfile.ZipFile(wheel).namelist())
  assert "rnn_zoo/py.typed" in names
  sources = {p.name for p in (ROOT / "rnn_zoo" / "native").iterdir()
             if p.suffix in (".cc", ".h")}
  assert sources and {f"rnn_zoo/native/{n}" for n in sources} <= names
  # The library only: experiments/, benchmarks/ and tests/ stay in the repository.
  assert not any(n.startswith(("experiments/", "benchmarks/", "tests/")) for n in names)
