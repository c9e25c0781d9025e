"""The two-stochastic-layer VAE: log-weights by hand, bounds against a grid integral."""

import numpy as np
import jax
import pytest

from vae_jax.core import evaluate, hierarchical, losses, objective

IMAGE_SHAPE = (2, 2, 1)


def _model_and_data(seed=0, **sizes):
  sizes = {'hidden_sizes': (3,), 'bottom_latent_dim': 2, 'top_hidden_sizes': (3,),
           'latent_dim': 1, **sizes}
  model = hierarchical.TwoLayerVAE(IMAGE_SHAPE, **sizes)
  x = np.random.default_rng(seed).integers(0, 2, (5, *IMAGE_SHAPE)).astype(np.float32)
  params = model.init(jax.random.key(seed), x, jax.random.key(1))['params']
  return model, params, x


def _gaussian_layer(p, h):
  """NumPy forward of hierarchical._GaussianLayer: tanh layers, then mean | logvar."""
  h = np.float64(h)
  names = sorted(p, key=lambda n: int(n.split('_')[1]))
  for name in names[:-1]:
    h = np.tanh(h @ np.float64(p[name]['kernel']) + np.float64(p[name]['bias']))
  last = p[names[-1]]
  out = h @ np.float64(last['kernel']) + np.float64(last['bias'])
  return np.split(out, 2, axis=-1)


def _pixel_logits(p, z1):
  names = sorted(p, key=lambda n: int(n.split('_')[1]))
  h = np.float64(z1)
  for name in names[:-1]:
    h = np.tanh(h @ np.float64(p[name]['kernel']) + np.float64(p[name]['bias']))
  return h @ np.float64(p[names[-1]]['kernel']) + np.float64(p[names[-1]]['bias'])


def _log_normal(z, mean, logvar):
  return np.sum(-0.5 * (np.log(2 * np.pi) + logvar + (z - mean) ** 2 / np.exp(logvar)), -1)


def _log_bernoulli(logits, x):
  return np.sum(-(x * np.logaddexp(0, -logits) + (1 - x) * np.logaddexp(0, logits)), -1)


