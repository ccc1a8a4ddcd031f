"""``import jgen`` loads jax, numpy and ``jgen.core`` only; families load on first use.

Each check runs in a fresh interpreter (``subprocess``), because this test process has
long since imported everything.
"""

import json
import subprocess
import sys

HEAVY = ("flax", "optax", "orbax", "diffrax", "equinox", "scipy", "sklearn", "tqdm")


def _run(code: str):
  """Runs ``code`` in a new interpreter; returns the JSON it printed last."""
  out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                       text=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_jgen_loads_no_heavy_dependency_and_no_family():
  got = _run(
      "import json, sys, jgen\n"
      f"heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
      "families = sorted(m for m in sys.modules if m.startswith('jgen.')"
      " and not m.startswith('jgen.core'))\n"
      "names = set(dir(jgen))\n"
      "missing = sorted(set(jgen.__all__) - names)\n"
      "try:\n"
      "  jgen.no_such_name\n"
      "  error = 'no error'\n"
      "except AttributeError as e:\n"
      "  error = str(e)\n"
      "print(json.dumps([heavy, families, missing, error]))")
  heavy, families, missing, error = got
  assert heavy == [] and families == [] and missing == []
  assert "no_such_name" in error


def test_names_load_on_first_access():
  got = _run(
      "import json, sys, jgen\n"
      "before = 'jgen.gaussian' in sys.modules\n"
      "model = jgen.qda(reg_param=0.1)\n"
      "from jgen import diffusion, logistic_regression\n"
      "unbound = sorted(n for n in jgen.__all__ if getattr(jgen, n, None) is None)\n"
      "print(json.dumps([before, 'jgen.gaussian' in sys.modules,"
      " diffusion is sys.modules['jgen.diffusion'],"
      " jgen.load is sys.modules['jgen.io'].load,"
      " logistic_regression is sys.modules['jgen.logistic'].logistic_regression,"
      " unbound]))")
  assert got == [False, True, True, True, True, []]


def test_parallel_and_diffusion_load_only_what_they_need():
  # jgen.parallel needs nothing heavy; jgen.diffusion needs flax (the denoisers are NNX
  # modules, and flax.nnx imports optax). scipy (racing quantiles), orbax (training
  # runs, checkpoints) and diffrax (the probability-flow ODE) load on use.
  got = _run(
      "import json, sys\n"
      "import jgen.parallel\n"
      f"after_parallel = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
      "import jgen.diffusion\n"
      f"after_diffusion = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
      "print(json.dumps([after_parallel, after_diffusion]))")
  assert got == [[], ["flax", "optax"]]


def test_checkpoints_and_ode_module_work_after_lazy_imports(tmp_path):
  got = _run(
      "import json, sys, jax.numpy as jnp, jgen\n"
      f"path = {str(tmp_path / 'ckpt')!r}\n"
      "jgen.checkpoint.save_pytree(path, {'w': jnp.arange(3.0)})\n"
      "back = jgen.checkpoint.restore_pytree(path)\n"
      "cfg = jgen.diffusion.ode_config(rtol=1e-3, atol=1e-3)\n"
      "print(json.dumps([back['w'].tolist(), 'orbax' in sys.modules,"
      " 'diffrax' in sys.modules, cfg.rtol]))")
  assert got == [[0.0, 1.0, 2.0], True, False, 1e-3]
