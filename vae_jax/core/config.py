"""The experiment config: its fields, loading, overrides, validation and upgrades.

Experiment files under ``experiments/configs/`` start from :func:`base_config`
and change what they need. This module is the one place that knows the
schema: :func:`load_file` loads a config file, :func:`apply_overrides` sets
fields from ``--config.a.b=value`` flags or a dict, :func:`validate` turns a
bad value into one line that names the field and the fix, and :func:`upgrade`
reads an older run's ``config.json`` as the current config would have written
it (:data:`RESUMABLE_FIELDS` says which fields a rerun may change).
"""

import ast
import copy
import importlib.util
import math
import os

import ml_collections

from vae_jax.core import data as data_lib
from vae_jax.core import models, objective
from vae_jax.infra import errors, flags, paths
from vae_jax.infra import workdir as workdir_lib


KL_SCHEDULES = ('warmup', 'cyclical')


class ConfigError(errors.UserError, ValueError):
  """A config value is unusable; the message names the field and the fix.

  Always one line: a value's repr may span several (a ConfigDict's does).
  """

  def __init__(self, message):
    super().__init__(' '.join(part.strip() for part in str(message).splitlines()))


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
  # Dtype of the matmuls, convolutions and LSTM gates: 'float32' or 'bfloat16'
  # (mixed precision: parameters, Adam's state, the KL, the log-likelihoods and
  # every loss reduction stay float32; docs/performance.md).
  c.compute_dtype = 'float32'

  # Fields every family shares; each built-in family's own fields are in its
  # node below, read (and validated) only when model.family selects it.
  c.model = ml_collections.ConfigDict()
  c.model.kind = 'vae'              # 'vae' or 'autoencoder'
  c.model.family = 'mlp'            # 'mlp', 'conv', 'rnn', registered, or 'package.module:builder'
  c.model.dropout_rate = 0.0        # dropout after every hidden layer, in [0, 1)
  c.model.max_norm = 0.0            # max-norm of each unit's incoming weights (0: off)
  c.model.l1_activity = 0.0         # sparse AE: weight of the L1 penalty on the code
  c.model.noise = 'none'            # denoising AE: 'none', 'gaussian' or 'masking'
  c.model.noise_level = 0.0         # gaussian std, or masking drop probability
  c.model.likelihood = 'bernoulli'  # 'bernoulli' (logits) or 'gaussian' (fixed variance)
  c.model.gaussian_variance = 1.0   # variance of the gaussian likelihood

  c.model.mlp = ml_collections.ConfigDict()
  c.model.mlp.hidden_sizes = (512,)       # encoder widths (decoder mirrors them)
  # Burda et al.'s two stochastic layers (vae_jax/core/hierarchical.py): VAE only,
  # x <-> z1 through hidden_sizes (tanh), z1 <-> z2 through top_hidden_sizes;
  # latent_dim is the top layer z2, the model's code.
  c.model.mlp.stochastic_layers = 1       # 1, or 2 for the two-layer VAE
  c.model.mlp.bottom_latent_dim = 100     # 2 layers: units of z1
  c.model.mlp.top_hidden_sizes = (100, 100)  # 2 layers: widths between z1 and z2

  c.model.conv = ml_collections.ConfigDict()
  c.model.conv.features = (32, 64)  # channels of the stride-2 convs
  c.model.conv.dense_size = 16      # dense layer before the code

  c.model.rnn = ml_collections.ConfigDict()
  c.model.rnn.cell = 'lstm'         # 'lstm' or 'gru'
  c.model.rnn.size = 256            # hidden state size

  c.data = ml_collections.ConfigDict()
  c.data.name = 'mnist'       # 'mnist' or 'fashion_mnist'
  c.data.dir = ''             # directory of IDX files ('' = $VAE_JAX_DATA_DIR, else TFDS)
  c.data.binarize = 'none'    # 'none' (grey values), 'static' or 'dynamic'
  c.data.num_train = 0        # use only the first N training images (0 = all)
  c.data.num_test = 0         # use only the first N test images (0 = all)
  return c


def _choice(field, value, allowed):
  if not isinstance(value, str) or value not in allowed:  # a list is not hashable
    raise ConfigError(f'config.{field}={value!r} is not valid: use one of '
                      f'{sorted(allowed)}')


def _number(value, kind):
  """Whether ``value`` is a finite number of ``kind`` (bool, a subclass of int, is not)."""
  return (not isinstance(value, bool) and isinstance(value, kind)
          and math.isfinite(value))


