"""Ground truth for the metrics of the article's remaining claims (article_metrics.py).

Each case has an answer known in closed form, at 2, 8 and 32 latent
dimensions where the metric takes codes.
"""

import math

import jax
import numpy as np
import pytest

from vae_jax.analysis import article_metrics as am
from vae_jax.analysis import metrics

DIMS = (2, 8, 32)


def _phi(x):
  return 0.5 * (1 + math.erf(x / math.sqrt(2)))


# ---------------------------------------------------------------- PCA and k-NN
def _hidden_class_data(rng, n, pixels=20, classes=10):
  """Images whose two loudest pixels are noise and whose class sits in quiet ones."""
  labels = rng.integers(0, classes, n)
  x = rng.normal(0, 0.01, (n, pixels))
  x[:, :2] = rng.normal(0, 10.0, (n, 2))              # high variance, no class
  x[:, 2] = 0.5 * np.cos(2 * np.pi * labels / classes)   # low variance, all the class
  x[:, 3] = 0.5 * np.sin(2 * np.pi * labels / classes)
  return x, labels


def test_pca_projection_matches_an_svd():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(300, 12)) * np.linspace(5, 0.5, 12)
  train, test = am.pca_projection(x, x[:7], 3)
  centred = x - x.mean(0)
  _, _, vt = np.linalg.svd(centred, full_matrices=False)
  ref = centred @ vt[:3].T
  np.testing.assert_allclose(np.abs(train), np.abs(ref), rtol=1e-8, atol=1e-8)  # up to sign
  np.testing.assert_allclose(test, train[:7])


def test_knn_gain_over_pca_is_large_where_pca_misses_the_class_and_zero_for_pca_itself():
  rng = np.random.default_rng(1)
  x_tr, y_tr = _hidden_class_data(rng, 2000)
  x_te, y_te = _hidden_class_data(rng, 500)
  pca_tr, pca_te = am.pca_projection(x_tr, x_te, 2)
  pca_acc = metrics.knn_accuracy(pca_tr, y_tr, pca_te, y_te)
  good_acc = metrics.knn_accuracy(x_tr[:, 2:4], y_tr, x_te[:, 2:4], y_te)
  assert pca_acc < 0.2 and good_acc > 0.99   # PCA keeps the noise; the right code the class


def test_latent_metrics_scores_a_pca_encoder_zero_gain_over_pca():
  """Wiring: same images, same k, same whitening rule on both sides -> exactly 0."""
  rng = np.random.default_rng(2)
  x_tr, y_tr = _hidden_class_data(rng, 600)
  x_te, y_te = _hidden_class_data(rng, 300)
  mean = x_tr.mean(0)
  _, vectors = np.linalg.eigh(np.cov(x_tr - mean, rowvar=False))
  axes = vectors[:, ::-1][:, :2]
  encode = lambda x: (np.asarray(x, np.float64).reshape(len(x), -1) - mean) @ axes
  decode = lambda z: np.clip(np.asarray(z) @ axes.T + mean, 0, 1)
  out = metrics.latent_metrics(lambda x: (encode(x), None), decode, x_tr, y_tr, x_te, y_te,
                               jax.random.key(0), num_train=600, num_test=300,
                               num_samples=200, num_paths=20, num_perturb=50,
                               num_reference=100, samplers=('prior',))
  assert out['knn_accuracy_gain_over_pca'] == 0.0
  assert 0.0 <= out['walk01/hole_past_halfway_share'] <= out['walk01/walks_with_hole'] <= 1.0


