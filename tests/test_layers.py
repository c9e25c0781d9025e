"""The package's layers import downwards only, as each subpackage's docstring says.

Every ``import`` and ``from ... import`` of every module (function-level
imports included) is read with ``ast``; a module may import its own
subpackage and the subpackages its layer lists, never one above it.
"""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, 'vae_jax')

# layer -> the layers it may import (besides itself). The top-level modules
# (cli, main, publish, notebooks) are entry points and may import any layer.
ALLOWED = {
    'infra': set(),
    'core': {'infra'},
    'analysis': {'core', 'infra'},
    'study': {'analysis', 'core', 'infra'},
    'bench': {'analysis', 'core', 'infra'},
}
ENTRY_POINTS = {'cli', 'main', 'publish', 'notebooks'}


def _layer_of(module):
  """``'vae_jax.core.models'`` -> ``'core'``; a top-level module -> its own name."""
  parts = module.split('.')
  return parts[1] if parts[0] == 'vae_jax' and len(parts) > 1 else None


def _imports(path):
  tree = ast.parse(open(path).read(), path)
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for a in node.names:
        yield node.lineno, a.name
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      if node.module == 'vae_jax':
        for a in node.names:
          yield node.lineno, f'vae_jax.{a.name}'
      else:
        yield node.lineno, node.module


def _modules():
  for dirpath, _, files in os.walk(PACKAGE):
    for f in sorted(files):
      if f.endswith('.py'):
        path = os.path.join(dirpath, f)
        rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, '.')
        yield rel.removesuffix('.__init__'), path


def violations(modules):
  """``[(module, line, imported)]`` for every import against the layers' direction."""
  found = []
  for module, path in modules:
    own = _layer_of(module)
    if own in ENTRY_POINTS or own is None:
      continue
    for line, imported in _imports(path):
      target = _layer_of(imported)
      if target is None or target == own:
        continue
      if target not in ALLOWED.get(own, set()):
        found.append((module, line, imported))
  return found


def test_every_module_belongs_to_a_layer_or_is_an_entry_point():
  stray = [m for m, _ in _modules()
           if m != 'vae_jax' and _layer_of(m) not in set(ALLOWED) | ENTRY_POINTS]
  assert not stray, f'modules outside the layers: {stray}; move them into a subpackage'


def test_imports_run_downwards_only():
  assert violations(_modules()) == []


def test_each_layer_says_what_it_owns_and_may_import():
  for layer in ALLOWED:
    doc = ast.get_docstring(ast.parse(open(os.path.join(PACKAGE, layer, '__init__.py')).read()))
    assert doc and 'May import' in doc, f'vae_jax/{layer}/__init__.py needs its docstring'


@pytest.mark.parametrize('source, expected', [
    ('from vae_jax.study import verdicts\n', [('vae_jax.core.x', 1, 'vae_jax.study')]),
    ('def f():\n  from vae_jax import cli\n', [('vae_jax.core.x', 2, 'vae_jax.cli')]),
    ('from vae_jax.infra import workdir\nimport numpy\n', []),
])
def test_the_check_sees_an_upward_import(tmp_path, source, expected):
  path = tmp_path / 'x.py'
  path.write_text(source)
  assert violations([('vae_jax.core.x', str(path))]) == expected