def _positive(field, value, integer=True):
  kind = int if integer else (int, float)
  if not _number(value, kind) or value <= 0:
    raise ConfigError(f'config.{field}={value!r} must be a positive '
                      f'{"integer" if integer else "number"}')


def _non_negative(field, value, integer=False):
  kind = int if integer else (int, float)
  if not _number(value, kind) or value < 0:
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


def _fields(node, prefix=''):
  """Dotted names of every leaf field of a ConfigDict (or dict)."""
  out = set()
  for key, value in node.items():
    if isinstance(value, (dict, ml_collections.ConfigDict)) and len(value):  # {}: a leaf
      out |= _fields(value, f'{prefix}{key}.')
    else:
      out.add(f'{prefix}{key}')
  return out


def _check_present(c):
  """Every field of :func:`base_config` is there (a get_config() or config.json may lack one)."""
  for field in sorted(_fields(base_config())):
    node = c
    for name in field.split('.'):
      if not isinstance(node, (dict, ml_collections.ConfigDict)) or name not in node:
        raise ConfigError(f'config.{field} is missing: set it (see its comment in '
                          'vae_jax/core/config.py), or start from base_config()')
      node = node[name]


def _check_known(c):
  """No field :func:`base_config` lacks: a typo (``c.learning_rat = 0.1`` in an unlocked
  get_config()) would otherwise be ignored. An outside family's own node
  (``config.model.<node>.*``, its builder's to read) is allowed."""
  known = _fields(base_config())
  outside = isinstance(c.model.family, str) and c.model.family not in _FAMILY_CHECKS
  for field in sorted(_fields(c) - known):
    parts = field.split('.')
    if outside and len(parts) > 2 and parts[0] == 'model' and parts[1] not in ('mlp', 'conv',
                                                                               'rnn'):
      continue
    raise ConfigError(f'config.{field} is not a config field: remove it or fix its name '
                      '(the fields, with a comment each, are in vae_jax/core/config.py)')


def validate(c):
  """Raises :class:`ConfigError` on the first unusable value."""
  _check_present(c)
  _check_known(c)
  _choice('model.kind', c.model.kind, models.KINDS)
  if not isinstance(c.model.family, str):
    raise ConfigError(f'config.model.family={c.model.family!r} is not valid: use one of '
                      f'{sorted(models.FAMILIES)} or package.module:builder')
  try:
    models.family_builder(c.model.family)
  except (ValueError, TypeError) as e:  # TypeError: a relative module name ('.x:y')
    hint = '' if 'use one of' in str(e) else (f'; use one of {sorted(models.FAMILIES)} or '
                                              'package.module:builder')
    raise ConfigError(f'config.model.family={c.model.family!r} is not valid: {e}{hint}') from None
  _choice('model.noise', c.model.noise, objective.NOISE_KINDS)
  _choice('model.likelihood', c.model.likelihood, ('bernoulli', 'gaussian'))
  _choice('lr_schedule', c.lr_schedule, ('constant', 'cosine'))
  # .get: a run's config.json written before the field existed computed in float32.
  _choice('compute_dtype', c.get('compute_dtype', 'float32'), models.COMPUTE_DTYPES)
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
  for f in ('progress', 'distributed'):
    if not isinstance(c[f], bool):
      raise ConfigError(f'config.{f}={c[f]!r} must be True or False')
  if not isinstance(c.data.dir, str):
    raise ConfigError(f'config.data.dir={c.data.dir!r} must be a directory path (a string; '
                      "'' for $VAE_JAX_DATA_DIR)")
  _validate_kl(c)
  rate = c.model.dropout_rate
  if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
    raise ConfigError(f'config.model.dropout_rate={rate!r} must be in [0, 1)')
  if c.model.noise == 'masking' and not c.model.noise_level < 1:
    raise ConfigError('config.model.noise_level must be < 1 for masking noise')
  if c.iwae_samples > 1 and c.model.kind != 'vae':
    raise ConfigError('config.iwae_samples > 1 needs config.model.kind=vae')
  family_check = _FAMILY_CHECKS.get(c.model.family)
  if family_check:  # an outside family's own fields are its builder's to check
    family_check(c.model)
  _validate_two_layers(c)


def _sizes(field, sizes):
  if not isinstance(sizes, (list, tuple)) or not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0
                      for s in sizes):
    raise ConfigError(f'config.{field}={sizes!r} must be a non-empty '
                      'tuple of positive integers, e.g. "(512,)"')


