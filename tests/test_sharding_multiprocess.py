"""Two CPU processes on 127.0.0.1 form one JAX cluster and run the sharded Bayes rule.

Each process (tests/multiprocess_worker.py) owns 2 CPU devices; the 4 devices of the
cluster split K = 10 classes (padded to 12) and reduce with cross-process collectives
(gloo). Reference: NumPy argmax / scipy logsumexp of the same fixed-seed matrix.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import scipy.special

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "multiprocess_worker.py"


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(out_dir, num_processes=2, timeout=120):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # the worker sets its own device count
  port = _free_port()
  outs = [out_dir / f"process{i}.json" for i in range(num_processes)]
  procs = [subprocess.Popen([sys.executable, str(WORKER), str(port), str(i),
                             str(num_processes), str(outs[i])], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(num_processes)]
  results = []
  try:
    for p, path in zip(procs, outs):
      _, err = p.communicate(timeout=timeout)
      assert p.returncode == 0, f"worker failed ({p.returncode}):\n{err[-3000:]}"
      results.append(json.loads(path.read_text()))
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  return results


def test_two_process_cluster_sharded_bayes_rule(tmp_path):
  results = _launch(tmp_path)
  rng = np.random.default_rng(0)  # same draw as multiprocess_worker.scores()
  log_lik = rng.normal(size=(6, 10)).astype(np.float32)
  for pid, r in enumerate(results):
    assert r["process_index"] == pid
    assert r["device_count"] == 4 and r["local_device_count"] == 2
    assert r["class_shards"] == 4
    np.testing.assert_array_equal(r["label"], log_lik.argmax(-1))
    np.testing.assert_allclose(r["log_normalizer"],
                               scipy.special.logsumexp(log_lik.astype(np.float64), -1),
                               rtol=1e-6)
    # Rows 0..7 of arange(24).reshape(8, 3), summed over a data axis spanning both
    # processes: column sums 84, 92, 100.
    np.testing.assert_array_equal(r["column_sums"],
                                  np.arange(24.0).reshape(8, 3).sum(0))
