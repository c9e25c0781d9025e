"""One model protocol: every kind answers the calls the objective and the evaluation use.

Autoencoder, VAE (each built-in family and a registered one) and the two-layer
VAE all answer ``__call__``, ``encode``, ``decode``, ``log_weights`` and
``closed_form_kl``; the VAE's log-weights are checked against the joint over
q assembled by hand in float64, and its training and evaluation terms against
the same weights.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from vae_jax.core import evaluate, hierarchical, losses, models, objective

IMAGE_SHAPE = (4, 4, 1)
LOG_LIK = losses.bernoulli_log_likelihood


class _TinyEncoder(nn.Module):
  @nn.compact
  def __call__(self, x, train=False):
    return nn.relu(nn.Dense(6)(x.reshape((x.shape[0], -1))))


class _TinyDecoder(nn.Module):
  @nn.compact
  def __call__(self, z, train=False):
    return nn.Dense(16)(z).reshape((z.shape[0], *IMAGE_SHAPE))


def _models():
  cfg = lambda kind, family: ml_collections.ConfigDict({
      'model': {'kind': kind, 'family': family, 'dropout_rate': 0.0,
                'mlp': {'hidden_sizes': (8,)}}, 'latent_dim': 2})
  models.register_family('protocol_test_tiny', lambda c, shape: (_TinyEncoder(), _TinyDecoder()))
  return {
      'ae': models.build_model(cfg('autoencoder', 'mlp'), IMAGE_SHAPE),
      'vae': models.build_model(cfg('vae', 'mlp'), IMAGE_SHAPE),
      'vae_registered_family': models.build_model(cfg('vae', 'protocol_test_tiny'), IMAGE_SHAPE),
      'two_layer': hierarchical.TwoLayerVAE(IMAGE_SHAPE, (8,), 3, (4,), 2),
  }


def _data(seed=0, n=5):
  return np.random.default_rng(seed).integers(0, 2, (n, *IMAGE_SHAPE)).astype(np.float32)


@pytest.mark.parametrize('name', ['ae', 'vae', 'vae_registered_family', 'two_layer'])
def test_every_kind_answers_the_same_calls(name):
  model = _models()[name]
  x = _data()
  variables = model.init(jax.random.key(0), x, jax.random.key(1))
  out = model.apply(variables, x, jax.random.key(2))
  assert out.logits.shape == x.shape and out.z.shape == (5, 2)
  mean, logvar = model.apply(variables, x, method='encode')
  assert mean.shape == (5, 2) and (logvar is None) == (name == 'ae')
  assert model.apply(variables, mean, method='decode').shape == x.shape
  assert isinstance(model.closed_form_kl, bool)
  if name == 'ae':
    with pytest.raises(TypeError, match='need a VAE'):
      model.apply(variables, x, x, jax.random.key(3), 4, LOG_LIK, method='log_weights')
    return
  imp = model.apply(variables, x, x, jax.random.key(3), 4, LOG_LIK, method='log_weights')
  assert imp.log_w.shape == imp.recon_ll.shape == (4, 5)
  assert (imp.kl is None) == (not model.closed_form_kl)
  assert np.all(np.isfinite(imp.log_w))


def test_vae_log_weights_are_the_joint_over_q_by_hand():
  model = _models()['vae']
  x = _data(1)
  params = model.init(jax.random.key(0), x, jax.random.key(1))['params']
  k, key = 6, jax.random.key(4)
  imp = model.apply({'params': params}, x, x, key, k, LOG_LIK, method='log_weights')

  mean, logvar = (np.float64(a) for a in model.apply({'params': params}, x, method='encode'))
  z = mean + np.exp(0.5 * logvar) * np.float64(jax.random.normal(key, (k, *mean.shape)))
  logits = np.float64(model.apply({'params': params}, jnp.float32(z.reshape(-1, 2)),
                                  method='decode')).reshape((k, *x.shape))
  recon = np.sum(-(x * np.logaddexp(0, -logits) + (1 - x) * np.logaddexp(0, logits)),
                 axis=(-3, -2, -1))
  log_normal = lambda v, m, lv: np.sum(-0.5 * (np.log(2 * np.pi) + lv + (v - m) ** 2
                                               / np.exp(lv)), -1)
  expected = recon + log_normal(z, 0.0, 0.0) - log_normal(z, mean, logvar)
  np.testing.assert_allclose(imp.recon_ll, recon, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(imp.log_w, expected, rtol=1e-5, atol=1e-4)
  kl = np.sum(0.5 * (np.exp(logvar) + mean ** 2 - 1 - logvar), -1)
  np.testing.assert_allclose(imp.kl, kl, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('name', ['vae', 'vae_registered_family', 'two_layer'])
def test_training_and_evaluation_read_the_same_log_weights(name):
  model = _models()[name]
  x = _data(2)
  params = model.init(jax.random.key(0), x, jax.random.key(1))['params']
  # Training, k = 5: the loss is the IWAE bound's negative of log_weights' draws.
  key = jax.random.key(8)
  terms = objective.loss_terms(model, params, x, x, key, objective.Objective(iwae_samples=5),
                               train=False)
  imp = model.apply({'params': params}, x, x, jax.random.split(key)[0], 5, LOG_LIK,
                    method='log_weights')
  np.testing.assert_allclose(terms['loss'], -losses.iwae_bound(imp.log_w), rtol=1e-6)
  np.testing.assert_allclose(terms['recon'], -np.mean(imp.recon_ll, 0), rtol=1e-6)
  # Evaluation: per image, fold_in(fold_in(key, index), chunk) draws the samples.
  ev = evaluate.iwae_per_example(model, params, x, jax.random.key(5), num_samples=7,
                                 example_chunk=5, sample_chunk=7)
  log_w, recon = [], []
  for i in range(len(x)):
    k_i = jax.random.fold_in(jax.random.fold_in(jax.random.key(5), i), 0)
    one = model.apply({'params': params}, x[i:i + 1], x[i:i + 1], k_i, 7, LOG_LIK,
                      method='log_weights')
    log_w.append(np.float64(one.log_w[:, 0]))
    recon.append(np.float64(one.recon_ll[:, 0]))
  log_w, recon = np.array(log_w), np.array(recon)                         # [B, S]
  peak = log_w.max(1)
  np.testing.assert_allclose(ev['iwae'], peak + np.log(np.mean(np.exp(log_w - peak[:, None]), 1)),
                             rtol=1e-6, atol=1e-4)
  if model.closed_form_kl:
    mean, logvar = model.apply({'params': params}, x, method='encode')
    expected_elbo = recon.mean(1) - np.float64(losses.gaussian_kl(mean, logvar))
  else:
    expected_elbo = log_w.mean(1)
  np.testing.assert_allclose(ev['elbo'], expected_elbo, rtol=1e-6, atol=1e-4)
