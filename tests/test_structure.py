"""The package's structure rules (DESIGN.md, version 2), checked from the source.

Parses every module under ``jgen/`` with ``ast`` (nothing is imported) and fails on:
an import cycle between jgen modules (lazy imports inside functions included), an
import pointing up the layering ``core <- parallel <- families <- simulate <- faces``,
any use of ``importlib``, an import or attribute use of another module's underscore
name, an ``__init__`` that binds a submodule's name to something else, and a module
over 400 lines.
"""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "jgen"
MAX_LINES = 400

# Layer of each top-level subpackage/module: a module may import only from layers at
# or below its own. Faces (jgen/__init__.py, jgen/checkpoint.py) may import anything.
LAYERS = {"core": 0, "datasets": 0, "parallel": 1, "bounds": 2, "gaussian": 2,
          "logistic": 2, "diffusion": 2, "text": 2, "simulate": 3, "sklearn": 4,
          "io": 4}
FACES = {"jgen", "jgen.checkpoint"}


def _module_name(path: pathlib.Path) -> str:
  rel = path.relative_to(ROOT.parent).with_suffix("")
  parts = list(rel.parts)
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}
PACKAGES = {_module_name(p) for p in ROOT.rglob("__init__.py")}


def _resolve(node: ast.AST, current: str) -> list[tuple[str, str | None]]:
  """(module imported, name taken from it or None) for one import statement."""
  out = []
  if isinstance(node, ast.Import):
    for alias in node.names:
      out.append((alias.name, None))
  elif isinstance(node, ast.ImportFrom):
    base = node.module or ""
    if node.level:
      pkg = current if current in PACKAGES else current.rpartition(".")[0]
      for _ in range(node.level - 1):
        pkg = pkg.rpartition(".")[0]
      base = f"{pkg}.{base}" if base else pkg
    for alias in node.names:
      sub = f"{base}.{alias.name}"
      out.append((sub, None) if sub in MODULES else (base, alias.name))
  return out


def _imports():
  """{module: [(imported jgen module, name or None, lineno)]} over the whole source."""
  graph = {}
  for name, path in MODULES.items():
    edges = []
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, (ast.Import, ast.ImportFrom)):
        for mod, attr in _resolve(node, name):
          edges.append((mod, attr, node.lineno))
    graph[name] = edges
  return graph


GRAPH = _imports()


def _layer(module: str) -> int | None:
  parts = module.split(".")
  if module in FACES or len(parts) < 2:
    return None
  return LAYERS.get(parts[1])


def test_no_import_cycles():
  edges = {m: {mod for mod, _, _ in e if mod in MODULES and mod != m}
           for m, e in GRAPH.items()}
  # A package __init__ importing its own submodules is how faces work; the cycle
  # that matters is between the modules that hold code.
  for m in list(edges):
    if m in PACKAGES:
      edges[m] = {d for d in edges[m] if not d.startswith(m + ".")}
  state, cycles = {}, []

  def visit(m, stack):
    state[m] = 1
    for d in sorted(edges[m]):
      if state.get(d) == 1:
        cycles.append(stack[stack.index(d):] + [d])
      elif d not in state:
        visit(d, stack + [d])
    state[m] = 2

  for m in sorted(edges):
    if m not in state:
      visit(m, [m])
  assert not cycles, f"import cycles: {cycles}"


def test_imports_point_down():
  bad = []
  for m, edges in GRAPH.items():
    here = _layer(m)
    if here is None:
      continue
    for mod, _, line in edges:
      if not mod.startswith("jgen"):
        continue
      there = _layer(mod)
      if mod in FACES or (there is not None and there > here):
        bad.append(f"{m}:{line} imports {mod}")
  assert not bad, "imports pointing up the layers:\n" + "\n".join(bad)


def test_core_imports_nothing_else_from_jgen():
  bad = [f"{m}:{line} imports {mod}" for m, e in GRAPH.items() if m.startswith("jgen.core")
         for mod, _, line in e if mod.startswith("jgen") and not mod.startswith("jgen.core")]
  assert not bad, "\n".join(bad)


def test_no_importlib():
  bad = [f"{m}:{line}" for m, e in GRAPH.items() for mod, _, line in e
         if mod.split(".")[0] == "importlib"]
  assert not bad, f"importlib used in {bad}"


def test_no_private_names_across_modules():
  bad = []
  for m, path in MODULES.items():
    tree = ast.parse(path.read_text())
    aliases = {}   # local alias -> jgen module it names
    for node in ast.walk(tree):
      if isinstance(node, (ast.Import, ast.ImportFrom)):
        for (mod, attr), alias in zip(_resolve(node, m), node.names):
          if not mod.startswith("jgen") or mod == m:
            continue
          local = alias.asname or alias.name.split(".")[0]
          if attr is not None and attr.startswith("_"):
            bad.append(f"{m}:{node.lineno} imports {mod}.{attr}")
          elif attr is None and mod.rpartition(".")[2].startswith("_"):
            bad.append(f"{m}:{node.lineno} imports private module {mod}")
          elif attr is None:
            aliases[local] = mod
    for node in ast.walk(tree):
      if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
          and node.value.id in aliases and node.attr.startswith("_")
          and not node.attr.startswith("__")):
        bad.append(f"{m}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
  assert not bad, "cross-module private names:\n" + "\n".join(bad)


def test_init_never_rebinds_a_submodule_name():
  bad = []
  for pkg in PACKAGES:
    subs = {s.rpartition(".")[2] for s in MODULES if s.rpartition(".")[0] == pkg}
    for mod, attr, line in GRAPH[pkg]:
      name = attr if attr is not None else None
      if name in subs and mod != pkg:
        bad.append(f"{pkg}/__init__.py:{line} binds {name!r} from {mod}")
  assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name):
  lines = len(MODULES[name].read_text().splitlines())
  assert lines <= MAX_LINES, f"{name} has {lines} lines (> {MAX_LINES})"
