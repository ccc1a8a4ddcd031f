r"""The Diffusion Classifier (Li et al., ICCV 2023): entry points and the model family.

[`classify`][jgen.diffusion.classify] /
[`batch_classify`][jgen.diffusion.batch_classify] validate once, pick the vectorisation
and run a strategy of ``jgen.diffusion.strategies`` under one ``jit`` keyed on the
denoiser's ``apply`` (never on its parameters: ``params`` are traced, so every parameter
set of one architecture shares one compiled program).
[`diffusion_classifier`][jgen.diffusion.diffusion_classifier] returns the
[`jgen.core.contract.Classifier`][jgen.Classifier] of a denoiser: ``log_likelihood`` is
the shared-noise Monte Carlo ELBO.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.core import compilation
from jgen.core import checks as _checks
from jgen.core import sentinels
from jgen.core.progress import check_progress, report
from jgen.diffusion import validate
from jgen.diffusion.chunking import pairs_per_call
from jgen.diffusion.schedules import Schedule
from jgen.diffusion.schedules import linear_schedule
from jgen.diffusion.dispatch import run_strategy
from jgen.diffusion.racing import race_config
from jgen.diffusion.strategies import ClassifyResult, StrategyConfig, adaptive_plan

__all__ = ["DEFAULT_SCHEDULE", "DEFAULTS", "Prepared", "prepare", "classify",
           "batch_classify"]

DEFAULT_SCHEDULE = linear_schedule()
# The one definition of classify's options and their defaults.
DEFAULTS = dict(strategy="full", schedule=None, num_t=256, timesteps="stratified",
                weighting="elbo", loss="l2", classes=None, chunk_size=None,
                cache_bytes=None, n_samples=(50, 500), to_keep=(5, 1),
                chunk_t=8, confidence=0.99, antithetic=False, rule="cs",
                adapt_t=False)
# A progress bar without a batch size gets about this many updates.
PROGRESS_UPDATES = 20


class Prepared(NamedTuple):
  """Checked inputs and the static configuration of one classify call."""
  x: jax.Array
  ids: jax.Array
  strategy: str
  cfg: StrategyConfig
  opts: tuple


def _strategy_opts(o: dict, num_c: int) -> tuple[dict, int]:
  """Checked strategy options and the (class, draw) pairs of one example's largest
  vectorised call."""
  strategy = o["strategy"]
  if strategy == "full":
    num_t = validate.check_static_int(o["num_t"], "num_t")
    validate.check_antithetic(o["antithetic"], num_t)
    return dict(num_t=num_t), num_c * num_t
  if strategy == "adaptive":
    if o["antithetic"]:
      raise ValueError("antithetic draws are not supported by strategy='adaptive'"
                       " (its timesteps come from the paper's strided grid).")
    positions, _, _ = adaptive_plan(o["n_samples"], o["to_keep"], num_c)
    return (dict(n_samples=tuple(int(n) for n in o["n_samples"]),
                 to_keep=tuple(int(k) for k in o["to_keep"])),
            num_c * max(len(p) for p in positions))
  num_t = validate.check_static_int(o["num_t"], "num_t")
  chunk_t = validate.check_static_int(o["chunk_t"], "chunk_t")
  if num_t % chunk_t:
    raise ValueError(f"num_t={num_t} must be a multiple of chunk_t={chunk_t}.")
  validate.check_antithetic(o["antithetic"], chunk_t, "chunk_t")
  if not 0.0 < o["confidence"] < 1.0:
    raise ValueError(f"confidence must lie in (0, 1), got {o['confidence']}.")
  return (dict(num_t=num_t, chunk_t=chunk_t, confidence=float(o["confidence"]),
               num_classes_total=num_c), num_c * chunk_t)


def _race_opts(o: dict, denoiser, schedule: Schedule, num_c: int) -> dict:
  """``strategy="race"``: the checked [`RaceConfig`][jgen.diffusion.RaceConfig]
  (``num_t // chunk_t`` rounds at most)."""
  if o["loss"] != "l2" or o["timesteps"] != "stratified":
    raise ValueError("strategy='race' supports loss='l2' and timesteps='stratified'"
                     f" only, got loss={o['loss']!r}, timesteps={o['timesteps']!r}.")
  cfg = race_config(denoiser, schedule=schedule, chunk_t=o["chunk_t"],
                    max_rounds=o["num_t"] // o["chunk_t"], rule=o["rule"],
                    confidence=o["confidence"], antithetic=o["antithetic"],
                    weighting=o["weighting"], adapt_t=o["adapt_t"])
  return dict(race_cfg=cfg, num_classes_total=num_c)


def prepare(denoiser, params: Any, x: ArrayLike, num_classes: int, options: dict, *,
            batched: bool, rows: int | None = None) -> Prepared:
  """Validates a classify call (every entry point, sharded or not, goes through here).

  ``rows`` is the number of examples per compiled call when a batch runs in pieces
  (default all of ``x``); the vectorisation chunk is sized for that many.

  Raises:
    TypeError: an unknown option, a non-Denoiser, non-int counts, integer ``x``.
    ValueError: bad shapes, non-finite ``x``, unknown strategy/option values,
      ``num_classes`` above the denoiser's.
  """
  unknown = set(options) - set(DEFAULTS)
  if unknown:
    raise TypeError(f"classify got unexpected arguments {sorted(unknown)}.")
  o = {**DEFAULTS, **options}
  validate.check_denoiser(denoiser)
  num_classes = validate.check_num_classes_fit(denoiser, num_classes)
  if o["strategy"] not in ("full", "adaptive", "sequential", "race"):
    raise ValueError("strategy must be one of ('full', 'adaptive', 'sequential',"
                     f" 'race'), got {o['strategy']!r}.")
  validate.check_options(o["weighting"], o["loss"], o["timesteps"])
  x = validate.check_x(denoiser, params, x, batched=batched)
  ids = validate.class_ids(o["classes"], num_classes)
  opts, pairs = _strategy_opts(o, int(ids.shape[0]))
  chunk = o["chunk_size"]
  if chunk is not None:
    chunk = validate.check_static_int(chunk, "chunk_size")
  else:
    # Examples of a vmapped batch share each call: the budget covers all of them.
    n = x.shape[0] if rows is None else min(rows, x.shape[0])
    n = n if batched and o["strategy"] != "sequential" else 1
    shape = x.shape[1:] if batched else x.shape
    cache = o["cache_bytes"]
    cache = None if cache is None else validate.check_static_int(cache, "cache_bytes")
    chunk = max(1, pairs_per_call(denoiser, params, shape, x.dtype, max(n, 1) * pairs,
                                  cache) // max(n, 1))
  schedule = DEFAULT_SCHEDULE if o["schedule"] is None else o["schedule"]
  if not isinstance(schedule, Schedule):
    raise TypeError("schedule must be a jgen.diffusion Schedule (e.g."
                    " jgen.diffusion.linear_schedule()) or None, got"
                    f" {type(schedule).__name__} ({schedule!r:.40}).")
  cfg = StrategyConfig(denoiser, schedule, o["timesteps"], o["weighting"], o["loss"],
                       chunk, bool(o["antithetic"]))
  if o["strategy"] == "race":
    opts = _race_opts(o, denoiser, schedule, int(ids.shape[0]))
  return Prepared(x, ids, o["strategy"], cfg, tuple(sorted(opts.items())))


@functools.partial(compilation.jit, static_argnames=("strategy", "cfg", "opts", "batched"))
def _run(key, params, x, ids, *, strategy, cfg, opts, batched):
  return mark_unclassifiable(run_strategy(strategy, key, params, x, ids, cfg=cfg,
                                          opts=dict(opts), batched=batched))


def mark_unclassifiable(res: ClassifyResult) -> ClassifyResult:
  """``res`` with label ``-1`` (``jgen.core.sentinels.INVALID_LABEL``) where no class
  has a score (every score ``-inf``: the strategies map NaN estimates to ``-inf``, so
  a denoiser returning NaN for every class ends here), instead of class 0.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.diffusion import classifier
    >>> res = classifier.ClassifyResult(jnp.array([0, 1]), jnp.array(
    ...     [[-jnp.inf, -jnp.inf], [-2.0, -1.0]]), jnp.array([4, 4]))
    >>> classifier.mark_unclassifiable(res).label.tolist()
    [-1, 1]
  """
  broken = sentinels.broken_rows(res.scores)
  label = jnp.where(broken, jnp.asarray(sentinels.INVALID_LABEL, res.label.dtype),
                    res.label)
  return res._replace(label=label)


def finish(res: ClassifyResult) -> ClassifyResult:
  """The eager error for a label ``mark_unclassifiable`` invalidated.

  Examples:
    >>> import jax.numpy as jnp
    >>> from jgen.diffusion import classifier
    >>> res = classifier.ClassifyResult(jnp.array(-1), jnp.full(2, -jnp.inf),
    ...                                 jnp.array(4))
    >>> classifier.finish(res)
    Traceback (most recent call last):
        ...
    ValueError: scores has 1 row(s) that cannot be classified (a NaN or +inf score, or -inf for every class); a non-finite input or a degenerate model gives such scores.
  """
  sentinels.raise_for_invalid_labels(res.label, "scores")
  return res


def classify(key: jax.Array, denoiser, params: Any, x: ArrayLike, num_classes: int,
             **options) -> ClassifyResult:
  """Classifies one example by its shared-noise diffusion scores.

  Args:
    key: PRNG key.
    denoiser: a [`Denoiser`][jgen.diffusion.Denoiser] (compiled programs are keyed on it:
      build it once; [`nnx_denoiser`][jgen.diffusion.nnx_denoiser] does so per
      architecture).
    params: its parameters, a traced pytree (new values never recompile).
    x: one example ``[*data_shape]``.
    num_classes: static ``K`` (at most the denoiser's ``num_classes``).
    **options: any of [`DEFAULTS`][jgen.diffusion.DEFAULTS]: ``strategy`` (``"full"``,
      ``"adaptive"``, ``"sequential"``; ``jgen.diffusion.strategies``; ``"race"``,
      ``jgen.diffusion.racing``), ``schedule``
      (default VDM linear), ``num_t`` (draws per class, or the per-class budget of
      ``sequential``), ``timesteps`` (``"stratified"``, ``"grid"``, ``"iid"``),
      ``weighting`` (``"elbo"``, ``"uniform"``, callable), ``loss`` (``"l2"``, ``"l1"``,
      ``"huber"``), ``classes`` (a keep-list ``[C]`` of ids: scores follow it),
      ``chunk_size`` ((class, draw) pairs per vectorised denoiser call; default from the
      shapes and the execution plan in force, ``jgen.core.plan``, or a cache budget of
      ``cache_bytes`` bytes when given), ``n_samples``/``to_keep`` (adaptive stages),
      ``chunk_t``/``confidence`` (sequential and race rounds and guarantee),
      ``antithetic`` (pair ``(t, eps)`` with ``(t, -eps)``), ``rule``/``adapt_t``
      (``strategy="race"``: [`race_config`][jgen.diffusion.race_config]'s, with
      ``max_rounds = num_t // chunk_t``; an importance ``proposal`` or ``candidates``
      need [`batch_race`][jgen.diffusion.batch_race]).

  Returns:
    [`ClassifyResult`][jgen.diffusion.ClassifyResult]
    ``(label [], scores [C], num_evals [])``. When every class scores ``-inf`` (a
    denoiser returning NaN or inf, say) there is no label: ``ValueError`` eagerly,
    ``label == -1`` under ``jit``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, params = diffusion.gaussian_oracle(jnp.eye(3), jnp.ones((3, 3)))
    >>> res = diffusion.classify(jax.random.key(0), den, params, jnp.eye(3)[2], 3,
    ...                          num_t=64)
    >>> int(res.label), res.scores.shape
    (2, (3,))
  """
  _checks.check_key(key)
  p = prepare(denoiser, params, x, num_classes, options, batched=False)
  return finish(_run(key, params, p.x, p.ids, strategy=p.strategy, cfg=p.cfg,
                     opts=p.opts, batched=False))


def batch_classify(key: jax.Array, denoiser, params: Any, x: ArrayLike,
                   num_classes: int, *, batch_size: int | None = None,
                   progress=False, **options) -> ClassifyResult:
  """[`classify`][jgen.diffusion.classify] for a batch ``x [N, ...]`` with independent
  draws per example.

  Row ``n`` equals ``classify(jax.random.split(key, N)[n], denoiser, params, x[n],
  ...)``. ``full`` and ``adaptive`` are vmapped; ``sequential`` loops over examples
  on device (``lax.map``) so that eliminated classes are really skipped.

  Args:
    key, denoiser, params, num_classes, **options: as
      [`classify`][jgen.diffusion.classify].
    x: examples ``[N, *data_shape]``.
    batch_size: examples per compiled call, a positive int (default: all ``N`` in one
      call). Every batch has this size (the last is padded with earlier rows and the
      padding dropped), so one program serves them all; row ``n`` keeps its key, so
      labels equal the single call's and scores agree to float rounding (the
      vectorisation chunk is sized for one batch).
    progress: ``True`` for a tqdm bar over examples, or a callable called with the
      number of examples finished after each batch
      ([`jgen.core.progress`][jgen.core.progress]).
      Implies batches: without ``batch_size``, ``ceil(N / 20)`` examples each.

  Returns:
    [`ClassifyResult`][jgen.diffusion.ClassifyResult] with ``label [N]``,
    ``scores [N, C]``, ``num_evals [N]``.

  Raises:
    TypeError: ``batch_size`` is not an int, ``progress`` not a bool or callable.
    ValueError: ``batch_size < 1``.

  Examples:
    >>> import jax, jax.numpy as jnp
    >>> from jgen import diffusion
    >>> den, params = diffusion.gaussian_oracle(jnp.eye(3), jnp.ones((3, 3)))
    >>> diffusion.batch_classify(jax.random.key(0), den, params, jnp.eye(3), 3,
    ...                          num_t=64).label.tolist()
    [0, 1, 2]
    >>> diffusion.batch_classify(jax.random.key(0), den, params, jnp.eye(3), 3,
    ...                          num_t=64, batch_size=2).label.tolist()
    [0, 1, 2]
  """
  _checks.check_key(key)
  check_examples(x)
  rows = _batch_rows(x, batch_size, check_progress(progress))
  p = prepare(denoiser, params, x, num_classes, options, batched=True, rows=rows)
  keys = jax.random.split(key, p.x.shape[0])
  call = lambda k, xs: _run(k, params, xs, p.ids, strategy=p.strategy, cfg=p.cfg,
                            opts=p.opts, batched=True)
  if rows is None:
    return finish(call(keys, p.x))
  with report(progress, p.x.shape[0], unit="example", desc="batch_classify") as update:
    return finish(_in_batches(call, keys, p.x, rows, update))


def check_examples(x) -> None:
  """A batch must hold at least one example (``x [N, ...]`` with ``N >= 1``).

  Examples:
    >>> import numpy as np
    >>> from jgen.diffusion import classifier
    >>> classifier.check_examples(np.zeros((0, 3)))
    Traceback (most recent call last):
        ...
    ValueError: x must hold at least one example, got shape (0, 3).
  """
  if np.ndim(x) >= 1 and np.shape(x)[0] == 0:
    raise ValueError(f"x must hold at least one example, got shape {np.shape(x)}.")


def _batch_rows(x, batch_size, progress) -> int | None:
  """Examples per compiled call, or ``None`` for one call over all of ``x``."""
  if batch_size is not None:
    return validate.check_static_int(batch_size, "batch_size")
  if progress is None or progress is False:
    return None
  n = np.shape(x)[0] if np.ndim(x) else 1   # prepare names a bad x
  return max(1, -(-n // PROGRESS_UPDATES))


def _in_batches(call, keys, x, size, update) -> ClassifyResult:
  """``call`` on ``size`` rows at a time. The last batch is padded with the first
  rows (valid examples, so no NaN can appear) to keep one compiled shape."""
  n = x.shape[0]
  size = min(size, n)
  outs = []
  for start in range(0, n, size):
    k, xs = keys[start:start + size], x[start:start + size]
    real = xs.shape[0]
    if real < size:
      k = jnp.concatenate([k, keys[:size - real]])
      xs = jnp.concatenate([xs, x[:size - real]])
    out = call(k, xs)
    if real < size:
      out = jax.tree.map(lambda a: a[:real], out)
    if update is not None:
      jax.block_until_ready(out)   # count finished examples, not dispatched ones
      update(real)
    outs.append(out)
  return jax.tree.map(lambda *a: jnp.concatenate(a), *outs)
