"""Likelihood evaluation: IWAE bound vs ELBO, a closed-form check, the CLI, restoring."""

import functools
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.core import config as config_lib
from vae_jax.core import diagnostics, evaluate, experiment, latent, losses, models
from vae_jax.infra import run_clock

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------
# A linear-Gaussian model: log p(x) in closed form
# ----------------------------------------------------------------------------
class LinearGaussian(nn.Module):
  """p(z) = N(0, I), p(x|z) = N(Wz + b, σ²I); q(z|x) = N(A(x - b), diag(exp(logvar)))."""
  x_dim: int = 6
  z_dim: int = 2
  closed_form_kl = True  # the model protocol (vae_jax/core/models.py)

  def setup(self):
    zeros = nn.initializers.zeros
    self.W = self.param('W', zeros, (self.x_dim, self.z_dim))
    self.b = self.param('b', zeros, (self.x_dim,))
    self.A = self.param('A', zeros, (self.x_dim, self.z_dim))
    self.logvar = self.param('logvar', zeros, (self.z_dim,))

  def encode(self, x):
    mean = (x - self.b) @ self.A
    return mean, jnp.broadcast_to(self.logvar, mean.shape)

  def decode(self, z):
    return z @ self.W.T + self.b

  def __call__(self, x):
    return self.decode(self.encode(x)[0])

  def log_weights(self, x, targets, key, num_samples, log_likelihood, train=False):
    del train
    return models.gaussian_log_weights(self.encode, self.decode, x, targets, key,
                                       num_samples, log_likelihood)


SIGMA2 = 0.25


def _linear_gaussian(perturbed):
  rng = np.random.default_rng(0)
  x_dim, z_dim = 6, 2
  q, _ = np.linalg.qr(rng.normal(size=(x_dim, z_dim)))
  scales = np.array([2.0, 0.7])
  W = q * scales                      # orthogonal columns: WᵀW diagonal
  b = rng.normal(size=x_dim) * 0.3
  post_var = 1.0 / (1.0 + scales ** 2 / SIGMA2)   # exact posterior is diagonal
  A = W * post_var / SIGMA2
  logvar = np.log(post_var)
  if perturbed:
    A, logvar = A * 0.7, logvar + 0.8
  params = jax.tree_util.tree_map(
      lambda v: jnp.asarray(v, jnp.float32),
      {'W': W, 'b': b, 'A': A, 'logvar': logvar})
  # Data from the model itself.
  z = rng.normal(size=(300, z_dim))
  x = z @ W.T + b + rng.normal(size=(300, x_dim)) * math.sqrt(SIGMA2)
  cov = W @ W.T + SIGMA2 * np.eye(x_dim)
  diff = x - b
  _, logdet = np.linalg.slogdet(cov)
  log_px = -0.5 * (np.sum(diff * np.linalg.solve(cov, diff.T).T, axis=1)
                   + logdet + x_dim * math.log(2 * math.pi))
  return LinearGaussian(x_dim, z_dim), params, x.astype(np.float32), log_px


GAUSS_LL = functools.partial(losses.gaussian_log_likelihood, variance=SIGMA2)


def test_exact_posterior_gives_log_px_for_any_k():
  model, params, x, log_px = _linear_gaussian(perturbed=False)
  for k in (1, 7):
    per = evaluate.iwae_per_example(model, params, x, jax.random.key(0),
                                    num_samples=k, likelihood=GAUSS_LL)
    np.testing.assert_allclose(per['iwae'], log_px, atol=2e-3)
    # The ELBO estimate is noisy per example (MC over log p(x|z)), exact on average.
    assert np.mean(per['elbo']) == pytest.approx(np.mean(log_px), abs=0.15)


def test_iwae_converges_to_log_px_with_k():
  model, params, x, log_px = _linear_gaussian(perturbed=True)
  key = jax.random.key(1)
  means = {}
  for k in (1, 10, 100, 2000):
    per = evaluate.iwae_per_example(model, params, x, key, num_samples=k,
                                    likelihood=GAUSS_LL, example_chunk=64,
                                    sample_chunk=256)
    means[k] = float(np.mean(per['iwae']))
    elbo = float(np.mean(per['elbo']))
  true = float(np.mean(log_px))
  gaps = [true - means[k] for k in (1, 10, 100, 2000)]
  assert true - elbo > 0.3, 'the perturbed posterior must leave a visible ELBO gap'
  assert all(g > -0.01 for g in gaps), (gaps, 'a bound may not exceed log p(x)')
  assert gaps[0] > gaps[1] > gaps[2] > gaps[3] - 0.005, gaps
  assert gaps[3] < 0.02 and gaps[3] < 0.05 * (true - elbo), gaps


