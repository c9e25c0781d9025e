"""The one publish step: every generated block is current, and publishing is a pure function.

``vae-jax publish --check`` on the committed checkout is the staleness test of
every generated block (README.md, docs/results/, docs/performance.md). The
rest runs on a copy of the checkout: twice gives byte-identical files, a
stale block is named, a missing or --quick source stops with one line before
anything is written.
"""

import contextlib
import io
import json
import os
import re
import shutil

import pytest

from conftest import ROOT
from vae_jax import publish
from vae_jax.infra import blocks

MARKER = re.compile(r'<!-- ([\w-]+):begin -->')


def _docs(root=None):  # the pages of the table (the same names under any root)
  return sorted({b.doc for b in publish.BLOCKS})


@pytest.fixture
def checkout(tmp_path):
  """The committed pages and their sources (figures left out: no block reads them)."""
  root = tmp_path / 'checkout'
  root.mkdir()
  shutil.copy(os.path.join(ROOT, 'README.md'), root)
  shutil.copytree(os.path.join(ROOT, 'docs'), root / 'docs',
                  ignore=shutil.ignore_patterns('figures'))
  shutil.copytree(os.path.join(ROOT, 'results'), root / 'results')
  return root


def _snapshot(root):
  return {d: (root / d).read_bytes() for d in _docs(root)}


def _main(*argv):
  """(exit status, stderr) of ``publish.main``; a user error's SystemExit included."""
  err = io.StringIO()
  with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    try:
      code = publish.main(list(argv))
    except SystemExit as e:
      code = e.code
  return code, err.getvalue()


def test_every_generated_block_in_the_checkout_is_current():
  code, err = _main('--check')
  assert code == 0, f'{err}run `vae-jax publish` and commit the result'


def test_every_marked_block_is_in_the_table_once_and_every_entry_is_marked():
  for doc in _docs(ROOT):
    with open(os.path.join(ROOT, doc)) as f:
      text = f.read()
    marked = MARKER.findall(text)
    assert sorted(marked) == sorted(b.name for b in publish.BLOCKS if b.doc == doc), doc
    assert len(set(marked)) == len(marked), doc


def test_publishing_twice_gives_byte_identical_files(checkout):
  committed = _snapshot(checkout)
  # Stale every block, then publish twice.
  for doc in _docs(checkout):
    text = (checkout / doc).read_text()
    for name in MARKER.findall(text):
      text = blocks.replace_block(text, name, 'stale')
    (checkout / doc).write_text(text)
  assert _main('--root', str(checkout))[0] == 0
  first = _snapshot(checkout)
  assert publish.publish(str(checkout)) == []
  assert _snapshot(checkout) == first == committed


def test_check_names_each_stale_block_writes_nothing_and_exits_1(checkout):
  page = checkout / 'docs' / 'results' / 'likelihood.md'
  page.write_text(blocks.replace_block(page.read_text(), 'likelihood', 'stale'))
  readme = checkout / 'README.md'
  readme.write_text(blocks.replace_block(readme.read_text(), 'main-job', 'stale'))
  before = _snapshot(checkout)
  code, err = _main('--check', '--root', str(checkout))
  assert code == 1
  assert 'README.md [main-job]' in err and 'likelihood.md [likelihood]' in err
  assert 'benchmark' not in err
  assert _snapshot(checkout) == before
  # Named blocks only: the README's stale block stays as it is.
  assert _main('--root', str(checkout), 'likelihood')[0] == 0
  assert _main('--check', '--root', str(checkout))[1].count('[') == 1


@pytest.mark.parametrize('source, command', [
    ('results/benchmark.json', 'vae-jax bench --json=bench.json'),
    ('docs/study_summary.json', 'vae-jax study --outdir=runs/study'),
    ('results/gpu', 'device_check.sh'),
])
def test_a_missing_source_stops_with_one_line_naming_its_command(checkout, source, command):
  readme = checkout / 'README.md'
  readme.write_text(blocks.replace_block(readme.read_text(), 'likelihood-headline', 'stale'))
  before = _snapshot(checkout)
  path = checkout / source
  shutil.rmtree(path) if path.is_dir() else path.unlink()
  code, err = _main('--root', str(checkout))
  assert code == 2 and err.startswith('error: ') and err.count('\n') == 1, err
  assert 'does not exist' in err and command in err
  assert _snapshot(checkout) == before      # not even the blocks whose sources are there


