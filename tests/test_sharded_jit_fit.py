"""``jax.jit(model.fit)`` on data sharded over 8 CPU devices returns, and equals the
one-device fit, for every Gaussian family and logistic regression.

Run in a subprocess with a timeout: a deadlock (as the batched LAPACK triangular solve
of QDA's parameter map caused in a program partitioned over CPU devices) would
otherwise hang the whole suite instead of failing one test.
"""

import os
import subprocess
import sys
import textwrap

_WORKER = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    import jgen
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    assert jax.device_count() == 8, jax.device_count()
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8000, 32)).astype(np.float32)
    y = rng.integers(0, 16, 8000).astype(np.int32)
    xs = jax.device_put(x, NamedSharding(mesh, P("data")))
    ys = jax.device_put(y, NamedSharding(mesh, P("data")))
    x1, y1 = jax.device_put(x, jax.devices()[0]), jax.device_put(y, jax.devices()[0])
    models = {"gaussian_nb": jgen.gaussian_nb(), "gaussian_nb_pooled":
              jgen.gaussian_nb(pooled=True), "lda": jgen.lda(shrinkage=0.1),
              "qda": jgen.qda(reg_param=0.01),
              "logistic_regression": jgen.logistic_regression(max_iter=20)}
    for name, model in models.items():
      fit = jax.jit(lambda a, b, model=model: model.fit(a, b, num_classes=16))
      sharded = jax.device_get(fit(xs, ys))
      single = jax.device_get(fit(x1, y1))
      for s, o in zip(jax.tree.leaves(sharded), jax.tree.leaves(single)):
        s, o = np.asarray(s, np.float64), np.asarray(o, np.float64)
        assert np.array_equal(np.isfinite(s), np.isfinite(o)), name
        f = np.isfinite(o)
        scale = np.max(np.abs(o[f]), initial=1.0)
        # float32 sums reordered across 8 devices: a few ulps of the leaf's scale,
        # amplified by the factorisations' conditioning (well below 1e-3 here).
        assert np.max(np.abs(s[f] - o[f]), initial=0.0) <= 1e-3 * scale, name
      print("ok", name, flush=True)
""")


def test_jit_fit_on_eight_device_mesh_returns_and_matches_one_device():
  env = dict(os.environ)
  env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "").replace(
      "--xla_force_host_platform_device_count=8", "")
                      + " --xla_force_host_platform_device_count=8").strip()
  proc = subprocess.run([sys.executable, "-c", _WORKER], capture_output=True, text=True,
                        env=env, timeout=300, cwd=os.path.dirname(os.path.dirname(
                            os.path.abspath(__file__))))
  assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
  done = [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("ok ")]
  assert done == ["gaussian_nb", "gaussian_nb_pooled", "lda", "qda",
                  "logistic_regression"], proc.stdout
