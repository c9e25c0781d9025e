"""A test hook that SIGKILLs this process at a named point: aims a crash campaign's kills.

A kill at a random moment rarely lands inside a checkpoint save or a metrics
append, which take milliseconds of a run's seconds; the crash campaign
(``vae_jax/bench/crash_campaign.py``) aims some of its kills there with

  VAE_JAX_CRASH_AT=<point>:<n>[:<delay>]

which kills the process with SIGKILL the ``n``-th time (1-based) it reaches
``<point>``; with ``<delay>`` seconds, from a timer thread that long after, so
the kill lands inside whatever follows the point (orbax's save, for one).
The points:

* ``atomic_write``: :func:`workdir.atomic_write_bytes` wrote its temporary file
  and has not renamed it yet;
* ``append_line``: :func:`workdir.append_line` is about to write a line;
* ``checkpoint_save``: :func:`checkpointing.save` is about to call orbax;
* ``checkpoint_manifest``: orbax committed the checkpoint, its file checksums
  are not written yet.

Without the variable (always, outside the campaign) :func:`reached` returns at
its first test: nothing else is read or counted.
"""

import os
import signal
import threading

ENV_VAR = 'VAE_JAX_CRASH_AT'
POINTS = ('atomic_write', 'append_line', 'checkpoint_save', 'checkpoint_manifest')


def _parse(value):
  if not value:
    return None
  point, n, *delay = value.split(':')
  if point not in POINTS:
    raise ValueError(f'{ENV_VAR}={value}: unknown point {point!r}, use one of {POINTS}')
  return point, int(n), float(delay[0]) if delay else 0.0


_TARGET = _parse(os.environ.get(ENV_VAR))
_seen = {}


def _kill():
  os.kill(os.getpid(), signal.SIGKILL)


def reached(point):
  """Kills this process if ``$VAE_JAX_CRASH_AT`` names this passage of ``point``."""
  if _TARGET is None:
    return
  _seen[point] = _seen.get(point, 0) + 1
  name, n, delay = _TARGET
  if point != name or _seen[point] != n:
    return
  if delay <= 0:
    _kill()
  timer = threading.Timer(delay, _kill)
  timer.daemon = True
  timer.start()