def test_chunking_does_not_change_per_example_values():
  model, params, x, _ = _linear_gaussian(perturbed=True)
  kw = dict(num_samples=50, likelihood=GAUSS_LL, sample_chunk=20)
  a = evaluate.iwae_per_example(model, params, x[:40], jax.random.key(3),
                                example_chunk=7, **kw)
  b = evaluate.iwae_per_example(model, params, x, jax.random.key(3),
                                example_chunk=64, **kw)
  np.testing.assert_allclose(a['iwae'], b['iwae'][:40], rtol=1e-6, atol=1e-5)
  c = evaluate.iwae_per_example(model, params, x[:40], jax.random.key(3),
                                example_chunk=7, **kw)
  np.testing.assert_array_equal(a['iwae'], c['iwae'])


class _Terminal(io.StringIO):
  def isatty(self):
    return True


@pytest.mark.parametrize('is_terminal', [True, False])
def test_progress_bar_on_a_terminal_plain_lines_in_a_log_same_numbers(monkeypatch, is_terminal):
  model, params, x, _ = _linear_gaussian(perturbed=True)
  kw = dict(num_samples=50, likelihood=GAUSS_LL, sample_chunk=20, example_chunk=16)
  quiet = evaluate.iwae_per_example(model, params, x, jax.random.key(3), **kw)
  stderr = _Terminal() if is_terminal else io.StringIO()
  monkeypatch.setattr(sys, 'stderr', stderr)
  shown = evaluate.iwae_per_example(model, params, x, jax.random.key(3), progress=True, **kw)
  np.testing.assert_array_equal(quiet['iwae'], shown['iwae'])
  text = stderr.getvalue()
  if is_terminal:
    final = text.replace('\r', '\n').strip().splitlines()[-1]
    assert final.startswith('IWAE-50: 100%') and f'{len(x)}/{len(x)}' in final, final
    assert f'nll={-np.mean(shown["iwae"]):.2f}' in final, final
  else:  # a log: plain lines after the first and the last chunk (and every 10 s)
    assert '\r' not in text
    lines = text.splitlines()
    assert lines[0].startswith('IWAE-50: 16/300 images, NLL so far '), text
    assert re.fullmatch(rf'IWAE-50: 300/300 images, NLL so far {-np.mean(shown["iwae"]):.2f}; '
                        r'\d+:\d\d:\d\d elapsed, ETA 0:00:00', lines[-1]), text


def test_evaluate_likelihood_units():
  model, params, x, _ = _linear_gaussian(perturbed=True)
  r = evaluate.evaluate_likelihood(model, params, x, jax.random.key(0), num_samples=10,
                                   likelihood=GAUSS_LL, binarize='none')
  assert r['nll'] == pytest.approx(-r['iwae'])
  assert r['nll_bits_per_dim'] == pytest.approx(r['nll'] / (6 * math.log(2)))
  assert r['num_examples'] == 300 and r['num_dims'] == 6 and r['binarize'] == 'none'


# ----------------------------------------------------------------------------
# A tiny trained run
# ----------------------------------------------------------------------------
def tiny_config(data_dir, kind='vae'):
  c = config_lib.base_config()
  c.data.dir = data_dir
  c.data.num_train = 512
  c.data.num_test = 200
  c.data.binarize = 'static'
  c.model.kind = kind
  c.model.mlp.hidden_sizes = (32,)
  c.num_epochs = 2
  c.batch_size = 64
  c.eval_batch_size = 100
  c.progress = False
  return c


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_dir):
  # data_dir (conftest) fails, not skips, when the MNIST files are missing.
  from vae_jax.core import train
  workdir = str(tmp_path_factory.mktemp('tiny_vae'))
  result = train.train_and_evaluate(tiny_config(data_dir), workdir)
  return workdir, result


def test_iwae_bound_above_elbo_and_grows_with_k(trained):
  _, result = trained
  exp = result['experiment']
  params = result['state'].params
  per = {k: evaluate.iwae_per_example(exp.model, params, exp.test_images,
                                      jax.random.key(k), num_samples=k)
         for k in (1, 10, 100)}
  for k in (10, 100):
    assert np.mean(per[k]['iwae']) > np.mean(per[k]['elbo'])
  for small, large in ((1, 10), (10, 100)):
    diff = per[large]['iwae'] - per[small]['iwae']
    stderr = np.std(diff, ddof=1) / math.sqrt(len(diff))
    assert np.mean(diff) > -3 * stderr, (small, large, np.mean(diff), stderr)
  # The test ELBO agrees with the training code's estimate (1 sample there).
  assert np.mean(per[100]['elbo']) == pytest.approx(-result['test']['loss'], abs=3.0)


def test_restore_matches_trained_state(trained):
  workdir, result = trained
  config, _, params, step = experiment.restore(workdir)
  assert step == 16
  assert config.model.kind == 'vae' and tuple(config.model.mlp.hidden_sizes) == (32,)
  jax.tree_util.tree_map(np.testing.assert_array_equal, jax.device_get(params),
                         jax.device_get(result['state'].params))


