"""Adding a data set is one registry entry: a generated 32x32x3 set, end to end.

The set goes through the same IDX path as MNIST (colour images are 4-D IDX
files) and is registered only in ``data.DATASETS``; nothing else changes, and
it trains, evaluates, plots and gets its latent report.
"""

import math
import os

import matplotlib.image
import numpy as np
import pytest

from conftest import tiny_config, write_idx
from vae_jax import cli
from vae_jax.analysis import classifier, latent_report
from vae_jax.core import data, evaluate, experiment, train
from vae_jax.infra import workdir as workdir_lib

SHAPE = (32, 32, 3)
CLASSES = ('red', 'green', 'blue', 'yellow')
COLOURS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], np.float32)


def generated_images(n, seed):
  """A disc of its class's colour at a random place, on a dark background."""
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, len(CLASSES), n)
  yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
  centres = rng.uniform(8, 24, size=(n, 2))
  disc = ((yy[None] - centres[:, 0, None, None]) ** 2
          + (xx[None] - centres[:, 1, None, None]) ** 2) < 36
  images = disc[..., None] * COLOURS[labels][:, None, None, :]
  return (np.clip(images + rng.uniform(0, 0.1, images.shape), 0, 1) * 255).astype(np.uint8), labels


@pytest.fixture
def rgb32(tmp_path, monkeypatch):
  """The data directory of the generated set, registered as 'rgb32'."""
  root = tmp_path / 'datasets'
  for split, prefix, n, seed in (('train', 'train', 512, 0), ('test', 't10k', 200, 1)):
    images, labels = generated_images(n, seed)
    write_idx(str(root / 'rgb32' / f'{prefix}-images-idx3-ubyte.gz'), images, magic=0x804)
    write_idx(str(root / 'rgb32' / f'{prefix}-labels-idx1-ubyte.gz'), labels)
  monkeypatch.setitem(data.DATASETS, 'rgb32', data.DatasetInfo(SHAPE, CLASSES))
  return str(root)


def test_the_idx_path_reads_colour_images_as_written(rgb32):
  images, labels = data.load('rgb32', 'test', data_dir=rgb32)
  expected, expected_labels = generated_images(200, 1)
  assert images.shape == (200, *SHAPE) and data.info('rgb32').num_classes == 4
  np.testing.assert_array_equal(images, expected.astype(np.float32) / 255)
  np.testing.assert_array_equal(labels, expected_labels)


def test_a_registered_32x32x3_set_trains_evaluates_plots_and_is_reported(rgb32, tmp_path):
  workdir = str(tmp_path / 'run')
  config = tiny_config(rgb32, num_epochs=2, **{'data.name': 'rgb32'})
  result = train.train_and_evaluate(config, workdir)
  assert result['experiment'].train_images.shape == (512, *SHAPE)
  assert all(math.isfinite(v) for v in result['test'].values())
  test = [r for r in workdir_lib.read_metrics(workdir) if r['split'] == 'test']
  assert test[-1]['loss'] < test[0]['loss']  # it learns something

  config, model, params, step = experiment.restore(workdir)
  assert step == 16 and config.data.name == 'rgb32'

  r = evaluate.evaluate_workdir(workdir, num_samples=5, num_examples=20)
  assert r['num_dims'] == 32 * 32 * 3 and r['num_examples'] == 20
  assert r['nll_bits_per_dim'] == pytest.approx(r['nll'] / (3072 * math.log(2)))

  figures = str(tmp_path / 'figures')
  cli.plot(['--workdir', workdir, '--outdir', figures])
  for name in ('latent.png', 'manifold.png', 'samples.png', 'reconstructions.png'):
    assert os.path.getsize(os.path.join(figures, name)) > 1000, name
  inputs = matplotlib.image.imread(os.path.join(figures, 'reconstructions.png'))
  assert inputs.ndim == 3 and np.ptp(inputs[..., 0] - inputs[..., 1]) > 0.5  # drawn in colour

  # The latent report, with the independent classifier trained on the new set.
  clf = str(tmp_path / 'classifier.npz')
  report = latent_report.report_workdir(workdir, str(tmp_path / 'report'), num_samples=200,
                                        classifier_path=clf)
  m = report['metrics']
  assert 0 <= m['knn_accuracy'] <= 1 and math.isfinite(m['path_jump_ratio'])
  assert m['knn_accuracy'] > 1 / len(CLASSES)  # the codes separate the colours a little
  assert 0 <= m['prior/confident_share'] <= 1
  params, meta = classifier.load(clf)
  assert meta['config']['num_classes'] == len(CLASSES) and meta['test_accuracy'] > 0.9
  assert params['Dense_2']['kernel'].shape == (512, len(CLASSES))


