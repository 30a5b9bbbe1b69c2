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


def _unannotated_public_functions():
  """``path:line name`` of every public function or public class's method
  (``__init__`` and ``__call__`` included) missing an argument or return
  annotation (``self``/``cls`` and ``__init__``'s return excepted)."""
  import ast
  missing = []
  for path in sorted((ROOT / "rnn_zoo").rglob("*.py")):
    tree = ast.parse(path.read_text())
    for node in tree.body:
      funcs = [node] if isinstance(node, ast.FunctionDef) else []
      if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
        funcs += [n for n in node.body if isinstance(n, ast.FunctionDef)]
      for f in funcs:
        if f.name.startswith("_") and f.name not in ("__init__", "__call__"):
          continue
        args = [a for a in f.args.posonlyargs + f.args.args + f.args.kwonlyargs
                if a.arg not in ("self", "cls")]
        args += [a for a in (f.args.vararg, f.args.kwarg) if a is not None]
        if (any(a.annotation is None for a in args)
            or (f.returns is None and f.name != "__init__")):
          missing.append(f"{path.relative_to(ROOT)}:{f.lineno} {f.name}")
  return missing


def test_every_public_function_is_annotated():
  assert _unannotated_public_functions() == []


def test_the_annotation_check_can_fail(tmp_path, monkeypatch):
  pkg = tmp_path / "rnn_zoo"
  pkg.mkdir()
  (pkg / "m.py").write_text(
      "def ok(x: int) -> int:\n  return x\n\n"
      "def _private(x):\n  return x\n\n"
      "class C:\n  def method(self, y):\n    return y\n\n"
      "def star(*args: int, **kw) -> None:\n  pass\n")
  monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
  assert _unannotated_public_functions() == ["rnn_zoo/m.py:8 method",
                                             "rnn_zoo/m.py:11 star"]
