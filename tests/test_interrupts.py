"""When people and machines interrupt: Ctrl-C, SIGTERM, a full disk, two runs on
one workdir, and progress in a log. Each case runs the real command line in a
subprocess; a rerun after an interruption is compared bit for bit with one
uninterrupted run.

Where a signal must land at a known point (mid-epoch, mid-evaluation), a small
wrapper sends it to its own process from inside the run, through the same
delivery path as a signal from outside.
"""

import errno
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from conftest import (ROOT, assert_same_run, cli, cli_env, committed, copy_run, latest,
                      one_error_line, snapshot, split_steps, straight_run, train_args)
from vae_jax.infra import checkpointing, interrupts, workdir as workdir_lib

# 8 steps an epoch, 2 epochs, a chunk (and metrics line) every 2 steps:
# epoch-end checkpoints at 8 and 16 only, so a mid-epoch stop saves its own.
RUN = ('--config.num_epochs=2', '--config.log_every_steps=2')


@pytest.fixture(scope='module')
def straight(tmp_path_factory, data_dir):
  """An uninterrupted run of RUN (read-only: copy it before changing it)."""
  w = straight_run(tmp_path_factory, data_dir, *RUN)
  assert committed(w) == [8, 16]
  return w


def run_script(script, args, data_dir, timeout=300):
  return subprocess.run([sys.executable, '-c', script, *args], capture_output=True,
                        text=True, env=cli_env(data_dir), cwd=ROOT, timeout=timeout)


def last_line(stderr):
  """The last line of ``stderr``, which must hold no traceback."""
  assert 'Traceback' not in stderr, stderr[-3000:]
  return stderr.strip().splitlines()[-1]


def assert_whole_lines(workdir):
  """metrics.jsonl ends with a newline and every line is a JSON object."""
  with open(os.path.join(workdir, 'metrics.jsonl'), 'rb') as f:
    text = f.read().decode()
  assert text.endswith('\n')
  for line in text.splitlines():
    json.loads(line)


