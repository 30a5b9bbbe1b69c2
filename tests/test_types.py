"""The package type-checks clean with the pinned mypy (configured in
setup.cfg's [mypy] section: annotated functions are checked)."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _mypy(*args, cwd=ROOT):
  return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=cwd,
                        capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_mypy_is_clean_on_the_package(tmp_path):
  proc = _mypy("--config-file", str(ROOT / "setup.cfg"), "--cache-dir", str(tmp_path))
  assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
  assert "Success: no issues found" in proc.stdout


@pytest.mark.slow
def test_the_check_can_fail(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("def f(x: int) -> str:\n  return x\n")
  proc = _mypy("--config-file", str(ROOT / "setup.cfg"), "--cache-dir",
               str(tmp_path / "cache"), str(bad), cwd=tmp_path)
  assert proc.returncode == 1
  assert 'Incompatible return value type (got "int", expected "str")' in proc.stdout
