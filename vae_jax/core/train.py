"""Training: one pure train step, scanned over chunks of an epoch, and the loop.

``train_step(state, batch, key) -> (state, metrics)`` is the single source of
truth. ``train_chunk`` runs it ``n`` times in one ``lax.scan``, drawing the
batches on the device from the resident training set, so the host only
dispatches one call per logging interval. Every random draw of step ``s`` comes
from ``fold_in(key, s)``: a run is a pure function of its config, and a resumed
run retraces the uninterrupted one bit for bit.

Data parallelism: the state lives replicated on a ``data`` mesh and each batch
is constrained to be sharded along it; the compiler averages the gradients.
On one device the same code runs unchanged.
"""

import contextlib
import dataclasses
import functools
import logging
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vae_jax.infra import checkpointing
from vae_jax.infra import chunks
from vae_jax.core import diagnostics
from vae_jax.core import experiment
from vae_jax.infra import interrupts
from vae_jax.infra import progress as progress_lib
from vae_jax.core import config as config_lib
from vae_jax.core import data as data_lib
from vae_jax.core import objective, optim
from vae_jax.infra import parallel, workdir as workdir_lib
from vae_jax.infra import run_clock
from vae_jax.infra.errors import NonFiniteError  # noqa: F401  (part of this module's API)
# The state a step updates; built and restored in vae_jax.core.experiment.
from vae_jax.core.experiment import TrainState, init_state  # noqa: F401  (this module's API)


def make_train_step(model, tx, training_objective: objective.Objective, binarize='none',
                    batch_sharding=None):
  """Builds the pure ``train_step(state, batch, key) -> (state, metrics)``.

  ``batch`` is ``[B, H, W, C]`` in [0, 1]; ``key`` is the run's training key,
  folded with the step inside, so the same key is passed every step. Metrics
  are batch means of the per-example terms (nats) plus the gradient norm and,
  for a VAE trained on the ELBO, ``kl_weight``: the β this step used.
  """

  def train_step(state, batch, key):
    if batch_sharding is not None:
      batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
    step_key = jax.random.fold_in(key, state.step)
    loss_key, binarize_key, noise_key = jax.random.split(step_key, 3)
    if binarize == 'dynamic':
      batch = data_lib.binarize_dynamic(binarize_key, batch)
    inputs = objective.corrupt(noise_key, batch, training_objective.noise,
                               training_objective.noise_level)

    def loss_fn(params):
      terms = objective.loss_terms(model, params, inputs, batch, loss_key, training_objective,
                                   train=True, step=state.step)
      return jnp.mean(terms['loss']), terms

    grads, terms = jax.grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {k: jnp.mean(v) for k, v in terms.items()}
    metrics['grad_norm'] = optax.tree_utils.tree_norm(grads)
    # The β this step used, so that a schedule can be read off the log.
    if training_objective.weights_kl:
      metrics['kl_weight'] = jnp.asarray(training_objective.beta(state.step), jnp.float32)
    new_state = state.replace(step=state.step + 1, params=params,
                              opt_state=opt_state)
    return new_state, metrics

  return train_step


def make_train_chunk(train_step):
  """``(state, images, order, offset, key, num_steps) -> (state, metrics[num_steps])``.

  ``order`` is the epoch's ``[steps_per_epoch, B]`` index matrix; rows
  ``offset .. offset + num_steps`` are trained in one ``lax.scan``: one
  dispatch per chunk, the state donated.
  """

  def train_chunk(state, images, order, offset, key, num_steps):
    rows = jax.lax.dynamic_slice_in_dim(order, offset, num_steps)

    def body(state, idx):
      return train_step(state, images[idx], key)

    return jax.lax.scan(body, state, rows)

  return jax.jit(train_chunk, donate_argnums=(0,), static_argnames='num_steps')


@functools.partial(jax.jit, static_argnums=(2, 3))
def epoch_order(key, epoch, num_examples, batch_size):
  """The shuffled ``[steps_per_epoch, B]`` indices of ``epoch`` (last partial batch dropped).

  Replicated like ``key``: every device gathers its share of each batch itself.
  """
  steps = num_examples // batch_size
  perm = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)
  return perm[:steps * batch_size].reshape(steps, batch_size)


