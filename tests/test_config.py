"""vae_jax.core.config: loading a config file, overrides, and upgrading an old config.json.

Overrides are checked against ml_collections' own config_flags (the parser
vae_jax.main used before): the same flag gives the same value and type.
"""

import json

import pytest
from absl import flags as absl_flags
from ml_collections import config_dict, config_flags

from conftest import CONFIG, tiny_config
from vae_jax.core import config as config_lib
from vae_jax.infra import workdir as workdir_lib

# One override each: config_flags appends a repeated tuple flag, which is not a rule to keep.
TYPED = [
    ('seed=3', 'seed', 3),
    ('seed=0x10', 'seed', 16),
    ('learning_rate=1', 'learning_rate', 1.0),        # an int into a float field
    ('learning_rate=2e-3', 'learning_rate', 0.002),
    ('kl_weight=0', 'kl_weight', 0.0),
    ('progress=false', 'progress', False),
    ('progress=True', 'progress', True),
    ('progress=1', 'progress', True),
    ('model.mlp.hidden_sizes=(64,32)', 'model.mlp.hidden_sizes', (64, 32)),
    ('model.mlp.hidden_sizes=16,32', 'model.mlp.hidden_sizes', (16, 32)),
    ('model.mlp.hidden_sizes=16', 'model.mlp.hidden_sizes', (16,)),
    ('model.mlp.hidden_sizes=[8]', 'model.mlp.hidden_sizes', (8,)),
    ('model.mlp.hidden_sizes=()', 'model.mlp.hidden_sizes', ()),
    ('model.kind=autoencoder', 'model.kind', 'autoencoder'),
    ('model.conv.dense_size=8', 'model.conv.dense_size', 8),   # three levels down
    ('data.dir=/a b', 'data.dir', '/a b'),
    ('data.name="mnist"', 'data.name', '"mnist"'),    # a string field takes the text as is
]


def _field(config, dotted):
  for name in dotted.split('.'):
    config = config[name]
  return config


def _config_flags(*overrides):
  """The config ml_collections' config_flags makes of ``--config=CONFIG`` and ``overrides``."""
  argv = ['prog', f'--config={CONFIG}', *overrides]
  values = absl_flags.FlagValues()
  config_flags.DEFINE_config_file('config', None, flag_values=values, lock_config=True,
                                  sys_argv=argv)
  values(argv)
  return values.config


@pytest.mark.parametrize('flag,field,expected', TYPED, ids=[t[0] for t in TYPED])
def test_an_override_is_typed_like_config_flags(flag, field, expected):
  ours = _field(config_lib.from_command_line(CONFIG, [f'--config.{flag}']), field)
  theirs = _field(_config_flags(f'--config.{flag}'), field)
  assert (ours, type(ours)) == (expected, type(expected))
  assert (theirs, type(theirs)) == (expected, type(expected))


def test_a_dict_of_dotted_fields_sets_the_same_config():
  from_flags = config_lib.apply_overrides(config_lib.base_config(), [
      '--config.model.mlp.hidden_sizes=(64,32)', '--config.num_epochs=3',
      '--config.model.kind=autoencoder'])
  from_dict = config_lib.apply_overrides(config_lib.base_config(), {
      'model.mlp.hidden_sizes': [64, 32], 'num_epochs': 3, 'model.kind': 'autoencoder'})
  assert from_dict.to_dict() == from_flags.to_dict()
  assert from_dict.model.mlp.hidden_sizes == (64, 32)  # a JSON list becomes the field's tuple


def test_the_last_override_of_a_field_wins():
  c = config_lib.apply_overrides(config_lib.base_config(), [
      '--config.model.mlp.hidden_sizes=(32,)', '--config.model.mlp.hidden_sizes=(16,)'])
  assert c.model.mlp.hidden_sizes == (16,)


def test_a_none_field_takes_none_or_its_placeholder_type():
  c = config_lib.base_config()
  c.limit = config_dict.placeholder(int)
  c.note = None
  config_lib.apply_overrides(c, ['--config.limit=7', '--config.note=(1, 2)'])
  assert (c.limit, c.note) == (7, (1, 2))
  c = config_lib.base_config()
  c.limit = config_dict.placeholder(int)
  config_lib.apply_overrides(c, ['--config.limit=None'])
  assert c.limit is None
  with pytest.raises(config_lib.ConfigError, match='--config.limit=x: invalid literal'):
    config_lib.apply_overrides(c, ['--config.limit=x'])


