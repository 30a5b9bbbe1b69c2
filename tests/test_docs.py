"""The runnable examples in the docstrings and in docs/*.md run and print
what they say."""

import doctest
import importlib
import pathlib
import re

import pytest

MODULES = ["rnn_zoo", "rnn_zoo.cells", "rnn_zoo.cells.attention", "rnn_zoo.nn.encoders",
           "rnn_zoo.cells.simple_rnn", "rnn_zoo.cells.lstm",
           "rnn_zoo.cells.gru", "rnn_zoo.cells.linear", "rnn_zoo.parallel", "rnn_zoo.runner.api", "rnn_zoo.runner.inputs",
           "rnn_zoo.runner.select", "rnn_zoo.runner.stack", "rnn_zoo.nn.recurrent",
           "rnn_zoo.interop", "rnn_zoo.decoding", "rnn_zoo.models.sequence",
           "rnn_zoo.models.char_lm", "rnn_zoo.cudnn", "rnn_zoo.nnx",
           "rnn_zoo.nnx.recurrent", "rnn_zoo.nnx.models"]
DOCS = pathlib.Path(__file__).parent.parent / "docs"


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
  module = importlib.import_module(name)
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0, f"{name} has no runnable example"
  assert result.failed == 0


def test_every_docs_page_is_linked_from_the_readme():
  readme = (DOCS.parent / "README.md").read_text()
  pages = sorted(p.name for p in DOCS.glob("*.md"))
  assert pages == ["captioning.md", "char_lm.md", "gradient_flow.md", "library.md",
                   "parallel_scan.md", "performance.md", "training.md", "vqa.md"]
  for page in pages:
    assert f"(docs/{page})" in readme, page


@pytest.mark.slow
@pytest.mark.parametrize("page", ["library.md", "gradient_flow.md", "captioning.md",
                                  "vqa.md", "parallel_scan.md"])
def test_docs_python_blocks_run(page):
  blocks = re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), re.S)
  assert blocks, f"docs/{page} has no Python example"
  namespace = {}
  for block in blocks:
    exec(compile(block, f"docs/{page}", "exec"), namespace)  # pylint: disable=exec-used


def test_every_report_folder_is_in_the_reports_index():
  index = (DOCS / "reports" / "README.md").read_text()
  listed = re.findall(r"^\| \[(\w+)\]\((\w+)/report\.md\) \|", index, re.M)
  assert all(a == b for a, b in listed)
  folders = sorted(p.name for p in (DOCS / "reports").iterdir() if p.is_dir())
  assert sorted(a for a, _ in listed) == folders
  for name in folders:
    assert (DOCS / "reports" / name / "report.md").is_file(), name


def test_relative_links_in_the_docs_resolve():
  bad = []
  for page in [DOCS.parent / "README.md", *sorted(DOCS.rglob("*.md"))]:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
      if not target.startswith(("http://", "https://")) and not (page.parent / target).exists():
        bad.append(f"{page.relative_to(DOCS.parent)}: {target}")
  assert not bad, "\n".join(bad)
