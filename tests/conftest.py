"""Shared fixtures and helpers: the local data directory, a tiny config, the CLI.

Every test reads only the local IDX files (``../shared/datasets`` beside the
repository, or ``$VAE_JAX_DATA_DIR``), files it writes into temporary
directories, or ``tfds.testing.mock_data``: nothing is downloaded.

Compiled XLA programs are cached on disk for the session (a fresh temporary
directory, shared with the subprocesses the CLI tests start): the tests build
the same tiny model dozens of times, and compiling it is most of their time.
Set ``VAE_JAX_TEST_NO_XLA_CACHE=1`` to compile everything afresh.
"""

import glob
import gzip
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, 'experiments', 'configs', 'mnist_vae_2d.py')

# The CLI twin of tiny_config(): a seconds-long run (8 steps per epoch).
TINY_FLAGS = ['--config.data.num_train=512', '--config.data.num_test=200',
              '--config.batch_size=64', '--config.eval_batch_size=100',
              '--config.num_epochs=1', '--config.log_every_steps=4',
              '--config.model.mlp.hidden_sizes=(32,)', '--quiet']


def pytest_configure(config):
  # The tests check maths against NumPy, closed forms and finite differences:
  # full float32 matmuls on every backend. A GPU's default is TF32, whose
  # rounding fails the gradient checks (docs/performance.md); on the CPU an
  # MLP training chunk gave the same bits either way. Environment too, for
  # the CLI subprocesses.
  os.environ['JAX_DEFAULT_MATMUL_PRECISION'] = 'highest'
  import jax
  jax.config.update('jax_default_matmul_precision', 'highest')
  if os.environ.get('VAE_JAX_TEST_NO_XLA_CACHE'):
    return
  cache = tempfile.mkdtemp(prefix='vae_jax_test_xla_cache_')
  config.add_cleanup(lambda: shutil.rmtree(cache, ignore_errors=True))
  # Environment first, so that subprocesses inherit it; then this process.
  os.environ['JAX_COMPILATION_CACHE_DIR'] = cache
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'
  jax.config.update('jax_compilation_cache_dir', cache)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)


def find_data_dir():
  """$VAE_JAX_DATA_DIR, else ../shared/datasets beside the repository."""
  path = os.environ.get('VAE_JAX_DATA_DIR') or os.path.join(ROOT, '..', 'shared', 'datasets')
  return os.path.abspath(path)


@pytest.fixture(scope='session')
def data_dir():
  path = find_data_dir()
  if not os.path.isdir(os.path.join(path, 'mnist')):
    pytest.fail(f'no MNIST IDX files under {path}: set VAE_JAX_DATA_DIR')
  return path


def tiny_config(data_dir=None, **overrides):
  """A seconds-long MLP VAE config on a slice of real MNIST (8 steps per epoch).

  ``overrides`` are dotted field names, e.g. ``tiny_config(d, **{'model.kind': 'autoencoder'})``
  or plain ones, ``tiny_config(d, num_epochs=2)``.
  """
  from vae_jax.core import config as config_lib
  c = config_lib.base_config()
  return config_lib.apply_overrides(c, {
      'data.dir': data_dir or find_data_dir(), 'data.num_train': 512, 'data.num_test': 200,
      'batch_size': 64, 'eval_batch_size': 100, 'num_epochs': 1, 'log_every_steps': 4,
      'model.mlp.hidden_sizes': (32,), 'progress': False, **overrides})


# ---------------------------------------------------------------------------
# The command line, as a user runs it
# ---------------------------------------------------------------------------
def cli_env(data_dir):
  return dict(os.environ, VAE_JAX_DATA_DIR=data_dir, TF_CPP_MIN_LOG_LEVEL='3')


def cli(args, data_dir, module='vae_jax.main', timeout=300):
  """Runs ``python -m module *args`` from the repository root; returns the CompletedProcess."""
  return subprocess.run([sys.executable, '-m', module, *args], capture_output=True,
                        text=True, env=cli_env(data_dir), cwd=ROOT, timeout=timeout)


# The README moves from ``python -m <module>`` to ``vae-jax <subcommand>`` (issue 25):
# a test of "the README's command" finds it under either prefix, new one first.
README_PREFIXES = {
    'study': ('vae-jax study ', 'python -m vae_jax.study.run '),
    'sweep': ('vae-jax sweep ', 'python -m vae_jax.study.sweep '),
    'bench': ('vae-jax bench ', 'python -m vae_jax.bench.benchmark '),
    'likelihood collect': ('vae-jax likelihood collect',
                           'python -m vae_jax.study.likelihood collect'),
    'likelihood publish': ('vae-jax likelihood publish',
                           'python -m vae_jax.study.likelihood publish'),
}


def command_argv(command):
  """A README command line (``vae-jax ...`` or ``python -m ...``) as argv for this interpreter.

  ``vae-jax`` is the console script; ``python -m vae_jax.cli`` calls the same
  ``main`` with the checkout under test (PYTHONPATH), not the installed copy.
  """
  argv = shlex.split(command)
  if argv[0] == 'vae-jax':
    return [sys.executable, '-m', 'vae_jax.cli', *argv[1:]]
  if argv[:2] == ['python', '-m']:
    return [sys.executable, *argv[1:]]
  raise ValueError(f'not a vae-jax or python -m command: {command!r}')