# ---------------------------------------------------------------- walk holes
@pytest.mark.parametrize('dim', DIMS)
def test_first_hole_position_is_the_first_grid_point_past_the_threshold(dim):
  # Two tight clusters at 0 and at e_0: the density falls monotonically from
  # each end to the middle, so with τ = log q at t = 0.3 the first interior
  # grid point past 0.3 is the first hole: 20 / 64.
  means = np.zeros((2, dim))
  means[1, 0] = 1.0
  q = metrics.AggregatePosterior(means, np.full((2, dim), 0.1))
  at = np.zeros((1, dim))
  at[0, 0] = 0.3
  threshold = float(q.log_density(at)[0]) - 1e-6
  z0, z1 = np.zeros((3, dim)), np.tile(means[1], (3, 1))
  np.testing.assert_allclose(am.first_hole_positions(q.log_density, threshold, z0, z1), 20 / 64)
  # A threshold below the density's minimum: no hole on the walk, so no position.
  low = float(q.log_density(np.full((1, dim), 0.0) + 0.5 * means[1])[0]) - 1.0
  assert np.all(np.isnan(am.first_hole_positions(q.log_density, low, z0, z1)))


def test_walk_hole_facts_counts_walks_that_meet_a_hole():
  # Two 0s and one 1; a hole where x > 0.75 and y < 0.5. The walk (0, 0) -> (1, 0)
  # meets it at t = 49/64; the walk (0, 100) -> (1, 0) is below y = 0.5 only at
  # its end point, which is not scored: it meets no hole.
  codes = np.array([[0.0, 0.0], [0.0, 100.0], [1.0, 0.0]])
  labels = np.array([0, 0, 1])
  hole = lambda z: np.where((np.asarray(z)[:, 0] > 0.75) & (np.asarray(z)[:, 1] < 0.5),
                            -10.0, 0.0)
  pos = am.first_hole_positions(hole, -1.0, codes[[0, 1]], codes[[2, 2]])
  assert pos[0] == 49 / 64 and np.isnan(pos[1])
  facts = am.walk_hole_facts(hole, -1.0, codes, labels, jax.random.key(0), num_walks=400)
  assert facts['first_hole_position'] == 49 / 64
  # Each walk starts at either 0 at random: about half meet the hole, all of them past halfway.
  assert facts['walks_with_hole'] == facts['hole_past_halfway_share']
  assert 0.4 < facts['walks_with_hole'] < 0.6
  early = lambda z: np.where(np.asarray(z)[:, 0] > 0.25, -10.0, 0.0)
  facts = am.walk_hole_facts(early, -1.0, codes, labels, jax.random.key(0), num_walks=50)
  assert facts['walks_with_hole'] == 1.0 and facts['hole_past_halfway_share'] == 0.0
  assert am.walk_hole_facts(hole, -1.0, codes, np.array([0, 0, 0]), jax.random.key(0)) == {}
  nowhere = lambda z: np.zeros(len(z))
  assert am.walk_hole_facts(nowhere, -1.0, codes, labels, jax.random.key(0)) == {
      'walks_with_hole': 0.0, 'hole_past_halfway_share': 0.0}   # no position to report


# ---------------------------------------------------------------- cluster overlap
@pytest.mark.parametrize('dim', DIMS)
def test_bhattacharyya_coefficient_closed_form(dim):
  eye = np.eye(dim)
  for d in (0.0, 1.0, 3.0):
    mean_b = np.zeros(dim)
    mean_b[0] = d
    assert am.bhattacharyya_coefficient(np.zeros(dim), eye, mean_b, eye) == pytest.approx(
        math.exp(-d * d / 8))
  # Equal means, variances 1 and 4 on one axis: BC = sqrt(2·1·2 / (1 + 4)) on that axis.
  cov_b = eye.copy()
  cov_b[0, 0] = 4.0
  assert am.bhattacharyya_coefficient(np.zeros(dim), eye, np.zeros(dim), cov_b) == (
      pytest.approx(math.sqrt(4 / 5)))


