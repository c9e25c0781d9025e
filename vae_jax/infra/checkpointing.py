"""Orbax checkpoints of the train state, atomic, verified, with fallback past a damaged one.

Orbax writes each step into ``<step>.orbax-checkpoint-tmp`` and renames it to
``<step>`` only once every file is complete, so a run killed mid-save leaves
the previous checkpoint as the latest *complete* one (the tmp directory is
not listed as a step, and is replaced when that step is saved again).

Orbax does not notice every kind of later damage (orbax 0.12, OCDBT/zarr): a
truncated file fails to restore, but a flipped byte inside an array's data
restores silently as different numbers; and a failed read prints pages of
tracebacks from orbax's background threads. So each checkpoint is checked
twice, both checks written by :func:`save`:

* ``<step>/vae_jax_files.sha256.json``: the SHA-256 of every file, verified
  before orbax reads anything (a damaged checkpoint is skipped quietly);
* ``meta['state_sha256']``: the SHA-256 of the state itself
  (:func:`state_digest`), verified after the restore.

:func:`restore_latest` skips a checkpoint that fails either check, does not
fit the model, or does not restore, with one warning line each, and falls
back to the one before it.
"""

import contextlib
import glob
import hashlib
import json
import logging
import os
import shutil
import sys
import warnings

import jax
import numpy as np
import orbax.checkpoint as ocp

from vae_jax.infra import workdir as workdir_lib
from vae_jax.infra import crash_points, errors

DIGEST_KEY = 'state_sha256'
FILES_MANIFEST = 'vae_jax_files.sha256.json'


class CheckpointError(errors.UserError, RuntimeError):
  """No usable checkpoint where one is required."""


def manager(directory, max_to_keep=3):
  if os.path.exists(directory) and not os.path.isdir(directory):
    raise CheckpointError(f'{directory} is a file, not a directory of checkpoints: move it '
                          'away (or restore the checkpoints) and rerun')
  # Synchronous saves: the step returns only once the checkpoint is committed,
  # so "the last checkpoint" in a log line is always really on disk.
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
  # Handlers registered up front so that item_metadata() can read the shapes.
  return ocp.CheckpointManager(directory, options=options, item_handlers={
      'state': ocp.StandardCheckpointHandler(), 'meta': ocp.JsonCheckpointHandler()})


def _host_array(x):
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    x = x.addressable_data(0)  # the state is replicated: any shard is the whole array
  return np.asarray(jax.device_get(x))


def state_digest(state):
  """SHA-256 (hex) over every leaf's path, dtype, shape and bytes."""
  h = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    a = np.ascontiguousarray(_host_array(leaf))
    h.update(f'{jax.tree_util.keystr(path)}:{a.dtype.str}:{a.shape}'.encode())
    h.update(a.tobytes())
  return h.hexdigest()


def _step_dir(manager, step):
  return os.path.join(str(manager.directory), str(step))


def _file_digests(step_dir):
  """{relative path: sha256} of every file of a checkpoint but the manifest."""
  out = {}
  for root, _, files in os.walk(step_dir):
    for name in files:
      path = os.path.join(root, name)
      rel = os.path.relpath(path, step_dir)
      if rel == FILES_MANIFEST:
        continue
      h = hashlib.sha256()
      with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
          h.update(block)
      out[rel] = h.hexdigest()
  return out


def _write_files_manifest(step_dir):
  digests = _file_digests(step_dir)
  workdir_lib.atomic_write_text(os.path.join(step_dir, FILES_MANIFEST),
                                json.dumps(digests, indent=1, sort_keys=True))


def _complete_files_manifest(step_dir):
  """Writes the checksums of a checkpoint killed after orbax's commit and before its own.

  Called once its state matched the digest saved in it, by the run that owns
  the directory (the one that sets damaged checkpoints aside); otherwise the
  checkpoint would stay without checksums for good.
  """
  if jax.process_index() == 0 and not os.path.exists(os.path.join(step_dir, FILES_MANIFEST)):
    _write_files_manifest(step_dir)


