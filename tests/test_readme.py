"""The README's Python examples run, and its test command is CI's."""

import pathlib
import re

ROOT = pathlib.Path(__file__).parent.parent


def test_readme_python_blocks_run():
  text = (ROOT / "README.md").read_text()
  blocks = re.findall(r"```python\n(.*?)```", text, re.S)
  assert blocks
  namespace = {}
  for block in blocks:
    exec(compile(block, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  assert namespace["ys"].shape[0] == 4


def test_ci_runs_the_readme_test_command():
  """CI must run exactly what the README tells a new user to run."""
  readme = (ROOT / "README.md").read_text()
  assert re.search(r"^make test +# ", readme, re.M)
  commands = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()
              if l.strip() and not l.startswith("#") and not l.startswith(("set ", "cd "))]
  assert commands == ["make test"]
  makefile = (ROOT / "Makefile").read_text()
  assert "TEST_EXTRAS ?= test" in makefile
  setup = (ROOT / "setup.cfg").read_text()
  test_extra = setup.split("\ntest =\n")[1].split("\n\n")[0].split("\n#")[0]
  for package in ("pytest", "torch", "scikit-learn"):
    assert package in test_extra, package
