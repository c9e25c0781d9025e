"""Each built-in family's own fields live in its node of config.model.

Only the selected family's node is validated; the command line switches the
family and sets its node; and a run whose config.json has the older flat
fields (model.hidden_sizes, model.conv_features, ...) restores with the same
parameters and resumes under today's config.
"""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CONFIG, cli, one_error_line, read, straight_run, tiny_config, train_args
from vae_jax.core import config as config_lib, experiment, models
from vae_jax.infra import workdir as workdir_lib

SIZES = 'must be a non-empty tuple of positive integers, e.g. "(512,)"'
# (family, field of its node, a bad value, the whole error line validate gives).
BAD_FIELDS = [
    ('mlp', 'hidden_sizes', (), f'config.model.mlp.hidden_sizes=() {SIZES}'),
    ('mlp', 'top_hidden_sizes', (8, 0), f'config.model.mlp.top_hidden_sizes=(8, 0) {SIZES}'),
    ('mlp', 'bottom_latent_dim', 0,
     'config.model.mlp.bottom_latent_dim=0 must be a positive integer'),
    ('mlp', 'stochastic_layers', 3, 'config.model.mlp.stochastic_layers=3 must be 1 or 2'),
    ('conv', 'features', (16, -1), f'config.model.conv.features=(16, -1) {SIZES}'),
    ('conv', 'dense_size', 0, 'config.model.conv.dense_size=0 must be a positive integer'),
    ('rnn', 'cell', 'tanh',
     "config.model.rnn.cell='tanh' is not valid: use one of ['gru', 'lstm']"),
    ('rnn', 'size', -8, 'config.model.rnn.size=-8 must be a positive integer'),
]


@pytest.mark.parametrize('selected', ['mlp', 'conv', 'rnn'])
@pytest.mark.parametrize('family,field,value,message', BAD_FIELDS,
                         ids=[f'{b[0]}.{b[1]}' for b in BAD_FIELDS])
def test_a_bad_field_fails_only_a_run_of_its_own_family(selected, family, field, value,
                                                         message):
  c = config_lib.base_config()
  c.model.family = selected
  c.model[family][field] = value
  if selected == family:
    with pytest.raises(config_lib.ConfigError) as e:
      config_lib.validate(c)
    assert str(e.value) == message
  else:
    config_lib.validate(c)  # a run never reads another family's node


def test_an_outside_family_is_not_held_to_the_built_in_nodes(monkeypatch):
  monkeypatch.setitem(models.FAMILIES, 'mine', models.FAMILIES['mlp'])
  c = config_lib.base_config()
  c.model.family = 'mine'
  for family, field, value, _ in BAD_FIELDS:
    c.model[family][field] = value
  config_lib.validate(c)


def parse(*args):
  """The config vae_jax.main gets from these flags (its locked --config with overrides)."""
  return config_lib.from_command_line(CONFIG, args)


def param_shapes(model, image_shape=(28, 28, 1)):
  """``{path: shape}`` of the model's parameters (nothing computed)."""
  params = jax.eval_shape(lambda k: model.init(k, jnp.zeros((1, *image_shape)), k),
                          jax.random.key(0))['params']
  return {jax.tree_util.keystr(p): x.shape
          for p, x in jax.tree_util.tree_flatten_with_path(params)[0]}


def test_the_command_line_switches_the_family_and_sets_its_node():
  c = parse('--config.model.family=conv', '--config.model.conv.features=(16,32)',
            '--config.model.conv.dense_size=8')
  assert (c.model.family, c.model.conv.features, c.model.conv.dense_size) == (
      'conv', (16, 32), 8)
  shapes = param_shapes(experiment.build_model(c))
  assert shapes["['encoder']['Conv_0']['kernel']"] == (3, 3, 1, 16)
  assert shapes["['encoder']['Conv_1']['kernel']"] == (3, 3, 16, 32)
  assert shapes["['encoder']['Dense_0']['kernel']"] == (7 * 7 * 32, 8)
  c = parse('--config.model.family=rnn', '--config.model.rnn.cell=gru',
            '--config.model.rnn.size=8')
  assert (c.model.family, c.model.rnn.cell, c.model.rnn.size) == ('rnn', 'gru', 8)
  assert param_shapes(experiment.build_model(c))["['decoder']['Dense_0']['kernel']"] == (2, 8)


# ---------------------------------------------------------------------------
# Runs written before the nodes: flat fields in config.json
# ---------------------------------------------------------------------------
def flat_model(model):
  """``config.model`` (a JSON dict) as runs wrote it before each family had a node."""
  mlp, conv, rnn = model['mlp'], model['conv'], model['rnn']
  flat = {k: v for k, v in model.items() if k not in ('mlp', 'conv', 'rnn')}
  flat.update(hidden_sizes=mlp['hidden_sizes'], stochastic_layers=mlp['stochastic_layers'],
              bottom_latent_dim=mlp['bottom_latent_dim'],
              top_hidden_sizes=mlp['top_hidden_sizes'], conv_features=conv['features'],
              dense_size=conv['dense_size'], rnn_cell=rnn['cell'], rnn_size=rnn['size'])
  return flat


