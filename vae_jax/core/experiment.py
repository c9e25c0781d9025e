"""A run's model and state from its config, and a trained run restored from its workdir.

This is the one place that turns a config into a model and a (possibly
abstract) training state, and a workdir back into ``(config, model, params,
step)``. :func:`restore` reads only ``config.json`` and the newest good
checkpoint: it loads no data and compiles no training step, so evaluation,
plots, reports and tests restore a run in seconds; :func:`restore_finished`
does so only for a run that has finished training under a given config, so a
caller trains just what is missing. ``train.py`` builds the
training machinery (data on the devices, the jitted step and loop) on top of
:func:`build_model` and :func:`init_state`.
"""

import functools
import logging
import os
from typing import Any

import flax
import jax
import jax.numpy as jnp

from vae_jax.core import hierarchical, models, optim
from vae_jax.infra import checkpointing
from vae_jax.core import config as config_lib
from vae_jax.core import data as data_lib
from vae_jax.infra import workdir as workdir_lib


@flax.struct.dataclass
class TrainState:
  step: jax.Array   # int32 scalar: optimizer updates done so far
  params: Any
  opt_state: Any


def build_model(config):
  """The model ``config`` describes, for images of its data set's shape.

  Validates ``config`` first: a restored run's family may not be registered in
  this process, which :class:`config.ConfigError` then says in one line.
  """
  config_lib.validate(config)
  image_shape = data_lib.info(config.data.name).image_shape
  mlp = config.model.mlp
  if config.model.family == 'mlp' and mlp.stochastic_layers == 2:
    return hierarchical.TwoLayerVAE(tuple(image_shape), tuple(mlp.hidden_sizes),
                                    mlp.bottom_latent_dim, tuple(mlp.top_hidden_sizes),
                                    config.latent_dim, dtype=models.compute_dtype(config))
  return models.build_model(config, image_shape)


def init_state(model, tx, key, image_shape):
  """Fresh parameters and optimizer state (initialisation uses ``key`` only)."""
  params_key, dropout_key, z_key = jax.random.split(key, 3)
  dummy = jnp.zeros((1, *image_shape), jnp.float32)
  params = model.init({'params': params_key, 'dropout': dropout_key},
                      dummy, z_key)['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params))


def abstract_state(config, model, sharding=None):
  """Shapes and dtypes of the :class:`TrainState` of ``config`` (nothing computed).

  The optimizer is built only for its state's structure, which the schedule's
  length does not change. ``sharding`` defaults to the first local device.
  """
  tx = optim.make_optimizer(config, total_steps=1)
  shapes = jax.eval_shape(functools.partial(
      init_state, model, tx, image_shape=data_lib.info(config.data.name).image_shape),
      jax.random.key(0))
  sharding = sharding or jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)


def restore_state(workdir, warn=None):
  """``(config, model, step, state, meta)`` of the newest good checkpoint in ``workdir``.

  ``warn`` receives a line for each damaged checkpoint skipped on the way
  (default: logged).

  Raises:
    workdir.WorkdirError: ``workdir`` has no config.json.
    checkpointing.CheckpointError: it has no (usable) checkpoint.
  """
  config = config_lib.from_workdir(workdir)
  try:
    config_lib.validate(config)
  except config_lib.ConfigError as e:
    raise workdir_lib.WorkdirError(
        f'{os.path.join(workdir, workdir_lib.CONFIG_FILE)} is damaged: {e}') from e
  model = build_model(config)
  directory = os.path.join(os.path.abspath(workdir), workdir_lib.CHECKPOINT_DIR)
  fix = ('train it first: python -m vae_jax.main --config=<config.py> '
         f'--workdir={workdir}')
  if not os.path.isdir(directory):
    raise checkpointing.CheckpointError(f'{workdir} has no checkpoints/ directory: {fix}')
  manager = checkpointing.manager(directory)
  try:
    restored = checkpointing.restore_latest(manager, abstract_state(config, model),
                                            warn=warn or logging.warning)
  finally:
    manager.close()
  if restored is None:
    raise checkpointing.CheckpointError(f'{workdir} holds no checkpoint: {fix}')
  step, state, meta = restored
  return config, model, int(step), state, meta


def restore(workdir):
  """``(config, model, params, step)`` of a trained run, for inference only."""
  config, model, step, state, _ = restore_state(workdir)
  return config, model, state.params, step


def _final_test_row(workdir, num_epochs):
  """The test metrics logged at the end of the last epoch, or None while unfinished."""
  rows = [r for r in workdir_lib.read_metrics(workdir) if r['split'] == 'test']
  if not rows or rows[-1]['epoch'] != num_epochs:
    return None
  return rows[-1]


def restore_finished(workdir, config):
  """``(restored, test)`` of a finished run made with ``config``, or None.

  ``restored`` is :func:`restore`'s ``(config, model, params, step)``:
  no training data loaded, no training step compiled. ``test`` is the test
  metrics the run logged at its final step (the final evaluation gives the same
  numbers: same parameters, same evaluation key). A run whose newest checkpoint
  is behind its log (a crash between the two writes) counts as unfinished.

  Raises:
    workdir.WorkdirError: ``workdir`` holds a run with a different config.
  """
  if not os.path.exists(os.path.join(workdir, workdir_lib.CONFIG_FILE)):
    return None
  config_lib.check_workdir(workdir, config)
  row = _final_test_row(workdir, config.num_epochs)
  if row is None:
    return None
  try:
    restored = restore(workdir)
  except checkpointing.CheckpointError:
    return None
  if restored[3] != row['step']:
    return None
  return restored, {k: v for k, v in row.items() if k not in ('step', 'epoch', 'split')}
