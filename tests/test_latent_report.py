"""The latent-space report of any model: constructed encoders/decoders with known
answers, the files it writes, and ``vae-jax latent-report`` on a tiny trained workdir."""

import json
import os

import jax
import matplotlib.image
import numpy as np
import pytest

from conftest import cli, one_error_line, straight_run
from vae_jax.analysis import classifier, latent_report, metrics
from vae_jax.core import data, experiment

RNG = np.random.default_rng(0)
PATTERN = RNG.normal(size=(2, 64)) * 0.8   # a smooth decoder's weights, 2-D codes -> 8x8


def smooth_decode(z):
  """A smooth map from 2-D codes to 8x8 images in [0, 1] (the 'perfect' decoder)."""
  return (1 / (1 + np.exp(-(np.asarray(z, np.float64) @ PATTERN)))).reshape(-1, 8, 8, 1)


def jump_decode(z):
  """The same map, inverted on one side of z_0 = 0.3: a step discontinuity."""
  x = smooth_decode(z)
  return np.where((np.asarray(z)[:, 0] > 0.3)[:, None, None, None], 1.0 - x, x)


def encode(images):
  """The exact inverse of smooth_decode on its images: logit, then least squares."""
  x = np.clip(np.asarray(images, np.float64).reshape(len(images), -1), 1e-12, 1 - 1e-12)
  return np.log(x / (1 - x)) @ np.linalg.pinv(PATTERN)


def sector(z):
  """A class per angle sector of the code: 10 labels for the figures and the kNN."""
  return (np.floor((np.arctan2(z[:, 1], z[:, 0]) + np.pi) / (2 * np.pi) * 10) % 10).astype(int)


Z_TRAIN, Z_TEST = RNG.normal(size=(1500, 2)), RNG.normal(size=(600, 2))
DATA = (smooth_decode(Z_TRAIN), sector(Z_TRAIN), smooth_decode(Z_TEST), sector(Z_TEST))
SMALL = dict(num_train=1000, num_test=500, num_samples=800, num_paths=60, path_steps=64,
             num_perturb=200, num_reference=500)


def toy_logits(images):
  return 10.0 * np.asarray(images).reshape(len(images), -1)[:, :10]


def toy_features(images):
  return np.asarray(images).reshape(len(images), -1)[:, ::4]


def report(tmp_path, name, enc=encode, dec=smooth_decode, **kw):
  return latent_report.latent_report(enc, dec, *DATA, str(tmp_path / name), name=name,
                                     **{**SMALL, **kw})


def test_the_encoder_inverts_the_decoder():
  # Guards the constructed cases: codes of the test images are the true codes.
  np.testing.assert_allclose(encode(DATA[2]), Z_TEST, atol=1e-6)


def test_a_decoder_with_a_jump_scores_a_worse_path_jump_ratio(tmp_path):
  smooth = report(tmp_path, 'smooth')['metrics']
  jump = report(tmp_path, 'jump', dec=jump_decode)['metrics']
  assert 1.0 <= smooth['path_jump_ratio'] < 2.0, smooth   # an even morph
  assert jump['path_jump_ratio'] > 2 * smooth['path_jump_ratio'], (jump, smooth)
  assert jump['lipschitz_p99_relative'] > smooth['lipschitz_p99_relative']


def test_codes_away_from_the_prior_leave_more_prior_holes(tmp_path):
  """The same model with codes moved to 2z + 8: N(0, I) now falls where no code is."""
  near = report(tmp_path, 'near')['metrics']
  away = report(tmp_path, 'away', enc=lambda x: 2.0 * encode(x) + 8.0,
                dec=lambda w: smooth_decode((np.asarray(w) - 8.0) / 2.0))['metrics']
  assert near['prior/hole_share'] < 0.05 < 0.9 < away['prior/hole_share'], (near, away)
  # The samplers fitted to the codes do not care where the codes are (normalised units).
  for k in ('gaussian/hole_share', 'gmm/hole_share', 'path_jump_ratio', 'knn_accuracy'):
    assert away[k] == pytest.approx(near[k], rel=0.05, abs=0.01), k


def nonblank_png(path):
  image = matplotlib.image.imread(path)
  return image.ndim == 3 and min(image.shape[:2]) > 100 and float(image[..., :3].std()) > 0.05


def test_files_of_a_2d_report_with_a_classifier(tmp_path):
  out = report(tmp_path, 'full', logits_fn=toy_logits, features_fn=toy_features,
               enc=lambda x: (encode(x), np.full((len(x), 2), np.log(0.01))))
  folder = tmp_path / 'full'
  assert sorted(out['figures']) == ['latent.png', 'manifold.png', 'samples.png', 'walk.png']
  for name in out['figures']:
    assert nonblank_png(folder / name), name
  with open(folder / 'latent_report.json') as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(out))
  m = saved['metrics']
  for sampler in ('prior', 'gaussian', 'gmm'):
    for k in ('hole_share', 'confident_share', 'frechet_distance', 'precision', 'recall'):
      assert f'{sampler}/{k}' in m, (sampler, k)
  assert 'path_confident_share' in m and saved['skipped'] == []
  # Log-variances given: the diagnostics carry the KL (σ² = 0.01 in both dims).
  d = saved['diagnostics']
  assert d['active_units'] == 2 and d['latent_dim'] == 2
  expected_kl = 0.5 * np.sum(np.mean(0.01 + Z_TEST ** 2 - 1 - np.log(0.01), axis=0))
  assert d['kl'] == pytest.approx(expected_kl, rel=1e-6)
  text = (folder / 'latent_report.md').read_text()
  for piece in ('# Latent-space report: full', '`path_jump_ratio`', '| gmm |',
                '![manifold](manifold.png)', 'knn_accuracy'):
    assert piece in text, piece
  assert f'{m["prior/hole_share"]:.4g}' in text and 'Skipped' not in text


