"""The wheel users install: typed (py.typed) and carrying the native
kernels' C++ sources it compiles on the user's machine."""

import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _pip(*args, cwd):
  proc = subprocess.run([sys.executable, "-m", "pip", *args],
                        capture_output=True, text=True, timeout=600, cwd=cwd)
  assert proc.returncode == 0, proc.stderr[-3000:]


def _build_wheel(folder: pathlib.Path) -> pathlib.Path:
  _pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(folder),
       str(ROOT), cwd=folder.parent)
  (wheel,) = folder.glob("rnn_zoo-*.whl")
  return wheel


@pytest.mark.slow
def test_the_wheel_holds_the_typing_marker_and_the_native_sources(tmp_path):
  wheel = _build_wheel(tmp_path / "wheels")
  names = set(zipfile.ZipFile(wheel).namelist())
  assert "rnn_zoo/py.typed" in names
  sources = {p.name for p in (ROOT / "rnn_zoo" / "native").iterdir()
             if p.suffix in (".cc", ".h")}
  assert sources and {f"rnn_zoo/native/{n}" for n in sources} <= names
  # The library only: experiments/, benchmarks/ and tests/ stay in the repository.
  assert not any(n.startswith(("experiments/", "benchmarks/", "tests/")) for n in names)


_INSTALLED_CHECK = r'''
import os, sys
import jax, jax.numpy as jnp, numpy as np
import rnn_zoo as rz
assert rz.__file__.startswith(os.environ["SITE"]), rz.__file__
assert not os.path.exists(os.path.join(os.path.dirname(rz.__file__), "..", "setup.cfg"))
from rnn_zoo import native
from rnn_zoo.native.__main__ import main
assert all(str(p).startswith(os.environ["SITE"]) for p in native.sources())
# The explicit build step (what make runs after installing), into the empty
# cache: it compiles the installed sources.
assert main(["build"]) == 0
assert native.load_error() is None, native.load_error()
xs = jax.random.normal(jax.random.key(0), (3, 7, 4))
for cell, impls in ((rz.LSTM(5), ("scan", "fused", "native")),
                    (rz.MinGRU(5), ("scan", "parallel", "parallel_log"))):
  params = cell.init(jax.random.key(1), 4)
  want = rz.unroll(cell, params, xs, impl="scan")[0]
  for impl in impls:
    got = jax.jit(lambda p, x, impl=impl: rz.unroll(cell, p, x, impl=impl)[0])(params, xs)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)
    print(type(cell).__name__, impl, "ok")
'''


@pytest.mark.slow
def test_the_installed_wheel_builds_its_kernels_and_runs_every_cpu_impl(tmp_path):
  """pip installs the wheel into a fresh environment outside the repository
  (the dependencies seen through a .pth file onto this environment's
  site-packages); there it compiles the native kernels from its package
  data into an empty cache (through the explicit build step,
  ``python -m rnn_zoo.native build``) and runs one jitted unroll per CPU
  impl."""
  wheel = _build_wheel(tmp_path / "wheels")
  site = tmp_path / "site"
  _pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheel), cwd=tmp_path)
  deps = next(p for p in map(pathlib.Path, sys.path)
              if p.name == "site-packages" and (p / "jax").is_dir())
  (site / "deps.pth").write_text(str(deps) + "\n")
  env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SITE": str(site),
         "RNN_ZOO_CACHE": str(tmp_path / "cache"), "JAX_PLATFORMS": "cpu"}
  # -S: no site-packages of the interpreter (so no editable install of the
  # repository); the fresh site folder is added as a site dir (its .pth read).
  proc = subprocess.run(
      [sys.executable, "-S", "-c",
       f"import site; site.addsitedir({str(site)!r}); exec({_INSTALLED_CHECK!r})"],
      capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  built = next(l for l in proc.stdout.splitlines() if l.startswith("rnn_zoo.native: "))
  assert built.startswith(f"rnn_zoo.native: built {tmp_path / 'cache'}"), built
  assert pathlib.Path(built.split("built ", 1)[1]).is_file()
  for line in ("LSTM native ok", "LSTM fused ok", "MinGRU parallel_log ok"):
    assert line in proc.stdout