@pytest.mark.parametrize('dim', DIMS)
def test_cluster_overlap_one_cloud_disjoint_clusters_and_affine_invariance(dim):
  rng = np.random.default_rng(dim)
  # Estimated covariances bias BC below 1 by about d(d+1)/(8n): 0.007 at d = 32.
  labels = np.repeat(np.arange(4), 20000)
  shared = rng.normal(size=(labels.size, dim))
  assert am.cluster_overlap(shared, labels) == pytest.approx(1.0, abs=0.02)
  centres = np.zeros((4, dim))
  centres[:, 0] = np.arange(4) * 2.0      # neighbours 2 apart: BC = e^{-4/8} ... e^{-36/8}
  separated = shared + centres[labels]
  expected = np.mean([math.exp(-(2.0 * (j - i)) ** 2 / 8) for i in range(4)
                      for j in range(i + 1, 4)])
  assert am.cluster_overlap(separated, labels) == pytest.approx(expected, abs=0.02)
  far = shared + 100 * centres[labels]
  assert am.cluster_overlap(far, labels) < 1e-6
  rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
  stretch = np.diag(np.linspace(0.5, 5.0, dim)) @ rotation
  assert am.cluster_overlap(separated @ stretch + 7.0, labels) == pytest.approx(
      am.cluster_overlap(separated, labels), rel=1e-6)


# ---------------------------------------------------------------- class geometry
def test_centroid_distance_ratio():
  centres = {0: (-3, 0), 1: (3, 0), 6: (0, 1), 8: (0, 2), 5: (9, 9)}
  labels = np.repeat(list(centres), 3)
  rng = np.random.default_rng(0)
  noise = rng.normal(size=(labels.size, 2)) * 0.01
  noise -= np.stack([noise[labels == c].mean(0) for c in labels])   # exact class means
  codes = np.array([centres[c] for c in labels], np.float64) + noise
  assert am.centroid_distance_ratio(codes, labels) == pytest.approx(6.0)
  assert math.isnan(am.centroid_distance_ratio(codes[labels != 8], labels[labels != 8]))


# ---------------------------------------------------------------- posterior std
@pytest.mark.parametrize('dim', DIMS)
def test_posterior_std_median(dim):
  assert am.posterior_std_median(np.zeros((100, dim))) == 1.0   # the prior's own σ
  sigma = np.exp(np.random.default_rng(dim).uniform(-3, 0, (101, dim)))
  assert am.posterior_std_median(2 * np.log(sigma)) == pytest.approx(np.median(sigma))


# ---------------------------------------------------------------- local class consistency
def _sign_classifier(images):
  """Class 1 where the image's first value is positive, else 0 (confident logits)."""
  x = np.asarray(images).reshape(len(images), -1)[:, 0]
  return np.stack([-10 * x, 10 * x], axis=1)


@pytest.mark.parametrize('dim', DIMS)
def test_local_class_consistency_matches_the_normal_cdf(dim):
  # Codes at distance d from the class boundary z_0 = 0, noise σ = scale in
  # whitened units: a draw keeps the class with probability Φ(d / scale). The
  # first axis is stretched 10x in raw units, so the units must be whitened.
  unwhiten = np.eye(dim)
  unwhiten[0, 0] = 10.0
  codes = np.zeros((50, dim))
  codes[:, 0] = 10.0 * 0.1
  identity = lambda z: np.asarray(z, np.float32)
  got = am.local_class_consistency(identity, _sign_classifier, codes, unwhiten,
                                   jax.random.key(dim), scale=0.1, num_codes=2000, draws=5)
  assert got == pytest.approx(_phi(1.0), abs=0.02)
  assert am.local_class_consistency(lambda z: np.zeros((len(z), 3), np.float32),
                                    _sign_classifier, codes, unwhiten,
                                    jax.random.key(0)) == 1.0   # a constant decoder


def test_local_class_consistency_of_a_decoder_that_changes_class_at_random_is_one_in_c():
  def scrambled(images):   # 10 classes from a hash of the point: no two nearby points agree
    x = np.asarray(images).reshape(len(images), -1)
    cls = (np.abs(np.floor(x[:, 0] * 1e6)).astype(np.int64) * 2654435761) % 10
    return np.eye(10)[cls] * 10
  codes = np.random.default_rng(0).normal(size=(500, 2))
  got = am.local_class_consistency(lambda z: np.asarray(z, np.float32), scrambled, codes,
                                   np.eye(2), jax.random.key(1), num_codes=2000)
  assert got == pytest.approx(0.1, abs=0.02)
