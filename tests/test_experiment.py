"""experiment.restore: a trained run back from its workdir, with no data and no training step."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import ROOT, cli_env, tiny_config
from vae_jax.core import experiment, train
from vae_jax.infra import checkpointing, workdir as workdir_lib

# Run in a fresh interpreter, so that sys.modules shows what restore imported.
# Every data loader raises: restore must not read a single image.
RESTORE_ONLY = '''
import sys
from vae_jax.core import data
def refuse(*args, **kwargs):
  raise AssertionError('restore loaded data')
data.load = data.load_split = data.load_idx = data.load_tfds = refuse
import logging
import jax
compiled = []  # names of the programs XLA compiles
class Compiles(logging.Handler):
  def emit(self, record):
    if record.getMessage().startswith('Finished XLA compilation of '):
      compiled.append(record.getMessage().split()[4])
logging.getLogger('jax').addHandler(Compiles())
jax.config.update('jax_log_compiles', True)
from vae_jax.core import experiment
config, model, params, step = experiment.restore(sys.argv[1])
import jax, numpy as np
np.savez(sys.argv[2], *[np.asarray(x) for x in jax.tree_util.tree_leaves(params)])
during_restore = ','.join(compiled) or 'none'
from vae_jax.core import latent  # a compile after restore: proves the log is read
latent.encode_batch(model, params, np.zeros((1, *data.info(config.data.name).image_shape)))
print(step, type(model).__name__, 'vae_jax.core.train' in sys.modules, during_restore,
      compiled[-1])
'''


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_dir):
  workdir = str(tmp_path_factory.mktemp('restore') / 'run')
  return workdir, train.train_and_evaluate(tiny_config(data_dir, num_epochs=2), workdir)


def test_restore_loads_no_data_and_imports_no_training_code(trained, tmp_path):
  workdir, result = trained
  out = str(tmp_path / 'params.npz')
  proc = subprocess.run([sys.executable, '-c', RESTORE_ONLY, workdir, out],
                        capture_output=True, text=True, cwd=ROOT,
                        env=cli_env(os.path.join(str(tmp_path), 'no_data_here')), timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  # Step 16 (2 epochs of 8 steps), a VAE, the trainer not even imported.
  step, kind, imported, compiled, afterwards = proc.stdout.split()
  assert (step, kind, imported) == ('16', 'VAE', 'False'), proc.stdout
  assert afterwards == 'jit(encode_batch)', proc.stdout  # the compile log is read
  # During restore XLA compiled at most small helpers (a PRNG seed, orbax's
  # staging), nothing that applies the model, let alone a training step.
  for name in compiled.split(','):
    assert not any(w in name for w in ('train', 'chunk', 'apply', 'init', 'eval', 'scan',
                                       'encode', 'decode')), name
  with np.load(out) as f:
    restored = [f[k] for k in sorted(f.files, key=lambda k: int(k.split('_')[1]))]
  expected = jax.tree_util.tree_leaves(jax.device_get(result['state'].params))
  assert len(restored) == len(expected)
  for a, b in zip(restored, expected):
    np.testing.assert_array_equal(a, b)


def test_restore_state_equals_the_trained_state_and_its_digest(trained):
  workdir, result = trained
  config, model, step, state, meta = experiment.restore_state(workdir)
  assert step == 16 and meta['step'] == 16 and config.data.num_train == 512
  for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(result['state']),
                  strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert checkpointing.DIGEST_KEY in meta


def test_a_run_written_with_the_removed_train_loop_field_restores_and_resumes(
    trained, tmp_path, data_dir):
  # Runs made before train_loop was removed have it in config.json.
  workdir = str(tmp_path / 'old')
  shutil.copytree(trained[0], workdir)
  path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  with open(path) as f:
    old = json.load(f)
  old['train_loop'] = 'python'
  with open(path, 'w') as f:
    json.dump(old, f)
  assert experiment.restore(workdir)[3] == 16
  # The same config resumes it (one more epoch) without --allow_config_change.
  result = train.train_and_evaluate(tiny_config(data_dir, num_epochs=3), workdir)
  assert int(result['state'].step) == 24


def test_restore_names_the_fix_for_a_workdir_without_checkpoints(tmp_path, trained):
  with pytest.raises(workdir_lib.WorkdirError, match='has no config.json'):
    experiment.restore(str(tmp_path))
  shutil.copy(os.path.join(trained[0], 'config.json'), tmp_path / 'config.json')
  with pytest.raises(checkpointing.CheckpointError, match='train it first'):
    experiment.restore(str(tmp_path))


def test_restore_finished_gives_the_final_params_and_the_final_evaluation(trained, data_dir):
  workdir, result = trained
  (config, _, params, step), test = experiment.restore_finished(
      workdir, tiny_config(data_dir, num_epochs=2))
  assert step == 16 and config.num_epochs == 2
  # The logged final test row is what train_and_evaluate's own final evaluation returned.
  assert test == result['test'], (test, result['test'])
  for a, b in zip(jax.tree_util.tree_leaves(params),
                  jax.tree_util.tree_leaves(result['state'].params), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_restore_finished_is_none_until_the_run_is_finished(trained, tmp_path, data_dir):
  assert experiment.restore_finished(str(tmp_path / 'empty'), tiny_config(data_dir)) is None
  # The same run asked for one more epoch: not finished.
  assert experiment.restore_finished(trained[0], tiny_config(data_dir, num_epochs=3)) is None
  # A log one epoch ahead of the newest checkpoint (a crash between the two writes).
  workdir = str(tmp_path / 'behind')
  shutil.copytree(trained[0], workdir)
  checkpoints = os.path.join(workdir, workdir_lib.CHECKPOINT_DIR)
  shutil.rmtree(os.path.join(checkpoints, '16'))
  assert experiment.restore_finished(workdir, tiny_config(data_dir, num_epochs=2)) is None
  assert experiment.restore(workdir)[3] == 8   # the older checkpoint is still there


def test_restore_finished_refuses_a_run_of_another_config(trained, data_dir):
  with pytest.raises(workdir_lib.WorkdirError, match='different config'):
    experiment.restore_finished(trained[0], tiny_config(data_dir, num_epochs=2, latent_dim=3))
