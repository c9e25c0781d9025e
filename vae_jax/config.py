"""The base experiment config and its validation.

Experiment files under ``experiments/configs/`` start from :func:`base_config`
and change what they need; :func:`validate` turns a bad value into one line
that names the field and the fix.
"""

import ml_collections

from vae_jax import data as data_lib
from vae_jax import models, objective


KL_SCHEDULES = ('warmup', 'cyclical')


class ConfigError(ValueError):
  """A config value is unusable; the message names the field and the fix."""


def base_config():
  """Defaults shared by every experiment (the article's Keras MLP VAE). Unlocked."""
  c = ml_collections.ConfigDict()
  c.seed = 0                    # root of every PRNG key of the run
  c.num_epochs = 50             # passes over the training set
  c.batch_size = 128            # global batch, split over all devices
  c.learning_rate = 1e-3        # Adam step size
  c.lr_schedule = 'constant'    # 'constant', or 'cosine': decayed to 0 over num_epochs
  c.latent_dim = 2              # size of the code z
  c.kl_weight = 1.0             # β on the KL term (0 = reconstruction-only VAE)
  # How β moves during training (docs/kl_schedules.md); evaluation uses kl_weight.
  c.kl_schedule = 'warmup'      # 'warmup' (linear from 0, then kl_weight) or 'cyclical'
  c.kl_warmup_steps = 0         # warmup: steps from β = 0 to kl_weight (0: kl_weight throughout)
  c.kl_cycles = 4               # cyclical: cycles M over the run (Fu et al. 2019: 4)
  c.kl_cycle_ratio = 0.5        # cyclical: share R of each cycle over which β rises from 0
  c.free_bits = 0.0             # λ nats per latent dim: KL term Σ_d max(λ, KL_d) (0: off)
  c.iwae_samples = 1            # k of the IWAE training bound (1 = plain ELBO)
  c.eval_batch_size = 1000      # test-set chunk size for evaluation
  c.log_every_steps = 100       # train metrics fetched and written this often
  c.checkpoint_every_steps = 0  # extra checkpoints every N steps of an epoch (0: epoch ends only)
  c.max_checkpoints = 3         # checkpoints kept on disk
  c.progress = True             # progress bar on stderr when it is a terminal
  c.distributed = False         # call jax.distributed.initialize() first

  c.model = ml_collections.ConfigDict()
  c.model.kind = 'vae'              # 'vae' or 'autoencoder'
  c.model.family = 'mlp'            # 'mlp', 'conv', 'rnn', registered, or 'package.module:builder'
  c.model.hidden_sizes = (512,)     # mlp: encoder widths (decoder mirrors them)
  c.model.conv_features = (32, 64)  # conv: channels of the stride-2 convs
  c.model.dense_size = 16           # conv: dense layer before the code
  c.model.rnn_cell = 'lstm'         # rnn: 'lstm' or 'gru'
  c.model.rnn_size = 256            # rnn: hidden state size
  c.model.dropout_rate = 0.0        # dropout after every hidden layer, in [0, 1)
  c.model.max_norm = 0.0            # max-norm of each unit's incoming weights (0: off)
  c.model.l1_activity = 0.0         # sparse AE: weight of the L1 penalty on the code
  c.model.noise = 'none'            # denoising AE: 'none', 'gaussian' or 'masking'
  c.model.noise_level = 0.0         # gaussian std, or masking drop probability
  c.model.likelihood = 'bernoulli'  # 'bernoulli' (logits) or 'gaussian' (fixed variance)
  c.model.gaussian_variance = 1.0   # variance of the gaussian likelihood
  # Burda et al.'s two stochastic layers (vae_jax/hierarchical.py): mlp VAE only,
  # x <-> z1 through hidden_sizes (tanh), z1 <-> z2 through top_hidden_sizes;
  # latent_dim is the top layer z2, the model's code.
  c.model.stochastic_layers = 1     # 1, or 2 for the two-layer VAE
  c.model.bottom_latent_dim = 100   # 2 layers: units of z1
  c.model.top_hidden_sizes = (100, 100)  # 2 layers: widths between z1 and z2

  c.data = ml_collections.ConfigDict()
  c.data.name = 'mnist'       # 'mnist' or 'fashion_mnist'
  c.data.dir = ''             # directory of IDX files ('' = $VAE_JAX_DATA_DIR, else TFDS)
  c.data.binarize = 'none'    # 'none' (grey values), 'static' or 'dynamic'
  c.data.num_train = 0        # use only the first N training images (0 = all)
  c.data.num_test = 0         # use only the first N test images (0 = all)
  return c


def _choice(field, value, allowed):
  if value not in allowed:
    raise ConfigError(f'config.{field}={value!r} is not valid: use one of '
                      f'{sorted(allowed)}')


