"""No module of the library imports a layer above its own (read from the
source, lazy imports inside functions included)."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "rnn_zoo"

# Lower number: lower layer. A unit is rnn_zoo.<first component>.
LAYERS = [
    ["errors", "cache", "compat"],
    ["checks", "xla_config"],
    ["cells", "parallel", "native", "cudnn", "decoding"],
    ["runner"],
    ["nn", "interop", "gradflow"],
    ["data"],
    ["metrics"],
    ["models"],
    ["nnx"],
    ["training"],
]
LAYER = {f"rnn_zoo.{name}": i for i, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
  return ".".join(module.split(".")[:2])


def _imports(path: pathlib.Path):
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rnn_zoo"):
      if node.module == "rnn_zoo":
        yield from (f"rnn_zoo.{a.name}" for a in node.names)
      else:
        yield _unit(node.module)
    elif isinstance(node, ast.Import):
      yield from (_unit(a.name) for a in node.names if a.name.startswith("rnn_zoo"))


def test_every_module_has_a_layer_and_imports_only_lower_layers():
  bad = []
  for path in sorted(ROOT.rglob("*.py")):
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    if len(parts) == 1:  # rnn_zoo/__init__.py re-exports everything
      continue
    unit = _unit(".".join(parts))
    assert unit in LAYER, f"{path}: {unit} has no layer in LAYERS"
    for target in _imports(path):
      if target != unit and LAYER[target] >= LAYER[unit]:
        bad.append(f"{rel}: imports {target} (layer {LAYER[target]} >= {LAYER[unit]})")
  assert not bad, "\n".join(bad)


def test_the_check_can_fail(tmp_path, monkeypatch):
  """A planted upward import is found."""
  fake = tmp_path / "rnn_zoo"
  (fake / "cells").mkdir(parents=True)
  (fake / "cells" / "bad.py").write_text("from rnn_zoo.training import loop\n")
  monkeypatch.setattr(__import__(__name__), "ROOT", fake)
  try:
    test_every_module_has_a_layer_and_imports_only_lower_layers()
  except AssertionError as e:
    assert "rnn_zoo/cells/bad: imports rnn_zoo.training (layer 9 >= 2)" in str(e)
  else:
    raise AssertionError("the upward import was not found")
