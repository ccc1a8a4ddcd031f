"""Every ```python block of README.md and docs/*.md runs, as pasted.

Blocks of one file run in order in one shared namespace (a page is one session), each
as its own test, parametrized by (file, block index). A block is skipped only with an
explicit ``<!-- skip: reason -->`` comment on the line(s) right before its fence, and
marked slow with ``<!-- slow -->`` (a page with a slow block is slow as a whole, see
tests/conftest.py: the default run leaves it out, ``-m slow`` runs it). A block after a
failed block of the same file is skipped (its names may be missing), naming the failed
block. A block whose earlier blocks ran in another process (``pytest -n``) or were
deselected runs them first.

Blocks run under JAX's default numerics, as a user pasting them gets (float32, implicit
rank promotion allowed; the suite's strict settings are restored afterwards), with the
8 virtual CPU devices of conftest.py, the set-up docs/install.md describes for
``make_mesh(data=2, classes=4)`` on one CPU.
"""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
_SKIP = re.compile(r"<!--\s*skip:\s*(.+?)\s*-->")
_SLOW = re.compile(r"<!--\s*slow\s*-->")


def _blocks(path: pathlib.Path):
  """[(index, code, line, skip reason or None, slow)] of one page."""
  text = path.read_text()
  out = []
  for i, m in enumerate(_FENCE.finditer(text)):
    before = text[:m.start()].rstrip("\n").splitlines()[-2:]   # comment line(s)
    head = "\n".join(before)
    skip = _SKIP.search(head)
    line = text.count("\n", 0, m.start()) + 2
    out.append((i, m.group(1), line, skip.group(1) if skip else None,
                bool(_SLOW.search(head))))
  return out


def _params():
  params = []
  for page in PAGES:
    rel = page.relative_to(ROOT).as_posix()
    for i, code, line, skip, slow in _blocks(page):
      marks = [pytest.mark.slow] if slow else []
      if skip:
        marks.append(pytest.mark.skip(reason=skip))
      params.append(pytest.param(rel, i, code, line, marks=marks, id=f"{rel}[{i}]"))
  return params


_NAMESPACES: dict[str, dict] = {}
_FAILED: dict[str, int] = {}
_DONE: dict[str, int] = {}   # page -> index of the last block run in this process


def _catch_up(page: str, index: int, ns: dict) -> None:
  """Runs the page's earlier blocks that this process has not run.

  A page is one session, but its blocks are separate tests: ``pytest -n`` may send
  them to different workers, and ``-m`` may deselect some. Running the missing
  earlier blocks first (in order, skipped ones excluded) keeps every block's names
  defined whichever process runs it.
  """
  path = ROOT / page
  for i, code, line, skip, _ in _blocks(path):
    if i >= index:
      break
    if i <= _DONE.get(page, -1) or skip:
      continue
    _run_block(page, i, code, line, ns)


def _run_block(page: str, index: int, code: str, line: int, ns: dict) -> None:
  """Executes one block in the page's namespace, recording success or failure."""
  try:
    exec(compile(code, f"{page}:{line} (block {index})", "exec"), ns)
  except BaseException:
    _FAILED[page] = index
    raise
  _DONE[page] = index


@pytest.mark.usefixtures("user_jax_config")
@pytest.mark.parametrize("page, index, code, line", _params())
def test_doc_block(page, index, code, line, monkeypatch):
  if page in _FAILED:
    pytest.skip(f"block {_FAILED[page]} of {page} failed; later blocks depend on it")
  monkeypatch.chdir(ROOT)   # pages read repository files by relative path
  ns = _NAMESPACES.setdefault(page, {"__name__": f"docs:{page}"})
  _catch_up(page, index, ns)
  _run_block(page, index, code, line, ns)


# --------------------------------------------------------------------- API reference

API_PACKAGES = ["jgen", "jgen.core", "jgen.parallel", "jgen.gaussian", "jgen.logistic",
                "jgen.diffusion", "jgen.simulate", "jgen.bounds", "jgen.datasets",
                "jgen.checkpoint", "jgen.sklearn", "jgen.io", "jgen.text",
                "jgen.diffusion.pretrained"]


def _public_names():
  """(package, name, object) for every name in each package's ``__all__``."""
  import importlib
  out = []
  for pkg in API_PACKAGES:
    mod = importlib.import_module(pkg)
    out += [(pkg, name, getattr(mod, name)) for name in mod.__all__]
  return out


def test_every_public_name_is_in_the_api_reference():
  import types
  text = "\n".join(p.read_text() for p in (ROOT / "docs" / "api").glob("*.md"))
  missing = [f"{pkg}.{name}" for pkg, name, obj in _public_names()
             if not isinstance(obj, types.ModuleType)
             and f"::: {pkg}.{name}\n" not in text + "\n"]
  assert not missing, "public names missing from docs/api/*.md:\n" + "\n".join(missing)


def _needs_example(obj) -> bool:
  """Functions and classes need an example; modules and constants do not."""
  import inspect
  return inspect.isfunction(obj) or inspect.isclass(obj)


def test_every_public_function_and_class_has_an_example():
  missing = sorted({f"{pkg}.{name}" for pkg, name, obj in _public_names()
                    if _needs_example(obj) and "Example" not in (obj.__doc__ or "")})
  assert not missing, (f"{len(missing)} public names without an Example section in"
                       " their docstring:\n" + "\n".join(missing))