def holder(workdir):
  """The lock file's content once it is written, else None."""
  try:
    with open(os.path.join(workdir, workdir_lib.LOCK_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def no_leftovers(workdir):
  d = os.path.join(workdir, 'checkpoints')
  return (not os.path.exists(os.path.join(workdir, workdir_lib.LOCK_FILE))
          and not [n for n in os.listdir(d) if 'tmp' in n])


# ---------------------------------------------------------------------------
# SIGINT / SIGTERM: save at the next chunk boundary, one line, exit 130 / 143
# ---------------------------------------------------------------------------
# Sends signal argv[1] to its own process once the train line of step argv[2]
# is written, then runs the training command argv[3:].
SEND_SIGNAL_AT_STEP = r'''
import os, sys
from vae_jax.infra import workdir
signum, at = int(sys.argv[1]), int(sys.argv[2])
write = workdir.MetricsLog.write
def write_then_signal(self, step, epoch, split, metrics):
  write(self, step, epoch, split, metrics)
  if split == 'train' and step == at:
    os.kill(os.getpid(), signum)
workdir.MetricsLog.write = write_then_signal
'''
RUN_MAIN = r'''
from vae_jax import main
sys.exit(main.main(sys.argv[3:]))
'''
# The save that the first signal starts hangs, as one to a stalled disk would,
# after saying so on stderr.
HANG_IN_SAVE = r'''
import time
from vae_jax.infra import checkpointing
def hang(*args, **kwargs):
  print('saving', file=sys.stderr, flush=True)
  time.sleep(600)
checkpointing.save = hang
'''


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_signal_mid_epoch_saves_there_and_the_rerun_is_bit_identical(straight, tmp_path,
                                                                     data_dir, signum):
  w = str(tmp_path / 'run')
  proc = run_script(SEND_SIGNAL_AT_STEP + RUN_MAIN,
                    [str(int(signum)), '2', *train_args(w, *RUN)], data_dir)
  assert proc.returncode == 128 + signum, proc.stderr[-3000:]
  line = last_line(proc.stderr)
  found = re.fullmatch(rf'interrupted at step (\d+); saved checkpoint \1 in '
                       rf'{re.escape(w)}/checkpoints; rerun the same command to resume', line)
  assert found, line
  step = int(found[1])
  assert 2 < step < 8, line  # the next chunk boundary or the one after, mid-epoch
  assert committed(w) == [step] and no_leftovers(w)
  assert split_steps(w, 'train')[-1] == step and split_steps(w) == []
  assert latest(w)[0] == step

  proc = cli(train_args(w, *RUN), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert_same_run(straight, w)


def test_a_second_signal_stops_at_once_and_the_rerun_takes_over_its_lock(straight, tmp_path,
                                                                          data_dir):
  w = str(tmp_path / 'run')
  proc = subprocess.Popen(
      [sys.executable, '-c', SEND_SIGNAL_AT_STEP + HANG_IN_SAVE + RUN_MAIN,
       str(int(signal.SIGINT)), '2', *train_args(w, *RUN)],
      env=cli_env(data_dir), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True)
  try:
    for line in proc.stderr:  # the first SIGINT was taken: its save hangs
      if line.strip() == 'saving':
        break
    proc.send_signal(signal.SIGINT)
    sent = time.time()
    _, stderr = proc.communicate(timeout=60)
    waited = time.time() - sent
  finally:
    proc.kill()
  assert proc.returncode == 130, stderr[-3000:]
  assert waited < 5, f'{waited:.1f} s after the second SIGINT'
  assert last_line(stderr) == ('interrupted again (SIGINT): stopped at once without saving; '
                               'rerun the same command to resume from the last checkpoint')
  # It left its lock file, as any killed run does; the rerun takes it over.
  assert holder(w)['pid'] == proc.pid
  rerun = cli(train_args(w, *RUN), data_dir)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert (f'took over {w}/{workdir_lib.LOCK_FILE} from a process that is no longer running '
          f'(train, pid {proc.pid} on host {socket.gethostname()}') in rerun.stderr
  assert_same_run(straight, w)
  assert no_leftovers(w)


def test_signal_handlers_are_restored_and_nested_uses_share_one_stop():
  before = {s: signal.getsignal(s) for s in interrupts.SIGNALS}
  with interrupts.stop_on_signals() as stop:
    assert signal.getsignal(signal.SIGINT) is not before[signal.SIGINT]
    with interrupts.stop_on_signals() as inner:
      assert inner is stop
    assert not stop.requested()
    os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: only the flag
    deadline = time.time() + 5
    while not stop.requested() and time.time() < deadline:
      time.sleep(0.01)
    assert stop.requested()
    with pytest.raises(interrupts.Interrupted) as caught:
      stop.raise_if_requested('stopped')
  assert caught.value.exit_code == 130 and str(caught.value) == 'stopped'
  assert not isinstance(caught.value, Exception)  # `except Exception` lets it through
  assert {s: signal.getsignal(s) for s in interrupts.SIGNALS} == before


# Sends signal argv[1] to its own process as the evaluation starts chunk
# argv[2] of the test images, then runs the evaluate command argv[3:].
SIGNAL_AT_CHUNK = r'''
import os, sys
from vae_jax.core import evaluate
signum, at = int(sys.argv[1]), int(sys.argv[2])
encode, calls = evaluate._encode, []
def encode_then_signal(*args):
  calls.append(1)
  if len(calls) == at:
    os.kill(os.getpid(), signum)
  return encode(*args)
evaluate._encode = encode_then_signal
evaluate.main(sys.argv[3:])
'''
EVAL = ['--iwae_samples=50', '--example_chunk=20', '--sample_chunk=25', '--quiet']


def test_signal_during_iwae_evaluation_keeps_the_results_and_the_rerun_resumes(
    straight, tmp_path, data_dir, monkeypatch):
  from vae_jax.core import evaluate
  # The in-process evaluation below reads the data where the subprocesses do,
  # whether or not the caller exported the variable.
  monkeypatch.setenv('VAE_JAX_DATA_DIR', data_dir)
  w = copy_run(straight, tmp_path / 'run')
  args = [f'--workdir={w}', *EVAL]
  proc = run_script(SIGNAL_AT_CHUNK, [str(int(signal.SIGTERM)), '3', *args], data_dir)
  assert proc.returncode == 143, proc.stderr[-3000:]
  partial = os.path.join(w, 'eval_iwae50.partial.npz')
  found = re.fullmatch(rf'interrupted at test image (\d+) of 200; saved the results so far '
                       rf'in {re.escape(partial)}; rerun the same command to resume',
                       last_line(proc.stderr))
  assert found and int(found[1]) in (60, 80), last_line(proc.stderr)
  assert os.path.exists(partial) and not os.path.exists(os.path.join(w, 'eval_iwae50.json'))
  with np.load(partial) as f:
    seconds_before = float(f['seconds'])
  assert seconds_before > 0

  proc = cli(args, data_dir, module='vae_jax.core.evaluate')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert not os.path.exists(partial) and no_leftovers(w)
  with open(os.path.join(w, 'eval_iwae50.json')) as f:
    resumed = json.load(f)
  whole = evaluate.evaluate_workdir(w, num_samples=50, example_chunk=20, sample_chunk=25)
  # The time of both calls, the interrupted one included.
  assert resumed['num_segments'] == 2 and whole['num_segments'] == 1
  assert resumed['seconds'] > seconds_before
  for key in ('nll', 'neg_elbo', 'nll_stderr', 'elbo_stderr', 'iwae_minus_elbo'):
    assert resumed[key] == whole[key], key  # bit for bit, through JSON


# ---------------------------------------------------------------------------
# A full disk: one line, exit 2, the partial checkpoint removed, older ones kept
# ---------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
  """A 1000 KB tmpfs: room for one checkpoint of the tiny model (~0.55 MB), not two."""
  mount = tmp_path / 'disk'
  mount.mkdir()
  if os.geteuid() != 0 or subprocess.run(
      ['mount', '-t', 'tmpfs', '-o', 'size=1000k', 'tmpfs', str(mount)],
      capture_output=True).returncode:
    pytest.skip('mounting a small tmpfs needs root')
  yield mount
  subprocess.run(['umount', str(mount)], check=True)


DISK_FULL = (r'error: disk full: {what}; a checkpoint needs about [\d.]+ MB, [\d.]+ MB are '
             r'free in {dir}; the last good checkpoint is step 8 in {dir}: free some space, '
             r'then rerun the same command to resume')


def test_full_disk_is_one_line_and_the_run_resumes_once_there_is_room(straight, small_disk,
                                                                      data_dir):
  w = str(small_disk / 'run')
  ckpt = re.escape(f'{w}/checkpoints')
  proc = cli(train_args(w, *RUN), data_dir)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert re.fullmatch(DISK_FULL.format(what='no room for checkpoint 16', dir=ckpt),
                      one_error_line(proc))
  assert committed(w) == [8] and no_leftovers(w) and latest(w)[:1] == (8,)
  assert_whole_lines(w)

  # The same command on the still-full disk stops before training.
  proc = cli(train_args(w, *RUN), data_dir)
  assert proc.returncode == 2
  assert re.fullmatch(DISK_FULL.format(what='no room for the next checkpoint', dir=ckpt),
                      one_error_line(proc))
  assert split_steps(w, 'train')[-1] == 16  # nothing was trained (or dropped) again

  subprocess.run(['mount', '-o', 'remount,size=4m', str(small_disk)], check=True)
  proc = cli(train_args(w, *RUN), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert_same_run(straight, w)


# The training command argv[1:] without the free-space check before a save:
# the save itself runs into the full disk, inside orbax and tensorstore.
WITHOUT_SPACE_CHECK = r'''
import sys
from vae_jax.infra import checkpointing
checkpointing.check_space = lambda *args, **kwargs: None
from vae_jax import main
sys.exit(main.main(sys.argv[1:]))
'''


def test_disk_filling_up_inside_a_save_removes_the_partial_checkpoint(small_disk, data_dir):
  w = str(small_disk / 'run')
  proc = run_script(WITHOUT_SPACE_CHECK, train_args(w, *RUN), data_dir)
  assert proc.returncode == 2, proc.stderr[-3000:]
  ckpt = re.escape(f'{w}/checkpoints')
  what = rf'could not write {ckpt}/16\S*; removed the partial checkpoint 16'
  assert re.fullmatch(DISK_FULL.format(what=what, dir=ckpt), one_error_line(proc))
  assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-3000:]
  assert committed(w) == [8] and no_leftovers(w)
  step, _, _, warnings = latest(w)
  assert step == 8 and not warnings
  assert_whole_lines(w)


# The training command argv[1:], but the disk fills up while the first 'test'
# line is appended to metrics.jsonl: half of it is written, then ENOSPC.
METRICS_DISK_FULL = r'''
import errno, os, sys
write = os.write
def write_half_then_fail(fd, data):
  if b'"split": "test"' in data and os.readlink(f'/proc/self/fd/{fd}').endswith('metrics.jsonl'):
    write(fd, data[:len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  return write(fd, data)
os.write = write_half_then_fail
from vae_jax import main
sys.exit(main.main(sys.argv[1:]))
'''


@pytest.mark.skipif(not os.path.isdir('/proc/self/fd'), reason='needs /proc/self/fd')
def test_full_disk_while_appending_metrics_leaves_no_half_line(straight, tmp_path, data_dir):
  w = str(tmp_path / 'run')
  proc = run_script(METRICS_DISK_FULL, train_args(w, *RUN), data_dir)
  assert proc.returncode == 2, proc.stderr[-3000:]
  line = one_error_line(proc)
  assert line.startswith(f'error: disk full: could not write {w}/metrics.jsonl; ')
  assert 'no checkpoint was written yet: free some space' in line
  assert_whole_lines(w)
  assert split_steps(w, 'train') == [2, 4, 6, 8] and split_steps(w) == []
  proc = cli(train_args(w, *RUN), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert_same_run(straight, w)


def test_no_space_error_names_the_file_tensorstore_failed_on():
  e = ValueError('RESOURCE_EXHAUSTED: Error writing "step/0" in OCDBT database at local file '
                 '"/w/checkpoints/24.orbax-checkpoint-tmp/state/": Failed writing: '
                 '"/w/checkpoints/24.orbax-checkpoint-tmp/state/d/15": Failed to write 257471 '
                 "bytes to file 17: No space left on device [os_error_code='28']")
  assert workdir_lib.no_space_file(e) == '/w/checkpoints/24.orbax-checkpoint-tmp/state/d/15'
  try:
    raise RuntimeError('wrapped') from OSError(errno.ENOSPC, 'No space left', '/w/x')
  except RuntimeError as wrapped:
    assert workdir_lib.no_space_file(wrapped) == '/w/x'
  assert workdir_lib.no_space_file(OSError(errno.EACCES, 'Permission denied')) is None


def _record_of_a_failed_orbax_write(logger_name):
  """A log record like asyncio's "Task exception was never retrieved" for a write
  that raised inside orbax's code (a function compiled under an orbax path)."""
  namespace = {}
  exec(compile('def write_fragment():\n  raise ValueError("No space left on device")\n',
               os.path.join(os.sep, 'site-packages', 'orbax', 'serialization.py'), 'exec'),
       namespace)
  try:
    namespace['write_fragment']()
  except ValueError:
    exc_info = sys.exc_info()
  return logging.LogRecord(logger_name, logging.ERROR, '/usr/lib/asyncio/base_events.py', 1,
                           'Task exception was never retrieved', None, exc_info)


def test_a_failed_save_is_not_logged_again_by_asyncio_even_after_it_raised():
  asyncio_logger, absl_logger = logging.getLogger('asyncio'), logging.getLogger('absl')
  ours = logging.LogRecord('asyncio', logging.ERROR, __file__, 1, 'unrelated', None,
                           (ValueError, ValueError('x'), None))
  before, warning_filters = asyncio_logger.filters[:], warnings.filters[:]
  with pytest.raises(OSError):
    with checkpointing._quiet_orbax_failures():
      raise OSError(errno.ENOSPC, 'No space left on device')
  try:
    # The failed write task may be collected after save has raised: still quiet.
    assert not asyncio_logger.filter(_record_of_a_failed_orbax_write('asyncio'))
    assert asyncio_logger.filter(ours), 'a traceback from elsewhere must still be logged'
    assert absl_logger.filter(_record_of_a_failed_orbax_write('absl'))  # only while saving
    # So may the writes it never started: no "never awaited" warning either.
    with warnings.catch_warnings(record=True) as shown:
      warnings.warn("coroutine 'write_fragment' was never awaited", RuntimeWarning)
      warnings.warn('another warning', RuntimeWarning)
    assert [str(w.message) for w in shown] == ['another warning']
  finally:
    asyncio_logger.filters[:] = before
    warnings.filters[:] = warning_filters
    sys.unraisablehook = sys.__unraisablehook__
  with checkpointing._quiet_orbax_failures():
    pass
  assert asyncio_logger.filter(_record_of_a_failed_orbax_write('asyncio'))


# ---------------------------------------------------------------------------
# One writer per workdir
# ---------------------------------------------------------------------------
def test_a_second_run_on_a_workdir_in_use_exits_2_naming_the_holder(straight, tmp_path,
                                                                     data_dir):
  w = str(tmp_path / 'run')
  first = subprocess.Popen([sys.executable, '-m', 'vae_jax.main', *train_args(w, *RUN)],
                           env=cli_env(data_dir), cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.time() + 120
    while not holder(w) and time.time() < deadline and first.poll() is None:
      time.sleep(0.01)
    first.send_signal(signal.SIGSTOP)  # holds the lock for as long as the second run takes
    before = snapshot(w)
    second = cli(train_args(w, *RUN), data_dir)
    after = snapshot(w)
    first.send_signal(signal.SIGCONT)
    _, stderr = first.communicate(timeout=300)
  finally:
    first.kill()
  assert second.returncode == 2
  line = one_error_line(second)
  assert line.startswith(f'error: {w} is in use by another run (train, pid {first.pid} on '
                         f'host {socket.gethostname()}, since '), line
  assert line.endswith('): wait for it to end, or use another directory'), line
  assert after == before  # the second run changed nothing
  assert first.returncode == 0, stderr[-3000:]
  assert_same_run(straight, w)  # no line twice
  assert no_leftovers(w)


def test_lock_refuses_a_second_holder_takes_over_a_dead_ones_and_is_released(tmp_path,
                                                                             caplog):
  w = str(tmp_path)
  path = os.path.join(w, workdir_lib.LOCK_FILE)
  with workdir_lib.lock(w, 'study'):
    assert holder(w)['pid'] == os.getpid() and holder(w)['purpose'] == 'study'
    with pytest.raises(workdir_lib.WorkdirLockedError, match=f'study, pid {os.getpid()}'):
      with workdir_lib.lock(w):
        pass
  assert not os.path.exists(path)

  gone = subprocess.Popen(['true'])
  gone.wait()
  with open(path, 'w') as f:
    json.dump({'host': socket.gethostname(), 'pid': gone.pid, 'purpose': 'train',
               'started': '2025-01-01 00:00:00'}, f)
  with workdir_lib.lock(w, 'evaluate'):
    assert holder(w)['pid'] == os.getpid()
  assert f'no longer running (train, pid {gone.pid} on host' in caplog.text
  assert not os.path.exists(path)


def test_evaluate_respects_the_lock_where_it_writes(straight, tmp_path, data_dir):
  w = copy_run(straight, tmp_path / 'run')
  with workdir_lib.lock(w, 'train'):
    before = snapshot(w)
    proc = cli([f'--workdir={w}', *EVAL], data_dir, module='vae_jax.core.evaluate')
    assert proc.returncode == 2
    assert f'is in use by another run (train, pid {os.getpid()}' in one_error_line(proc)
    assert snapshot(w) == before
    out = str(tmp_path / 'elsewhere.json')  # reading the workdir is not writing it
    proc = cli([f'--workdir={w}', *EVAL, f'--out={out}'], data_dir, module='vae_jax.core.evaluate')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert os.path.exists(out)


# ---------------------------------------------------------------------------
# Progress in a log
# ---------------------------------------------------------------------------
def test_progress_off_a_terminal_is_one_plain_line_per_epoch(tmp_path, data_dir):
  w = str(tmp_path / 'run')
  args = [a for a in train_args(w, '--config.num_epochs=2') if a != '--quiet']
  proc = cli(args, data_dir)  # stderr is a pipe
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert '\r' not in proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.startswith('train: ')]
  assert len(lines) == 2, proc.stderr[-3000:]
  for epoch, line in enumerate(lines, 1):
    assert re.fullmatch(rf'train: epoch {epoch}/2 \(step {8 * epoch}/16\), loss [\d.]+, '
                        r'test loss [\d.]+; \d+:\d\d:\d\d elapsed, ETA \d+:\d\d:\d\d',
                        line), line


# ---------------------------------------------------------------------------
# Several processes: SIGTERM to one, every process saves the same step
# ---------------------------------------------------------------------------
def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _start_two_processes(w, data_dir, *extra):
  port = _free_port()
  return [subprocess.Popen(
      [sys.executable, '-m', 'vae_jax.main',
       *train_args(w, '--config.distributed=True', *extra)],
      env=dict(cli_env(data_dir), JAX_PLATFORMS='cpu', VAE_JAX_COORDINATOR=f'localhost:{port}',
               VAE_JAX_NUM_PROCESSES='2', VAE_JAX_PROCESS_ID=str(i)),
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]


@pytest.mark.slow
def test_sigterm_to_one_of_two_processes_saves_the_same_step_on_both(tmp_path, data_dir):
  w = str(tmp_path / 'run')
  long_run = ('--config.num_epochs=200',)
  procs = _start_two_processes(w, data_dir, *long_run)
  try:
    deadline = time.time() + 240
    while not split_steps(w, 'train') and time.time() < deadline and procs[0].poll() is None:
      time.sleep(0.01)
    procs[1].send_signal(signal.SIGTERM)  # process 0 hears of it through JAX
    outputs = [p.communicate(timeout=240) for p in procs]
  finally:
    for p in procs:
      p.kill()
  lines = [last_line(err) for _, err in outputs]
  assert [p.returncode for p in procs] == [143, 143], [err[-2000:] for _, err in outputs]
  assert lines[0] == lines[1], lines
  step = int(re.fullmatch(rf'interrupted at step (\d+); saved checkpoint \1 in '
                          rf'{re.escape(w)}/checkpoints; rerun the same command to resume',
                          lines[0])[1])
  assert step < 200 * 8 and committed(w)[-1] == step and latest(w)[0] == step
  # Both processes rerun with fewer epochs: they resume from there and end at once.
  procs = _start_two_processes(w, data_dir, f'--config.num_epochs={step // 8 + 1}')
  outputs = [p.communicate(timeout=240) for p in procs]
  assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outputs]
  assert committed(w)[-1] == (step // 8 + 1) * 8
  np.testing.assert_array_equal(split_steps(w), sorted(set(split_steps(w))))
