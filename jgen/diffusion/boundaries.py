r"""Elimination boundaries of the race (``jgen.diffusion.racing``), per round.

A competitor leaves when its mean paired difference with the leader exceeds
``m_r * sqrt(var / n_r)`` after round ``r``, ``n_r`` observations:

* [`t_boundaries`][jgen.diffusion.boundaries.t_boundaries] (``rule="test"``): the
  one-sided Student-t quantile at level ``(1 - confidence) / ((K - 1) R)``, a union
  bound over competitors and the ``R`` rounds;
* [`cs_boundaries`][jgen.diffusion.boundaries.cs_boundaries] (``rule="cs"``): the
  asymptotic confidence sequence of Waudby-Smith, Arbour, Sinha, Kennedy and Ramdas
  (Annals of Statistics 2024, Theorem 2.2) with the normal-mixture boundary of Robbins
  and of Howard, Ramdas, McAuliffe and Sekhon (Annals of Statistics 2021), valid at
  every ``n`` at once ([`cs_multipliers`][jgen.diffusion.boundaries.cs_multipliers]).
"""

from __future__ import annotations

import numpy as np

__all__ = ["cs_multipliers", "cs_boundaries", "t_boundaries", "race_multipliers"]


def t_boundaries(per_round: int, confidence: float, num_classes: int,
                 rounds: int) -> np.ndarray:
  """``[rounds]`` Student-t critical values (dof ``n_r - 1``, ``n_r = (r + 1)
  per_round``) at level ``(1 - confidence) / ((K - 1) rounds)``.

  Examples:
    >>> from jgen.diffusion import boundaries
    >>> q = boundaries.t_boundaries(8, 0.9, 2, 4)
    >>> q.shape, bool(q[-1] > 1.645)
    ((4,), True)
  """
  level = (1.0 - confidence) / (max(num_classes - 1, 1) * rounds)
  n = (np.arange(rounds) + 1) * per_round
  import scipy.stats  # here: importing jgen.diffusion must not load scipy

  return scipy.stats.t.ppf(1.0 - level, np.maximum(n - 1, 1))


def cs_multipliers(num_obs, confidence: float, num_classes: int,
                   cs_draws: int = 32) -> np.ndarray:
  """Half-widths, in sample standard deviations, of the asymptotic confidence sequence
  for a mean after ``num_obs`` observations (module docstring, ``rule="cs"``):
  ``sqrt(2 (n rho^2 + 1) / (n^2 rho^2) log(sqrt(n rho^2 + 1) / a))``,
  ``a = (1 - confidence) / (K - 1)``.

  ``rho^2 = (-2 log a + log(1 - 2 log a)) / cs_draws`` makes the boundary tightest at
  ``cs_draws`` observations (Waudby-Smith et al. 2024, section 2.3).

  Examples:
    >>> import numpy as np
    >>> from jgen.diffusion import racing
    >>> m = racing.cs_multipliers(np.array([8, 64, 4096]), 0.9, 2)
    >>> bool(np.all(np.diff(m) < 0)), bool(m[-1] * np.sqrt(4096) > 1.645)
    (True, True)
  """
  a = (1.0 - confidence) / max(num_classes - 1, 1)
  rho2 = (-2.0 * np.log(a) + np.log(1.0 - 2.0 * np.log(a))) / cs_draws
  n = np.asarray(num_obs, np.float64)
  return np.sqrt(2.0 * (n * rho2 + 1.0) / (n * n * rho2)
                 * np.log(np.sqrt(n * rho2 + 1.0) / a))


def cs_boundaries(per_round: int, confidence: float, num_classes: int, rounds: int,
                  cs_draws: int = 32) -> np.ndarray:
  """``[rounds]`` multipliers of ``sqrt(var / n_r)``: ``cs_multipliers(n_r) *
  sqrt(n_r)``, ``n_r = (r + 1) per_round`` observations.

  Examples:
    >>> from jgen.diffusion import boundaries
    >>> m = boundaries.cs_boundaries(4, 0.9, 10, 64)  # 4 draws a round, 64 rounds
    >>> q = boundaries.t_boundaries(4, 0.9, 10, 64)    # the union bound over rounds
    >>> bool(m[0] < q[0]), bool(m[-1] > q[-1])  # tighter early, looser at the cap
    (True, True)
  """
  n = (np.arange(rounds) + 1) * per_round
  return cs_multipliers(n, confidence, num_classes, cs_draws) * np.sqrt(n)


def race_multipliers(cfg, num_c: int, rounds: int) -> np.ndarray:
  """Per-round multipliers of ``sqrt(var / n)`` for the rule of a race's ``cfg`` (a
  [`RaceConfig`][jgen.diffusion.RaceConfig]) among ``num_c`` classes; ``inf`` before
  ``min_rounds``.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen import diffusion
    >>> from jgen.diffusion import boundaries
    >>> den, _ = diffusion.gaussian_oracle(jnp.eye(2), jnp.ones((2, 2)))
    >>> cfg = diffusion.race_config(den, rule="cs", min_rounds=2)
    >>> m = boundaries.race_multipliers(cfg, 2, 3)
    >>> bool(m[0] == float("inf")), bool((m[1:] > 0).all())
    (True, True)
  """
  per = cfg.chunk_t // 2 if cfg.antithetic and cfg.rule == "cs" else cfg.chunk_t
  if cfg.rule == "cs":
    m = cs_boundaries(per, cfg.confidence, num_c, rounds, cfg.cs_draws)
  else:
    m = t_boundaries(per, cfg.confidence, num_c, rounds)
  return np.where(np.arange(rounds) + 1 < cfg.min_rounds, np.inf, m)
