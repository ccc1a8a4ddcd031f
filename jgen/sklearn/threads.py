"""One BLAS thread for the estimators' host linear algebra.

With two cores shared (XLA's CPU threads busy or spinning after a call, or another
process), OpenBLAS's multi-threaded kernels take turns with the other threads: an
``eigh`` of ten 64 x 64 covariances took 0.7 s instead of 12 ms, and the class
covariances of 200,000 x 256 rows 5.0 s instead of 0.74 s on one thread.
"""

from __future__ import annotations

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread"]

_THREADPOOLS = ThreadpoolController()


def one_blas_thread():
  """Context manager: NumPy's and SciPy's BLAS on one thread inside it.

  Examples:
    >>> import numpy as np
    >>> from jgen.sklearn.threads import one_blas_thread
    >>> with one_blas_thread():
    ...   float(np.linalg.eigh(np.eye(3))[0].sum())
    3.0
  """
  return _THREADPOOLS.limit(limits=1, user_api="blas")
