"""Orbax checkpoints of the train state, atomic, with fallback past a damaged one.

Orbax writes each step into a temporary directory and renames it only once
every file is complete, so a run killed mid-save leaves the previous
checkpoint as the latest *complete* one. A checkpoint damaged later (a
truncated file) fails to restore; :func:`restore_latest` then says so in one
line and falls back to the one before it.
"""

import logging

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """No usable checkpoint where one is required."""


def manager(directory, max_to_keep=3):
  # Synchronous saves: the step returns only once the checkpoint is committed,
  # so "the last checkpoint" in a log line is always really on disk.
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
  return ocp.CheckpointManager(directory, options=options)


def save(mngr, step, state, meta):
  """Saves ``state`` (a pytree) and ``meta`` (JSON) as checkpoint ``step``."""
  mngr.save(int(step), args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
  mngr.wait_until_finished()


def restore(mngr, step, abstract_state):
  out = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()))
  return out['state'], out['meta']


def restore_latest(mngr, abstract_state, warn=logging.warning):
  """``(step, state, meta)`` of the newest checkpoint that restores, or None.

  Raises :class:`CheckpointError` when checkpoints exist but none restores:
  training on from scratch would silently discard the run.
  """
  steps = sorted(mngr.all_steps(), reverse=True)
  for step in steps:
    try:
      state, meta = restore(mngr, step, abstract_state)
      jax.block_until_ready(state)
      return step, state, meta
    except Exception as e:  # orbax/tensorstore raise many types on bad bytes
      warn(f'checkpoint {step} in {mngr.directory} is unreadable '
           f'({type(e).__name__}); trying an older one')
  if steps:
    raise CheckpointError(
        f'no checkpoint in {mngr.directory} could be restored (steps {steps}): '
        'move that directory away to start over, or restore a backup')
  return None
