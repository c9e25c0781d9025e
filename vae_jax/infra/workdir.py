"""The run directory: config.json, metrics.jsonl, TensorBoard events, checkpoints.

``metrics.jsonl`` holds one JSON object per line with ``step``, ``epoch``,
``split`` and the metric names; on resume the lines written after the
restored checkpoint are dropped, so a resumed run's file equals an
uninterrupted run's. A line is appended in one write and cut back if the
write fails, so the file never ends in half a line.

A run holds the directory's lock (:func:`lock`) while it writes there.
"""

import contextlib
import datetime
import errno
import fcntl
import glob
import json
import logging
import os
import re
import socket
import sys
import tempfile

from vae_jax.infra import crash_points, errors

CONFIG_FILE = 'config.json'
METRICS_FILE = 'metrics.jsonl'
CHECKPOINT_DIR = 'checkpoints'
LOCK_FILE = 'vae_jax.lock'
# Damaged checkpoints newer than the one a run resumed from are moved here.
DAMAGED_CHECKPOINT_DIR = 'checkpoints_damaged'
# The config's schema, its upgrades of older runs' config.json and the fields
# a rerun may change live in vae_jax/core/config.py (upgrade, RESUMABLE_FIELDS,
# check_workdir, from_workdir); this module only reads and writes the file.


class WorkdirError(errors.UserError, ValueError):
  """The workdir cannot be used as asked; the message names the fix."""


class WorkdirLockedError(WorkdirError):
  """Another live process holds the directory's lock; the message names it."""


class DiskFullError(WorkdirError):
  """A write failed for lack of space or quota; the message names the file and what to do."""


# tensorstore (under orbax) reports a full disk as a ValueError whose text ends
# in "No space left on device [os_error_code='28']" (122: quota, on Linux).
_NO_SPACE_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_NO_SPACE_TEXT = re.compile(r"os_error_code='(28|122)'|No space left on device|"
                            r'Disk quota exceeded')
_FAILED_FILE = re.compile(r'Failed writing: "([^"]+)"')


def no_space_file(e):
  """The file a full disk kept ``e`` (or its causes) from writing, '' if unnamed, else None."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in _NO_SPACE_ERRNOS:
      return e.filename or ''
    if _NO_SPACE_TEXT.search(str(e)):
      found = _FAILED_FILE.search(str(e))
      return found.group(1) if found else ''
    e = e.__cause__ or e.__context__
  return None


def prepare(workdir):
  """Creates ``workdir`` if needed and checks it is a writable directory."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f'--workdir {workdir} is a file: pass a directory path')
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise WorkdirError(f'cannot create --workdir {workdir} ({e.strerror}): '
                       'pick a path you can write to') from e
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise WorkdirError(f'--workdir {workdir} is not writable: pick a path you '
                       'can write to or fix its permissions')
  return os.path.abspath(workdir)


# atomic_write_bytes' temporary files: a process killed between writing one
# and renaming it leaves it behind; the next holder of the directory's lock
# removes them (remove_stale_temporaries).
TEMP_PREFIX, TEMP_SUFFIX = '.vae_jax-', '.tmp'


def atomic_write_bytes(path, data):
  """Writes via a temporary file and rename, so readers never see half a file.

  On failure (a full disk) the temporary file is removed and the OSError
  names ``path``. A SIGKILL before the rename leaves the temporary file,
  ``.vae_jax-*.tmp`` beside ``path``, until the directory's lock is next taken.
  """
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or '.', prefix=TEMP_PREFIX,
                             suffix=TEMP_SUFFIX)
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(data)
    crash_points.reached('atomic_write')
    os.replace(tmp, path)
  except OSError as e:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise OSError(e.errno, e.strerror, path) from e


def atomic_write_text(path, text):
  atomic_write_bytes(path, text.encode())


def append_line(path, line):
  """Appends ``line`` in one write; if that fails the file is cut back to where it was."""
  data = line.encode()
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    size = os.fstat(fd).st_size
    crash_points.reached('append_line')
    try:
      if os.write(fd, data) != len(data):  # a regular file writes short only when full
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError as e:
      os.ftruncate(fd, size)
      raise OSError(e.errno, e.strerror, path) from e
  finally:
    os.close(fd)


