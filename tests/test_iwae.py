"""IWAE-k: the training objective and the evaluation bound against independent references.

The training loss is checked against the importance weights assembled by hand
in NumPy (float64), its gradient against central differences, and the
evaluation bound of a 1-D-latent Bernoulli model against log p(x) integrated
numerically over a fine grid of codes.
"""

import ml_collections
import numpy as np
import jax
import jax.numpy as jnp
import pytest

from vae_jax.core import evaluate, models, objective

IMAGE_SHAPE = (4, 4, 1)


def _tiny_vae(latent_dim, hidden=(8,), seed=0, image_shape=IMAGE_SHAPE):
  cfg = ml_collections.ConfigDict({'model': {
      'kind': 'vae', 'family': 'mlp', 'dropout_rate': 0.0, 'mlp': {'hidden_sizes': hidden}},
      'latent_dim': latent_dim})
  model = models.build_model(cfg, image_shape)
  x = np.random.default_rng(seed).integers(0, 2, (6, *image_shape)).astype(np.float32)
  params = model.init(jax.random.key(seed), x, jax.random.key(1))['params']
  return model, params, x


def _log_bernoulli(logits, x):
  """log p(x | logits) summed over pixels, float64, stable: -softplus(-l) / -softplus(l)."""
  logits = np.asarray(logits, np.float64)
  return np.sum(-(x * np.logaddexp(0, -logits) + (1 - x) * np.logaddexp(0, logits)),
                axis=tuple(range(-len(IMAGE_SHAPE), 0)))


def _log_normal(z, mean, logvar):
  return np.sum(-0.5 * (np.log(2 * np.pi) + logvar + (z - mean) ** 2 / np.exp(logvar)), -1)


def test_iwae_training_loss_is_minus_log_mean_importance_weight():
  k = 5
  model, params, x = _tiny_vae(latent_dim=3)
  key = jax.random.key(7)
  obj = objective.Objective(kind='vae', iwae_samples=k)
  terms = objective.loss_terms(model, params, x, x, key, obj, train=False)

  # By hand: the same noise (loss_terms splits the key, the first half draws z).
  mean, logvar = model.apply({'params': params}, x, method='encode')
  mean, logvar = np.float64(mean), np.float64(logvar)
  eps = np.float64(jax.random.normal(jax.random.split(key)[0], (k, *mean.shape)))
  z = mean + np.exp(0.5 * logvar) * eps                                   # [K, B, D]
  logits = model.apply({'params': params}, jnp.float32(z.reshape(-1, 3)), method='decode')
  log_px_z = _log_bernoulli(np.reshape(logits, (k, *x.shape)), np.float64(x))   # [K, B]
  log_w = log_px_z + _log_normal(z, 0.0, 0.0) - _log_normal(z, mean, logvar)
  peak = log_w.max(0)
  expected = -(peak + np.log(np.mean(np.exp(log_w - peak), axis=0)))
  np.testing.assert_allclose(terms['loss'], expected, rtol=2e-6, atol=2e-5)


def test_iwae_training_gradient_matches_central_differences():
  k = 4
  model, params, x = _tiny_vae(latent_dim=2)
  key = jax.random.key(3)
  obj = objective.Objective(kind='vae', iwae_samples=k)
  flat, unravel = jax.flatten_util.ravel_pytree(params)

  # The noise is fixed by the key (and by the dtype it is drawn in, float32:
  # a float64 copy would draw other noise), so the loss is a smooth function
  # of the parameters whose slope along a direction central differences give.
  @jax.jit
  def mean_loss(f):
    terms = objective.loss_terms(model, unravel(f), x, x, key, obj, train=False)
    return jnp.mean(terms['loss'])

  grad = jax.grad(mean_loss)(flat)
  h = 1e-3  # small: the ReLUs' kinks bend the loss within a few 1e-3 here
  for v in np.random.default_rng(0).normal(size=(6, flat.size)):
    v = jnp.asarray(v / np.linalg.norm(v), jnp.float32)
    numeric = (float(mean_loss(flat + h * v)) - float(mean_loss(flat - h * v))) / (2 * h)
    analytic = float(jnp.dot(grad, v))
    assert analytic == pytest.approx(numeric, rel=1e-2, abs=1e-3)


def test_bernoulli_iwae_bound_approaches_log_px_integrated_over_a_grid():
  model, params, x = _tiny_vae(latent_dim=1, hidden=(16,), seed=2)
  # A sharp decoder, so the true posterior is narrow, and q(z|x) close to the
  # prior N(0, 1): the ELBO is visibly loose, yet the importance weights stay
  # light-tailed, so a k of a few thousand gets within the tolerance.
  params = dict(params, decoder=jax.tree_util.tree_map(lambda v: 3.0 * v, params['decoder']),
                posterior={'kernel': 0.3 * params['posterior']['kernel'],
                           'bias': jnp.zeros_like(params['posterior']['bias'])})

  # log p(x) = log ∫ p(x|z) N(z; 0, 1) dz on a grid fine enough for the decoder.
  grid = np.linspace(-12.0, 12.0, 24001)
  logits = model.apply({'params': params}, jnp.float32(grid[:, None]), method='decode')
  log_joint = _log_bernoulli(np.asarray(logits)[:, None], np.float64(x)[None]) \
      + _log_normal(grid[:, None, None], 0.0, 0.0)                      # [G, B]
  peak = log_joint.max(0)
  dz = grid[1] - grid[0]
  log_px = peak + np.log(np.trapezoid(np.exp(log_joint - peak), dx=dz, axis=0))

  bounds = {k: evaluate.iwae_per_example(model, params, x, jax.random.key(5), num_samples=k,
                                         example_chunk=6, sample_chunk=1000)
            for k in (1, 50, 5000)}
  gap = {k: log_px - b['iwae'] for k, b in bounds.items()}
  assert np.mean(gap[1]) > 0.05, 'the test needs a loose ELBO to mean anything'
  assert np.mean(gap[1]) > np.mean(gap[50]) > np.mean(gap[5000])
  # Each estimate carries Monte Carlo noise of a few hundredths of a nat at
  # k = 5000 here; the mean over the images is tighter.
  np.testing.assert_allclose(bounds[5000]['iwae'], log_px, atol=0.1)
  assert np.mean(bounds[5000]['iwae']) == pytest.approx(np.mean(log_px), abs=0.02)
