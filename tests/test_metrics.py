"""Continuity/completeness metrics on constructed cases, diagnostics, the classifier."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.analysis import classifier, metrics, samplers
from vae_jax.core import diagnostics, models


RNG = np.random.default_rng(0)
CODES = RNG.normal(size=(2000, 2))            # "training codes" of a 2-D model
PATTERN = RNG.normal(size=(2, 64)) * 0.8      # a smooth decoder's weights


def smooth_decoder(z):
  """A smooth map from 2-D codes to 8x8 images in [0, 1]."""
  z = np.asarray(z, np.float64)
  return (1 / (1 + np.exp(-(z @ PATTERN)))).reshape(-1, 8, 8, 1)


def jump_decoder(z):
  """The same map, but inverted on one side of z_0 = 0.3: a step discontinuity."""
  x = smooth_decoder(z)
  side = (np.asarray(z)[:, 0] > 0.3)[:, None, None, None]
  return np.where(side, 1.0 - x, x)


# ----------------------------------------------------------------------------
# Continuity
# ----------------------------------------------------------------------------
def test_jump_scores_worse_continuity_than_smooth():
  key = jax.random.key(0)
  kw = dict(num_paths=100, path_steps=64, num_perturb=1000, perturb_scale=0.05)
  smooth = metrics.continuity_metrics(smooth_decoder, CODES, key, **kw)
  jump = metrics.continuity_metrics(jump_decoder, CODES, key, **kw)
  assert jump['path_max_step'] > 2 * smooth['path_max_step'], (jump, smooth)
  assert jump['path_jump_ratio'] > 2 * smooth['path_jump_ratio'], (jump, smooth)
  assert jump['lipschitz_p99'] > 3 * smooth['lipschitz_p99'], (jump, smooth)
  assert jump['lipschitz_mean'] > smooth['lipschitz_mean']
  # An even morph: the largest step is close to the mean step.
  assert 1.0 <= smooth['path_jump_ratio'] < 2.0


def test_constant_decoder_cannot_win_continuity():
  """A decoder that ignores z varies by 0 everywhere: that is not "continuous", it is degenerate."""
  const = lambda z: np.full((len(z), 4), 0.5)
  out = metrics.continuity_metrics(const, CODES, jax.random.key(0), num_paths=10,
                                   num_perturb=10)
  assert out['path_step_mean'] == 0 and out['lipschitz_mean'] == 0
  assert out['path_jump_ratio'] == np.inf
  assert out['global_slope'] == 0 and out['lipschitz_p99_relative'] == np.inf


def test_lower_contrast_does_not_change_the_scale_free_scores():
  """Contrast shrunk 10x shrinks the raw Lipschitz 10x, not the scale-free scores (spatial blur:
  test_metric_ground_truth)."""
  key = jax.random.key(2)
  kw = dict(num_paths=100, num_perturb=1000, perturb_scale=0.05)
  smooth = metrics.continuity_metrics(smooth_decoder, CODES, key, **kw)
  blurred = metrics.continuity_metrics(lambda z: 0.5 + 0.1 * (smooth_decoder(z) - 0.5),
                                       CODES, key, **kw)
  jump = metrics.continuity_metrics(jump_decoder, CODES, key, **kw)
  assert blurred['lipschitz_p99'] == pytest.approx(0.1 * smooth['lipschitz_p99'], rel=1e-6)
  for k in ('lipschitz_p99_relative', 'path_jump_ratio'):
    assert blurred[k] == pytest.approx(smooth[k], rel=1e-6), k
  # A decoder with a cliff scores worse than the blurred one on the path ratio.
  assert jump['path_jump_ratio'] > 2 * blurred['path_jump_ratio'], (jump, blurred)
  # A linear decoder's local and global slopes are of one size.
  linear = metrics.continuity_metrics(lambda z: np.asarray(z) @ PATTERN, CODES, key, **kw)
  assert 0.5 < linear['lipschitz_p99_relative'] < 2.0, linear
  assert linear['path_jump_ratio'] == pytest.approx(1.0, abs=1e-4)  # float32 decoding


def test_metrics_are_invariant_to_the_latent_scale():
  """An AE with codes 50x larger (and a decoder that undoes it) scores the same."""
  key = jax.random.key(3)
  scale = np.array([50.0, 0.1])
  a = metrics.continuity_metrics(smooth_decoder, CODES, key, num_paths=20, num_perturb=50)
  b = metrics.continuity_metrics(lambda z: smooth_decoder(np.asarray(z) / scale),
                                 CODES * scale, key, num_paths=20, num_perturb=50)
  for k in a:
    assert b[k] == pytest.approx(a[k], rel=1e-3), k
  # Holes: test_metric_ground_truth.test_hole_share_is_invariant_to_the_latent_scale.


# ----------------------------------------------------------------------------
# Completeness
# ----------------------------------------------------------------------------
def ring_decoder(z):
  """Class = angle sector of z; a sharp one-hot 'image' near the codes, grey far away."""
  z = np.asarray(z, np.float64)
  cls = (np.floor((np.arctan2(z[:, 1], z[:, 0]) + np.pi) / (2 * np.pi) * 10) % 10).astype(int)
  strength = np.exp(-np.maximum(np.linalg.norm(z, axis=1) - 2.5, 0.0) ** 2)
  return 0.1 + np.eye(10)[cls] * strength[:, None]


def toy_classifier(images):
  return 10.0 * np.asarray(images).reshape(len(images), -1)


def _holes_and_classes(sampled, codes, key):
  posterior, reference = metrics.aggregate_posterior(codes, None, key, 500)
  return metrics.completeness_metrics(ring_decoder, sampled, posterior, reference,
                                      classifier_fn=toy_classifier,
                                      proportions=np.full(10, 0.1))


def test_prior_away_from_codes_scores_worse_completeness():
  key = jax.random.key(0)
  matched = RNG.normal(size=(1000, 2))
  away = RNG.normal(size=(1000, 2)) * 0.5 + np.array([5.0, 5.0])
  good = _holes_and_classes(matched, CODES, key)
  bad = _holes_and_classes(away, CODES, key)
  assert good['hole_share'] < 0.05 and bad['hole_share'] > 0.9, (good, bad)
  assert good['confident_share'] > 0.9 > 0.2 > bad['confident_share'], (good, bad)
  assert good['balanced_confident_share'] > 0.85 > 0.2 > bad['balanced_confident_share']
  assert good['mean_max_prob'] > bad['mean_max_prob']
  assert good['class_entropy'] > 0.9  # all ten sectors are reached


def test_holes_between_clusters():
  """Codes in two far clusters: a prior that fills the gap between them finds holes."""
  two = RNG.permutation(np.concatenate([RNG.normal(size=(1000, 2)) * 0.1 - 1,
                                        RNG.normal(size=(1000, 2)) * 0.1 + 1]))
  posterior, reference = metrics.aggregate_posterior(two, None, None, 500)
  fitted = samplers.make_sampler('gaussian', two, None)(jax.random.key(1), 1000)
  mixture = two[RNG.integers(0, 2000, 1000)] + RNG.normal(size=(1000, 2)) * 0.02
  holes = metrics.hole_metrics(fitted, posterior, reference)['hole_share']
  none = metrics.hole_metrics(mixture, posterior, reference)['hole_share']
  assert holes > 0.5 > 0.1 > none


def test_knn_accuracy():
  labels = RNG.integers(0, 10, 2000)
  centers = RNG.normal(size=(10, 2)) * 20
  codes = centers[labels] + RNG.normal(size=(2000, 2))
  assert metrics.knn_accuracy(codes[:1500], labels[:1500], codes[1500:], labels[1500:]) > 0.97
  shuffled = RNG.permutation(labels[:1500])
  assert metrics.knn_accuracy(codes[:1500], shuffled, codes[1500:], labels[1500:]) < 0.3


# ----------------------------------------------------------------------------
# A whole (hand-built) model
# ----------------------------------------------------------------------------
def _tiny_model(kind):
  enc = models.MLPEncoder((16,))
  dec = models.MLPDecoder((28, 28, 1), (16,))
  model = models.KINDS[kind](enc, dec, 2)
  params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)), jax.random.key(1))['params']
  return model, params


@pytest.mark.parametrize('kind', ['vae', 'autoencoder'])
def test_latent_space_metrics_runs_and_is_deterministic(kind):
  model, params = _tiny_model(kind)
  rng = np.random.default_rng(1)
  train_x = rng.random((300, 28, 28, 1), dtype=np.float32)
  test_x = rng.random((100, 28, 28, 1), dtype=np.float32)
  train_y, test_y = rng.integers(0, 10, 300), rng.integers(0, 10, 100)
  kw = dict(num_train=200, num_test=80, num_samples=100, num_paths=10, path_steps=16,
            num_perturb=30, num_reference=100)
  clf = lambda images: np.asarray(images).reshape(len(images), -1)[:, :10] * 5
  feats = lambda images: np.asarray(images).reshape(len(images), -1)[:, ::40]
  run = lambda key, **extra: metrics.latent_space_metrics(
      model, params, train_x, train_y, test_x, test_y, key, **kw, **extra)
  a = run(jax.random.key(0), classifier_fn=clf, features_fn=feats)
  assert a == run(jax.random.key(0), classifier_fn=clf, features_fn=feats)
  assert all(isinstance(v, float) and np.isfinite(v) for v in a.values()), a
  for k in ('path_jump_ratio', 'lipschitz_p99_relative', 'knn_accuracy',
            'path_confident_share', 'path_class_changes', 'code_scale'):
    assert k in a
  for sampler in samplers.SAMPLERS:   # every sampler scored the same way
    for k in ('hole_share', 'confident_share', 'balanced_confident_share', 'class_distance',
              'frechet_distance', 'precision', 'recall', 'density', 'coverage'):
      assert f'{sampler}/{k}' in a, (sampler, k)
  c = run(jax.random.key(1))
  assert 'prior/confident_share' not in c and 'prior/frechet_distance' not in c
  assert 'prior/hole_share' in c and c['lipschitz_mean'] != a['lipschitz_mean']


# ----------------------------------------------------------------------------
# Diagnostics
# ----------------------------------------------------------------------------
def test_active_units_and_kl_per_dim():
  rng = np.random.default_rng(0)
  n = 4000
  mean = np.zeros((n, 4))
  mean[:, 0] = rng.normal(size=n)            # active, posterior std 0.1
  mean[:, 1] = rng.normal(size=n) * 0.5      # active
  mean[:, 2] = rng.normal(size=n) * 0.05     # Var 0.0025 < 0.01: inactive
  logvar = np.zeros((n, 4))                  # dims 2, 3 match the prior
  logvar[:, 0] = logvar[:, 1] = np.log(0.01)
  d = diagnostics.summarize(mean, logvar)
  assert d['active_units'] == 2 and d['latent_dim'] == 4
  assert d['kl_dim_3'] == pytest.approx(0.0, abs=1e-12)
  assert d['kl_dim_0'] == pytest.approx(0.5 * (0.01 + 1 - 1 - np.log(0.01)), abs=0.05)
  # The total against NumPy's closed form on the same codes, not the sum of
  # the diagnostics' own per-dimension values.
  closed_form = np.mean(np.sum(0.5 * (mean ** 2 + np.exp(logvar) - 1 - logvar), axis=1))
  assert d['kl'] == pytest.approx(closed_form, rel=1e-6)  # float32 inside losses
  assert diagnostics.collapse_warning(d) is None

  collapsed = diagnostics.summarize(mean * 0.0, logvar * 0.0)
  warning = diagnostics.collapse_warning(collapsed)
  assert isinstance(warning, str) and 'no active unit' in warning and 'KL' in warning
  ae = diagnostics.summarize(mean)  # an autoencoder: no log-variance
  assert ae['active_units'] == 2 and 'kl' not in ae
  assert diagnostics.collapse_warning(ae) is None


def test_latent_diagnostics_model():
  model, params = _tiny_model('vae')
  images = np.random.default_rng(0).random((50, 28, 28, 1), dtype=np.float32)
  d = diagnostics.latent_diagnostics(model, params, images, batch_size=16)
  assert set(d) >= {'active_units', 'kl', 'kl_dim_0', 'kl_dim_1', 'activity_dim_1'}
  assert all(isinstance(v, float) for v in d.values())


# ----------------------------------------------------------------------------
# Classifier
# ----------------------------------------------------------------------------
def test_classifier_trains_saves_and_loads(tmp_path, data_dir):
  from vae_jax.core import data
  x, y = data.load('mnist', 'train', data_dir=data_dir)
  tx, ty = data.load('mnist', 'test', data_dir=data_dir)
  cfg = classifier.ClassifierConfig(hidden_sizes=(64,), epochs=3, batch_size=32, seed=0)
  params = classifier.train(x[:3000], y[:3000], cfg)
  acc = classifier.accuracy(cfg.model(), params, tx[:1000], ty[:1000])
  assert acc > 0.8
  path = str(tmp_path / 'clf.npz')
  classifier.save(path, params, {'data': 'mnist', 'test_accuracy': acc,
                                 'config': {'hidden_sizes': [64], 'dropout_rate': 0.2}})
  loaded, meta = classifier.load(path)
  fn = classifier.make_logits_fn(loaded, meta)
  np.testing.assert_array_equal(fn(tx[:50]),
                                classifier.predict_logits(cfg.model(), params, tx[:50]))
  again, _ = classifier.train_or_load(path, 'mnist')
  jax.tree_util.tree_map(np.testing.assert_array_equal, again, loaded)
  with pytest.raises(classifier.ClassifierFileError, match='fashion_mnist'):
    classifier.train_or_load(path, 'fashion_mnist')
  with pytest.raises(classifier.ClassifierFileError, match='train one'):
    classifier.load(str(tmp_path / 'missing.npz'))
  # Deterministic given the seed.
  params2 = classifier.train(x[:3000], y[:3000], cfg)
  jax.tree_util.tree_map(np.testing.assert_array_equal, params, params2)