def config_to_dict(config):
  """A JSON-normalised plain dict (tuples become lists)."""
  return json.loads(config.to_json_best_effort())


def read_json(path, what='a JSON object'):
  """The JSON object in ``path``; :class:`WorkdirError` naming the file when it is damaged."""
  try:
    with open(path, 'rb') as f:
      value = json.loads(f.read().decode())
  except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
    raise WorkdirError(f'{path} is damaged ({type(e).__name__}: {e}): restore it from a '
                       'backup, or move it away and rerun the command that wrote it') from e
  if not isinstance(value, dict):
    raise WorkdirError(f'{path} is damaged (it holds a JSON {type(value).__name__}, not '
                       f'{what}): restore it from a backup, or move it away and rerun the '
                       'command that wrote it')
  return value


def write_config(workdir, config):
  """Writes ``workdir/config.json`` atomically."""
  text = json.dumps(config_to_dict(config), indent=2, sort_keys=True) + '\n'
  atomic_write_text(os.path.join(workdir, CONFIG_FILE), text)


def read_config_dict(workdir, missing_ok=False):
  """``workdir/config.json`` as written (not upgraded: see vae_jax.core.config.upgrade).

  A missing file is a WorkdirError, or None with ``missing_ok``.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    if missing_ok:
      return None
    raise WorkdirError(f'{workdir} has no {CONFIG_FILE}: it is not a vae_jax '
                       'run directory; pass the --workdir you trained in')
  return read_json(path, 'a config')


def read_jsonl(path):
  """Every line of a JSON-lines file as a dict (empty list when the file is absent).

  A line that is not a JSON object (half a line from a torn write, an edit)
  raises :class:`WorkdirError` naming the file and the line.
  """
  if not os.path.exists(path):
    return []
  with open(path, 'rb') as f:
    lines = f.read().split(b'\n')
  rows = []
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      row = json.loads(line.decode())
    except (ValueError, UnicodeDecodeError) as e:
      row, why = None, f'{type(e).__name__}: {e}'
    else:
      why = f'a JSON {type(row).__name__}, not an object'
    if not isinstance(row, dict):
      raise WorkdirError(f'{path} line {number} is damaged ({why}): delete that line (and '
                         'any after it that are damaged too), then rerun')
    rows.append(row)
  return rows


def read_metrics(workdir):
  """All lines of ``metrics.jsonl`` as dicts (empty list when absent)."""
  return read_jsonl(os.path.join(workdir, METRICS_FILE))


def truncate_metrics(workdir, last_step):
  """Drops lines after ``last_step``: they belong to work the checkpoint lost."""
  rows = read_metrics(workdir)
  path = os.path.join(workdir, METRICS_FILE)
  for number, row in enumerate(rows, 1):
    if isinstance(row.get('step'), bool) or not isinstance(row.get('step'), int):
      raise WorkdirError(f'{path}: row {number} has step {row.get("step")!r}, not a step '
                         'number: delete that row, then rerun')
  rows = [r for r in rows if r['step'] <= last_step]
  text = ''.join(json.dumps(r, sort_keys=True) + '\n' for r in rows)
  atomic_write_text(os.path.join(workdir, METRICS_FILE), text)


class MetricsLog:
  """Appends to metrics.jsonl and writes the same scalars to TensorBoard."""

  def __init__(self, workdir, tensorboard=True):
    self.path = os.path.join(workdir, METRICS_FILE)
    self.writer = None
    if tensorboard:
      from vae_jax.infra.tensorboard_writer import SummaryWriter
      self.writer = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def write(self, step, epoch, split, metrics):
    row = {'step': int(step), 'epoch': int(epoch), 'split': split,
           **{k: float(v) for k, v in metrics.items()}}
    append_line(self.path, json.dumps(row, sort_keys=True) + '\n')
    if self.writer is not None:
      self.writer.write_scalars(int(step), {f'{split}/{k}': float(v)
                                            for k, v in metrics.items()})

  def write_images(self, step, images):
    if self.writer is not None:
      self.writer.write_images(int(step), images)

  def flush(self):
    if self.writer is not None:
      self.writer.flush()

  def close(self):
    if self.writer is not None:
      self.writer.close()


# ----------------------------------------------------------------------------
# One writer per directory
# ----------------------------------------------------------------------------
@contextlib.contextmanager
def lock(directory, purpose='train'):
  """Holds ``directory/vae_jax.lock`` while inside; raises :class:`WorkdirLockedError` if taken.

  The file holds the holder's host, pid, purpose, start time and command
  line, and is removed on exit. Its new holder first removes the temporary
  files a killed writer left (:func:`remove_stale_temporaries`). It is locked with ``flock``, which the kernel
  releases when its process dies, even by SIGKILL: a file left by a dead
  process is taken over (with one warning line naming it). Where the file
  system has no ``flock``, a file whose pid no longer runs on this host is
  taken over instead.
  """
  path = os.path.join(directory, LOCK_FILE)
  fd = _acquire(path, purpose)
  try:
    remove_stale_temporaries(directory)
    yield
  finally:
    _release(path, fd)


def remove_stale_temporaries(directory):
  """Removes the temporary files killed writers left in ``directory`` and its checkpoints.

  Called by the lock's new holder, so no live writer of these files exists.
  Only the directory's own files and its checkpoints' are looked at: a study's
  outdir holds model workdirs with locks of their own.
  """
  places = [directory, *glob.glob(os.path.join(directory, CHECKPOINT_DIR, '*', ''))]
  for place in places:
    for path in glob.glob(os.path.join(place, f'{TEMP_PREFIX}*{TEMP_SUFFIX}')):
      with contextlib.suppress(OSError):
        os.remove(path)


def _read_holder(fd):
  try:
    return json.loads(os.pread(fd, 1 << 16, 0).decode())
  except (OSError, ValueError):
    return {}


def _describe(holder):
  return (f'{holder.get("purpose", "a run")}, pid {holder.get("pid", "?")} on host '
          f'{holder.get("host", "?")}, since {holder.get("started", "?")}')


def _alive(holder):
  """Whether the lock's process may still run (on another host: assume so)."""
  if holder.get('host') != socket.gethostname():
    return True
  try:
    os.kill(int(holder['pid']), 0)
  except ProcessLookupError:
    return False
  except (PermissionError, KeyError, ValueError, TypeError):
    return True
  return True


