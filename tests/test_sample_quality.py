"""Samplers, Fréchet distance and precision / recall on cases with known answers."""

import os
from pathlib import Path

import jax
import numpy as np
import pytest

from vae_jax.analysis import sample_quality, samplers
from vae_jax.core import data

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------
# Fréchet distance
# ----------------------------------------------------------------------------
def test_frechet_distance_of_a_set_with_itself_is_zero():
  x = RNG.normal(size=(500, 16))
  assert sample_quality.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_the_gaussian_closed_form():
  """Diagonal covariances: FD = |Δμ|² + Σ (σ_a − σ_b)², computed from the sets' own moments."""
  a = RNG.normal(size=(4000, 3)) * np.array([1.0, 2.0, 0.5]) + np.array([0.0, 1.0, -1.0])
  b = RNG.normal(size=(4000, 3)) * np.array([3.0, 1.0, 0.5]) + np.array([2.0, 1.0, 0.0])
  # Decorrelate each set exactly so that the closed form of diagonal Gaussians applies.
  def whiten_offdiag(x):
    c = x - x.mean(0)
    w, v = np.linalg.eigh(np.cov(c, rowvar=False))
    target = np.sqrt(np.diag(np.cov(c, rowvar=False)))
    return (c @ v / np.sqrt(w)) @ v.T * target + x.mean(0)
  a, b = whiten_offdiag(a), whiten_offdiag(b)
  sa, sb = np.sqrt(np.diag(np.cov(a, rowvar=False))), np.sqrt(np.diag(np.cov(b, rowvar=False)))
  expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.sum((sa - sb) ** 2)
  assert sample_quality.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_orders_near_and_far_sets():
  real = RNG.normal(size=(2000, 8))
  same_law = RNG.normal(size=(2000, 8))
  shifted = RNG.normal(size=(2000, 8)) + 1.0
  fd_same = sample_quality.frechet_distance(real, same_law)
  fd_shift = sample_quality.frechet_distance(real, shifted)
  assert fd_same < 0.1 and fd_shift == pytest.approx(8.0, rel=0.1)


# ----------------------------------------------------------------------------
# Precision and recall (Kynkäänniemi et al. 2019)
# ----------------------------------------------------------------------------
def test_precision_recall_of_a_set_with_itself_is_one():
  x = RNG.normal(size=(400, 5))
  assert sample_quality.precision_recall(x, x) == {'precision': 1.0, 'recall': 1.0}


def test_precision_recall_separate_realism_from_coverage():
  real = RNG.normal(size=(2000, 2))
  # Samples on one half of the data only: all realistic, half the data covered.
  half = real[real[:, 0] > 0][:500] + RNG.normal(size=(500, 2)) * 0.01
  pr = sample_quality.precision_recall(real, half)
  assert pr['precision'] > 0.95 and 0.35 < pr['recall'] < 0.65, pr
  # Samples far away: neither.
  far = RNG.normal(size=(500, 2)) + 20.0
  assert sample_quality.precision_recall(real, far) == {'precision': 0.0, 'recall': 0.0}


def test_brute_force_agrees():
  real, fake = RNG.normal(size=(120, 3)), RNG.normal(size=(90, 3)) * 1.5
  def brute(r, f, k):
    d_rr = np.linalg.norm(r[:, None] - r[None], axis=-1)
    radius = np.sort(d_rr, axis=1)[:, k]
    d_fr = np.linalg.norm(f[:, None] - r[None], axis=-1)
    return np.mean(np.any(d_fr <= radius[None], axis=1))
  pr = sample_quality.precision_recall(real, fake, k=3)
  assert pr['precision'] == pytest.approx(brute(real, fake, 3), abs=1e-9)
  assert pr['recall'] == pytest.approx(brute(fake, real, 3), abs=1e-9)


REPO = Path(__file__).resolve().parents[1]
DATA_DIR = os.environ.get('VAE_JAX_DATA_DIR') or str(REPO.parent / 'shared' / 'datasets')


