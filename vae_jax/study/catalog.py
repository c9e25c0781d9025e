"""The models of the seed study: which config, which data, how long, how many seeds.

Table models (every seed) are the four the article contrasts, as the same
784-512-2 MLP on every data set registered with ``study=True`` in
``vae_jax.core.data.DATASETS`` (MNIST and Fashion-MNIST; the data decides the
shapes), so the numbers are comparable. Figure models (first seed only) are the
other autoencoder kinds and the article's convolutional Fashion-MNIST VAEs.

Adding a data set to the study and the sweep is its registry entry
(``study=True``) and, for the gates of its four table models,
:func:`register_gates` (a config file's ``QUALITY_GATES`` dict names the built-in
ones).
"""

import dataclasses
import os
from vae_jax.study import power

from vae_jax.analysis import gates
from vae_jax.core import config as config_lib
from vae_jax.core import data


@dataclasses.dataclass(frozen=True)
class Spec:
  name: str             # workdir name and key in summary.json
  config: str           # file under experiments/configs/ (without .py)
  dataset: str          # a key of vae_jax.core.data.DATASETS
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

_FIGURE_AND_ARTICLE_SPECS = (
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
)


def table_specs(datasets=None):
  """The four table models on each study data set (default: :func:`data.study_datasets`)."""
  return [s for d in (datasets or data.study_datasets()) for s in _table(d)]


def specs(datasets=None):
  """Every model of the study: the table models of each data set, then the article's others.

  Read at call time, so a data set registered after import (a test, a notebook)
  is in it.
  """
  return table_specs(datasets) + list(_FIGURE_AND_ARTICLE_SPECS)


def spec_named(name):
  """The :class:`Spec` called ``name`` (a study model's key in summary.json)."""
  for spec in specs():
    if spec.name == name:
      return spec
  raise KeyError(f'no study model {name!r}')


TABLE_KINDS = ('ae_2d', 'vae_recon_only_2d', 'vae_2d', 'vae_dropout_maxnorm_2d')
DEFAULT_SEEDS = tuple(range(power.MAX_SEEDS))   # each Spec takes the first Spec.seeds

# --quick: the same models on a slice of the data for one epoch.
QUICK = {'num_train': 2048, 'num_test': 1000, 'epochs': 1}


# (data set, config name) -> gates of a table model on a data set registered
# outside vae_jax; see register_gates.
_REGISTERED_GATES = {}


def register_gates(dataset, gates_by_config):
  """Declares the quality gates of ``dataset``'s table models.

  ``gates_by_config``: ``{'mnist_vae_2d': ('elbo >= -500', ...), ...}``, keyed by
  the table model's config name (vae_jax/analysis/gates.py parses each gate).
  """
  for config_name, texts in gates_by_config.items():
    for text in texts:
      gates.parse(text)  # a malformed gate fails here, with its text, not mid-study
    _REGISTERED_GATES[(dataset, config_name)] = tuple(texts)


def quality_gates(spec):
  """The gates of ``spec`` on ``spec.dataset``: its config's ``QUALITY_GATES``, else registered.

  A config file declares a tuple of gates (vae_jax/analysis/gates.py), or a dict
  from data set name to a tuple when the study trains the same config on
  several data sets; :func:`register_gates` adds a data set of one's own.
  """
  declared = getattr(config_lib.load_module(spec.config), 'QUALITY_GATES', ())
  if isinstance(declared, dict):
    declared = declared.get(spec.dataset, ())
  return tuple(declared) or _REGISTERED_GATES.get((spec.dataset, spec.config), ())


def make_config(spec, seed, data_dir, quick, compute_dtype='float32'):
  """The locked config of ``spec`` for one seed (data set, epochs, data slice, compute dtype)."""
  c = config_lib.load_file(spec.config)
  config_lib.apply_overrides(c, {
      'seed': seed, 'data.name': spec.dataset, 'data.dir': data_dir or '',
      'num_epochs': QUICK['epochs'] if quick else spec.epochs, 'log_every_steps': 200,
      'compute_dtype': compute_dtype, **dict(spec.overrides)})
  if quick:
    config_lib.apply_overrides(c, {'data.num_train': QUICK['num_train'],
                                   'data.num_test': QUICK['num_test']})
  c.lock()
  return c


def parse_shard(text):
  """``'i/N'`` -> ``(i, N)`` with 0 ≤ i < N; a ValueError that names the fix otherwise."""
  try:
    i, n = (int(p) for p in text.split('/'))
  except ValueError:
    raise ValueError(f'--shard={text} must be i/N, e.g. --shard=0/4') from None
  if n < 1 or not 0 <= i < n:
    raise ValueError(f'--shard={text}: need 0 <= i < N, e.g. --shard=0/{max(n, 1)}')
  return i, n


def shard(jobs, index, count):
  """The jobs of shard ``index`` of ``count``: every count-th one, starting at ``index``.

  Deterministic (the same grid gives every process the same split) and
  balanced: neighbouring jobs (a model's seeds, or the sweep's cells), which
  cost about the same, go to different shards.
  """
  return jobs[index::count]


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