def _positive(field, value, integer=True):
  kind = int if integer else (int, float)
  if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
    raise ConfigError(f'config.{field}={value!r} must be a positive '
                      f'{"integer" if integer else "number"}')


def _non_negative(field, value, integer=False):
  kind = int if integer else (int, float)
  if isinstance(value, bool) or not isinstance(value, kind) or value < 0:
    raise ConfigError(f'config.{field}={value!r} must be ≥ 0')


def _validate_kl(c):
  """The KL schedule's fields fit together and act on this model."""
  ratio = c.kl_cycle_ratio
  if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
    raise ConfigError(f'config.kl_cycle_ratio={ratio!r} must be in (0, 1]')
  if c.kl_schedule == 'cyclical' and c.kl_warmup_steps:
    raise ConfigError(f'config.kl_warmup_steps={c.kl_warmup_steps} belongs to '
                      "kl_schedule='warmup': set it to 0 with kl_schedule='cyclical'")
  # Without this, β and free bits would be ignored without a word.
  shaped = [f for f, on in (("kl_schedule='cyclical'", c.kl_schedule == 'cyclical'),
                            (f'free_bits={c.free_bits}', c.free_bits > 0)) if on]
  if shaped and (c.model.kind != 'vae' or c.iwae_samples > 1):
    raise ConfigError(f'config.{shaped[0]} needs a VAE trained on the ELBO '
                      '(model.kind=vae, iwae_samples=1)')


def validate(c):
  """Raises :class:`ConfigError` on the first unusable value."""
  _choice('model.kind', c.model.kind, models.KINDS)
  try:
    models.family_builder(c.model.family)
  except ValueError as e:
    raise ConfigError(f'config.model.family={c.model.family!r} is not valid: {e}') from None
  _choice('model.noise', c.model.noise, objective.NOISE_KINDS)
  _choice('model.likelihood', c.model.likelihood, ('bernoulli', 'gaussian'))
  _choice('model.rnn_cell', c.model.rnn_cell, ('lstm', 'gru'))
  _choice('lr_schedule', c.lr_schedule, ('constant', 'cosine'))
  _choice('kl_schedule', c.kl_schedule, KL_SCHEDULES)
  _choice('data.name', c.data.name, data_lib.DATASETS)
  _choice('data.binarize', c.data.binarize, data_lib.BINARIZE_MODES)
  for f in ('num_epochs', 'batch_size', 'latent_dim', 'eval_batch_size',
            'log_every_steps', 'max_checkpoints', 'iwae_samples', 'kl_cycles'):
    _positive(f, c[f])
  _positive('learning_rate', c.learning_rate, integer=False)
  _positive('model.gaussian_variance', c.model.gaussian_variance, integer=False)
  for f in ('kl_weight', 'free_bits'):
    _non_negative(f, c[f])
  for f in ('model.max_norm', 'model.l1_activity', 'model.noise_level'):
    _non_negative(f, c.model[f.split('.')[1]])
  for f in ('kl_warmup_steps', 'checkpoint_every_steps', 'seed'):
    _non_negative(f, c[f], integer=True)
  for f in ('num_train', 'num_test'):
    _non_negative(f'data.{f}', c.data[f], integer=True)
  _validate_kl(c)
  rate = c.model.dropout_rate
  if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
    raise ConfigError(f'config.model.dropout_rate={rate!r} must be in [0, 1)')
  if c.model.noise == 'masking' and not c.model.noise_level < 1:
    raise ConfigError('config.model.noise_level must be < 1 for masking noise')
  if c.iwae_samples > 1 and c.model.kind != 'vae':
    raise ConfigError('config.iwae_samples > 1 needs config.model.kind=vae')
  for f in ('hidden_sizes', 'conv_features', 'top_hidden_sizes'):
    sizes = c.model[f]
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0
                        for s in sizes):
      raise ConfigError(f'config.model.{f}={sizes!r} must be a non-empty '
                        'tuple of positive integers, e.g. "(512,)"')
  _validate_stochastic_layers(c)


def _validate_stochastic_layers(c):
  layers = c.model.stochastic_layers
  if layers not in (1, 2) or isinstance(layers, bool):
    raise ConfigError(f'config.model.stochastic_layers={layers!r} must be 1 or 2')
  _positive('model.bottom_latent_dim', c.model.bottom_latent_dim)
  if layers == 2:
    unsupported = [f for f, off in (('model.kind=vae', c.model.kind == 'vae'),
                                    ("model.family='mlp'", c.model.family == 'mlp'),
                                    ('model.dropout_rate=0', c.model.dropout_rate == 0),
                                    ('model.max_norm=0', c.model.max_norm == 0),
                                    ('free_bits=0', c.free_bits == 0)) if not off]
    if unsupported:
      raise ConfigError('config.model.stochastic_layers=2 (the two-layer VAE) needs '
                        + ', '.join(unsupported))
