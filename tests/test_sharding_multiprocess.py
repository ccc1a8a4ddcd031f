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
import time

import numpy as np
import scipy.special

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "multiprocess_worker.py"


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


_PORT_TAKEN = ("cannot bind port", "Address already in use")


def _run_once(out_dir, attempt, num_processes, timeout):
  """One launch of the workers; returns (results or None, failure text)."""
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)  # the worker sets its own device count
  port = _free_port()
  outs = [out_dir / f"a{attempt}_process{i}.json" for i in range(num_processes)]
  logs = [out_dir / f"a{attempt}_process{i}.log" for i in range(num_processes)]
  # Output goes to files, never to pipes: a pipe nobody reads fills up with the
  # collective library's messages and blocks its writer, while the other process
  # waits for it inside a collective (a deadlock that looked like a timeout).
  handles = [open(path, "w") for path in logs]
  procs = [subprocess.Popen([sys.executable, str(WORKER), str(port), str(i),
                             str(num_processes), str(outs[i])], env=env, cwd=ROOT,
                            stdin=subprocess.DEVNULL, stdout=h, stderr=subprocess.STDOUT)
           for i, h in enumerate(handles)]
  deadline = time.monotonic() + timeout
  try:
    # Wait for all processes together; stop at the first failure rather than
    # letting its peer wait out the whole timeout in a collective.
    while any(p.poll() is None for p in procs):
      if any(p.poll() not in (None, 0) for p in procs) or time.monotonic() > deadline:
        break
      time.sleep(0.1)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
    for h in handles:
      h.close()
  codes = [p.returncode for p in procs]
  if all(c == 0 for c in codes):
    return [json.loads(path.read_text()) for path in outs], ""
  text = "\n".join(f"--- process {i} (exit {c}):\n{path.read_text()[-3000:]}"
                   for i, (c, path) in enumerate(zip(codes, logs)))
  return None, text


def _launch(out_dir, num_processes=2, timeout=120, attempts=3):
  # The free port is probed, released, then bound by the coordinator: another
  # program may take it in between. That (and only that) is retried on a new port.
  for attempt in range(attempts):
    results, text = _run_once(out_dir, attempt, num_processes, timeout)
    if results is not None:
      return results
    if not any(s in text for s in _PORT_TAKEN):
      break
  raise AssertionError(f"workers failed:\n{text}")


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
