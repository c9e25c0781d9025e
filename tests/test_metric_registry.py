"""One metric registry: every key the study, the sweep and the latent report use has an entry."""

import pathlib

import jax
import numpy as np
import pytest

from vae_jax.analysis import latent_report, metric_registry as registry, metrics
from vae_jax.study import claims, report, sweep_figures, sweep_report

ROOT = pathlib.Path(__file__).resolve().parents[1]


def used_keys():
  keys = set(report.TABLE_KEYS) | set(report.SAMPLER_KEYS) | set(sweep_report.CORE_KEYS)
  keys |= {m for m, _ in sweep_report.GHOSH_METRICS} | {m for m, _, _ in sweep_report.BETA_MATRICES}
  keys |= {k for k, _ in sweep_figures.RD_COLOURS.values()}
  keys |= {k for k, _ in sweep_figures.VS_LATENT}
  keys |= set(latent_report.CONTINUITY_KEYS) | set(latent_report.SAMPLER_KEYS)
  keys |= {c.metric for c in claims.CLAIMS}
  keys |= {c.metric for c in sweep_report.claims(
      {'datasets': ['mnist'], 'latent_dims': [2], 'variants': ['ae', 'beta0', 'beta1'],
       'seeds': [0]})}
  return keys


@pytest.mark.parametrize('key', sorted(used_keys()))
def test_every_used_key_has_an_entry(key):
  m = registry.get(key)
  assert m.label and m.direction in (registry.GREATER, registry.LESS, None)


def test_every_latent_metric_has_an_entry():
  rng = np.random.default_rng(0)
  images = rng.random((120, 4, 4, 1), dtype=np.float32)
  labels = rng.integers(0, 3, 120)
  w = rng.normal(size=(16, 2))
  out = metrics.latent_metrics(
      lambda x: (x.reshape(len(x), -1) @ w, np.zeros((len(x), 2))),
      lambda z: 1 / (1 + np.exp(-(z @ w.T))).reshape(-1, 4, 4, 1), images, labels, images,
      labels, jax.random.key(0), classifier_fn=lambda x: x.reshape(len(x), -1)[:, :3] * 5,
      features_fn=lambda x: x.reshape(len(x), -1), num_train=100, num_test=60, num_samples=40,
      num_paths=5, path_steps=8, num_perturb=10, num_reference=30)
  missing = [k for k in out if registry.split(k)[1] not in registry.METRICS]
  assert not missing, missing


def test_claim_directions_are_the_registrys():
  """A claim that the VAE scores better under a fitted sampler asks the registry which way is
  better. (Other claims may assert that a model is worse, or compare with a number.)"""
  scored = [c for c in claims.CLAIMS if c.group == 'samplers']
  assert scored
  for c in scored:
    assert c.direction == registry.direction(c.metric), c.id


def test_arrows_are_declared_only_in_the_registry():
  """No table, report or figure of the study or the analysis types its own ↑ / ↓."""
  offenders = [str(p.relative_to(ROOT)) for folder in ('vae_jax/study', 'vae_jax/analysis')
               for p in (ROOT / folder).glob('*.py') if p.name != 'metric_registry.py'
               and any(arrow in p.read_text() for arrow in '↑↓')]
  assert not offenders, offenders


def test_headers_and_unknown_keys():
  assert registry.header('prior/hole_share') == 'N(0,I): holes ↓'
  assert registry.header('recon') == 'test recon (nats) ↓'
  assert registry.arrow('lipschitz_p99_relative') == ''
  with pytest.raises(KeyError, match='metric_registry'):
    registry.get('gmm/not_a_metric')