def test_evaluate_workdir_is_deterministic(trained):
  workdir, _ = trained
  kw = dict(num_samples=8, num_examples=30, seed=5)
  a = evaluate.evaluate_workdir(workdir, **kw)
  b = evaluate.evaluate_workdir(workdir, **kw)
  assert a['nll'] == b['nll'] and a['elbo'] == b['elbo']
  assert a['binarize'] == 'static' and a['data'] == 'mnist' and a['num_examples'] == 30
  c = evaluate.evaluate_workdir(workdir, **{**kw, 'seed': 6})
  assert c['nll'] != a['nll']


def test_latent_diagnostics_on_trained_model(trained):
  _, result = trained
  exp = result['experiment']
  diag = diagnostics.latent_diagnostics(exp.model, result['state'].params, exp.test_images)
  assert all(isinstance(v, float) for v in diag.values())
  assert 0 <= diag['active_units'] <= 2 and diag['latent_dim'] == 2
  # Each dimension's KL against NumPy's closed form on the encoder's outputs.
  mean, logvar = (np.asarray(a, np.float64) for a in latent.encode(
      exp.model, result['state'].params, exp.test_images))
  per_dim = np.mean(0.5 * (mean ** 2 + np.exp(logvar) - 1 - logvar), axis=0)
  assert [diag['kl_dim_0'], diag['kl_dim_1']] == pytest.approx(per_dim, rel=1e-5)
  assert diag['kl'] == pytest.approx(per_dim.sum(), rel=1e-5)
  # The closed-form KL of the diagnostics is the training code's KL term.
  assert diag['kl'] == pytest.approx(result['test']['kl'], rel=1e-3)


def _run_cli(*args):
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  return subprocess.run([sys.executable, '-m', 'vae_jax.core.evaluate', *args],
                        capture_output=True, text=True, cwd=REPO, env=env, timeout=300)


def test_cli_writes_json(trained):
  workdir, _ = trained
  proc = _run_cli('--workdir', workdir, '--iwae_samples', '20', '--num_examples', '50')
  assert proc.returncode == 0, proc.stderr
  path = os.path.join(workdir, 'eval_iwae20_n50.json')
  with open(path) as f:
    r = json.load(f)
  assert r['num_samples'] == 20 and r['num_examples'] == 50
  assert r['binarize'] == 'static' and r['nll'] > 0 and r['nll_bits_per_dim'] > 0
  assert r['iwae'] >= r['elbo'] - 1.0
  assert 'NLL (IWAE-20)' in proc.stdout and path in proc.stdout
  assert r['machine'] == run_clock.machine_description() and r['seconds'] > 0


@pytest.mark.parametrize('precision', ['default', 'highest'])
def test_likelihood_runs_at_the_matmul_precision_asked_for(trained, monkeypatch, precision):
  workdir, _ = trained
  seen = []
  real = evaluate.evaluate_likelihood

  def spy(*args, **kwargs):
    seen.append(jax.config.jax_default_matmul_precision)
    return real(*args, **kwargs)

  monkeypatch.setattr(evaluate, 'evaluate_likelihood', spy)
  with jax.default_matmul_precision('bfloat16'):  # the caller's setting is overridden
    r = evaluate.evaluate_workdir(workdir, num_samples=4, num_examples=10,
                                  matmul_precision=precision)
  assert seen == [precision]
  assert r['matmul_precision'] == precision and r['backend'] == jax.default_backend()


def test_cli_keeps_each_precision_in_its_own_file(trained):
  workdir, _ = trained
  proc = _run_cli('--workdir', workdir, '--iwae_samples', '6', '--num_examples', '20',
                  '--matmul_precision', 'default')
  assert proc.returncode == 0, proc.stderr
  with open(os.path.join(workdir, 'eval_iwae6_n20_default.json')) as f:
    assert json.load(f)['matmul_precision'] == 'default'
  assert not os.path.exists(os.path.join(workdir, 'eval_iwae6_n20.json'))


def test_cli_without_checkpoint_exits_2_with_one_line(trained, tmp_path):
  workdir, _ = trained
  bare = tmp_path / 'bare'
  bare.mkdir()
  proc = _run_cli('--workdir', str(bare), '--iwae_samples', '5')
  assert proc.returncode == 2
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and 'config.json' in errors[0], proc.stderr
  assert 'Traceback' not in proc.stderr
  shutil.copy(os.path.join(workdir, 'config.json'), bare / 'config.json')
  proc = _run_cli('--workdir', str(bare), '--iwae_samples', '5')
  assert proc.returncode == 2
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and 'python -m vae_jax.main' in errors[0], proc.stderr
  assert 'Traceback' not in proc.stderr
