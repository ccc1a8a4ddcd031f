"""Two-level class trees for hierarchical pruning (``jgen.diffusion.hierarchy``).

A tree comes from the user
([`tree_from_groups`][jgen.diffusion.class_tree.tree_from_groups]) or from the
denoiser's own confusions ([`build_tree`][jgen.diffusion.class_tree.build_tree]:
agglomerative clustering, Ward's criterion, of each class's column of ELBO differences
to the best class on calibration examples).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jgen.diffusion import validate

__all__ = ["ClassTree", "build_tree", "check_tree", "tree_from_groups"]


class ClassTree(NamedTuple):
  """A two-level class tree: ``members [G, S]`` class ids per group (``-1`` pads groups
  smaller than the largest, ``S``) and ``representatives [G]`` (one member per group).

  Examples:
    >>> import jgen
    >>> tree = jgen.diffusion.class_tree.tree_from_groups([0, 0, 1, 1, 1])
    >>> tree.members.tolist(), tree.representatives.tolist()
    ([[0, 1, -1], [2, 3, 4]], [0, 2])
  """
  members: jax.Array
  representatives: jax.Array


def tree_from_groups(groups: ArrayLike, representatives: ArrayLike | None = None
                     ) -> ClassTree:
  """A [`ClassTree`][jgen.diffusion.class_tree.ClassTree] from a group id per class.

  Args:
    groups: ``[K]`` ints in ``[0, G)``, every group non-empty.
    representatives: optional ``[G]`` class ids, each a member of its group; the
      lowest member when ``None``.

  Examples:
    >>> from jgen.diffusion import class_tree
    >>> tree = class_tree.tree_from_groups([1, 0, 1], [1, 2])
    >>> tree.members.tolist(), tree.representatives.tolist()
    ([[1, -1], [0, 2]], [1, 2])
  """
  g = np.asarray(groups)
  if g.ndim != 1 or g.size == 0 or not np.issubdtype(g.dtype, np.integer):
    raise ValueError(f"groups must be a non-empty 1-D int array, got shape {g.shape},"
                     f" dtype {g.dtype}.")
  num_g = int(g.max()) + 1
  sizes = np.bincount(g, minlength=num_g) if g.min() >= 0 else None
  if sizes is None or not (sizes > 0).all():
    raise ValueError(f"groups must number every group in [0, {num_g}) at least once"
                     " with ids >= 0.")
  members = np.full((num_g, int(sizes.max())), -1, np.int32)
  for j in range(num_g):
    idx = np.flatnonzero(g == j)
    members[j, :idx.size] = idx
  if representatives is None:
    reps = members[:, 0].copy()
  else:
    reps = np.asarray(representatives)
    if reps.shape != (num_g,) or not np.issubdtype(reps.dtype, np.integer):
      raise ValueError(f"representatives must be {num_g} ints (one per group), got"
                       f" shape {reps.shape}, dtype {reps.dtype}.")
    if not ((reps >= 0) & (reps < g.size)).all() or not (g[reps] == np.arange(num_g)).all():
      raise ValueError("representatives must name one member of each group, in group"
                       " order.")
  return ClassTree(jnp.asarray(members), jnp.asarray(reps, jnp.int32))


def build_tree(scores: ArrayLike, num_groups: int) -> ClassTree:
  """Clusters the classes by the denoiser's confusions on calibration examples.

  Each class's feature is its column of ELBO differences to the best class,
  ``scores[n, k] - max_j scores[n, j]`` (classes the denoiser confuses rise and fall
  together), clipped below at the 5th percentile so that hopeless classes do not
  dominate; Ward-linkage agglomerative clustering cuts it into ``num_groups`` groups,
  and each group's representative is the member nearest its centroid.

  Args:
    scores: ``[N, K]`` class scores (ELBO estimates, e.g.
      ``batch_classify(..., strategy="full").scores``) of ``N >= 2`` calibration
      examples, finite.
    num_groups: ``G`` in ``[1, K]``.

  Examples:
    >>> import numpy as np
    >>> from jgen.diffusion import class_tree
    >>> s = np.array([[0., -.1, -9, -9], [-9, -9, 0, -.2], [0, -.3, -8, -9]])
    >>> class_tree.build_tree(s, 2).members.tolist()
    [[0, 1], [2, 3]]
  """
  s = np.asarray(scores, np.float64)
  if s.ndim != 2 or s.shape[0] < 2:
    raise ValueError(f"scores must be [N, K] with N >= 2, got shape {s.shape}.")
  bad = np.count_nonzero(~np.isfinite(s))
  if bad:
    raise ValueError(f"scores must be finite; {bad} entries are not.")
  num_groups = validate.check_static_int(num_groups, "num_groups")
  if num_groups > s.shape[1]:
    raise ValueError(f"num_groups must be <= the {s.shape[1]} classes, got {num_groups}.")
  d = s - s.max(axis=1, keepdims=True)
  d = np.maximum(d, np.percentile(d, 5))
  feat = d.T                                                       # [K, N]
  import scipy.cluster.hierarchy as sch  # here: importing jgen must not load scipy

  labels = sch.fcluster(sch.linkage(feat, "ward"), num_groups, "maxclust") - 1
  _, labels = np.unique(labels, return_inverse=True)    # ids 0..G'-1, no gaps
  reps = []
  for j in range(labels.max() + 1):
    idx = np.flatnonzero(labels == j)
    c = feat[idx].mean(axis=0)
    reps.append(idx[np.argmin(np.sum((feat[idx] - c) ** 2, axis=1))])
  return tree_from_groups(labels, np.asarray(reps))


def check_tree(tree, k: int) -> ClassTree:
  """``tree``, checked to be a [`ClassTree`][jgen.diffusion.class_tree.ClassTree] that
  holds each of the ``k`` classes exactly once.

  Examples:
    >>> from jgen.diffusion import class_tree
    >>> class_tree.check_tree(class_tree.tree_from_groups([0, 1, 0]), 3).members.tolist()
    [[0, 2], [1, -1]]
  """
  if not isinstance(tree, ClassTree):
    raise TypeError(f"tree must be a ClassTree (tree_from_groups, build_tree), got"
                    f" {type(tree).__name__}.")
  m = np.asarray(tree.members)
  ids = np.sort(m[m >= 0])
  if ids.size != k or not (ids == np.arange(k)).all():
    raise ValueError(f"tree must hold each of the {k} classes exactly once.")
  return tree
