"""The run directory: config.json, metrics.jsonl, TensorBoard events, checkpoints.

``metrics.jsonl`` holds one JSON object per line with ``step``, ``epoch``,
``split`` and the metric names; on resume the lines written after the
restored checkpoint are dropped, so a resumed run's file equals an
uninterrupted run's.
"""

import json
import os
import tempfile

import ml_collections

CONFIG_FILE = 'config.json'
METRICS_FILE = 'metrics.jsonl'
CHECKPOINT_DIR = 'checkpoints'
# Damaged checkpoints newer than the one a run resumed from are moved here.
DAMAGED_CHECKPOINT_DIR = 'checkpoints_damaged'
# Fields a rerun may change without invalidating the checkpoints: they set how
# long or how verbosely to train, not what is trained.
RESUMABLE_FIELDS = frozenset({'num_epochs', 'data.dir', 'progress',
                              'log_every_steps', 'checkpoint_every_steps',
                              'max_checkpoints'})

# Fields added to the config after runs were made, with the value those older
# runs implicitly used: their config.json reads as if it had them.
ADDED_FIELDS = {'lr_schedule': 'constant'}


def _with_added_fields(d):
  return {**ADDED_FIELDS, **d}


class WorkdirError(ValueError):
  """The workdir cannot be used as asked; the message names the fix."""


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


def atomic_write_text(path, text):
  """Writes via a temporary file and rename, so readers never see half a file."""
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or '.', suffix='.tmp')
  with os.fdopen(fd, 'w') as f:
    f.write(text)
  os.replace(tmp, path)


def config_to_dict(config):
  """A JSON-normalised plain dict (tuples become lists)."""
  return json.loads(config.to_json_best_effort())


def _flatten(d, prefix=''):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def config_differences(old, new):
  """Fields (dotted) whose values differ, ignoring :data:`RESUMABLE_FIELDS`
  (except ``num_epochs`` of a cosine-schedule run, which sets the decay)."""
  a, b = _flatten(_with_added_fields(old)), _flatten(new)
  resumable = RESUMABLE_FIELDS
  if 'cosine' in (a.get('lr_schedule'), b.get('lr_schedule')):
    resumable = resumable - {'num_epochs'}  # the schedule's length depends on it
  return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b))
          if a.get(k) != b.get(k) and k not in resumable}


def check_config(workdir, config, allow_change=False):
  """Refuses a config that differs from the run already in ``workdir``."""
  path = os.path.join(workdir, CONFIG_FILE)
  new = config_to_dict(config)
  if os.path.exists(path) and not allow_change:
    with open(path) as f:
      old = json.load(f)
    diff = config_differences(old, new)
    if diff:
      shown = ', '.join(f'{k}: {a!r} -> {b!r}' for k, b_a in diff.items()
                        for a, b in [b_a])
      raise WorkdirError(
          f'{workdir} holds a run with a different config ({shown}): use a new '
          '--workdir, or pass --allow_config_change to continue it anyway')


def write_config(workdir, config):
  """Writes ``workdir/config.json`` atomically."""
  text = json.dumps(config_to_dict(config), indent=2, sort_keys=True) + '\n'
  atomic_write_text(os.path.join(workdir, CONFIG_FILE), text)


def load_config(workdir):
  """The ConfigDict a run was made with, from ``workdir/config.json``."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise WorkdirError(f'{workdir} has no {CONFIG_FILE}: it is not a vae_jax '
                       'run directory; pass the --workdir you trained in')
  with open(path) as f:
    d = _with_added_fields(json.load(f))
  for key in ('hidden_sizes', 'conv_features'):
    d['model'][key] = tuple(d['model'][key])
  return ml_collections.ConfigDict(d)


def read_metrics(workdir):
  """All lines of ``metrics.jsonl`` as dicts (empty list when absent)."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def truncate_metrics(workdir, last_step):
  """Drops lines after ``last_step``: they belong to work the checkpoint lost."""
  rows = [r for r in read_metrics(workdir) if r['step'] <= last_step]
  text = ''.join(json.dumps(r, sort_keys=True) + '\n' for r in rows)
  atomic_write_text(os.path.join(workdir, METRICS_FILE), text)


class MetricsLog:
  """Appends to metrics.jsonl and writes the same scalars to TensorBoard."""

  def __init__(self, workdir, tensorboard=True):
    self.path = os.path.join(workdir, METRICS_FILE)
    self.writer = None
    if tensorboard:
      from vae_jax.tensorboard_writer import SummaryWriter
      self.writer = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def write(self, step, epoch, split, metrics):
    row = {'step': int(step), 'epoch': int(epoch), 'split': split,
           **{k: float(v) for k, v in metrics.items()}}
    with open(self.path, 'a') as f:
      f.write(json.dumps(row, sort_keys=True) + '\n')
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
