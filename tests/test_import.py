"""``import jgen`` loads jax, numpy and ``jgen.core`` only; families load on first use.

Each check runs in a fresh interpreter (``subprocess``), because this test process has
long since imported everything.
"""

import json
import subprocess
import sys

HEAVY = ("flax", "optax", "orbax", "diffrax", "equinox", "scipy", "sklearn", "tqdm")


def _loaded_after(code: str) -> dict:
  """Runs ``code`` in a new interpreter; returns what it printed as JSON."""
  out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                       text=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_jgen_loads_no_heavy_dependency():
  got = _loaded_after(
      "import json, sys, jgen\n"
      f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
  assert got == []


def test_import_jgen_loads_no_family():
  got = _loaded_after(
      "import json, sys, jgen\n"
      "print(json.dumps(sorted(m for m in sys.modules if m.startswith('jgen.')"
      " and not m.startswith('jgen.core'))))")
  assert got == []


def test_names_load_on_first_access():
  got = _loaded_after(
      "import json, sys, jgen\n"
      "before = 'jgen.gaussian' in sys.modules\n"
      "model = jgen.qda(reg_param=0.1)\n"
      "from jgen import diffusion, logistic_regression\n"
      "print(json.dumps([before, 'jgen.gaussian' in sys.modules,"
      " diffusion is sys.modules['jgen.diffusion'],"
      " jgen.load is sys.modules['jgen.io'].load,"
      " logistic_regression is sys.modules['jgen.logistic'].logistic_regression]))")
  assert got == [False, True, True, True, True]


def test_dir_and_all_list_every_lazy_name():
  got = _loaded_after(
      "import json, jgen\n"
      "names = set(dir(jgen))\n"
      "print(json.dumps([sorted(set(jgen.__all__) - names),"
      " sorted(n for n in jgen.__all__ if getattr(jgen, n, None) is None)]))")
  assert got == [[], []]


def test_unknown_attribute_raises_attribute_error():
  got = _loaded_after(
      "import json, jgen\n"
      "try:\n"
      "  jgen.no_such_name\n"
      "  print(json.dumps('no error'))\n"
      "except AttributeError as e:\n"
      "  print(json.dumps(str(e)))")
  assert "no_such_name" in got


def test_diffusion_does_not_import_scipy():
  got = _loaded_after(
      "import json, sys, jgen.diffusion\n"
      "print(json.dumps([m for m in ('scipy', 'scipy.stats') if m in sys.modules]))")
  assert got == []
