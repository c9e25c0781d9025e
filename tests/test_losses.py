"""Loss terms against NumPy closed forms and Monte Carlo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.core import experiment, losses, models, objective
from vae_jax.core.config import base_config


def test_gaussian_kl_matches_numpy_closed_form():
  rng = np.random.default_rng(0)
  mean, logvar = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
  var = np.exp(logvar)
  expected = 0.5 * np.sum(var + mean ** 2 - 1 - logvar, axis=-1)
  got = jax.jit(losses.gaussian_kl)(jnp.asarray(mean, jnp.float32), jnp.asarray(logvar, jnp.float32))
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  assert got.shape == (5,)


def test_gaussian_kl_matches_monte_carlo():
  mean, logvar = jnp.array([[0.7, -1.2]]), jnp.array([[-0.5, 0.4]])
  z = models.reparameterize(jax.random.key(0), jnp.broadcast_to(mean, (200_000, 2)),
                            jnp.broadcast_to(logvar, (200_000, 2)))
  mc = jnp.mean(losses.diagonal_normal_log_density(z, mean, logvar)
                - losses.standard_normal_log_density(z))
  assert float(mc) == pytest.approx(float(losses.gaussian_kl(mean, logvar)[0]), abs=0.01)


def test_kl_is_zero_at_the_prior():
  assert float(losses.gaussian_kl(jnp.zeros((1, 4)), jnp.zeros((1, 4)))[0]) == 0.0


@pytest.mark.parametrize('logit', [-1e4, -100.0, -3.0, 0.0, 3.0, 100.0, 1e4])
@pytest.mark.parametrize('target', [0.0, 0.3, 1.0])
def test_bernoulli_log_likelihood_is_stable_and_exact(logit, target):
  got = losses.bernoulli_log_likelihood(jnp.full((1, 2), logit, jnp.float32),
                                        jnp.full((1, 2), target, jnp.float32))
  # float64 reference: log sigmoid(l) = -log1p(exp(-l)), computed stably
  l = np.float64(logit)
  log_sig = -np.logaddexp(0, -l)
  log_one_minus = -np.logaddexp(0, l)
  expected = 2 * (target * log_sig + (1 - target) * log_one_minus)
  assert np.isfinite(float(got[0]))
  assert float(got[0]) == pytest.approx(expected, rel=1e-5, abs=1e-4)


def test_bernoulli_gradient_is_finite_at_extreme_logits():
  g = jax.grad(lambda l: jnp.sum(losses.bernoulli_log_likelihood(l, jnp.array([[1.0, 0.0]]))))(
      jnp.array([[-1e4, 1e4]]))
  assert np.all(np.isfinite(g)) and np.allclose(g, [[1.0, -1.0]])


@pytest.mark.parametrize('var', [0.3, 1.0, 4.0])
def test_gaussian_log_likelihood_matches_numpy_and_scipy(var):
  rng = np.random.default_rng(1)
  mu, x = rng.normal(size=(3, 4, 4, 1)), rng.normal(size=(3, 4, 4, 1))
  expected = np.sum(-0.5 * ((x - mu) ** 2 / var + np.log(2 * np.pi * var)), axis=(1, 2, 3))
  got = losses.gaussian_log_likelihood(jnp.asarray(mu), jnp.asarray(x), var)
  assert got.shape == (3,)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  from scipy import stats  # a dependency of the package: missing is a failure
  ref = stats.norm.logpdf(x, loc=mu, scale=np.sqrt(var)).sum(axis=(1, 2, 3))
  np.testing.assert_allclose(got, ref, rtol=1e-5)


def test_gradients_reach_mean_and_logvar_through_reparameterisation():
  key = jax.random.key(3)
  eps = jax.random.normal(key, (1, 2))

  def f(mean, logvar):
    return jnp.sum(models.reparameterize(key, mean, logvar) ** 2)

  mean, logvar = jnp.array([[0.5, -1.0]]), jnp.array([[0.2, -0.4]])
  g_mean, g_logvar = jax.grad(f, argnums=(0, 1))(mean, logvar)
  z = mean + jnp.exp(0.5 * logvar) * eps
  np.testing.assert_allclose(g_mean, 2 * z, rtol=1e-5)
  np.testing.assert_allclose(g_logvar, 2 * z * eps * 0.5 * jnp.exp(0.5 * logvar), rtol=1e-5)
  assert np.all(np.abs(g_logvar) > 0)


def test_reparameterisation_gradients_match_finite_differences():
  key = jax.random.key(4)
  mean, logvar = jnp.array([[0.3, -0.8, 1.1]]), jnp.array([[0.1, -1.5, 0.7]])

  def f(m, lv):  # a nonlinear function of z
    return jnp.sum(jnp.sin(models.reparameterize(key, m, lv)))

  g_mean, g_logvar = jax.grad(f, argnums=(0, 1))(mean, logvar)
  h = 1e-2
  for i in range(3):
    e = jnp.zeros_like(mean).at[0, i].set(h)
    fd_mean = (f(mean + e, logvar) - f(mean - e, logvar)) / (2 * h)
    fd_logvar = (f(mean, logvar + e) - f(mean, logvar - e)) / (2 * h)
    assert float(g_mean[0, i]) == pytest.approx(float(fd_mean), rel=1e-3, abs=1e-4)
    assert float(g_logvar[0, i]) == pytest.approx(float(fd_logvar), rel=1e-3, abs=1e-4)
  assert np.all(np.abs(g_logvar) > 1e-4) and np.all(np.abs(g_mean) > 1e-4)


def test_vae_loss_gradient_reaches_both_mean_and_logvar_heads():
  # The posterior layer is Dense(2 * latent_dim): columns [:D] give the mean,
  # [D:] the log-variance. Both must receive gradient from the ELBO, the
  # log-variance through the sampled z (reconstruction) and the KL.
  c = base_config()
  c.model.mlp.hidden_sizes, c.latent_dim = (16,), 3
  model = experiment.build_model(c)
  x = jax.random.uniform(jax.random.key(0), (4, 28, 28, 1))
  params = model.init(jax.random.key(1), x, jax.random.key(2))['params']
  obj = objective.Objective.from_config(c)

  def recon_and_kl(p):
    t = objective.loss_terms(model, p, x, x, jax.random.key(3), obj, train=True)
    return jnp.mean(t['recon']), jnp.mean(t['kl'])

  for part in (0, 1):
    g = jax.grad(lambda p: recon_and_kl(p)[part])(params)['posterior']['kernel']
    assert np.all(np.linalg.norm(g[:, :3], axis=0) > 0), 'no gradient to the mean'
    assert np.all(np.linalg.norm(g[:, 3:], axis=0) > 0), 'no gradient to the logvar'


def test_iwae_bound_with_one_sample_is_the_log_weight():
  log_w = jnp.array([[-3.0, -5.0]])
  np.testing.assert_allclose(losses.iwae_bound(log_w), [-3.0, -5.0])
  two = jnp.array([[0.0], [np.log(3.0)]])
  assert float(losses.iwae_bound(two)[0]) == pytest.approx(np.log(2.0))


def test_kl_warmup_is_linear_then_flat():
  w = [float(losses.kl_weight_at(jnp.array(s), 2.0, 10)) for s in (0, 5, 10, 50)]
  assert w == pytest.approx([0.0, 1.0, 2.0, 2.0])
