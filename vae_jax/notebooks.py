r"""Executes the notebooks in notebooks/ and commits them with their outputs.

  python -m vae_jax.notebooks              # all four, a few minutes on 2 cores
  python -m vae_jax.notebooks 01_quickstart.ipynb
  python -m vae_jax.notebooks --check      # exit 1 naming each notebook whose code changed

Each notebook runs top to bottom in a fresh ``python3`` kernel (nbclient) in
``notebooks/``, with ``$VAE_JAX_NOTEBOOK_WORKDIR`` and ``$TMPDIR`` in a fresh
temporary directory, so every model is trained from scratch and no run of an
earlier execution is reused. PNG outputs are stored with a 256-colour
palette to keep the files small. The executed notebook replaces the committed one
only when every cell ran without an error, and its metadata keeps the SHA-256
of its code cells (``metadata.vae_jax.code_sha256``): a committed notebook
whose code differs from the code that produced its outputs is stale, which
tests/test_notebooks.py checks in the default suite.
"""

import argparse
import base64
import hashlib
import io
import json
import os
import sys
import tempfile
import time

from vae_jax.infra import errors, flags, paths

NOTEBOOK_DIR = os.path.join(paths.REPO_ROOT, 'notebooks')
NOTEBOOKS = ('01_quickstart.ipynb', '02_latent_space_walk.ipynb',
             '03_extend_a_model.ipynb', '04_latent_report.ipynb')
CELL_TIMEOUT_S = 600
META_KEY = 'vae_jax'
PNG_COLOURS = 256   # a palette PNG: a third of the bytes, no visible loss on these figures


class NotebookError(errors.UserError, RuntimeError):
  """A notebook that cannot be executed as asked; the message says why."""


def code_hash(nb):
  """SHA-256 of the notebook's code cells, in order: what its outputs depend on."""
  sources = [c.source for c in nb.cells if c.cell_type == 'code']
  return hashlib.sha256(json.dumps(sources).encode()).hexdigest()


def is_stale(nb):
  """True when the code differs from the code whose outputs are stored (or none are)."""
  return nb.metadata.get(META_KEY, {}).get('code_sha256') != code_hash(nb)


def shrink_images(nb):
  """Re-encodes every PNG output with a 256-colour palette (deterministic median cut)."""
  from PIL import Image
  for cell in nb.cells:
    for out in cell.get('outputs', []):
      png = out.get('data', {}).get('image/png')
      if png is None:
        continue
      image = Image.open(io.BytesIO(base64.b64decode(png))).convert('RGB')
      buffer = io.BytesIO()
      image.quantize(colors=PNG_COLOURS, method=Image.Quantize.MEDIANCUT).save(
          buffer, 'PNG', optimize=True)
      out['data']['image/png'] = base64.b64encode(buffer.getvalue()).decode('ascii')
  return nb


def execute(nb, cwd, timeout=CELL_TIMEOUT_S):
  """Runs ``nb`` in place in a fresh python3 kernel; raises on the first failing cell."""
  import nbclient
  # record_timing=False: no timestamps in the cells, so the file changes only with its outputs.
  client = nbclient.NotebookClient(nb, kernel_name='python3', timeout=timeout,
                                   record_timing=False, resources={'metadata': {'path': cwd}})
  client.execute()  # CellExecutionError names the cell and its traceback
  shrink_images(nb)
  nb.metadata[META_KEY] = {'code_sha256': code_hash(nb)}
  return nb


def run_one(path):
  """Executes the notebook at ``path`` in a fresh temporary workdir; writes it back if it ran."""
  import nbformat
  nb = nbformat.read(path, as_version=4)
  env = {k: os.environ.get(k) for k in ('VAE_JAX_NOTEBOOK_WORKDIR', 'TMPDIR')}
  with tempfile.TemporaryDirectory(prefix='vae_jax_notebooks_') as tmp:
    os.makedirs(os.path.join(tmp, 'tmp'))
    # The kernel inherits this process's environment.
    os.environ['VAE_JAX_NOTEBOOK_WORKDIR'] = os.path.join(tmp, 'runs')
    os.environ['TMPDIR'] = os.path.join(tmp, 'tmp')
    try:
      execute(nb, os.path.dirname(path))
    finally:
      for k, v in env.items():
        if v is None:
          os.environ.pop(k, None)
        else:
          os.environ[k] = v
  nbformat.validate(nb)
  nbformat.write(nb, path)


def main(argv=None, prog='python -m vae_jax.notebooks'):
  parser = flags.Parser(prog, __doc__.split('\n\n')[0], [prog, f'{prog} --check'])
  parser.add_argument('names', nargs='*', help=f'notebooks to run (default: all of {NOTEBOOKS})')
  parser.add_bool('check', False, 'run nothing; exit 1 naming each notebook whose code changed')
  parser.add_argument('--dir', default=NOTEBOOK_DIR, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  import nbformat
  with errors.user_errors():
    unknown = [n for n in args.names if n not in NOTEBOOKS]
    if unknown:
      raise NotebookError(f'no notebook {unknown}: name one of {", ".join(NOTEBOOKS)}')
    names = args.names or NOTEBOOKS
    if args.check:
      stale = [n for n in names
               if is_stale(nbformat.read(os.path.join(args.dir, n), as_version=4))]
      if stale:
        print('notebooks whose code changed since their outputs were made (run '
              f'`python -m vae_jax.notebooks {" ".join(stale)}`): {", ".join(stale)}',
              file=sys.stderr)
        return 1
      print(f'{len(names)} notebooks up to date')
      return 0
    for name in names:
      start = time.time()
      run_one(os.path.join(args.dir, name))
      print(f'{name}: executed in {time.time() - start:.0f} s')
  return 0


if __name__ == '__main__':
  sys.exit(main())
