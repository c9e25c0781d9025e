"""A model family defined outside vae_jax, chosen and trained from the command line."""

import os
import textwrap

import jax
import pytest

from conftest import cli, one_error_line, train_args
from vae_jax.core import config as config_lib, experiment

# An outside package: an MLP family with its own widths, not registered anywhere.
OUTSIDE = textwrap.dedent('''
    from vae_jax.core import models

    def narrow_mlp(model_config, image_shape):
      return (models.MLPEncoder((24, 12), model_config.dropout_rate),
              models.MLPDecoder(tuple(image_shape), (12, 24), model_config.dropout_rate))
''')


@pytest.fixture
def outside_package(tmp_path, monkeypatch):
  package = tmp_path / 'outside' / 'my_families'
  package.mkdir(parents=True)
  (package / '__init__.py').write_text('')
  (package / 'mlp.py').write_text(OUTSIDE)
  path = str(tmp_path / 'outside')
  monkeypatch.syspath_prepend(path)  # this process, to restore the run
  monkeypatch.setenv('PYTHONPATH', os.pathsep.join([path, os.environ.get('PYTHONPATH', '')]))
  return path


def test_a_family_from_an_outside_module_trains_from_the_cli_and_restores(
    outside_package, tmp_path, data_dir):
  w = str(tmp_path / 'run')
  proc = cli(train_args(w, '--config.model.family=my_families.mlp:narrow_mlp'), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  config, model, params, step = experiment.restore(w)
  assert config.model.family == 'my_families.mlp:narrow_mlp' and step == 8
  # The outside widths were built, not the config's mlp.hidden_sizes=(32,).
  widths = sorted({x.shape[-1] for x in jax.tree_util.tree_leaves(params) if x.ndim == 2})
  assert widths == [4, 12, 24, 784], widths  # 4 = 2 * latent_dim (mean, logvar); 784 pixels


def test_a_missing_outside_family_is_one_error_line(tmp_path, data_dir):
  family = 'no_such_module:builder'
  proc = cli(train_args(str(tmp_path / 'run'), f'--config.model.family={family}'), data_dir)
  assert proc.returncode == 2
  line = one_error_line(proc)
  assert f"config.model.family='{family}'" in line and 'cannot import no_such_module' in line
  assert not os.path.exists(tmp_path / 'run' / 'config.json')


@pytest.mark.parametrize('family,expected', [
    ('my_families.mlp:narrow_mlp', None),
    ('no_such_module:builder', 'cannot import no_such_module'),
    ('my_families.mlp:missing', 'has no function missing'),
    ('my_families.mlp', 'package.module:builder'),
    ('mlp', None),
])
def test_validate_imports_the_family_it_is_given(outside_package, family, expected):
  c = config_lib.base_config()
  c.model.family = family
  if expected is None:
    config_lib.validate(c)  # importable and callable, or built in
  else:
    with pytest.raises(config_lib.ConfigError, match=expected):
      config_lib.validate(c)