def test_a_higher_dimensional_report_without_classifier_skips_and_projects(tmp_path):
  pattern = RNG.normal(size=(5, 64)) * 0.5
  enc = lambda x: np.asarray(x, np.float64).reshape(len(x), -1) @ np.linalg.pinv(pattern)
  dec = lambda z: np.clip(np.asarray(z) @ pattern, 0, 1).reshape(-1, 8, 8, 1)
  out = report(tmp_path, 'five', enc=enc, dec=dec)
  assert out['latent_dim'] == 5 and 'manifold.png' not in out['figures']
  for name in out['figures']:
    assert nonblank_png(tmp_path / 'five' / name), name
  assert not any('confident_share' in k or 'frechet' in k for k in out['metrics'])
  assert len(out['skipped']) == 2 and 'kl' not in out['diagnostics']
  assert '## Skipped' in (tmp_path / 'five' / 'latent_report.md').read_text()


def test_encode_codes_reads_codes_or_pairs_in_batches():
  x = RNG.random((25, 8, 8, 1))
  calls = []

  def enc(images):
    calls.append(len(images))
    return encode(images), np.zeros((len(images), 2))

  codes, logvar = metrics.encode_codes(enc, x, batch_size=10)
  assert calls == [10, 10, 5] and logvar.shape == (25, 2)
  np.testing.assert_allclose(codes, encode(x), rtol=1e-12)   # BLAS rounds per batch
  codes2, none = metrics.encode_codes(lambda i: (encode(i), None), x)
  assert none is None and codes2.shape == (25, 2)


# ----------------------------------------------------------------------------
# A trained workdir, from the command line
# ----------------------------------------------------------------------------
@pytest.fixture(scope='module')
def tiny_workdir(tmp_path_factory, data_dir):
  return straight_run(tmp_path_factory, data_dir)


def restored(workdir, data_dir):
  config, model, params, _ = experiment.restore(workdir)
  config.data.dir = data_dir   # the CLI reads it from $VAE_JAX_DATA_DIR
  return config, model, params


def test_cli_report_matches_the_study_protocol(tiny_workdir, data_dir):
  proc = cli(['latent-report', f'--workdir={tiny_workdir}', '--num_samples=300'], data_dir,
             module='vae_jax.cli')
  assert proc.returncode == 0, proc.stderr[-3000:]
  folder = os.path.join(tiny_workdir, 'latent_report')
  assert f'to {folder}' in proc.stdout
  with open(os.path.join(folder, 'latent_report.json')) as f:
    saved = json.load(f)
  assert saved['latent_dim'] == 2 and len(saved['skipped']) == 2
  assert saved['num_train_images'] == 512 and saved['num_test_images'] == 200
  assert 'kl' in saved['diagnostics']   # a VAE: its encoder gives log-variances
  for name in ('latent.png', 'walk.png', 'manifold.png', 'samples.png'):
    assert nonblank_png(os.path.join(folder, name)), name
  # The same numbers as the study's latent_space_metrics on the restored model.
  config, model, params = restored(tiny_workdir, data_dir)
  expected = metrics.latent_space_metrics(
      model, params, *data.load_split(config.data, 'train'),
      *data.load_split(config.data, 'test'), jax.random.key(0), num_samples=300)
  assert saved['metrics'] == pytest.approx(expected, rel=1e-6)


def test_cli_report_with_a_classifier_file(tiny_workdir, data_dir, tmp_path):
  # A small classifier saved where --classifier points: loaded, not retrained.
  cfg = classifier.ClassifierConfig(hidden_sizes=(32,), epochs=1, batch_size=64)
  images, labels = data.load_split(restored(tiny_workdir, data_dir)[0].data, 'train')
  path = str(tmp_path / 'clf.npz')
  classifier.save(path, classifier.train(images, labels, cfg),
                  {'data': 'mnist', 'config': {'hidden_sizes': [32], 'dropout_rate': 0.2}})
  out = str(tmp_path / 'report')
  proc = cli(['latent-report', f'--workdir={tiny_workdir}', f'--out={out}',
              f'--classifier={path}', '--num_samples=300'], data_dir, module='vae_jax.cli')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'training the classifier' not in proc.stderr
  with open(os.path.join(out, 'latent_report.json')) as f:
    saved = json.load(f)
  assert saved['skipped'] == []
  for k in ('path_confident_share', 'prior/confident_share', 'gmm/frechet_distance',
            'gaussian/recall'):
    assert k in saved['metrics'], k
  # A classifier of another data set is one line, exit 2.
  classifier.save(path, {}, {'data': 'fashion_mnist'})
  proc = cli(['latent-report', f'--workdir={tiny_workdir}', f'--out={out}',
              f'--classifier={path}'], data_dir, module='vae_jax.cli')
  assert proc.returncode == 2 and 'fashion_mnist' in one_error_line(proc)


def test_cli_report_of_a_missing_workdir_is_one_line(tmp_path, data_dir):
  proc = cli(['latent-report', f'--workdir={tmp_path / "nothing"}'], data_dir,
             module='vae_jax.cli')
  assert proc.returncode == 2 and 'config.json' in one_error_line(proc)
