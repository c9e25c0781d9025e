"""Optimizer: Adam plus the max-norm weight constraint as an optax transformation."""

import jax
import jax.numpy as jnp
import optax


def _project_max_norm(kernel, max_value):
  """Rescales each output unit's incoming weights to norm ≤ ``max_value``.

  A Dense kernel is ``[in, out]`` and a conv kernel ``[..., in, out]``: the
  norm runs over every axis but the last, as Keras' ``max_norm`` does.
  """
  axes = tuple(range(kernel.ndim - 1))
  norms = jnp.sqrt(jnp.sum(jnp.square(kernel), axis=axes, keepdims=True))
  return kernel * jnp.minimum(1.0, max_value / jnp.maximum(norms, 1e-12))


def max_norm(max_value):
  """Projects kernels (≥ 2-D leaves) after the update; biases are left alone.

  Chain it *last*: it turns the incoming updates into the step that lands the
  parameters on the constrained set, ``project(params + updates) - params``.
  """

  def init_fn(params):
    del params
    return optax.EmptyState()

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError('max_norm needs params: call optimizer.update(g, s, params)')

    def constrain(u, p):
      if p.ndim < 2:
        return u
      return _project_max_norm(p + u, max_value) - p

    return jax.tree_util.tree_map(constrain, updates, params), state

  return optax.GradientTransformation(init_fn, update_fn)


def learning_rate(config, total_steps=None):
  """``config.learning_rate``, constant or cosine-decayed to 0 over ``total_steps``.

  The cosine schedule reads the step from Adam's own count, so a resumed run
  continues it exactly. Its length comes from ``num_epochs``, so changing
  ``num_epochs`` of a cosine run is refused like any other config change.
  """
  schedule = config.get('lr_schedule', 'constant')  # absent in older runs
  if schedule == 'constant':
    return config.learning_rate
  if not total_steps:
    raise ValueError("lr_schedule='cosine' needs total_steps (the run's number of steps)")
  return optax.cosine_decay_schedule(config.learning_rate, total_steps)


def make_optimizer(config, total_steps=None):
  """Adam (see :func:`learning_rate`); max-norm when ``config.model.max_norm > 0``."""
  parts = [optax.adam(learning_rate(config, total_steps))]
  if config.model.max_norm > 0:
    parts.append(max_norm(config.model.max_norm))
  return optax.chain(*parts)