BAD = [
    (['--config.no_such_field=1'], "unknown config field 'no_such_field': see the fields"),
    (['--config.model.no_such=1'], "unknown config field 'model.no_such'"),
    (['--config.seed.x=1'], "unknown config field 'seed.x'"),
    (['--config.seed=1.5'], r"--config.seed=1.5: invalid literal for int\(\)"),
    (['--config.learning_rate=fast'], "--config.learning_rate=fast: could not convert"),
    (['--config.progress=maybe'], "--config.progress=maybe: 'maybe' is not a bool"),
    (['--config.model=mlp'], r'config.model is a group of fields: set one of them'),
    (['--config.seed'], 'set a config field as --config.FIELD=VALUE'),
    ({'seed': 1.5}, r'config.seed=1.5: config.seed is a int'),
    ({'progress': 1}, 'config.progress=1: config.progress is a bool: set true or false'),
    ({'no.such': 1}, "unknown config field 'no.such'"),
]


@pytest.mark.parametrize('overrides,message', BAD, ids=[str(b[0]) for b in BAD])
def test_a_bad_override_is_one_line_naming_the_field(overrides, message):
  c = config_lib.base_config()
  before = c.to_dict()
  with pytest.raises(config_lib.ConfigError, match=message) as e:
    config_lib.apply_overrides(c, overrides)
  assert '\n' not in str(e.value)
  assert c.to_dict() == before
  if 'unknown' in message:
    assert 'vae_jax/core/config.py' in str(e.value)


def test_a_bare_name_is_a_file_in_experiments_configs():
  assert config_lib.load_file('mnist_vae_2d').to_dict() == config_lib.load_file(CONFIG).to_dict()


@pytest.mark.parametrize('content,message', [
    (None, r'cannot load --config=.*my_config.py \(No such file\): pass an existing config'),
    ('def get_config(:\n', r'cannot load config file .*my_config.py: .* at line 1: fix the file'),
    ('import no_such_module_here\n',
     "cannot load config file .*: ModuleNotFoundError: No module named 'no_such_module_here'"),
    ('def get_config():\n  raise ValueError("no such model")\n',
     r'get_config\(\) raised ValueError: no such model: fix the file'),
    ('x = 1\n', r'defines no get_config\(\): define one'),
    ('def get_config():\n  return {"seed": 0}\n', 'returned a dict: return an ml_collections'),
], ids=['missing', 'syntax-error', 'import-error', 'get_config-raises', 'no-get_config',
        'not-a-ConfigDict'])
def test_an_unusable_config_file_is_one_line_naming_it(tmp_path, content, message):
  path = tmp_path / 'my_config.py'
  if content is not None:
    path.write_text(content)
  with pytest.raises(config_lib.ConfigError, match=message) as e:
    config_lib.load_file(str(path))
  assert '\n' not in str(e.value) and str(path) in str(e.value)


def test_the_command_line_config_is_locked():
  c = config_lib.from_command_line(CONFIG, ['--config.num_epochs=2'])
  with pytest.raises(AttributeError):
    c.num_epoch = 3  # a typo'd field is not added in silence


def test_an_old_config_json_reads_as_todays_config(tmp_path):
  config = tiny_config(**{'model.mlp.hidden_sizes': (24, 12)})
  d = workdir_lib.config_to_dict(config)
  # As a run from before each family's node, the schedules and the two-layer VAE wrote it.
  mlp = d['model'].pop('mlp')
  d['model']['hidden_sizes'] = mlp['hidden_sizes']
  for field in ('lr_schedule', 'kl_schedule', 'kl_cycles', 'kl_cycle_ratio', 'free_bits'):
    del d[field]
  d['train_loop'] = 'scan'
  (tmp_path / workdir_lib.CONFIG_FILE).write_text(json.dumps(d))

  loaded = config_lib.from_workdir(str(tmp_path))
  assert loaded.to_dict() == config.to_dict()
  assert config_lib.differences(d, workdir_lib.config_to_dict(config)) == {}
  config_lib.check_workdir(str(tmp_path), config)  # resuming it is the same run
  with pytest.raises(workdir_lib.WorkdirError, match=r'model.mlp.hidden_sizes: \[24, 12\] -> '
                                                     r'\[24\]\): use a new --workdir'):
    config_lib.check_workdir(str(tmp_path), tiny_config(**{'model.mlp.hidden_sizes': (24,)}))
  config_lib.check_workdir(str(tmp_path), tiny_config(**{'model.mlp.hidden_sizes': (24,)}),
                           allow_change=True)


def test_resumable_fields_may_change_and_others_may_not():
  old = workdir_lib.config_to_dict(tiny_config())
  for dotted, value in (('num_epochs', 5), ('data.dir', '/elsewhere'), ('progress', True),
                        ('log_every_steps', 1), ('checkpoint_every_steps', 2),
                        ('max_checkpoints', 9)):
    assert dotted in config_lib.RESUMABLE_FIELDS
    assert config_lib.differences(old, workdir_lib.config_to_dict(
        tiny_config(**{dotted: value}))) == {}, dotted
  assert config_lib.differences(old, workdir_lib.config_to_dict(tiny_config(seed=1))) == {
      'seed': (0, 1)}