def _validate_mlp(m):
  _sizes('model.mlp.hidden_sizes', m.mlp.hidden_sizes)
  layers = m.mlp.stochastic_layers
  if layers not in (1, 2) or isinstance(layers, bool):
    raise ConfigError(f'config.model.mlp.stochastic_layers={layers!r} must be 1 or 2')
  _positive('model.mlp.bottom_latent_dim', m.mlp.bottom_latent_dim)
  _sizes('model.mlp.top_hidden_sizes', m.mlp.top_hidden_sizes)


def _validate_conv(m):
  _sizes('model.conv.features', m.conv.features)
  _positive('model.conv.dense_size', m.conv.dense_size)


def _validate_rnn(m):
  _choice('model.rnn.cell', m.rnn.cell, ('lstm', 'gru'))
  _positive('model.rnn.size', m.rnn.size)


# Each built-in family's check of its node, given config.model. Only the selected
# family's runs: a run never reads another family's node, so its values cannot
# make the run fail.
_FAMILY_CHECKS = {'mlp': _validate_mlp, 'conv': _validate_conv, 'rnn': _validate_rnn}


def _validate_two_layers(c):
  # Checked whatever the family: asking for two layers selects another model,
  # which must not be ignored in silence on a conv or rnn run.
  if c.model.mlp.stochastic_layers == 2:
    unsupported = [f for f, off in (('model.kind=vae', c.model.kind == 'vae'),
                                    ("model.family='mlp'", c.model.family == 'mlp'),
                                    ('model.dropout_rate=0', c.model.dropout_rate == 0),
                                    ('model.max_norm=0', c.model.max_norm == 0),
                                    ('free_bits=0', c.free_bits == 0)) if not off]
    if unsupported:
      raise ConfigError('config.model.mlp.stochastic_layers=2 (the two-layer VAE) needs '
                        + ', '.join(unsupported))


# ---------------------------------------------------------------------------
# Loading a config file
# ---------------------------------------------------------------------------
EXAMPLE_FILE = 'experiments/configs/mnist_vae_2d.py'


def config_path(path_or_name):
  """A config file's path: a path as given, or a bare name in experiments/configs."""
  if os.sep in path_or_name or path_or_name.endswith('.py'):
    return path_or_name
  return os.path.join(paths.CONFIG_DIR, f'{path_or_name}.py')


def load_module(path_or_name):
  """The module of a config file (its ``get_config`` and ``QUALITY_GATES``).

  Raises :class:`ConfigError` naming the file for a missing file, a syntax
  error or an exception while the file runs.
  """
  path = config_path(path_or_name)
  if not os.path.isfile(path):
    raise ConfigError(f'cannot load --config={path} (No such file): pass an existing '
                      f'config file, e.g. --config={EXAMPLE_FILE}')
  name = 'vae_jax_config_' + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except SyntaxError as e:
    raise ConfigError(f'cannot load config file {path}: {e.msg} at line {e.lineno}: '
                      'fix the file') from None
  except Exception as e:  # anything the file raises at import
    raise ConfigError(f'cannot load config file {path}: {type(e).__name__}: {e}: '
                      'fix the file') from None
  if not callable(getattr(module, 'get_config', None)):
    raise ConfigError(f'config file {path} defines no get_config(): define one that '
                      'returns a ConfigDict, as experiments/configs/*.py do')
  return module


def load_file(path_or_name):
  """``get_config()`` of a config file (a path, or a name in experiments/configs), unlocked."""
  module = load_module(path_or_name)
  try:
    config = module.get_config()
  except Exception as e:  # the file's own code: its error is the user's to fix
    raise ConfigError(f'cannot load config file {module.__file__}: get_config() raised '
                      f'{type(e).__name__}: {e}: fix the file') from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(f'get_config() of {module.__file__} returned a '
                      f'{type(config).__name__}: return an ml_collections.ConfigDict')
  return config


# ---------------------------------------------------------------------------
# Overrides: --config.a.b=value, or {'a.b': value}
# ---------------------------------------------------------------------------
OVERRIDE_PREFIX = '--config.'


def _unknown(dotted):
  return ConfigError(f'unknown config field {dotted!r}: see the fields (with a comment each) '
                     'in vae_jax/core/config.py and the --config file')


