"""How long a run trained, and where: kept in its checkpoints, so it survives resumes.

A long run is split over several processes (a session ends, a machine is
preempted, Ctrl-C). Each process is one *segment*: the steps it trained, the
wall seconds it spent (compilation and per-epoch test evaluation included)
and the machine it ran on. The segments up to a checkpoint are saved in that
checkpoint's metadata, so a resumed run starts from exactly the history of
the state it restored: work done after the last checkpoint, which the resume
repeats, is not counted twice. Process 0 also writes them to
``<workdir>/timing.json`` for people and scripts to read.
"""

import datetime
import json
import os
import platform
import socket
import time

from vae_jax.infra import workdir as workdir_lib

TIMING_FILE = 'timing.json'
META_KEY = 'segments'  # key of the segment list in a checkpoint's metadata


def cpu_model():
  """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or 'cpu'


def machine_description():
  """The CPU model, core count and architecture, e.g. 'AMD EPYC 7B13, 2 cores, x86_64'."""
  return f'{cpu_model()}, {os.cpu_count()} cores, {platform.machine()}'


class RunClock:
  """The segments before this process (from the restored checkpoint) plus this one."""

  def __init__(self, past_segments, start_step):
    self.past = [dict(s) for s in past_segments or ()]
    self.start_step = int(start_step)
    self.started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')
    self._t0 = time.perf_counter()
    self._where = {'machine': machine_description(), 'host': socket.gethostname()}

  def segments(self, step):
    """All segments, this one ending at ``step`` (a list of JSON-able dicts)."""
    now = {'from_step': self.start_step, 'to_step': int(step), 'started': self.started,
           'seconds': round(time.perf_counter() - self._t0, 3), **self._where}
    return self.past + [now]


def train_seconds(segments):
  """Wall seconds of training summed over segments."""
  return float(sum(s['seconds'] for s in segments))


def write(workdir, segments):
  """``<workdir>/timing.json``, atomically: total seconds, segment count and list."""
  record = {'train_seconds': train_seconds(segments), 'num_segments': len(segments),
            'segments': segments}
  workdir_lib.atomic_write_text(os.path.join(workdir, TIMING_FILE),
                                json.dumps(record, indent=2, sort_keys=True) + '\n')


def read(workdir):
  """The ``timing.json`` record of ``workdir``, or None when it has none."""
  path = os.path.join(workdir, TIMING_FILE)
  if not os.path.exists(path):
    return None
  return workdir_lib.read_json(path, 'a timing record')


def busy_seconds(passes):
  """Seconds during which at least one process ran: the union of their intervals.

  ``passes``: dicts with ``started`` (epoch seconds) and ``wall_seconds``. Right
  for both ways of running a long job: shards in parallel (overlapping passes
  count once) and one process resumed across sessions (the gaps between passes
  do not count, as they would in the span).
  """
  busy, end = 0.0, float('-inf')
  for start, stop in sorted((p['started'], p['started'] + p['wall_seconds']) for p in passes):
    busy += max(0.0, stop - max(start, end))
    end = max(end, stop)
  return busy
