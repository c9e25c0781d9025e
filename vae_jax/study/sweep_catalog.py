"""The sweep's grid: latent size × objective × data set × seed, and how it splits into shards.

Every cell is the study's 784-512-d MLP (experiments/configs/mnist_ae_2d.py or
mnist_vae_2d.py) with the latent size, β and free bits set by
``study_models.Spec.overrides``, so a cell trains, resumes and is reused
exactly as a study model is (run_study.train_one). Pure functions only:
nothing here imports JAX.
"""

import dataclasses

from vae_jax.core import data
from vae_jax.study import catalog as study_models
from vae_jax.study import power

LATENT_DIMS = (2, 8, 32)
# Free bits' λ, nats per latent dimension (Kingma et al. 2016): half a nat
# lets a dimension carry ~0.7 bits before the KL term pushes on it, enough to
# keep the 32-D codes' unused dimensions from collapsing onto the prior; at
# 2-D a β = 1 VAE spends several nats per dimension, so λ rarely binds there.
FREE_BITS = 0.5


@dataclasses.dataclass(frozen=True)
class Variant:
  name: str        # part of the cell name
  label: str       # how tables and figures call it
  config: str      # study config under experiments/configs/
  overrides: tuple  # (field, value) set on top of it, besides latent_dim
  beta: object     # β for ordering along β; None for the AE


VARIANTS = (
    Variant('ae', 'classic AE', 'mnist_ae_2d', (), None),
    Variant('beta0', 'VAE β = 0 (reconstruction only)', 'mnist_vae_2d',
            (('kl_weight', 0.0),), 0.0),
    Variant('beta0p25', 'VAE β = 0.25', 'mnist_vae_2d', (('kl_weight', 0.25),), 0.25),
    Variant('beta1', 'VAE β = 1', 'mnist_vae_2d', (('kl_weight', 1.0),), 1.0),
    Variant('beta4', 'VAE β = 4', 'mnist_vae_2d', (('kl_weight', 4.0),), 4.0),
    Variant('freebits', f'VAE β = 1, free bits {FREE_BITS} nats/dim', 'mnist_vae_2d',
            (('kl_weight', 1.0), ('free_bits', FREE_BITS)), 1.0),
)
VARIANT = {v.name: v for v in VARIANTS}
VAE_VARIANTS = tuple(v.name for v in VARIANTS if v.beta is not None)
# Seeds per cell from the power analysis declared in vae_jax/study/power.py.
DEFAULT_SEEDS = tuple(range(power.SWEEP_SEEDS))
# 10 epochs (the study trains these MLPs for 15): 108 models and their metrics
# must fit in about 75 minutes on 2 CPU cores (docs/sweep.md).
EPOCHS = 10
# --quick: a grid that exercises every code path in a few minutes.
QUICK_GRID = {'datasets': ('mnist',), 'latent_dims': (2, 32), 'variants': ('ae', 'beta1'),
              'seeds': (0, 1)}


def cell_name(dataset, latent_dim, variant):
  return f'{dataset}_z{latent_dim}_{variant}'


def spec(dataset, latent_dim, variant):
  """The study_models.Spec of one cell (every seed)."""
  v = VARIANT[variant]
  return study_models.Spec(
      cell_name(dataset, latent_dim, variant), v.config, dataset, EPOCHS, 0,
      f'{v.label}, {latent_dim}-D', overrides=(('latent_dim', latent_dim),) + v.overrides)


def grid(datasets=None, latent_dims=LATENT_DIMS, variants=tuple(VARIANT),
         seeds=DEFAULT_SEEDS):
  """Every ``(spec, seed)`` of the grid, seed outermost.

  Seed outermost: a sweep stopped half-way has whole seeds finished (the
  figures draw from the first seed), not some cells with every seed.
  """
  for name in variants:
    if name not in VARIANT:
      raise ValueError(f'unknown variant {name!r}: use some of {list(VARIANT)}')
  datasets = data.study_datasets() if datasets is None else datasets
  for d in datasets:
    if d not in data.study_datasets():
      raise ValueError(f'unknown data set {d!r}: use some of {list(data.study_datasets())}')
  return [(spec(d, z, v), s) for s in seeds for d in datasets for z in latent_dims
          for v in variants]


def job_id(spec_, seed):
  """The directory name of a trained cell under ``<outdir>/models``."""
  return f'{spec_.name}_seed{seed}'