def _node_of(config, dotted):
  """``(node, last name)`` of an existing field, or a ConfigError naming it."""
  *path, last = dotted.split('.')
  node = config
  for name in path:
    node = node.get(name) if isinstance(node, ml_collections.ConfigDict) else None
  if not isinstance(node, ml_collections.ConfigDict) or last not in node:
    raise _unknown(dotted)
  if isinstance(node[last], ml_collections.ConfigDict):
    raise ConfigError(f'config.{dotted} is a group of fields: set one of them, '
                      f'e.g. --config.{dotted}.{next(iter(node[last]), "x")}=...')
  return node, last


def _literal(text):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text  # an unquoted string


def _integer(text):
  """An int literal as absl's integer flags read it: 10, 0x1f, 0o17, 0b101."""
  text = text.strip()
  base = {'x': 16, 'o': 8, 'b': 2}.get(text[1:2].lower(), 10) if text[:1] == '0' else 10
  return int(text, base)


def parse_value(text, current, field_type=None):
  """``text`` as a value of ``current``'s type, as ml_collections' config_flags parse it.

  bool: true/false (t/f, 1/0, any case); int, float: their literals (0x1f too); str: the text as
  is; tuple or list: a Python literal (``(32,)``, ``16,32``), a lone value
  becoming a 1-tuple; a None field: ``None``, else ``field_type`` (a
  placeholder's) or a literal. Raises ValueError on text of the wrong type.
  """
  kind = type(current) if current is not None else field_type
  if current is None and text.strip().lower() == 'none':
    return None
  if kind is bool:
    return flags.boolean(text)
  if kind is int:
    return _integer(text)
  if kind is float:
    return float(text)
  if kind is str:
    return text
  if kind in (tuple, list):
    value = _literal(text)
    value = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    return kind(value)
  return _literal(text)


def _set(config, dotted, value, shown):
  node, last = _node_of(config, dotted)
  current = node[last]
  if isinstance(value, list) and isinstance(current, tuple):
    value = tuple(value)  # a dict override from JSON, where tuples are lists
  if isinstance(current, bool) and not isinstance(value, bool):
    raise ConfigError(f'{shown}: config.{dotted} is a bool: set true or false')
  try:
    node[last] = value
  except TypeError as e:  # ml_collections keeps a field's type (an int takes no 1.5)
    raise ConfigError(f'{shown}: config.{dotted} is a {type(current).__name__}: {e}') from None


def apply_overrides(config, overrides):
  """Sets fields of ``config`` in place; returns it.

  ``overrides`` is an iterable of ``--config.a.b=value`` strings (parsed by
  :func:`parse_value` as the field's current type decides) or a mapping
  ``{'a.b': value}`` of Python values. An unknown field, or a value of the
  wrong type, is a :class:`ConfigError` naming it. Later overrides win.
  """
  if isinstance(overrides, dict):
    for dotted, value in overrides.items():
      _set(config, dotted, value, f'config.{dotted}={value!r}')
    return config
  for flag in overrides:
    if not flag.startswith(OVERRIDE_PREFIX) or '=' not in flag:
      raise ConfigError(f'{flag}: set a config field as --config.FIELD=VALUE, '
                        'e.g. --config.num_epochs=5')
    dotted, text = flag[len(OVERRIDE_PREFIX):].split('=', 1)
    node, last = _node_of(config, dotted)
    field_type = node.get_type(last) if node[last] is None else None
    try:
      value = parse_value(text, node[last], field_type)
    except ValueError as e:
      raise ConfigError(f'{flag}: {e}') from None
    _set(config, dotted, value, flag)
  return config


def split_overrides(argv):
  """``(other arguments, --config.* arguments)`` of a command line, order kept."""
  overrides = [a for a in argv if a.startswith(OVERRIDE_PREFIX)]
  return [a for a in argv if not a.startswith(OVERRIDE_PREFIX)], overrides


def from_command_line(path_or_name, overrides=()):
  """The locked config of ``--config=path_or_name`` with its ``--config.*`` overrides."""
  config = apply_overrides(load_file(path_or_name), list(overrides))
  config.lock()  # a later typo'd field is an error, not a new field
  return config


# ---------------------------------------------------------------------------
# Older runs: config.json upgrades, and what a rerun may change
# ---------------------------------------------------------------------------
# Fields a rerun may change without invalidating the checkpoints: they set how
# long or how verbosely to train, not what is trained. (num_epochs is not one
# when a cosine rate or a cyclical β depends on it: see :func:`differences`.)
RESUMABLE_FIELDS = frozenset({'num_epochs', 'data.dir', 'progress',
                              'log_every_steps', 'checkpoint_every_steps',
                              'max_checkpoints'})

