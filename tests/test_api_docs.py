"""The API reference (``make api``: pdoc, pinned in the "test" extra) builds
without a warning, and every public name has a docstring that gives the
shapes of the arrays it takes."""

import importlib
import inspect
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The modules a user imports names from (their __all__, else the public
# functions and classes they define).
MODULES = ["rnn_zoo", "rnn_zoo.nnx", "rnn_zoo.nn", "rnn_zoo.models", "rnn_zoo.runner",
           "rnn_zoo.gradflow", "rnn_zoo.decoding", "rnn_zoo.interop", "rnn_zoo.cells",
           "rnn_zoo.metrics", "rnn_zoo.data"]
# Arguments that are arrays wherever they appear in the public API.
ARRAY_ARGS = {"xs", "x", "tokens", "images", "captions", "questions", "logits", "inputs",
              "features", "lengths", "norms"}
# A shape in the docstring: ``[B, T, H]``, ``[batch, time, input]``, ``[*batch, H]``...
SHAPE = re.compile(r"\[[^\]]*\b(B|T|H|V|L|D|K|batch|time|hidden|features?|input)\b[^\]]*\]")


def _public(name):
  mod = importlib.import_module(name)
  names = getattr(mod, "__all__", None)
  if names is None:
    names = [n for n, v in vars(mod).items()
             if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v))
             and getattr(v, "__module__", "") == name]
  return [(f"{name}.{n}", getattr(mod, n)) for n in names
          if not inspect.ismodule(getattr(mod, n))]


def _problems(objects):
  out = []
  for qualname, obj in objects:
    doc = inspect.getdoc(obj) or ""
    if not doc.strip():
      out.append(f"{qualname}: no docstring")
      continue
    try:
      params = set(inspect.signature(obj).parameters)
    except (TypeError, ValueError):
      params = set()
    arrays = sorted(params & ARRAY_ARGS)
    if arrays and not SHAPE.search(doc):
      out.append(f"{qualname}: takes {arrays} but its docstring gives no shape")
  return out


def test_every_public_name_has_a_docstring_with_shapes():
  objects = [item for name in MODULES for item in _public(name)]
  assert len(objects) > 100
  assert not _problems(objects), "\n".join(_problems(objects))


def test_the_docstring_check_can_fail():
  def undocumented(xs):
    pass

  def shapeless(xs):
    """Runs over the inputs."""

  def shaped(xs):
    """Runs over ``xs`` ``[batch, time, input]``."""

  assert _problems([("u", undocumented), ("s", shapeless), ("ok", shaped)]) == [
      "u: no docstring", "s: takes ['xs'] but its docstring gives no shape"]


@pytest.mark.slow
def test_the_api_reference_builds_without_warnings(tmp_path):
  command = re.search(r"^api: .*\n\t(.*)$", (ROOT / "Makefile").read_text(), re.M).group(1)
  assert command == "$(VENV)/bin/python -m pdoc rnn_zoo rnn_zoo.training -o build/api"
  proc = subprocess.run([sys.executable, "-m", "pdoc", "rnn_zoo", "rnn_zoo.training",
                         "-o", str(tmp_path)],
                        cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  warnings = [l for l in proc.stderr.splitlines() if "Warn" in l or "Warning" in l]
  assert not warnings, "\n".join(warnings[:20])
  for page in ("rnn_zoo.html", "rnn_zoo/nnx.html", "rnn_zoo/runner.html",
               "rnn_zoo/models.html", "rnn_zoo/training.html"):
    assert (tmp_path / page).is_file(), page
  assert 'id="unroll"' in (tmp_path / "rnn_zoo/runner.html").read_text()