def _try_flock(fd):
  """True when locked, False when another process holds it, None without flock support."""
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return True
  except BlockingIOError:
    return False
  except OSError as e:
    if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
      return None
    raise


def _acquire(path, purpose):
  while True:
    try:
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise WorkdirError(f'cannot create the lock file {path} ({e.strerror}): make '
                         f'{os.path.dirname(path)} writable or use another directory') from e
    locked = _try_flock(fd)
    holder = _read_holder(fd)  # a live holder's, or what a dead one left
    if locked is None:  # no flock here: judge by the pid in the file
      locked = not (holder and _alive(holder))
    if not locked:
      os.close(fd)
      other_host = holder.get('host') not in (None, socket.gethostname())
      raise WorkdirLockedError(
          f'{os.path.dirname(path)} is in use by another run ({_describe(holder)}): '
          'wait for it to end, or use another directory'
          + (f'; if that process is gone, delete {path}' if other_host else ''))
    # Its holder may have removed the file between our open and flock: then
    # this lock is on a file no one else sees; open the new one.
    try:
      if os.stat(path).st_ino == os.fstat(fd).st_ino:
        break
    except FileNotFoundError:
      pass
    os.close(fd)
  if holder:
    logging.warning('took over %s from a process that is no longer running (%s)',
                    path, _describe(holder))
  info = {'host': socket.gethostname(), 'pid': os.getpid(), 'purpose': purpose,
          'started': datetime.datetime.now().isoformat(sep=' ', timespec='seconds'),
          'command': ' '.join(sys.argv)[:500]}
  try:
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + '\n').encode(), 0)
  except OSError as e:
    _release(path, fd)
    if e.errno in _NO_SPACE_ERRNOS:
      raise DiskFullError(f'disk full: could not write {path}: free some space, then '
                          'rerun the same command') from e
    raise
  return fd


def _release(path, fd):
  try:
    if os.stat(path).st_ino == os.fstat(fd).st_ino:
      os.remove(path)
  except FileNotFoundError:
    pass
  finally:
    os.close(fd)  # releases the flock