def make_eval_fn(model, training_objective: objective.Objective, batch_sharding=None):
  """``(params, batches [NB, bs, ...], mask [NB, bs], key) -> {term: sum}``.

  Sums of the per-example terms over the unmasked examples; divide by the
  number of examples for means. Batch ``i`` samples with ``fold_in(key, i)``.
  """

  def eval_fn(params, batches, mask, key):
    def body(totals, inputs):
      i, x, m = inputs
      if batch_sharding is not None:
        x = jax.lax.with_sharding_constraint(x, batch_sharding)
      terms = objective.loss_terms(model, params, x, x, jax.random.fold_in(key, i),
                                   training_objective, train=False)
      return {k: totals[k] + jnp.sum(v * m) for k, v in terms.items()}, None

    names = jax.eval_shape(
        lambda: objective.loss_terms(model, params, batches[0], batches[0], key,
                                     training_objective, train=False)).keys()
    zeros = {k: jnp.zeros((), jnp.float32) for k in names}
    idx = jnp.arange(batches.shape[0])
    totals, _ = jax.lax.scan(body, zeros, (idx, batches, mask))
    return totals

  return jax.jit(eval_fn)


def pad_batches(images, batch_size):
  """``images [N, ...]`` -> ``(batches [NB, bs, ...], mask [NB, bs])`` with zero padding."""
  nb = math.ceil(images.shape[0] / batch_size)
  padded = chunks.pad_rows(images, nb * batch_size)
  mask = chunks.pad_rows(np.ones(images.shape[0], np.float32), nb * batch_size)
  return (padded.reshape(nb, batch_size, *images.shape[1:]),
          mask.reshape(nb, batch_size))


@dataclasses.dataclass
class Experiment:
  """Everything built from one config: data on device, model, jitted functions."""
  config: Any
  mesh: Any
  model: Any
  tx: Any
  objective: objective.Objective
  train_images: jax.Array   # [N, 28, 28, 1] on every device
  train_labels: np.ndarray
  test_images: np.ndarray   # host copy, binarised as evaluated
  test_labels: np.ndarray
  keys: dict
  train_step: Any
  train_chunk: Any
  eval_fn: Any

  @property
  def steps_per_epoch(self):
    return self.train_images.shape[0] // self.config.batch_size

  def init_state(self):
    init = jax.jit(functools.partial(init_state, self.model, self.tx,
                                     image_shape=self.train_images.shape[1:]),
                   out_shardings=parallel.replicated(self.mesh))
    return init(self.keys['init'])

  def evaluate(self, params, images=None):
    """Per-example means of every objective term on ``images`` (default: test set)."""
    images = self.test_images if images is None else images
    batches, mask = pad_batches(images, self.config.eval_batch_size)
    totals = self.eval_fn(params, parallel.put_sharded(batches, self.mesh, 1),
                          parallel.put_sharded(mask, self.mesh, 1), self.keys['eval'])
    return {k: float(v) / images.shape[0] for k, v in jax.device_get(totals).items()}


