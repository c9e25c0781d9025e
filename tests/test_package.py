"""The package is a regular package that a non-editable install ships whole."""

import importlib.util
import os
import re

import setuptools

from conftest import ROOT


def test_vae_jax_is_a_regular_package_that_setuptools_finds():
  # pyproject uses packages.find (not find_namespace): without __init__.py a
  # wheel built from the checkout would contain no vae_jax at all.
  spec = importlib.util.find_spec('vae_jax')
  assert spec.origin and spec.origin.endswith(os.path.join('vae_jax', '__init__.py'))
  assert 'vae_jax' in setuptools.find_packages(ROOT, include=['vae_jax*'])


def test_version_matches_pyproject():
  import vae_jax
  with open(os.path.join(ROOT, 'pyproject.toml')) as f:
    declared = re.search(r'^version = "([^"]+)"', f.read(), re.M).group(1)
  assert vae_jax.__version__ == declared


def test_every_experiment_config_loads_locked_and_valid():
  import glob
  from vae_jax.core import config as config_lib
  paths = sorted(glob.glob(os.path.join(ROOT, 'experiments', 'configs', '*.py')))
  assert len(paths) >= 10
  for path in paths:
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config()
    assert c.is_locked, path
    config_lib.validate(c)