def _check_files(step_dir):
  """None if the files match their manifest (or there is none), else what differs."""
  path = os.path.join(step_dir, FILES_MANIFEST)
  if not os.path.exists(path):
    return None  # written by an older version, or killed between commit and manifest
  try:
    with open(path) as f:
      expected = json.load(f)
  except (OSError, ValueError) as e:
    return f'its {FILES_MANIFEST} is unreadable ({type(e).__name__})'
  found = _file_digests(step_dir)
  for rel in sorted(expected):
    if rel not in found:
      return f'{rel} is missing'
    if found[rel] != expected[rel]:
      return f'{rel} does not match the checksum written with it'
  return None


# ----------------------------------------------------------------------------
# Space: a full disk is one line, checked before a save where that is cheap
# ----------------------------------------------------------------------------
_METADATA_BYTES = 64 << 10  # orbax's JSON and OCDBT manifests beside the arrays


def _free_bytes(directory):
  return shutil.disk_usage(directory).free


def _size(n):
  return f'{n / 1e9:.1f} GB' if n >= 1e9 else f'{n / 1e6:.1f} MB'


def bytes_needed(manager, abstract_state):
  """About what a new checkpoint takes: the newest one's size, else the state's bytes."""
  latest = manager.latest_step()
  if latest is not None:
    return _METADATA_BYTES + sum(
        os.path.getsize(os.path.join(root, f))
        for root, _, files in os.walk(_step_dir(manager, latest)) for f in files)
  return _METADATA_BYTES + sum(int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
                               for x in jax.tree_util.tree_leaves(abstract_state))


def disk_full_error(manager, abstract_state, what):
  """One line: what failed (``what``), the space a checkpoint needs, the last good one."""
  last = manager.latest_step()
  kept = (f'the last good checkpoint is step {last} in {manager.directory}' if last is not None
          else 'no checkpoint was written yet')
  need, free = bytes_needed(manager, abstract_state), _free_bytes(manager.directory)
  return workdir_lib.DiskFullError(
      f'disk full: {what}; a checkpoint needs about {_size(need)}, {_size(free)} are free '
      f'in {manager.directory}; {kept}: free some space, then rerun the same command to resume')


def check_space(manager, abstract_state, step=None):
  """Raises :class:`workdir.DiskFullError` when checkpoint ``step`` cannot fit (one statvfs)."""
  if _free_bytes(manager.directory) < bytes_needed(manager, abstract_state):
    what = f'checkpoint {step}' if step is not None else 'the next checkpoint'
    raise disk_full_error(manager, abstract_state, f'no room for {what}')


@contextlib.contextmanager
def disk_full_as_error(manager, abstract_state):
  """Turns any write inside that fails for lack of space into one DiskFullError."""
  try:
    yield
  except workdir_lib.DiskFullError:
    raise
  except Exception as e:
    path = workdir_lib.no_space_file(e)
    if path is None:
      raise
    raise disk_full_error(manager, abstract_state,
                          f'could not write {path or manager.directory}') from e


def _raised_in_orbax(exc_info):
  """Whether the exception of a log record passed through orbax's code."""
  tb = exc_info[2] if exc_info else None
  while tb is not None:
    if f'{os.sep}orbax{os.sep}' in tb.tb_frame.f_code.co_filename:
      return True
    tb = tb.tb_next
  return False


class _NoOrbaxTracebacks(logging.Filter):
  """Orbax logs the traceback of a failed write from each of its threads, and
  asyncio logs it again ("Task exception was never retrieved") when the failed
  write task is collected, before or after ``save`` re-raises it; there it is
  reported once."""

  def filter(self, record):
    return not (record.exc_info and (f'{os.sep}orbax{os.sep}' in record.pathname
                                     or _raised_in_orbax(record.exc_info)))


def _drop_closed_loop_errors(previous_hook):
  def hook(unraisable):
    if not (unraisable.exc_type is RuntimeError
            and 'Event loop is closed' in str(unraisable.exc_value)):
      previous_hook(unraisable)
  return hook