def build_experiment(config, mesh=None):
  """Validates ``config`` and builds an :class:`Experiment` (loads the data)."""
  config_lib.validate(config)
  mesh = parallel.make_mesh() if mesh is None else mesh
  ndev = mesh.devices.size
  for field in ('batch_size', 'eval_batch_size'):
    if config[field] % ndev:
      raise config_lib.ConfigError(
          f'config.{field}={config[field]} is not divisible by the {ndev} '
          'devices: pick a multiple of the device count')
  train_images, train_labels = data_lib.load_split(config.data, 'train')
  test_images, test_labels = data_lib.load_split(config.data, 'test')
  if config.batch_size > train_images.shape[0]:
    raise config_lib.ConfigError(
        f'config.batch_size={config.batch_size} exceeds the {train_images.shape[0]} '
        'training images: lower it (or raise data.num_train)')
  model = experiment.build_model(config)
  total_steps = train_images.shape[0] // config.batch_size * config.num_epochs
  if config.kl_schedule == 'cyclical' and config.kl_cycles > total_steps:
    raise config_lib.ConfigError(
        f'config.kl_cycles={config.kl_cycles} exceeds the {total_steps} training steps: '
        'lower kl_cycles or train longer')
  tx = optim.make_optimizer(config, total_steps)
  training_objective = objective.Objective.from_config(config, total_steps)
  batch_sharding = parallel.batch_sharded(mesh)
  train_step = make_train_step(model, tx, training_objective, config.data.binarize, batch_sharding)
  names = ('init', 'train', 'order', 'eval')
  # Made inside jit so that the keys are replicated on the mesh, one or many hosts.
  split = jax.jit(lambda: tuple(jax.random.split(jax.random.key(config.seed), len(names))),
                  out_shardings=parallel.replicated(mesh))()
  keys = dict(zip(names, split))
  return Experiment(
      config=config, mesh=mesh, model=model, tx=tx, objective=training_objective,
      train_images=parallel.put_replicated(train_images, mesh),
      train_labels=train_labels, test_images=test_images, test_labels=test_labels,
      keys=keys, train_step=train_step,
      train_chunk=make_train_chunk(train_step),
      eval_fn=make_eval_fn(model, training_objective, batch_sharding))


