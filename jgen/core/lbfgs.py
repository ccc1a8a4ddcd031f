"""A fixed-iteration L-BFGS minimiser shared by small jgen fits.

``optax.lbfgs`` with its zoom line search, run for a static number of steps inside
``lax.scan`` so it is jit-, vmap- and grad-compatible. Fits that need a gradient
tolerance (logistic regression) use their own ``while_loop`` instead.
"""

from __future__ import annotations

from typing import Any, Callable

import jax


def lbfgs_fixed_steps(fun: Callable[[Any], jax.Array], init: Any,
                      num_steps: int) -> Any:
  """Minimises ``fun`` from the pytree ``init`` with ``num_steps`` L-BFGS steps.

  Args:
    fun: scalar objective of a pytree of arrays.
    init: starting point (pytree).
    num_steps: static number of iterations.

  Returns:
    The parameters after ``num_steps`` iterations (same structure as ``init``).
  """
  import optax  # here, not at module level: ``import jgen`` must not load optax

  import optax.tree_utils as otu

  opt = optax.lbfgs()

  def step(carry, _):
    params, state = carry
    # The value and gradient at ``params``: the start's, then those the line search
    # stored (optax's value_and_grad_from_state would add a fallback copy of ``fun``
    # and its gradient to the compiled program).
    value, grad = otu.tree_get(state, "value"), otu.tree_get(state, "grad")
    updates, state = opt.update(grad, state, params, value=value, grad=grad,
                                value_fn=fun)
    return (optax.apply_updates(params, updates), state), None

  value, grad = jax.value_and_grad(fun)(init)
  state = otu.tree_set(opt.init(init), value=value, grad=grad)
  (params, _), _ = jax.lax.scan(step, (init, state), None, length=num_steps)
  return params