@contextlib.contextmanager
def _quiet_orbax_failures():
  """Within: a failed save is reported once, by the exception ``save`` raises.

  Besides orbax's log lines, the tensorstore writes still in flight when one
  fails complete on an event loop orbax has closed, and each prints an
  unraisable "RuntimeError: Event loop is closed" traceback, some of them
  after ``save`` has returned; asyncio logs the failed tasks and Python warns
  of the writes never started when they are collected: after a failure these
  filters stay installed.
  """
  absl, tasks, quiet = logging.getLogger('absl'), logging.getLogger('asyncio'), _NoOrbaxTracebacks()
  previous_hook = sys.unraisablehook
  absl.addFilter(quiet)
  tasks.addFilter(quiet)
  sys.unraisablehook = _drop_closed_loop_errors(previous_hook)
  try:
    yield
  except BaseException:
    # Write coroutines the failed save never started are collected, possibly
    # at interpreter exit, each with a "coroutine ... was never awaited"
    # RuntimeWarning: the run is ending with its one error line already.
    warnings.filterwarnings('ignore', message=r"coroutine '.*' was never awaited",
                            category=RuntimeWarning)
    raise
  finally:
    absl.removeFilter(quiet)
  # Reached only when the save succeeded: a failed write task may be collected later.
  tasks.removeFilter(quiet)
  sys.unraisablehook = previous_hook


def _remove_partial(manager, step):
  """Deletes what a failed save of ``step`` left (only orbax's tmp directories of it)."""
  if jax.process_index() == 0:
    for path in glob.glob(_step_dir(manager, step) + '.orbax-checkpoint-tmp*'):
      shutil.rmtree(path, ignore_errors=True)