def _chunk_end(step, epoch_start, epoch_end, config):
  """Next step at which to stop and log: a log or checkpoint boundary, or the epoch end.

  Boundaries count from the start of each epoch, so every epoch has the same
  chunk lengths (log_every_steps and one remainder) and the scan compiles
  twice, not once per distinct length; they depend only on the step, so a
  resumed run stops where the uninterrupted one did.
  """
  done = step - epoch_start
  ends = [epoch_end, epoch_start + (done // config.log_every_steps + 1) * config.log_every_steps]
  if config.checkpoint_every_steps:
    every = config.checkpoint_every_steps
    ends.append(epoch_start + (done // every + 1) * every)
  return min(ends)


def _last_good(manager):
  last = manager.latest_step()
  return (f'the last good checkpoint is step {last} in {manager.directory}'
          if last is not None else 'no checkpoint was written yet')


def _check_finite(rows, start, manager):
  """Raises :class:`NonFiniteError` at the first step whose loss or gradients are not finite."""
  for name in ('loss', 'grad_norm'):
    bad = np.flatnonzero(~np.isfinite(rows[name]))
    if bad.size:
      raise NonFiniteError(
          f'{name} became {rows[name][bad[0]]} at step {start + int(bad[0]) + 1}; '
          f'{_last_good(manager)}. Lower learning_rate or check the data')


@jax.jit
def _all_finite(tree):
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _check_state_finite(state, step, manager):
  """Raises :class:`NonFiniteError` rather than checkpoint non-finite parameters.

  A step's loss and gradients can be finite while its update overflows (a
  huge learning rate): without this check that state would be saved and
  later named as the last good checkpoint.
  """
  if not bool(_all_finite((state.params, state.opt_state))):
    raise NonFiniteError(
        f'parameters became non-finite at step {step}; {_last_good(manager)}. '
        'Lower learning_rate or check the data')


def _image_summaries(exp, params, count=8):
  """Test reconstructions (top: input, bottom: output) and prior samples, as [1, H, W, 1]."""
  x = exp.test_images[:count]
  out = exp.model.apply({'params': params}, x, exp.keys['eval'])
  rec = np.asarray(jax.nn.sigmoid(out.logits))
  summaries = {'reconstructions': np.concatenate(
      [np.concatenate(list(x), 1), np.concatenate(list(rec), 1)], 0)[None]}
  if exp.config.model.kind == 'vae':
    z = jax.random.normal(exp.keys['eval'], (count, exp.config.latent_dim))
    samples = np.asarray(jax.nn.sigmoid(exp.model.apply(
        {'params': params}, z, method='decode')))
    summaries['samples'] = np.concatenate(list(samples), 1)[None]
  return summaries


def train_and_evaluate(config, workdir, *, allow_config_change=False, mesh=None):
  """Trains ``config`` in ``workdir``, resuming from its last checkpoint.

  The run holds ``workdir``'s lock throughout: a second run on it raises
  :class:`workdir.WorkdirLockedError` naming the holder. SIGINT or SIGTERM
  stops it at the next chunk boundary, where it saves a checkpoint and raises
  :class:`interrupts.Interrupted` (a BaseException: ``except Exception`` lets
  it through); rerunning resumes bit for bit. A full disk raises
  :class:`workdir.DiskFullError` with the last good checkpoint kept.

  Returns:
    dict with ``state`` (the final TrainState), ``experiment`` and ``test``
    (test-set metrics of the final parameters).
  """
  config_lib.validate(config)  # before anything is created on disk
  workdir = workdir_lib.prepare(workdir)
  with _lock(workdir), interrupts.stop_on_signals() as stop:
    return _train(config, workdir, stop, allow_config_change, mesh)


@contextlib.contextmanager
def _lock(workdir):
  """The workdir's lock, taken by process 0 for every process (they share the workdir)."""
  if jax.process_count() == 1:
    with workdir_lib.lock(workdir, 'train'):
      yield
    return
  from jax.experimental import multihost_utils
  with contextlib.ExitStack() as held:
    error = None
    if jax.process_index() == 0:
      try:
        held.enter_context(workdir_lib.lock(workdir, 'train'))
      except workdir_lib.WorkdirError as e:
        error = e
    # The others would otherwise wait for process 0 in their first collective.
    if not multihost_utils.broadcast_one_to_all(np.int32(error is None)):
      raise error or workdir_lib.WorkdirLockedError(
          f'{workdir} is in use by another run (process 0 could not lock it): wait for '
          'it to end, or use another directory')
    yield


def _restore(manager, workdir, state):
  """``(start_step, state, meta)``: the newest good checkpoint's, or ``(0, state, {})``."""
  abstract = _abstract(state)
  # Damaged checkpoints newer than the restored one are moved aside, so that
  # their steps can be saved again (one process only: it moves the files).
  restored = checkpointing.restore_latest(
      manager, abstract, set_aside=(os.path.join(workdir, workdir_lib.DAMAGED_CHECKPOINT_DIR)
                                    if jax.process_count() == 1 else None))
  if restored is None:
    return 0, state, {}
  start_step, state, meta = restored
  logging.info('resuming %s from step %d', workdir, start_step)
  return start_step, state, meta


def _abstract(state):
  return jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


def _interrupted(stop, step, manager):
  last = manager.latest_step()
  saved = (f'saved checkpoint {last} in {manager.directory}' if last is not None
           else 'no checkpoint was written yet')
  return stop.interrupted(f'interrupted at step {step}; {saved}; rerun the same '
                          'command to resume')


def _train(config, workdir, stop, allow_config_change, mesh):
  exp = build_experiment(config, mesh)
  config_lib.check_workdir(workdir, config, allow_config_change)
  is_main = jax.process_index() == 0
  state = exp.init_state()
  manager = checkpointing.manager(os.path.join(workdir, workdir_lib.CHECKPOINT_DIR),
                                  config.max_checkpoints)
  try:
    start_step, state, meta = _restore(manager, workdir, state)
    if start_step < config.num_epochs * exp.steps_per_epoch:
      # A rerun on a full disk stops here at once, not after an epoch of work.
      checkpointing.check_space(manager, _abstract(state))
    with checkpointing.disk_full_as_error(manager, _abstract(state)):
      if is_main:
        workdir_lib.truncate_metrics(workdir, start_step if start_step else -1)
        # Only once the checkpoints are known good: a failed start changes nothing.
        workdir_lib.write_config(workdir, config)
      if stop.requested():
        raise _interrupted(stop, start_step, manager)
      clock = run_clock.RunClock(meta.get(run_clock.META_KEY), start_step)
      state, step = _train_loop(exp, state, start_step, manager, workdir, stop, is_main,
                                clock)
    test = exp.evaluate(state.params)
    if stop.requested():  # the signal came during the final evaluation
      raise _interrupted(stop, step, manager)
  finally:
    manager.close()
  return {'state': state, 'experiment': exp, 'test': test}


def _train_loop(exp, state, start_step, manager, workdir, stop, is_main, clock):
  """Trains from ``start_step`` to the end; returns ``(state, step)``.

  ``clock`` (a :class:`run_clock.RunClock`) is saved with every checkpoint.
  """
  config = exp.config
  steps_per_epoch = exp.steps_per_epoch
  total_steps = config.num_epochs * steps_per_epoch
  log = workdir_lib.MetricsLog(workdir, tensorboard=is_main) if is_main else None
  progress = progress_lib.Progress('train', total_steps * config.batch_size,
                                   min(start_step, total_steps) * config.batch_size,
                                   enabled=config.progress and is_main)
  pending = None  # metrics of the chunk in flight: fetched after the next dispatch
  last_loss = float('nan')

  def flush():
    nonlocal pending, last_loss
    if pending is None:
      return
    metrics, start, end = pending
    pending = None
    rows = jax.device_get(metrics)          # the only host sync per interval
    _check_finite(rows, start, manager)
    means = {k: float(np.mean(v)) for k, v in rows.items()}
    if log is not None:
      log.write(end, (end - 1) // steps_per_epoch + 1, 'train', means)
    last_loss = means['loss']
    progress.update((end - start) * config.batch_size, loss=f'{last_loss:.2f}')

  def save(step):
    segments = clock.segments(step)
    checkpointing.save(manager, step, state, {
        'step': step, 'epoch': step / steps_per_epoch,
        'config': workdir_lib.config_to_dict(config), run_clock.META_KEY: segments})
    if is_main:
      run_clock.write(workdir, segments)

  step = start_step
  try:
    while step < total_steps:
      epoch = step // steps_per_epoch
      epoch_end = (epoch + 1) * steps_per_epoch
      order = epoch_order(exp.keys['order'], epoch, exp.train_images.shape[0],
                          config.batch_size)
      while step < epoch_end:
        end = _chunk_end(step, epoch * steps_per_epoch, epoch_end, config)
        state, metrics = exp.train_chunk(state, exp.train_images, order,
                                         step - epoch * steps_per_epoch, exp.keys['train'],
                                         num_steps=end - step)
        flush()
        pending = (metrics, step, end)
        step = end
        at_checkpoint = (config.checkpoint_every_steps
                         and (step - epoch * steps_per_epoch) % config.checkpoint_every_steps == 0)
        if step == epoch_end or at_checkpoint:
          flush()
          _check_state_finite(state, step, manager)  # before it is evaluated or saved
          if step == epoch_end:
            test = _end_of_epoch(exp, state, step, epoch, log)
            progress.log(f'epoch {epoch + 1}/{config.num_epochs} (step {step}/{total_steps}), '
                         f'loss {last_loss:.2f}, test loss {test["loss"]:.2f}')
          save(step)
        # A flag read on the host between chunks: no device sync is added.
        if stop.requested():
          if manager.latest_step() != step:
            flush()
            _check_state_finite(state, step, manager)
            save(step)
          raise _interrupted(stop, step, manager)
    flush()
  finally:
    progress.close()
    if log is not None:
      log.close()
  return state, step


def _end_of_epoch(exp, state, step, epoch, log):
  """Test metrics, latent diagnostics and images of the epoch; returns the test metrics."""
  config = exp.config
  test = exp.evaluate(state.params)
  if log is not None:
    log.write(step, epoch + 1, 'test', test)
  if jax.process_count() == 1:  # eager encode needs every device addressable
    # Active units, KL per dimension; warns when the posterior collapses.
    latent_diag = diagnostics.latent_diagnostics(
        exp.model, state.params, exp.test_images, per_dim=config.latent_dim <= 64)
    warning = diagnostics.collapse_warning(latent_diag)
    if warning:
      logging.warning('epoch %d: %s', epoch + 1, warning)
    log.write(step, epoch + 1, 'latent', latent_diag)
    log.write_images(step, _image_summaries(exp, state.params))
    log.flush()
  return test
