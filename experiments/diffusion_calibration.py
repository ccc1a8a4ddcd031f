"""Calibration of the Diffusion Classifier's scores, fit on a validation split.

Temperature scaling of the uniform-weighted scores, and per-timestep weights learned by
maximising the validation likelihood (Jeong et al., 2025), both on a fixed grid of
timesteps. Used by ``experiments/diffusion_classifier.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jgen


def grid_errors(key, model, x, num_t, schedule):
  """Uniform-weighted per-timestep errors ``[N, K, num_t]`` on a fixed grid of t."""
  keys = jax.random.split(key, x.shape[0])

  @jax.jit
  def one(k, xi):
    return jgen.diffusion.class_errors(k, *model, xi, 10, num_t=num_t,
                                       schedule=schedule, timesteps="grid",
                                       weighting="uniform")
  return np.concatenate([np.asarray(jax.vmap(one)(keys[i:i + 64], x[i:i + 64]))
                         for i in range(0, x.shape[0], 64)])


def _softplus_inv(w: float) -> float:
  return float(w + np.log(-np.expm1(-w)))  # log(expm1(w)) without overflow


def learn_weights(err_val, y_val, steps=300, lr=0.01):
  """Per-timestep weights ``w = softplus(v)`` maximising the validation likelihood of
  ``softmax(-sum_t w_t err[k, t])`` (Jeong et al., 2025: Adam, lr 0.01)."""
  err = jnp.asarray(err_val, jnp.float32)
  num_t = err.shape[-1]
  # Start at uniform weights whose scale gives a unit spread of class scores.
  spread = float(jnp.std(jnp.mean(err, -1) - jnp.mean(err, (-1, -2))[:, None]))
  v0 = jnp.full((num_t,), _softplus_inv(1.0 / (num_t * max(spread, 1e-6))), jnp.float32)

  opt = optax.adam(lr)

  def loss(v):
    w = jax.nn.softplus(v)
    logits = -jnp.einsum("nkt,t->nk", err, w)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y_val))

  @jax.jit
  def step(v, s):
    g = jax.grad(loss)(v)
    u, s = opt.update(g, s, v)
    return optax.apply_updates(v, u), s

  v, s = v0, opt.init(v0)
  for _ in range(steps):
    v, s = step(v, s)
  return np.asarray(jax.nn.softplus(v)), np.asarray(jax.nn.softplus(v0))


def calibration(name, k_gv, k_gt, model, x_va, y_va, x_te, y_te, schedule, grid_t,
                full_scores, weight_steps=300):
  """Temperature scaling and learned timestep weights, both fit on the validation set."""
  err_va = grid_errors(k_gv, model, jnp.asarray(x_va), grid_t, schedule)
  err_te = grid_errors(k_gt, model, jnp.asarray(x_te), grid_t, schedule)
  s_va, s_te = -err_va.mean(-1), -err_te.mean(-1)
  acc_uniform = float(np.mean(np.argmax(s_te, -1) == y_te))
  ece_raw = float(jgen.expected_calibration_error(jax.nn.softmax(jnp.asarray(s_te)), y_te))
  temp = float(jgen.fit_temperature(jnp.asarray(s_va), jnp.asarray(y_va)))
  ece_cal = float(jgen.expected_calibration_error(
      jnp.exp(jgen.temperature_scale(jnp.asarray(s_te), temp)), y_te))
  w, w0 = learn_weights(err_va, jnp.asarray(y_va), steps=weight_steps)
  s_learn = -np.einsum("nkt,t->nk", err_te, w)
  acc_learn = float(np.mean(np.argmax(s_learn, -1) == y_te))
  ece_learn = float(jgen.expected_calibration_error(jax.nn.softmax(jnp.asarray(s_learn)),
                                                    y_te))
  print(f"  {name} grid({grid_t}) uniform {100 * acc_uniform:.1f}% -> learned weights"
        f" {100 * acc_learn:.1f}%; ECE {ece_raw:.3f} -> {ece_cal:.3f} (T={temp:.3g}),"
        f" learned-weights ECE {ece_learn:.3f}")
  return {"dataset": name, "method": "diffusion", "strategy": "calibration",
          "grid_t": grid_t, "num_val": int(len(y_va)),
          "accuracy_uniform_weights": acc_uniform,
          "accuracy_learned_weights": acc_learn, "ece_before": ece_raw,
          "ece_after_temperature": ece_cal, "temperature": temp,
          "ece_learned_weights": ece_learn,
          "learned_weights": [float(v) for v in w],
          "grid_t_values": [float((i + 0.5) / grid_t) for i in range(grid_t)]}