# Fields moved after runs were made: old dotted name -> new one. Each family's
# own fields left the flat config.model for a node of their own.
RENAMED_FIELDS = {'model.hidden_sizes': 'model.mlp.hidden_sizes',
                  'model.conv_features': 'model.conv.features',
                  'model.dense_size': 'model.conv.dense_size',
                  'model.rnn_cell': 'model.rnn.cell',
                  'model.rnn_size': 'model.rnn.size',
                  'model.stochastic_layers': 'model.mlp.stochastic_layers',
                  'model.bottom_latent_dim': 'model.mlp.bottom_latent_dim',
                  'model.top_hidden_sizes': 'model.mlp.top_hidden_sizes'}

# Fields added to the config after runs were made, with the value those older
# runs implicitly used: their config.json reads as if it had them.
ADDED_FIELDS = {'lr_schedule': 'constant', 'kl_schedule': 'warmup', 'kl_cycles': 4,
                'kl_cycle_ratio': 0.5, 'free_bits': 0.0,
                'model.mlp.stochastic_layers': 1, 'model.mlp.bottom_latent_dim': 100,
                'model.mlp.top_hidden_sizes': [100, 100], 'compute_dtype': 'float32'}

# Fields removed from the config, which never changed what a run computes:
# an older run's config.json reads as if it lacked them.
# train_loop: 'python' gave bit-identical results to 'scan', and 'auto' was 'scan'.
REMOVED_FIELDS = frozenset({'train_loop'})

# Tuple fields, which JSON wrote as lists.
_TUPLE_FIELDS = ('model.mlp.hidden_sizes', 'model.conv.features', 'model.mlp.top_hidden_sizes')


def _parent(d, dotted):
  """``(node, last name)`` of a dotted field in nested dict ``d``, nodes created as needed."""
  *path, last = dotted.split('.')
  for name in path:
    d = d.setdefault(name, {})
  return d, last


def upgrade(old):
  """An older run's config dict as the current config would have written it.

  Renames first, so that a field an old run had under its old name keeps its
  value rather than taking the added field's default. ``old`` is not changed.
  """
  d = copy.deepcopy({k: v for k, v in old.items() if k not in REMOVED_FIELDS})
  for before, after in RENAMED_FIELDS.items():
    old_node, old_name = _parent(d, before)
    if old_name in old_node:
      node, name = _parent(d, after)
      node[name] = old_node.pop(old_name)
  for dotted, default in ADDED_FIELDS.items():
    node, name = _parent(d, dotted)
    node.setdefault(name, copy.deepcopy(default))
  return d


def _flatten(d, prefix=''):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def differences(old, new):
  """Fields (dotted) whose values differ between two config dicts, ``old`` upgraded.

  :data:`RESUMABLE_FIELDS` are ignored, except ``num_epochs`` of a run with a
  cosine learning rate or a cyclical KL schedule: it sets the decay's length,
  or the cycles'.
  """
  a, b = _flatten(upgrade(old)), _flatten(new)
  resumable = RESUMABLE_FIELDS
  if ('cosine' in (a.get('lr_schedule'), b.get('lr_schedule'))
      or 'cyclical' in (a.get('kl_schedule'), b.get('kl_schedule'))):
    resumable = resumable - {'num_epochs'}  # the schedule's length depends on it
  return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
          if a.get(k) != b.get(k) and k not in resumable}


def check_workdir(workdir, config, allow_change=False):
  """Refuses a config that differs from the run already in ``workdir``."""
  old = workdir_lib.read_config_dict(workdir, missing_ok=True)
  if old is None or allow_change:
    return
  diff = differences(old, workdir_lib.config_to_dict(config))
  if diff:
    shown = ', '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in diff.items())
    raise workdir_lib.WorkdirError(
        f'{workdir} holds a run with a different config ({shown}): use a new '
        '--workdir, or pass --allow_config_change to continue it anyway')


def from_workdir(workdir):
  """The ConfigDict a run was made with, from ``workdir/config.json``, upgraded."""
  d = upgrade(workdir_lib.read_config_dict(workdir))
  for dotted in _TUPLE_FIELDS:
    node, name = _parent(d, dotted)
    node[name] = tuple(node[name])
  return ml_collections.ConfigDict(d)