def test_real_images_test_against_train_is_close_and_noise_is_far():
  """Pixel features: MNIST test vs train images are near; uniform noise is far and unrealistic."""
  test_x, _ = data.load('mnist', 'test', data_dir=DATA_DIR)
  train_x, _ = data.load('mnist', 'train', data_dir=DATA_DIR)
  flat = lambda x: np.asarray(x[:1500], np.float64).reshape(1500, -1)
  real, other = flat(test_x), flat(train_x)
  noise = RNG.random((1500, 784))
  near = sample_quality.sample_quality(real, other)
  far = sample_quality.sample_quality(real, noise)
  assert far['frechet_distance'] > 20 * near['frechet_distance'], (near, far)
  assert near['precision'] > 0.6 and near['recall'] > 0.6, near
  assert far['precision'] == 0.0 and far['recall'] == 0.0, far
  assert near['coverage'] > 0.8 and near['density'] > 0.6, near   # real balls, same data
  assert far['coverage'] == 0.0 and far['density'] == 0.0, far


# ----------------------------------------------------------------------------
# Samplers
# ----------------------------------------------------------------------------
def test_prior_and_gaussian_samplers_have_the_right_moments():
  codes = RNG.normal(size=(5000, 2)) @ np.array([[2.0, 0.0], [1.0, 0.5]]) + np.array([3.0, -1.0])
  prior = samplers.make_sampler('prior', codes, None)(jax.random.key(0), 20000)
  fitted = samplers.make_sampler('gaussian', codes, None)(jax.random.key(0), 20000)
  np.testing.assert_allclose(prior.mean(0), 0.0, atol=0.03)
  np.testing.assert_allclose(np.cov(prior, rowvar=False), np.eye(2), atol=0.04)
  np.testing.assert_allclose(fitted.mean(0), codes.mean(0), atol=0.05)
  np.testing.assert_allclose(np.cov(fitted, rowvar=False), np.cov(codes, rowvar=False),
                             rtol=0.05, atol=0.05)


def test_gmm_recovers_separated_clusters():
  centres = np.array([[-6.0, 0.0], [0.0, 6.0], [6.0, 0.0]])
  labels = RNG.integers(0, 3, 3000)
  codes = centres[labels] + RNG.normal(size=(3000, 2)) * 0.3
  gmm = samplers.fit_gmm(codes, jax.random.key(0), num_components=3)
  order = np.argsort(gmm.means[:, 0] + 0.01 * gmm.means[:, 1])
  np.testing.assert_allclose(gmm.means[order], centres[[0, 1, 2]], atol=0.05)
  np.testing.assert_allclose(gmm.weights[order], np.bincount(labels) / 3000, atol=0.01)
  # A single Gaussian puts samples in the empty space between clusters; the GMM does not.
  draw = jax.random.key(1)
  gauss = samplers.make_sampler('gaussian', codes, None)(draw, 2000)
  mix = samplers.make_sampler('gmm', codes, jax.random.key(0))(draw, 2000)
  far = lambda s: np.mean(np.min(np.linalg.norm(s[:, None] - centres[None], axis=-1), 1) > 1.5)
  assert far(mix) < 0.01 < 0.3 < far(gauss)
  # EM only increases the likelihood: the fitted mixture beats one Gaussian on the data.
  one = samplers.fit_gmm(codes, jax.random.key(0), num_components=1)
  assert gmm.log_density(codes).mean() > one.log_density(codes).mean() + 1.0


def test_samplers_are_deterministic_and_unknown_names_fail():
  codes = RNG.normal(size=(500, 3))
  for name in samplers.SAMPLERS:
    a = samplers.make_sampler(name, codes, jax.random.key(5))(jax.random.key(6), 50)
    b = samplers.make_sampler(name, codes, jax.random.key(5))(jax.random.key(6), 50)
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match='unknown sampler'):
    samplers.make_sampler('uniform', codes, None)