def train_args(workdir, *extra):
  """Flags of a tiny training run in ``workdir``; ``extra`` replaces TINY_FLAGS' fields."""
  fields = {e.split('=')[0] for e in extra if e.startswith('--')}
  tiny = [f for f in TINY_FLAGS if f.split('=')[0] not in fields]
  return [f'--config={CONFIG}', f'--workdir={workdir}', *tiny, *extra]


def error_lines(proc):
  return [l for l in proc.stderr.splitlines() if l.startswith('error:')]


def one_error_line(proc):
  """The single ``error:`` line of a failed command; fails on a traceback or several."""
  assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
  lines = error_lines(proc)
  assert len(lines) == 1, proc.stderr[-3000:]
  return lines[0]


def snapshot(path):
  """Every file and directory under ``path`` with its bytes: to show nothing changed."""
  out = {}
  if os.path.isfile(path):
    with open(path, 'rb') as f:
      return {path: f.read()}
  for f in sorted(glob.glob(os.path.join(path, '**'), recursive=True)):
    if os.path.isfile(f):
      with open(f, 'rb') as fh:
        out[f] = fh.read()
    else:
      out[f] = None
  return out


def split_steps(workdir, split='test'):
  """Steps of the ``split`` lines of ``workdir/metrics.jsonl``."""
  from vae_jax.infra import workdir as workdir_lib
  return [r['step'] for r in workdir_lib.read_metrics(workdir) if r['split'] == split]


# ---------------------------------------------------------------------------
# Comparing a resumed run with an uninterrupted one
# ---------------------------------------------------------------------------
def committed(workdir):
  """Steps of the committed checkpoints (what orbax lists), ascending."""
  d = os.path.join(workdir, 'checkpoints')
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def read(path):
  with open(path, 'rb') as f:
    return f.read()


def straight_run(tmp_path_factory, data_dir, *run):
  """Trains ``run`` (train_args flags) uninterrupted in a fresh directory; returns it."""
  w = str(tmp_path_factory.mktemp('straight') / 'run')
  proc = cli(train_args(w, *run), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return w


def copy_run(src, dst):
  shutil.copytree(src, dst)
  return str(dst)


def latest(workdir):
  """``(step, state, meta, warnings)`` of the newest checkpoint that restores and checks."""
  from vae_jax.core import experiment
  warnings = []
  _, _, step, state, meta = experiment.restore_state(workdir, warn=warnings.append)
  return step, state, meta, warnings


def assert_same_run(a, b):
  """Same metrics.jsonl bytes and the same final state, bit for bit."""
  import jax
  from vae_jax.infra import checkpointing
  assert read(os.path.join(a, 'metrics.jsonl')) == read(os.path.join(b, 'metrics.jsonl'))
  step_a, state_a, meta_a, warn_a = latest(a)
  step_b, state_b, meta_b, warn_b = latest(b)
  assert step_a == step_b and not warn_a and not warn_b
  assert meta_a[checkpointing.DIGEST_KEY] == meta_b[checkpointing.DIGEST_KEY]
  for x, y in zip(jax.tree_util.tree_leaves(state_a), jax.tree_util.tree_leaves(state_b),
                  strict=True):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))




def write_idx(path, array, magic=None):
  """Writes ``array`` (uint8) as a gzipped IDX file, the format of the MNIST files."""
  import struct
  array = np.asarray(array, np.uint8)
  magic = magic if magic is not None else (0x803 if array.ndim == 3 else 0x801)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  header = struct.pack('>I', magic) + struct.pack(f'>{array.ndim}I', *array.shape)
  with gzip.open(path, 'wb', compresslevel=1) as f:
    f.write(header + array.tobytes())


def assert_docs_block_current(module, results_file, docs='docs/performance.md'):
  """The block a measurement script generated into a doc equals what its results file renders."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with open(os.path.join(root, 'results', results_file)) as f:
    results = json.load(f)
  with open(os.path.join(root, docs)) as f:
    text = f.read()
  start = text.index(module.BEGIN) + len(module.BEGIN) + 1
  assert not results['quick']
  assert text[start:text.index(module.END) - 1] == module.markdown(results), (
      f'{docs} is stale: run vae-jax publish (python -m vae_jax.publish)')


def assert_publish_refuses_missing_or_quick(main, tmp_path):
  """``main(['--publish=...'])`` stops with one line (exit 2) on a missing file or a --quick run."""
  import contextlib
  import io
  quick = tmp_path / 'quick.json'
  quick.write_text(json.dumps({'quick': True}))
  for path, message in ((tmp_path / 'none.json', 'does not exist: write it first'),
                        (quick, 'smoke run')):
    err = io.StringIO()
    with pytest.raises(SystemExit) as e, contextlib.redirect_stderr(err):
      main([f'--publish={path}'])
    assert e.value.code == 2 and message in err.getvalue(), err.getvalue()
    assert err.getvalue().startswith('error: ') and err.getvalue().count('\n') == 1