def test_log_weights_equal_the_two_layer_joint_over_q_by_hand():
  model, params, x = _model_and_data()
  k, key = 4, jax.random.key(3)
  log_lik = losses.bernoulli_log_likelihood
  log_w, recon_ll, kl = model.apply({'params': params}, x, x, key, k, log_lik,
                                    method='log_weights')
  assert kl is None  # no closed-form KL over two layers

  # The same draws: the key splits into one key per layer.
  key1, key2 = jax.random.split(key)
  flat = np.float64(x.reshape(5, -1))
  mean1, logvar1 = _gaussian_layer(params['q_z1'], flat)
  eps1 = np.float64(jax.random.normal(key1, (k, 5, 2)))
  z1 = mean1 + np.exp(0.5 * logvar1) * eps1
  mean2, logvar2 = _gaussian_layer(params['q_z2'], z1)
  z2 = mean2 + np.exp(0.5 * logvar2) * np.float64(jax.random.normal(key2, (k, 5, 1)))
  prior_mean1, prior_logvar1 = _gaussian_layer(params['p_z1'], z2)
  expected_recon = _log_bernoulli(_pixel_logits(params['p_x'], z1), flat)
  expected = (expected_recon + _log_normal(z1, prior_mean1, prior_logvar1)
              + _log_normal(z2, 0.0, 0.0)
              - _log_normal(z1, mean1, logvar1) - _log_normal(z2, mean2, logvar2))
  np.testing.assert_allclose(recon_ll, expected_recon, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(log_w, expected, rtol=1e-5, atol=1e-4)


def test_training_terms_are_the_elbo_and_the_iwae_bound_of_the_log_weights():
  model, params, x = _model_and_data()
  key = jax.random.key(9)
  for k in (1, 6):
    terms = objective.loss_terms(model, params, x, x, key, objective.Objective(iwae_samples=k),
                                 train=False)
    z_key = jax.random.split(key)[0]  # loss_terms draws z from the first half of its key
    log_w, recon_ll, _ = model.apply({'params': params}, x, x, z_key, k,
                                     losses.bernoulli_log_likelihood, method='log_weights')
    log_w, recon_ll = np.float64(log_w), np.float64(recon_ll)
    np.testing.assert_allclose(terms['elbo'], log_w.mean(0), rtol=1e-5)
    np.testing.assert_allclose(terms['recon'] + terms['kl'], -log_w.mean(0), rtol=1e-5)
    np.testing.assert_allclose(terms['recon'], -recon_ll.mean(0), rtol=1e-5)
    peak = log_w.max(0)
    bound = peak + np.log(np.mean(np.exp(log_w - peak), axis=0))
    np.testing.assert_allclose(terms['loss'], -bound if k > 1 else -log_w.mean(0),
                               rtol=1e-5)
  with pytest.raises(ValueError, match='free bits'):
    objective.loss_terms(model, params, x, x, key, objective.Objective(free_bits=0.5),
                         train=False, step=0)


def test_iwae_bound_of_two_1d_layers_approaches_a_2d_grid_integral_of_log_px():
  model, params, x = _model_and_data(seed=4, bottom_latent_dim=1, latent_dim=1,
                                     hidden_sizes=(8,), top_hidden_sizes=(8,))
  # A sharp p(x | z1), and q close to N(0, 1) in both layers so that the
  # importance weights stay light-tailed.
  params = dict(params, p_x=jax.tree_util.tree_map(lambda v: 3.0 * v, params['p_x']))
  for layer in ('q_z1', 'q_z2'):
    params[layer] = jax.tree_util.tree_map(lambda v: 0.2 * v, params[layer])

  # log p(x) = log ∫∫ p(x|z1) p(z1|z2) N(z2) dz1 dz2 on a grid.
  grid = np.linspace(-8.0, 8.0, 801)
  dz = grid[1] - grid[0]
  z1, z2 = np.meshgrid(grid, grid, indexing='ij')                    # [G1, G2]
  p = params
  prior_mean1, prior_logvar1 = _gaussian_layer(p['p_z1'], z2.reshape(-1, 1))
  log_prior = (_log_normal(z1.reshape(-1, 1), prior_mean1, prior_logvar1)
               + _log_normal(z2.reshape(-1, 1), 0.0, 0.0))          # [G1 G2]
  logits = _pixel_logits(p['p_x'], grid[:, None])                    # [G1, 4]
  flat = np.float64(x.reshape(5, -1))
  log_px_z1 = _log_bernoulli(logits[:, None], flat[None])            # [G1, B]
  log_joint = log_px_z1[:, None, :] + log_prior.reshape(len(grid), len(grid))[..., None]
  peak = log_joint.max(axis=(0, 1))
  log_px = peak + np.log(np.sum(np.exp(log_joint - peak), axis=(0, 1)) * dz * dz)

  bounds = {k: evaluate.iwae_per_example(model, params, x, jax.random.key(2), num_samples=k,
                                         example_chunk=5, sample_chunk=1000)
            for k in (1, 20, 50000)}
  gaps = {k: float(np.mean(log_px - b['iwae'])) for k, b in bounds.items()}
  assert gaps[1] > 0.05, 'the test needs a loose ELBO to mean anything'
  assert gaps[1] > gaps[20] > abs(gaps[50000])
  # Two layers of importance sampling converge more slowly than one: k = 5000
  # is still a few hundredths short here, k = 50000 within Monte Carlo noise.
  assert abs(gaps[50000]) < 0.02
  np.testing.assert_allclose(bounds[50000]['iwae'], log_px, atol=0.05)
  # At k = 1 the bound is the one-sample ELBO: the mean of a single log-weight.
  np.testing.assert_allclose(bounds[1]['iwae'], bounds[1]['elbo'], rtol=1e-6)


TWO_LAYERS = ('--config.model.mlp.stochastic_layers=2', '--config.model.mlp.hidden_sizes=(24,)',
              '--config.model.mlp.top_hidden_sizes=(12,)', '--config.model.mlp.bottom_latent_dim=6',
              '--config.latent_dim=3', '--config.data.binarize=dynamic',
              '--config.iwae_samples=2')


def test_a_two_layer_vae_trains_resumes_and_is_evaluated_from_the_cli(tmp_path, data_dir):
  import json
  import os
  from conftest import cli, train_args
  from vae_jax.core import experiment
  from vae_jax.infra import workdir as workdir_lib
  w = str(tmp_path / 'run')
  proc = cli(train_args(w, *TWO_LAYERS), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  config, model, params, step = experiment.restore(w)
  assert isinstance(model, hierarchical.TwoLayerVAE) and step == 8
  assert params['q_z1']['Dense_0']['kernel'].shape == (784, 24)
  assert params['q_z2']['Dense_1']['kernel'].shape == (12, 2 * 3)
  test = [r for r in workdir_lib.read_metrics(w) if r['split'] == 'test'][-1]
  assert test['elbo'] < 0 and test['kl'] > 0
  proc = cli(['--workdir', w, '--iwae_samples', '20', '--num_examples', '40'], data_dir,
             module='vae_jax.core.evaluate')
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(w, 'eval_iwae20_n40.json')) as f:
    r = json.load(f)
  assert r['nll'] > 0 and r['iwae'] >= r['elbo'] - 1.0
  # Raising num_epochs continues the same run.
  proc = cli(train_args(w, *TWO_LAYERS, '--config.num_epochs=2'), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert experiment.restore(w)[3] == 16


def test_two_layers_refuse_what_they_do_not_support_in_one_line():
  from conftest import tiny_config
  from vae_jax.core import config as config_lib
  c = tiny_config(**{'model.mlp.stochastic_layers': 2, 'model.family': 'conv',
                     'model.dropout_rate': 0.5})
  with pytest.raises(config_lib.ConfigError,
                     match=r"mlp.stochastic_layers=2 .* needs model.family='mlp', "
                           r'model.dropout_rate=0$'):
    config_lib.validate(c)
  with pytest.raises(config_lib.ConfigError, match='must be 1 or 2'):
    config_lib.validate(tiny_config(**{'model.mlp.stochastic_layers': 3}))


def test_a_config_json_from_before_two_layers_reads_as_one_layer():
  from vae_jax.core import config as config_lib
  old = {'latent_dim': 2, 'train_loop': 'scan', 'model': {'kind': 'vae', 'family': 'mlp'}}
  new = config_lib.upgrade(old)
  mlp = new['model']['mlp']
  assert mlp['stochastic_layers'] == 1 and mlp['top_hidden_sizes'] == [100, 100]
  assert 'train_loop' not in new and old['model'] == {'kind': 'vae', 'family': 'mlp'}