def write_flat(workdir, config):
  d = workdir_lib.config_to_dict(config)
  d['model'] = flat_model(d['model'])
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, workdir_lib.CONFIG_FILE), 'w') as f:
    json.dump(d, f, indent=2, sort_keys=True)
  return d


# (family, its fields in a config, the encoder and decoder the flat fields described).
FLAT_MODELS = [
    ('mlp', {'mlp.hidden_sizes': (24, 12)},
     (models.MLPEncoder((24, 12)), models.MLPDecoder((28, 28, 1), (24, 12)))),
    ('conv', {'conv.features': (8, 16), 'conv.dense_size': 12},
     (models.ConvEncoder((8, 16), 12), models.ConvDecoder((28, 28, 1), (8, 16)))),
    ('rnn', {'rnn.cell': 'gru', 'rnn.size': 8},
     (models.RNNEncoder(8, 'gru'), models.RNNDecoder((28, 28, 1), 8, 'gru'))),
]


@pytest.mark.parametrize('family,fields,modules', FLAT_MODELS, ids=[m[0] for m in FLAT_MODELS])
def test_a_flat_config_json_builds_the_model_it_described(family, fields, modules, tmp_path):
  config = tiny_config(**{'model.family': family, **{f'model.{k}': v for k, v in fields.items()}})
  old = write_flat(str(tmp_path), config)
  loaded = config_lib.from_workdir(str(tmp_path))
  assert workdir_lib.config_to_dict(loaded) == workdir_lib.config_to_dict(config)
  assert config_lib.differences(old, workdir_lib.config_to_dict(config)) == {}
  expected = param_shapes(models.VAE(*modules, latent_dim=2))
  assert param_shapes(experiment.build_model(loaded)) == expected


def test_renamed_fields_keep_their_values_over_the_added_defaults():
  old = {'latent_dim': 2, 'model': {'kind': 'vae', 'hidden_sizes': [24],
                                    'bottom_latent_dim': 7, 'rnn_size': 8}}
  new = config_lib.upgrade(old)
  assert new['model'] == {'kind': 'vae', 'rnn': {'size': 8},
                          'mlp': {'hidden_sizes': [24], 'bottom_latent_dim': 7,
                                  'stochastic_layers': 1, 'top_hidden_sizes': [100, 100]}}
  assert old['model']['hidden_sizes'] == [24]  # the caller's dict is left as it was


@pytest.fixture(scope='module')
def flat_run(tmp_path_factory, data_dir):
  """A tiny run trained from the command line, its config.json then made flat."""
  w = straight_run(tmp_path_factory, data_dir)
  config = config_lib.from_workdir(w)
  params = experiment.restore(w)[2]
  write_flat(w, config)
  return w, params


def test_a_flat_run_restores_the_same_parameters(flat_run):
  workdir, trained = flat_run
  with open(os.path.join(workdir, workdir_lib.CONFIG_FILE)) as f:
    assert json.load(f)['model']['hidden_sizes'] == [32]  # the old layout
  config, model, params, step = experiment.restore(workdir)
  assert step == 8 and config.model.mlp.hidden_sizes == (32,)
  assert param_shapes(model) == {
      "['decoder']['Dense_0']['bias']": (32,), "['decoder']['Dense_0']['kernel']": (2, 32),
      "['decoder']['Dense_1']['bias']": (784,), "['decoder']['Dense_1']['kernel']": (32, 784),
      "['encoder']['Dense_0']['bias']": (32,), "['encoder']['Dense_0']['kernel']": (784, 32),
      "['posterior']['bias']": (4,), "['posterior']['kernel']": (32, 4)}
  assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(trained)
  jax.tree_util.tree_map(np.testing.assert_array_equal, params, trained)


def test_a_flat_run_resumes_from_the_command_line_and_refuses_a_changed_field(
    flat_run, tmp_path, data_dir):
  w = str(shutil.copytree(flat_run[0], tmp_path / 'run'))
  before = read(os.path.join(w, workdir_lib.CONFIG_FILE))
  changes = {'--config.model.mlp.hidden_sizes=(16,)': 'model.mlp.hidden_sizes: [32] -> [16]',
             '--config.model.conv.dense_size=64': 'model.conv.dense_size: 16 -> 64'}
  for flag, change in changes.items():
    proc = cli(train_args(w, flag, '--config.num_epochs=2'), data_dir)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = one_error_line(proc)
    assert f'different config ({change})' in line, line
    assert read(os.path.join(w, workdir_lib.CONFIG_FILE)) == before
  # The same run under today's layout: no "config changed", one more epoch.
  proc = cli(train_args(w, '--config.num_epochs=2'), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert experiment.restore(w)[3] == 16
  with open(os.path.join(w, workdir_lib.CONFIG_FILE)) as f:
    assert json.load(f)['model']['mlp']['hidden_sizes'] == [32]