def save(manager, step, state, meta):
  """Saves ``state`` (a pytree) and ``meta`` (JSON) as checkpoint ``step``.

  ``meta`` is stored with the state's digest added under :data:`DIGEST_KEY`;
  once orbax has committed the step, the checksums of its files are written
  beside them. Free space is checked first; a save that still fails for lack
  of space raises :class:`workdir.DiskFullError`, and any failed save leaves
  no partial checkpoint behind (older checkpoints are not touched).
  """
  check_space(manager, state, step)
  meta = {**meta, DIGEST_KEY: state_digest(state)}
  crash_points.reached('checkpoint_save')
  try:
    with _quiet_orbax_failures():
      saved = manager.save(int(step), args=ocp.args.Composite(
          state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
      manager.wait_until_finished()
  except Exception as e:
    _remove_partial(manager, step)
    path = workdir_lib.no_space_file(e)
    if path is None:
      raise
    raise disk_full_error(manager, state, f'could not write {path or _step_dir(manager, step)}; '
                          f'removed the partial checkpoint {step}') from e
  if not saved:  # orbax skips, silently, a step at or below its latest one
    raise RuntimeError(f'checkpoint {step} was not written: {manager.directory} '
                       f'already holds step {manager.latest_step()}')
  crash_points.reached('checkpoint_manifest')
  if jax.process_index() == 0:
    with disk_full_as_error(manager, state):
      _write_files_manifest(_step_dir(manager, step))


def restore(manager, step, abstract_state):
  out = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
  return out['state'], out['meta']


def _key_name(k):
  for attr in ('name', 'key', 'idx'):
    if hasattr(k, attr):
      return str(getattr(k, attr))
  return str(k)


def _shapes(tree):
  return {'.'.join(_key_name(k) for k in path): (tuple(leaf.shape), np.dtype(leaf.dtype))
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _misfit(manager, step, abstract_state):
  """None if checkpoint ``step`` holds arrays of the shapes asked for, else the first difference.

  Checked before restoring: orbax would fail half-way through, with pages of
  tracebacks from its background threads.
  """
  try:
    stored = _shapes(manager.item_metadata(step)['state'])
  except Exception:  # no readable metadata: let the restore itself decide
    return None
  wanted = _shapes(abstract_state)
  for name in sorted(set(stored) | set(wanted), key=lambda n: (not n.startswith('params'), n)):
    if name not in stored:
      return f'{name} is not in the checkpoint'
    if name not in wanted:
      return f'the checkpoint has {name}, the model does not'
    if stored[name] != wanted[name]:
      (s_shape, s_dtype), (w_shape, w_dtype) = stored[name], wanted[name]
      return (f'{name} is {s_dtype}{list(s_shape)} in the checkpoint, '
              f'{w_dtype}{list(w_shape)} in the model')
  return None


def _set_aside_cut_short_deletions(manager, set_aside, warn):
  """Moves aside older checkpoints that lack orbax's ``_CHECKPOINT_METADATA``.

  Orbax writes that file into every checkpoint before committing it, and
  deletes a checkpoint beyond ``max_to_keep`` file by file: a kill in the
  middle leaves a directory without it, which orbax then never deletes
  (found by the crash campaign). Only checkpoints older than the newest one
  are looked at; they are moved, not deleted, as damaged ones are.
  """
  steps = sorted(manager.all_steps())
  stale = [s for s in steps[:-1]
           if not os.path.exists(os.path.join(_step_dir(manager, s), '_CHECKPOINT_METADATA'))]
  for step in stale:
    warn(f'checkpoint {step} in {manager.directory} is incomplete (no _CHECKPOINT_METADATA: '
         f'a deletion was cut short); moved it to {_move_aside(manager, step, set_aside)}')
  if stale:
    manager.reload()


def _move_aside(manager, step, directory):
  """Moves checkpoint ``step`` into ``directory`` (never over an existing one)."""
  os.makedirs(directory, exist_ok=True)
  dst, n = os.path.join(directory, str(step)), 1
  while os.path.exists(dst):
    dst, n = os.path.join(directory, f'{step}.{n}'), n + 1
  os.rename(_step_dir(manager, step), dst)
  return dst


def _short(e):
  """``Type: first sentence`` of an exception, at most ~160 characters."""
  text = str(e).strip().split('\n')[0].split('. ')[0]
  text = f'{type(e).__name__}: {text}' if text else type(e).__name__
  return text if len(text) <= 160 else text[:157] + '...'


def restore_latest(manager, abstract_state, warn=logging.warning, set_aside=None):
  """``(step, state, meta)`` of the newest checkpoint that restores, or None.

  A checkpoint whose files do not match their checksums, whose arrays do not
  fit ``abstract_state``, that fails to restore, or whose restored state does
  not match its digest is skipped with one warning line. With ``set_aside``
  (a directory), the skipped checkpoints newer than the one restored are
  moved there: left in place, they would make orbax skip saving those steps
  again (it saves nothing at or below its latest step), and the restored one
  gets the file checksums a kill kept it from (:func:`_complete_files_manifest`).
  Nothing is moved when no checkpoint restores.

  Raises :class:`CheckpointError` when checkpoints exist but none restores:
  training on from scratch would silently discard the run.
  """
  if set_aside:
    _set_aside_cut_short_deletions(manager, set_aside, warn)
  steps = sorted(manager.all_steps(), reverse=True)
  skipped = []  # (step, why), newest first
  misfits = []
  for step in steps:
    problem = _check_files(_step_dir(manager, step))
    if problem:
      skipped.append((step, f'is damaged ({problem})'))
      continue
    problem = _misfit(manager, step, abstract_state)
    if problem:
      skipped.append((step, f'does not fit the model ({problem})'))
      misfits.append(problem)
      continue
    try:
      state, meta = restore(manager, step, abstract_state)
      jax.block_until_ready(state)
    except Exception as e:  # orbax/tensorstore raise many types on bad bytes
      skipped.append((step, f'is unreadable ({_short(e)})'))
      continue
    # Checkpoints written before the digest existed have none to check.
    if DIGEST_KEY in meta and state_digest(state) != meta[DIGEST_KEY]:
      skipped.append((step, 'is damaged (its arrays do not match the checksum '
                            'saved with them)'))
      continue
    if set_aside and DIGEST_KEY in meta:
      _complete_files_manifest(_step_dir(manager, step))
    for bad, why in skipped:
      moved = f'; moved it to {_move_aside(manager, bad, set_aside)}' if set_aside else ''
      warn(f'checkpoint {bad} in {manager.directory} {why}{moved}; using checkpoint '
           f'{step} instead')
    if skipped and set_aside:
      manager.reload()
    return step, state, meta
  for bad, why in skipped:
    warn(f'checkpoint {bad} in {manager.directory} {why}')
  if steps and len(misfits) == len(steps):
    raise CheckpointError(
        f'no checkpoint in {manager.directory} fits the model of this config '
        f'({misfits[0]}): a run cannot continue across this config change; '
        'use a new --workdir')
  if steps:
    raise CheckpointError(
        f'no checkpoint in {manager.directory} could be restored (steps {steps}): '
        'move that directory away to start over, or restore a backup')
  return None
