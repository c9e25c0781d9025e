"""Resume and faults, through the command line: SIGKILL at any point, SIGKILL
inside a checkpoint save, damaged checkpoints, a changed config, NaN.

Every rerun is compared with one uninterrupted run of the same config: its
``metrics.jsonl`` byte for byte and its final checkpoint's state (restored,
and its SHA-256 digest).
"""

import glob
import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import (ROOT, assert_same_run, cli, cli_env, committed, copy_run, latest,
                      one_error_line, snapshot, split_steps, straight_run, train_args)
from vae_jax.infra import checkpointing, run_clock, workdir as workdir_lib

# 8 steps per epoch, 2 epochs, a checkpoint every 3 steps of an epoch and at
# its end: 3, 6, 8, 11, 14, 16 (the last 3 are kept).
RUN = ('--config.num_epochs=2', '--config.checkpoint_every_steps=3')


@pytest.fixture(scope='module')
def straight(tmp_path_factory, data_dir):
  """An uninterrupted run of RUN (read-only: copy it before changing it)."""
  w = straight_run(tmp_path_factory, data_dir, *RUN)
  assert committed(w) == [11, 14, 16]
  return w


def largest_array_file(checkpoint_dir):
  files = glob.glob(os.path.join(checkpoint_dir, 'state', 'ocdbt.process_0', 'd', '*'))
  assert files, f'no OCDBT data files under {checkpoint_dir}: orbax layout changed?'
  return max(files, key=os.path.getsize)


def truncate(path):
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


# ---------------------------------------------------------------------------
# Resume retraces the uninterrupted run
# ---------------------------------------------------------------------------
def test_a_second_identical_run_is_bit_identical(straight, tmp_path, data_dir):
  w = str(tmp_path / 'again')
  assert cli(train_args(w, *RUN), data_dir).returncode == 0
  assert_same_run(straight, w)


def test_resume_after_raising_num_epochs_is_bit_identical(straight, tmp_path, data_dir):
  w = str(tmp_path / 'run')
  assert cli(train_args(w, *RUN, '--config.num_epochs=1'), data_dir).returncode == 0
  assert committed(w) == [3, 6, 8] and split_steps(w) == [8]
  proc = cli(train_args(w, *RUN), data_dir)  # num_epochs=2: continues at step 8
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert split_steps(w) == [8, 16] and split_steps(w, 'train') == split_steps(straight, 'train')
  assert_same_run(straight, w)
  # Two processes, two segments of wall time, kept with the checkpoint.
  assert_segments(w, [(0, 8), (8, 16)])


def assert_segments(workdir, spans):
  """timing.json lists one segment per process over ``spans`` and matches the checkpoint."""
  timing = run_clock.read(workdir)
  assert [(s['from_step'], s['to_step']) for s in timing['segments']] == spans
  assert timing['num_segments'] == len(spans)
  assert all(s['seconds'] > 0 and s['machine'] and s['host'] for s in timing['segments'])
  assert timing['train_seconds'] == pytest.approx(sum(s['seconds'] for s in timing['segments']))
  assert latest(workdir)[2][run_clock.META_KEY] == timing['segments']


# Runs the CLI, but SIGKILLs the process the moment orbax renames
# <step>.orbax-checkpoint-tmp to <step> for the step given as argv[1]: every
# file of that checkpoint is written, it is just not committed.
KILL_AT_COMMIT = r'''
import os, signal, sys
from orbax.checkpoint._src.path import atomicity
target = sys.argv[1]
rename = atomicity.async_path.rename
async def rename_or_die(src, dst, *args, **kwargs):
  if os.path.basename(str(dst)) == target:
    os.kill(os.getpid(), signal.SIGKILL)
  return await rename(src, dst, *args, **kwargs)
atomicity.async_path.rename = rename_or_die
from vae_jax import main
sys.exit(main.main(sys.argv[2:]))
'''


