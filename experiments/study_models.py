"""The models of the seed study: which config, which data, how long, how many seeds.

Table models (every seed) are the four the article contrasts, as the same
784-512-2 MLP on both data sets so the numbers are comparable. Figure models
(first seed only) are the other autoencoder kinds and the article's
convolutional Fashion-MNIST VAEs.
"""

import dataclasses
import importlib.util
import os

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'configs')


@dataclasses.dataclass(frozen=True)
class Spec:
  name: str             # workdir name and key in summary.json
  config: str           # file under experiments/configs/ (without .py)
  dataset: str          # 'mnist' or 'fashion_mnist'
  epochs: int           # epochs of the full study
  all_seeds: bool       # True: a row of the table, trained for every seed
  label: str            # how figures and the report call it


def _table(dataset, short):
  return [
      Spec(f'{short}_ae_2d', 'mnist_ae_2d', dataset, 15, True, 'classic AE'),
      Spec(f'{short}_vae_rl_only_2d', 'mnist_vae_rl_only_2d', dataset, 15, True,
           'VAE, reconstruction loss only'),
      Spec(f'{short}_vae_2d', 'mnist_vae_2d', dataset, 15, True, 'VAE, reconstruction + KL'),
      Spec(f'{short}_vae_dmax_2d', 'mnist_vae_dropout_maxnorm_2d', dataset, 15, True,
           'VAE + dropout 0.5 + max-norm 2'),
  ]


SPECS = (
    _table('mnist', 'mnist') + _table('fashion_mnist', 'fmnist') + [
        Spec('mnist_ae_32', 'mnist_ae_32', 'mnist', 15, False, 'AE, 32-D code'),
        Spec('mnist_sparse_ae', 'mnist_sparse_ae', 'mnist', 15, False, 'sparse AE (L1)'),
        Spec('mnist_sparse_dropout_ae', 'mnist_sparse_dropout_ae', 'mnist', 15, False,
             'sparse AE (dropout)'),
        Spec('mnist_denoising_ae', 'mnist_denoising_ae', 'mnist', 15, False, 'denoising AE'),
        Spec('mnist_conv_ae', 'mnist_conv_ae', 'mnist', 1, False, 'convolutional AE'),
        Spec('mnist_rnn_ae', 'mnist_rnn_ae', 'mnist', 1, False, 'recurrent AE'),
        Spec('fmnist_conv_vae_2d', 'fashion_mnist_conv_vae_2d', 'fashion_mnist', 2, False,
             'conv VAE'),
        Spec('fmnist_conv_vae_dmax_2d', 'fashion_mnist_conv_vae_dropout_maxnorm_2d',
             'fashion_mnist', 2, False, 'conv VAE + dropout 0.5 + max-norm 2'),
    ])
BY_NAME = {s.name: s for s in SPECS}
TABLE_KINDS = ('ae_2d', 'vae_rl_only_2d', 'vae_2d', 'vae_dmax_2d')

# --quick: the same models on a slice of the data for one epoch.
QUICK = {'num_train': 2048, 'num_test': 1000, 'epochs': 1}


def load_config_file(name):
  """``get_config()`` of ``experiments/configs/<name>.py``."""
  path = os.path.join(CONFIG_DIR, f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'vae_jax_config_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def make_config(spec, seed, data_dir, quick):
  """The locked config of ``spec`` for one seed (data set, epochs, data slice)."""
  c = load_config_file(spec.config)
  c.seed = seed
  c.data.name = spec.dataset
  c.data.dir = data_dir or ''
  c.num_epochs = QUICK['epochs'] if quick else spec.epochs
  c.log_every_steps = 200
  if quick:
    c.data.num_train = QUICK['num_train']
    c.data.num_test = QUICK['num_test']
  return c


# Columns of the table: (summary key, header, decimals). Metric keys come from
# vae_jax.metrics.latent_space_metrics (docs/metrics.md); recon and elbo from
# the test set.
TABLE_COLUMNS = [
    ('recon', 'test recon (nats)', 1),
    ('elbo', 'test ELBO (nats)', 1),
    ('knn_accuracy', 'kNN acc. of codes ↑', 3),
    ('path_jump_ratio', 'continuity: jump ratio ↓', 2),
    ('lipschitz_median', 'continuity: local Lipschitz ↓', 2),
    ('confident_share', 'completeness: confident share ↑', 3),
    ('hole_share', 'completeness: holes ↓', 3),
]

# (metric, 'high' or 'low' is better, the claim it tests)
CLAIM_METRICS = [
    ('confident_share', 'high',
     'the VAE with KL is more complete (prior samples decode to confident classes) than '
     'the classic AE and the reconstruction-only VAE'),
    ('hole_share', 'low',
     'the VAE with KL leaves fewer holes than the classic AE and the reconstruction-only VAE'),
    ('path_jump_ratio', 'low',
     'VAEs (with or without KL) are more continuous than the classic AE'),
    ('knn_accuracy', 'high',
     'dropout + max-norm improves class separation over the plain VAE'),
]


def claim_holds(metric, vals):
  """Whether the table's means support the claim attached to ``metric``."""
  if metric == 'confident_share':
    return vals['vae_2d'] > max(vals['ae_2d'], vals['vae_rl_only_2d'])
  if metric == 'hole_share':
    return vals['vae_2d'] < min(vals['ae_2d'], vals['vae_rl_only_2d'])
  if metric == 'path_jump_ratio':
    return max(vals['vae_2d'], vals['vae_rl_only_2d']) < vals['ae_2d']
  if metric == 'knn_accuracy':
    return vals['vae_dmax_2d'] > vals['vae_2d']
  raise KeyError(metric)
