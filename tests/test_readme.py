"""The README's Python examples run, in order, in one namespace."""

import pathlib
import re


def test_readme_python_blocks_run():
  text = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
  blocks = re.findall(r"```python\n(.*?)```", text, re.S)
  assert len(blocks) >= 4
  namespace = {}
  for block in blocks:
    exec(compile(block, "README.md", "exec"), namespace)  # pylint: disable=exec-used
  assert namespace["ys"].shape[0] == 4