def test_sigkill_while_a_checkpoint_is_written(straight, tmp_path, data_dir):
  pytest.importorskip('orbax.checkpoint._src.path.atomicity')
  w = str(tmp_path / 'run')
  proc = subprocess.run([sys.executable, '-c', KILL_AT_COMMIT, '14', *train_args(w, *RUN)],
                        capture_output=True, text=True, env=cli_env(data_dir), cwd=ROOT,
                        timeout=300)
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
  # What the kill left: checkpoint 14 complete but uncommitted, 11 the newest committed.
  partial = os.path.join(w, 'checkpoints', '14' + '.orbax-checkpoint-tmp')
  assert os.path.isdir(os.path.join(partial, 'state'))
  assert committed(w) == [6, 8, 11]
  manager = checkpointing.manager(os.path.join(w, 'checkpoints'))
  try:
    assert list(manager.all_steps()) == [6, 8, 11] and manager.latest_step() == 11
  finally:
    manager.close()
  assert max(r['step'] for r in workdir_lib.read_metrics(w)) == 14  # lines past 11 exist
  # The same command again resumes from 11 and ends exactly like the straight run.
  proc = cli(train_args(w, *RUN), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert committed(w) == [11, 14, 16]
  assert not glob.glob(os.path.join(w, 'checkpoints', '*.orbax-checkpoint-tmp*'))
  assert_same_run(straight, w)
  # The killed process's time is counted up to checkpoint 11, which the rerun
  # restored; its work on steps 12-14, repeated by the rerun, is not.
  assert_segments(w, [(0, 11), (11, 16)])


@pytest.mark.slow
def test_sigkill_at_an_arbitrary_point_then_rerun_is_bit_identical(tmp_path, data_dir):
  # 32 steps per epoch, 3 epochs, a checkpoint every 5 steps: ~10 s of training
  # after the first checkpoint, so the kill lands mid-run.
  args = ('--config.data.num_train=2048', '--config.num_epochs=3',
          '--config.checkpoint_every_steps=5')
  straight = str(tmp_path / 'straight')
  proc = cli(train_args(straight, *args), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  killed = str(tmp_path / 'killed')
  proc = subprocess.Popen([sys.executable, '-m', 'vae_jax.main', *train_args(killed, *args)],
                          env=cli_env(data_dir), cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 240
    while not committed(killed) and time.time() < deadline and proc.poll() is None:
      time.sleep(0.01)
    delay = random.uniform(0.0, 1.0)  # an arbitrary point after the first checkpoint
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.wait()
  assert proc.returncode == -signal.SIGKILL, 'the run ended before it was killed'
  steps = committed(killed)
  assert steps and steps[-1] < 96, f'killed {delay:.2f}s after the first checkpoint: {steps}'
  proc = cli(train_args(killed, *args), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert_same_run(straight, killed)


# ---------------------------------------------------------------------------
# Damaged checkpoints
# ---------------------------------------------------------------------------
def test_truncated_latest_checkpoint_warns_and_resumes_from_the_previous(straight, tmp_path,
                                                                          data_dir):
  w = copy_run(straight, tmp_path / 'run')
  truncate(largest_array_file(os.path.join(w, 'checkpoints', '16')))
  proc = cli(train_args(w, *RUN), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  warning = [l for l in proc.stderr.splitlines() if 'checkpoint 16' in l]
  assert len(warning) == 1, proc.stderr[-3000:]
  assert 'is damaged (state/ocdbt.process_0/d/' in warning[0]
  assert 'does not match the checksum written with it' in warning[0]
  assert 'using checkpoint 14 instead' in warning[0]
  assert 'Traceback' not in proc.stderr
  # The damaged one is kept, moved aside, so that step 16 could be saved again.
  aside = os.path.join(w, 'checkpoints_damaged', '16')
  assert f'moved it to {aside}' in warning[0] and os.path.isdir(os.path.join(aside, 'state'))
  # Resumed from 14: steps 15-16 were retrained, to the same bits.
  assert committed(w) == [11, 14, 16]
  assert_same_run(straight, w)


def flip_a_byte(path, offset=None):
  with open(path, 'r+b') as f:
    f.seek(os.path.getsize(path) // 2 if offset is None else offset)
    byte = f.read(1)
    f.seek(-1, os.SEEK_CUR)
    f.write(bytes([byte[0] ^ 0xFF]))


def test_flipped_byte_is_caught_before_orbax_reads(straight, tmp_path):
  w = copy_run(straight, tmp_path / 'run')
  flip_a_byte(largest_array_file(os.path.join(w, 'checkpoints', '16')))
  step, state, meta, warnings = latest(w)
  assert step == 14 and len(warnings) == 1
  assert 'checkpoint 16' in warnings[0] and 'does not match the checksum' in warnings[0]


# Without the file checksums (a checkpoint of an older version, or a run
# killed between orbax's commit and the checksums): what orbax 0.12 itself
# does with damage, and the state digest behind it.
def flip_a_byte_orbax_reads_without_complaint(workdir, abstract, tries=32):
  """Flips one byte of checkpoint 16 that orbax restores as different numbers.

  The data are zstd-compressed: a flip in a block header fails decompression
  (orbax raises), a flip in the literals changes numbers silently. Which
  offset is which depends on the bits, and those depend on the CPU, so the
  offset is searched for rather than fixed. Returns the restored state and meta.
  """
  path = largest_array_file(os.path.join(workdir, 'checkpoints', '16'))
  with open(path, 'rb') as f:
    original = f.read()
  size = len(original)
  for i in range(tries):
    offset = size // 2 + (i * 7919) % (size // 2)
    flip_a_byte(path, offset)
    manager = checkpointing.manager(os.path.join(workdir, 'checkpoints'))
    try:
      state, meta = checkpointing.restore(manager, 16, abstract)
      return state, meta
    except Exception:  # detected by orbax / zstd: put the byte back, try another
      with open(path, 'wb') as f:
        f.write(original)
    finally:
      manager.close()
  pytest.fail(f'every one of {tries} byte flips in {path} was detected by orbax itself: '
              'the state digest cannot be reached this way any more')


@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')
def test_without_file_checksums_a_flipped_byte_is_caught_by_the_state_digest(straight,
                                                                             tmp_path):
  w = copy_run(straight, tmp_path / 'run')
  os.remove(os.path.join(w, 'checkpoints', '16', checkpointing.FILES_MANIFEST))
  abstract = jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), latest(straight)[1])
  # Orbax restores it without complaint, as different numbers...
  state, meta = flip_a_byte_orbax_reads_without_complaint(w, abstract)
  assert checkpointing.state_digest(state) != meta[checkpointing.DIGEST_KEY]
  # ... so restore_latest checks the digest and falls back.
  step, state, meta, warnings = latest(w)
  assert step == 14 and len(warnings) == 1
  assert 'checkpoint 16' in warnings[0] and 'do not match the checksum saved' in warnings[0]
  assert meta[checkpointing.DIGEST_KEY] == checkpointing.state_digest(state)


@pytest.mark.filterwarnings('ignore::pytest.PytestUnraisableExceptionWarning')
@pytest.mark.parametrize('damage', [truncate, flip_a_byte])
def test_without_file_checksums_damage_falls_back_with_one_warning(straight, tmp_path, damage):
  w = copy_run(straight, tmp_path / 'run')
  d = os.path.join(w, 'checkpoints', '16')
  os.remove(os.path.join(d, checkpointing.FILES_MANIFEST))
  damage(largest_array_file(d))
  step, state, meta, warnings = latest(w)
  assert step == 14 and len(warnings) == 1 and 'checkpoint 16' in warnings[0]
  # Caught by orbax (unreadable) or by the digest, depending on where a
  # flipped byte fell; orbax itself fails on a truncated file.
  unreadable = 'is unreadable' in warnings[0]
  assert unreadable != ('do not match the checksum saved' in warnings[0])
  assert unreadable or damage is flip_a_byte


def test_every_checkpoint_damaged_stops_with_the_fix_and_changes_nothing(straight, tmp_path,
                                                                          data_dir):
  w = copy_run(straight, tmp_path / 'run')
  for step in committed(w):
    truncate(largest_array_file(os.path.join(w, 'checkpoints', str(step))))
  before = snapshot(w)
  proc = cli(train_args(w, *RUN), data_dir)
  assert proc.returncode == 2
  line = one_error_line(proc)
  assert 'could be restored' in line and 'move that directory away' in line
  assert snapshot(w) == before


# ---------------------------------------------------------------------------
# A changed config, and NaN
# ---------------------------------------------------------------------------
def test_a_different_config_is_refused_with_the_differences(straight, tmp_path, data_dir):
  w = copy_run(straight, tmp_path / 'run')
  before = snapshot(w)
  proc = cli(train_args(w, *RUN, '--config.latent_dim=3', '--config.kl_weight=0.5'), data_dir)
  assert proc.returncode == 2
  line = one_error_line(proc)
  assert 'kl_weight: 1.0 -> 0.5' in line and 'latent_dim: 2 -> 3' in line
  assert '--allow_config_change' in line
  assert snapshot(w) == before


def test_allow_config_change_continues_the_run(straight, tmp_path, data_dir):
  w = copy_run(straight, tmp_path / 'run')
  proc = cli(train_args(w, *RUN, '--config.kl_weight=0.5', '--config.num_epochs=3',
                        '--allow_config_change'), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert split_steps(w) == [8, 16, 24]  # continued from 16, not retrained
  with open(os.path.join(w, 'config.json')) as f:
    assert json.load(f)['kl_weight'] == 0.5


def test_allowed_change_that_no_checkpoint_fits_is_one_line(straight, tmp_path, data_dir):
  w = copy_run(straight, tmp_path / 'run')
  before = snapshot(w)
  proc = cli(train_args(w, *RUN, '--config.latent_dim=3', '--allow_config_change'), data_dir)
  assert proc.returncode == 2
  line = one_error_line(proc)
  assert 'fits the model of this config (params.' in line and 'use a new --workdir' in line
  assert 'float32[2, 32] in the checkpoint, float32[3, 32] in the model' in line
  assert snapshot(w) == before


def test_nan_exits_3_naming_step_metric_and_the_last_good_checkpoint(straight, tmp_path,
                                                                      data_dir):
  w = copy_run(straight, tmp_path / 'run')
  proc = cli(train_args(w, *RUN, '--config.learning_rate=1e39', '--config.num_epochs=3',
                        '--allow_config_change'), data_dir)
  assert proc.returncode == 3, proc.stderr[-3000:]
  line = one_error_line(proc)
  assert line.startswith('error: loss became nan at step 18')
  assert f'last good checkpoint is step 16 in {w}/checkpoints' in line
  assert 'learning_rate' in line
  assert committed(w) == [11, 14, 16]
  step, state, _, warnings = latest(w)
  assert step == 16 and not warnings
  assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(state))
