"""The models of the seed study: which config, which data, how long, how many seeds.

Table models (every seed) are the four the article contrasts, as the same
784-512-2 MLP on both data sets so the numbers are comparable. Figure models
(first seed only) are the other autoencoder kinds and the article's
convolutional Fashion-MNIST VAEs.
"""

import dataclasses
import importlib.util
import os
from vae_jax.infra import paths
from vae_jax.study import power

CONFIG_DIR = paths.CONFIG_DIR


@dataclasses.dataclass(frozen=True)
class Spec:
  name: str             # workdir name and key in summary.json
  config: str           # file under experiments/configs/ (without .py)
  dataset: str          # 'mnist' or 'fashion_mnist'
  epochs: int           # epochs of the full study
  seeds: int            # how many of the study's seeds (0: all of them)
  label: str            # how figures and the report call it
  table: bool = False   # a row of the metrics table (latent metrics for every seed)
  # Config fields set after loading ``config`` (dotted name, value): how the
  # sweep (vae_jax/study/sweep.py) varies latent size and β on the study's configs.
  overrides: tuple = ()

  def seed_list(self, seeds):
    return list(seeds) if self.seeds == 0 else list(seeds)[:self.seeds]


# Seeds per model: the power analysis declared in vae_jax/study/power.py (the
# models of the primary family); the other table models keep TABLE_SEEDS.
TABLE_SEEDS = 5


def _seeds(name, default=TABLE_SEEDS):
  return power.STUDY_SEEDS.get(name, default)


def _table(dataset):
  return [
      Spec(f'{dataset}_ae_2d', 'mnist_ae_2d', dataset, 15, _seeds(f'{dataset}_ae_2d'),
           'classic AE', True),
      Spec(f'{dataset}_vae_recon_only_2d', 'mnist_vae_recon_only_2d', dataset, 15,
           _seeds(f'{dataset}_vae_recon_only_2d'), 'VAE, reconstruction loss only', True),
      Spec(f'{dataset}_vae_2d', 'mnist_vae_2d', dataset, 15, _seeds(f'{dataset}_vae_2d'),
           'VAE, reconstruction + KL', True),
      Spec(f'{dataset}_vae_dropout_maxnorm_2d', 'mnist_vae_dropout_maxnorm_2d', dataset, 15,
           _seeds(f'{dataset}_vae_dropout_maxnorm_2d'), 'VAE + dropout 0.5 + max-norm 2', True),
  ]


# The conv Fashion-MNIST VAEs are where the article made its dropout + max-norm
# claim: they get latent metrics on CONV_SEEDS seeds (each costs minutes on a CPU).
CONV_SEEDS = power.STUDY_SEEDS['fashion_mnist_conv_vae_2d']

SPECS = (
    _table('mnist') + _table('fashion_mnist') + [
        # Every seed: the 2-D vs wide-code and the denoising claims need intervals.
        Spec('mnist_ae_32', 'mnist_ae_32', 'mnist', 15, _seeds('mnist_ae_32'), 'AE, 32-D code'),
        Spec('mnist_denoising_ae', 'mnist_denoising_ae', 'mnist', 15,
             _seeds('mnist_denoising_ae'), 'denoising AE'),
        Spec('fashion_mnist_conv_vae_2d', 'fashion_mnist_conv_vae_2d', 'fashion_mnist', 30,
             CONV_SEEDS, 'conv VAE', True),
        Spec('fashion_mnist_conv_vae_dropout_maxnorm_2d',
             'fashion_mnist_conv_vae_dropout_maxnorm_2d', 'fashion_mnist', 30, CONV_SEEDS,
             'conv VAE + dropout 0.5 + max-norm 2', True),
        # Figure models: the first seed only.
        Spec('mnist_sparse_ae', 'mnist_sparse_ae', 'mnist', 15, 1, 'sparse AE (L1)'),
        Spec('mnist_sparse_dropout_ae', 'mnist_sparse_dropout_ae', 'mnist', 15, 1,
             'sparse AE (dropout)'),
        Spec('mnist_conv_ae', 'mnist_conv_ae', 'mnist', 5, 1, 'convolutional AE'),
        Spec('mnist_rnn_ae', 'mnist_rnn_ae', 'mnist', 8, 1, 'recurrent AE'),
    ])
TABLE_KINDS = ('ae_2d', 'vae_recon_only_2d', 'vae_2d', 'vae_dropout_maxnorm_2d')
DEFAULT_SEEDS = tuple(range(power.MAX_SEEDS))   # each Spec takes the first Spec.seeds

# --quick: the same models on a slice of the data for one epoch.
QUICK = {'num_train': 2048, 'num_test': 1000, 'epochs': 1}


def _config_module(name):
  path = os.path.join(CONFIG_DIR, f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'vae_jax_config_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config_file(name):
  """``get_config()`` of ``experiments/configs/<name>.py``."""
  return _config_module(name).get_config()


def quality_gates(spec):
  """The ``QUALITY_GATES`` its experiment file declares for ``spec.dataset``, or ().

  A file declares a tuple of gates (vae_jax/study/gates.py), or a dict from data set
  name to a tuple when the study trains the same config on several data sets.
  """
  gates = _config_module(spec.config).__dict__.get('QUALITY_GATES', ())
  if isinstance(gates, dict):
    gates = gates.get(spec.dataset, ())
  return tuple(gates)


def make_config(spec, seed, data_dir, quick):
  """The locked config of ``spec`` for one seed (data set, epochs, data slice)."""
  c = load_config_file(spec.config)
  c.seed = seed
  c.data.name = spec.dataset
  c.data.dir = data_dir or ''
  c.num_epochs = QUICK['epochs'] if quick else spec.epochs
  c.log_every_steps = 200
  for field, value in spec.overrides:
    *path, last = field.split('.')
    target = c
    for p in path:
      target = target[p]
    target[last] = value
  if quick:
    c.data.num_train = QUICK['num_train']
    c.data.num_test = QUICK['num_test']
  return c


def use_compilation_cache(outdir):
  """Caches compiled programs in ``<outdir>/xla_cache`` unless a cache is set already.

  A model's programs depend on its architecture and objective, not on its
  seed or data set: the study's seeds and the sweep's 108 cells (18 training
  programs) reuse them, and so do a resumed run and the processes of a
  sharded sweep.
  """
  import jax
  if os.environ.get('JAX_COMPILATION_CACHE_DIR') or jax.config.jax_compilation_cache_dir:
    return
  jax.config.update('jax_compilation_cache_dir', os.path.join(outdir, 'xla_cache'))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)