# ---------------------------------------------------------------------------
# The study and the sweep take a data set from the registry: an entry with
# study=True and its table models' gates, nothing else.
# ---------------------------------------------------------------------------
RGB32_GATES = {'mnist_vae_2d': ('elbo >= -3000', 'active_units >= 1'),
               'mnist_ae_2d': ('recon_per_pixel <= 0.7',)}


@pytest.fixture
def rgb32_in_study(rgb32, monkeypatch):
  """``rgb32`` registered for the study, with gates for two of its table models."""
  from vae_jax.study import catalog
  monkeypatch.setitem(data.DATASETS, 'rgb32',
                      data.DatasetInfo(SHAPE, CLASSES, 'RGB discs', study=True))
  monkeypatch.setattr(catalog, '_REGISTERED_GATES', {})
  catalog.register_gates('rgb32', RGB32_GATES)
  return rgb32


def test_a_study_data_set_enters_the_study_and_the_sweep(rgb32_in_study):
  from vae_jax.study import catalog, sweep_catalog
  assert data.study_datasets() == ('mnist', 'fashion_mnist', 'rgb32')
  table = [s for s in catalog.specs() if s.dataset == 'rgb32']
  assert [s.name for s in table] == ['rgb32_ae_2d', 'rgb32_vae_recon_only_2d', 'rgb32_vae_2d',
                                     'rgb32_vae_dropout_maxnorm_2d']
  assert all(s.table for s in table) and catalog.spec_named('rgb32_vae_2d').dataset == 'rgb32'
  assert catalog.quality_gates(catalog.spec_named('rgb32_vae_2d')) == RGB32_GATES['mnist_vae_2d']
  assert catalog.quality_gates(catalog.spec_named('rgb32_vae_recon_only_2d')) == ()
  # MNIST's gates still come from its config file, untouched by the registration.
  assert catalog.quality_gates(catalog.spec_named('mnist_vae_2d'))[0].startswith('elbo >=')
  config = catalog.make_config(catalog.spec_named('rgb32_vae_2d'), 0, rgb32_in_study, quick=True)
  assert config.data.name == 'rgb32'
  cells = {spec.name for spec, _ in sweep_catalog.grid(seeds=(0,))}
  assert {'rgb32_z2_ae', 'rgb32_z32_beta1'} <= cells
  assert data.title('rgb32') == 'RGB discs' and data.title('mnist') == 'MNIST'
  with pytest.raises(ValueError, match='unknown data set'):
    sweep_catalog.grid(datasets=('cifar',))
  with pytest.raises(ValueError, match=r"quality gate 'elbo > 3'"):
    catalog.register_gates('rgb32', {'mnist_vae_2d': ('elbo > 3',)})


@pytest.mark.slow
def test_a_quick_study_trains_judges_and_reports_a_registered_set(rgb32_in_study, tmp_path):
  from vae_jax.study import run
  # The study reads every data set from one directory: MNIST's and Fashion-MNIST's beside it.
  from conftest import find_data_dir
  for name in ('mnist', 'fashion_mnist'):
    os.symlink(os.path.join(find_data_dir(), name), os.path.join(rgb32_in_study, name))
  summary = run.run_study(str(tmp_path / 'study'), rgb32_in_study, seeds=[0], quick=True,
                          quiet=True)
  assert 'rgb32' in summary['table'] and set(summary['table']['rgb32']) == {
      'rgb32_ae_2d', 'rgb32_vae_recon_only_2d', 'rgb32_vae_2d', 'rgb32_vae_dropout_maxnorm_2d'}
  gates = [g for g in summary['gates'] if g['model'].startswith('rgb32')]
  assert sorted(g['gate'] for g in gates) == sorted(
      g for gs in RGB32_GATES.values() for g in gs)
  assert any(c['a'].startswith('rgb32') for c in summary['claims'])
  report = open(tmp_path / 'study' / 'REPORT.md').read()
  assert 'rgb32' in report