def test_a_quick_source_stops_with_one_line(checkout):
  path = checkout / 'docs' / 'sweep_summary.json'
  path.write_text(json.dumps(dict(json.loads(path.read_text()), quick=True)))
  before = _snapshot(checkout)
  code, err = _main('--root', str(checkout))
  assert code == 2 and 'sweep_summary.json is a --quick smoke run' in err
  assert 'vae-jax sweep --outdir=runs/sweep' in err and err.count('\n') == 1
  assert _snapshot(checkout) == before


def test_an_unknown_block_or_a_page_without_its_markers_is_one_line(checkout):
  code, err = _main('--root', str(checkout), 'nonsense')
  assert code == 2 and 'no block named nonsense' in err and err.count('\n') == 1
  readme = checkout / 'README.md'
  readme.write_text(readme.read_text().replace('<!-- main-job:end -->', ''))
  code, err = _main('--root', str(checkout))
  assert code == 2 and '<!-- main-job:end -->' in err and err.count('\n') == 1


def test_replace_block_rewrites_only_its_block():
  text = 'head\n<!-- a:begin -->\nold a\n<!-- a:end -->\nmid\n<!-- b:begin -->\nb\n<!-- b:end -->\n'
  new = blocks.replace_block(text, 'a', '\nnew a\nline 2\n')
  # Brute force: the same splice by hand.
  assert new == text.replace('old a', 'new a\nline 2')
  assert blocks.replace_block(new, 'a', 'new a\nline 2') == new
  assert blocks.replace_block(text, 'b', 'b') == text
  with pytest.raises(blocks.PublishError, match='found 0 begin'):
    blocks.replace_block(text, 'c', 'x')
  with pytest.raises(blocks.PublishError, match='found 2 begin and 2 end'):
    blocks.replace_block(text + text, 'a', 'x')
  with pytest.raises(blocks.PublishError, match='expected one'):
    blocks.replace_block('<!-- a:end -->\n<!-- a:begin -->\n', 'a', 'x')


def test_read_source_refuses_missing_and_quick_and_passes_a_directory(tmp_path):
  with pytest.raises(blocks.PublishError, match='does not exist: write it first with `make it`'):
    blocks.read_source(str(tmp_path / 'none.json'), 'make it')
  quick = tmp_path / 'quick.json'
  quick.write_text(json.dumps({'quick': True, 'x': 1}))
  with pytest.raises(blocks.PublishError, match='smoke run'):
    blocks.read_source(str(quick), 'make it')
  quick.write_text(json.dumps({'quick': False, 'x': 1}))
  assert blocks.read_source(str(quick), 'make it') == {'quick': False, 'x': 1}
  assert blocks.read_source(str(tmp_path), 'make it') == str(tmp_path)


def test_write_source_is_read_back_and_a_failed_write_keeps_the_old_file(tmp_path):
  path = tmp_path / 'new' / 'folder' / 'r.json'
  blocks.write_source(str(path), {'b': 1, 'a': [0.5]}, sort_keys=True)
  assert path.read_text() == '{\n  "a": [\n    0.5\n  ],\n  "b": 1\n}\n'
  assert blocks.read_source(str(path), 'make it') == {'a': [0.5], 'b': 1}
  # Not JSON-serialisable: json.dumps raises before any byte is written.
  with pytest.raises(TypeError):
    blocks.write_source(str(path), {'a': object()})
  assert blocks.read_source(str(path), 'make it') == {'a': [0.5], 'b': 1}
  assert os.listdir(path.parent) == ['r.json']   # no temporary file left behind


def test_the_readme_publish_command_runs(checkout):
  from test_readme import readme_commands, without_env
  commands = [without_env(c) for c in readme_commands()]
  assert 'vae-jax publish' in commands
  # `vae-jax publish` runs vae_jax.publish.main; on a copy, as the committed files are current.
  assert _main('--root', str(checkout))[0] == 0
