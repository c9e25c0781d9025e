"""Executes every notebook in notebooks/ top to bottom and fails on any error.

Each notebook runs in a fresh ``python3`` kernel (ipykernel's own kernelspec;
jupyter_client starts it with this interpreter) with the working directory
``notebooks/`` as a user would have it, ``$VAE_JAX_DATA_DIR`` set to the local
data, ``$VAE_JAX_NOTEBOOK_WORKDIR`` set to a fresh temporary directory (so
that notebooks which keep their runs train from scratch instead of loading a
stale run) and ``$TMPDIR`` inside the test's directory (so that the workdirs
the notebooks make with ``tempfile`` are cleaned up with it). The committed notebooks are never modified: the executed copy is
written to the test's temporary directory (kept by pytest for a look).

The committed notebooks carry their outputs, made by ``python -m
vae_jax.notebooks``; the default suite checks that each one's code is the code
that produced them (the hash in its metadata).
"""

import base64
import os
import sys
import time

import pytest

# Plain imports: the dev extra installs them, so a missing one is a broken
# install that must fail the suite, not skip the notebooks.
import ipykernel  # noqa: F401  (the kernel the notebooks run in)
import nbclient
import nbformat

from vae_jax import notebooks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK_DIR = os.path.join(ROOT, 'notebooks')
CELL_TIMEOUT_S = 300

# Measured on a shared 2-core CPU (kernel start, JAX compilation, training):
# 01 37 s, 02 62-69 s, 03 53-65 s, 04 13 s (no training; on a loaded machine);
# 01 takes longer under load, so all are slow.
NOTEBOOKS = ['01_quickstart.ipynb', '02_latent_space_walk.ipynb',
             '03_extend_a_model.ipynb', '04_latent_report.ipynb']


def _run(nb, cwd):
  client = nbclient.NotebookClient(nb, kernel_name='python3', timeout=CELL_TIMEOUT_S,
                                   resources={'metadata': {'path': cwd}})
  client.execute()  # raises CellExecutionError naming the cell and its traceback


def test_python3_kernel_runs_this_interpreter(tmp_path):
  # The notebooks name the 'python3' kernel: ipykernel's own kernelspec, which
  # jupyter_client launches with sys.executable (no `ipykernel install` needed).
  nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
      'import os, sys, vae_jax\nprint(sys.executable)\nprint(os.getcwd())')])
  _run(nb, str(tmp_path))
  text = nb.cells[0].outputs[0].text.split()
  assert os.path.realpath(text[0]) == os.path.realpath(sys.executable)
  assert os.path.realpath(text[1]) == os.path.realpath(tmp_path)


def test_every_notebook_is_listed():
  found = sorted(f for f in os.listdir(NOTEBOOK_DIR) if f.endswith('.ipynb'))
  assert found == sorted(NOTEBOOKS), 'add new notebooks to NOTEBOOKS'


def test_the_command_runs_every_notebook():
  assert sorted(notebooks.NOTEBOOKS) == sorted(NOTEBOOKS)


@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_is_committed_with_the_outputs_of_its_code(name):
  nb = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
  nbformat.validate(nb)
  assert nb.metadata.kernelspec.name == 'python3'
  assert not notebooks.is_stale(nb), (
      f'{name}: its code changed since its outputs were made: run '
      f'`python -m vae_jax.notebooks {name}` and commit the result')
  code = [c for c in nb.cells if c.cell_type == 'code']
  unrun = [i for i, c in enumerate(code) if not c.execution_count]
  assert not unrun, f'{name}: code cells {unrun} have not run'
  assert list(range(1, len(code) + 1)) == [c.execution_count for c in code]  # top to bottom
  assert not [o for c in code for o in c.outputs if o.output_type == 'error']
  assert any('image/png' in o.get('data', {}) for c in code for o in c.outputs), name


def test_a_changed_code_cell_makes_the_notebook_stale(tmp_path):
  # The check above can fail: edit one character of a committed notebook's code.
  name = NOTEBOOKS[0]
  nb = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
  assert not notebooks.is_stale(nb)
  cell = next(c for c in nb.cells if c.cell_type == 'code')
  cell.source += ' '
  assert notebooks.is_stale(nb)
  nbformat.write(nb, str(tmp_path / name))
  assert notebooks.main(['--check', f'--dir={tmp_path}', name]) == 1
  # Markdown and outputs are not code: changing them keeps the notebook current.
  cell.source = cell.source[:-1]
  nb.cells.append(nbformat.v4.new_markdown_cell('a note'))
  cell.outputs = []
  assert not notebooks.is_stale(nb)
  nbformat.write(nb, str(tmp_path / name))
  assert notebooks.main(['--check', f'--dir={tmp_path}', name]) == 0


def test_a_notebook_without_a_hash_is_stale():
  nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1 + 1')])
  assert notebooks.is_stale(nb)
  nb.metadata['vae_jax'] = {'code_sha256': notebooks.code_hash(nb)}
  assert not notebooks.is_stale(nb)


def test_the_command_executes_a_notebook_and_stores_its_outputs_and_hash(tmp_path):
  # The code a committed notebook ran, end to end on a tiny notebook (no training).
  nb = nbformat.v4.new_notebook(cells=[
      nbformat.v4.new_code_cell('%matplotlib inline\nimport matplotlib.pyplot as plt'),
      nbformat.v4.new_code_cell('print(6 * 7)\nplt.plot([0, 1], [1, 0]);')])
  nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'Python 3',
                               'language': 'python'}
  path = tmp_path / 'tiny.ipynb'
  nbformat.write(nb, str(path))
  notebooks.run_one(str(path))
  done = nbformat.read(str(path), as_version=4)
  assert not notebooks.is_stale(done)
  assert done.cells[1].outputs[0].text == '42\n'
  png = next(o for o in done.cells[1].outputs if 'data' in o).data['image/png']
  assert base64.b64decode(png).startswith(b'\x89PNG')
  assert 'execution' not in done.cells[1].metadata  # no timestamps: reruns differ only in outputs


def test_unknown_notebook_is_one_line(capsys):
  with pytest.raises(SystemExit) as e:
    notebooks.main(['05_nothing.ipynb'])
  assert e.value.code == 2
  assert capsys.readouterr().err.startswith('error: no notebook')


@pytest.mark.slow
@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_runs(name, data_dir, tmp_path, monkeypatch):
  # The kernel inherits this process's environment.
  monkeypatch.setenv('VAE_JAX_DATA_DIR', data_dir)
  monkeypatch.setenv('VAE_JAX_NOTEBOOK_WORKDIR', str(tmp_path / 'runs'))
  (tmp_path / 'tmp').mkdir()
  monkeypatch.setenv('TMPDIR', str(tmp_path / 'tmp'))
  nb = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
  start = time.time()
  try:
    notebooks.execute(nb, NOTEBOOK_DIR, timeout=CELL_TIMEOUT_S)  # what the command runs
  finally:
    nbformat.write(nb, str(tmp_path / name))
    print(f'{name}: {time.time() - start:.1f} s, executed copy {tmp_path / name}')
  errors = [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs
            if o.output_type == 'error']
  assert not errors
