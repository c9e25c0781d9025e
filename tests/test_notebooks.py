"""Executes every notebook in notebooks/ top to bottom and fails on any error.

Each notebook runs in a fresh ``python3`` kernel (ipykernel's own kernelspec;
jupyter_client starts it with this interpreter) with the working directory
``notebooks/`` as a user would have it, ``$VAE_JAX_DATA_DIR`` set to the local
data, ``$VAE_JAX_NOTEBOOK_WORKDIR`` set to a fresh temporary directory (so
that notebooks which keep their runs train from scratch instead of loading a
stale run) and ``$TMPDIR`` inside the test's directory (so that the workdirs
the notebooks make with ``tempfile`` are cleaned up with it). The committed notebooks are never modified: the executed copy is
written to the test's temporary directory (kept by pytest for a look).
"""

import os
import sys
import time

import pytest

# Plain imports: the dev extra installs them, so a missing one is a broken
# install that must fail the suite, not skip the notebooks.
import ipykernel  # noqa: F401  (the kernel the notebooks run in)
import nbclient
import nbformat

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


@pytest.mark.parametrize('name', NOTEBOOKS)
def test_notebook_is_committed_without_outputs(name):
  nb = nbformat.read(os.path.join(NOTEBOOK_DIR, name), as_version=4)
  nbformat.validate(nb)
  with_outputs = [i for i, c in enumerate(nb.cells)
                  if c.cell_type == 'code' and (c.outputs or c.execution_count)]
  assert not with_outputs, f'{name}: clear the outputs of cells {with_outputs}'
  assert nb.metadata.kernelspec.name == 'python3'


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
    _run(nb, NOTEBOOK_DIR)
  finally:
    nbformat.write(nb, str(tmp_path / name))
    print(f'{name}: {time.time() - start:.1f} s, executed copy {tmp_path / name}')
  errors = [o for c in nb.cells if c.cell_type == 'code' for o in c.outputs
            if o.output_type == 'error']
  assert not errors
