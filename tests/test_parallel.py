"""Data parallelism: 8 devices train and evaluate like 1; two processes like one.

The multi-device runs happen in subprocesses: the number of CPU devices
(``--xla_force_host_platform_device_count``) and ``jax.distributed`` can only
be set before JAX starts, and this test process has already started it.

Why "equal within a tolerance" and not bit for bit: on one device the loss is a
mean over all 64 examples in one reduction; on 8 devices each device sums its 8
examples and an all-reduce adds the 8 partial sums. Float addition is not
associative, so gradients differ in the last bits (~1e-7 relative) and Adam
carries that into the parameters. Measured after 8 steps: parameters differ by
at most 6e-8 (absolute), train metrics by 2e-7 and test metrics by 1e-7
(relative). The tolerances below leave more than an order of magnitude of room
while still catching any real error (a dropped shard, or gradients summed
instead of averaged, moves parameters by ~1e-3 and metrics by percent).
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
from conftest import tiny_config  # noqa: E402  (pytest puts tests/ on the path)

NUM_DEVICES = 8
NUM_STEPS = 8          # one epoch of 512 images at batch 64
PARAM_RTOL, PARAM_ATOL = 1e-4, 1e-6
METRIC_RTOL = 1e-5


def _env(num_devices, **extra):
  env = dict(os.environ)
  flags = [f for f in env.get('XLA_FLAGS', '').split()
           if not f.startswith('--xla_force_host_platform_device_count')]
  env['XLA_FLAGS'] = ' '.join(flags + [f'--xla_force_host_platform_device_count={num_devices}'])
  env['JAX_PLATFORMS'] = 'cpu'
  env['PYTHONPATH'] = os.pathsep.join([ROOT, TESTS, env.get('PYTHONPATH', '')])
  env.update(extra)
  return env


# ----------------------------------------------------------------------------
# One process, 1 device vs 8 devices
# ----------------------------------------------------------------------------
def _worker(data_dir, out_path):
  """Runs in the subprocess: trains/evaluates on 1 and on 8 devices, saves both."""
  import jax
  from vae_jax.core import train
  from vae_jax.infra import parallel

  devices = jax.devices()
  assert len(devices) == NUM_DEVICES, devices
  result, arrays = {}, {}
  c = tiny_config(data_dir, eval_batch_size=40)
  for name, mesh in (('1', parallel.make_mesh(devices[:1])),
                     ('8', parallel.make_mesh(devices))):
    exp = train.build_experiment(c, mesh=mesh)
    state = exp.init_state()
    order = train.epoch_order(exp.keys['order'], 0, exp.train_images.shape[0],
                              c.batch_size)
    args = (exp.train_images, order, 0, exp.keys['train'])
    hlo = exp.train_chunk.lower(state, *args, num_steps=NUM_STEPS).compile().as_text()
    eval_hlo = exp.eval_fn.lower(
        state.params, parallel.put_sharded(np.zeros((5, 40, 28, 28, 1), np.float32), mesh, 1),
        parallel.put_sharded(np.zeros((5, 40), np.float32), mesh, 1),
        exp.keys['eval']).compile().as_text()
    result[f'hlo_{name}'] = {
        'all_reduce': 'all-reduce(' in hlo,
        'per_device_batch': f'f32[{c.batch_size // mesh.size},28,28,1]' in hlo,
        'eval_all_reduce': 'all-reduce(' in eval_hlo,
        'eval_per_device_batch': f'f32[{40 // mesh.size},28,28,1]' in eval_hlo,
    }
    state, metrics = exp.train_chunk(state, *args, num_steps=NUM_STEPS)
    leaves = jax.tree_util.tree_leaves(state)
    result[f'{name}_replicated'] = all(
        x.sharding.is_fully_replicated and len(x.sharding.device_set) == mesh.size
        for x in leaves)
    result[f'{name}_metrics'] = {k: np.asarray(v).tolist() for k, v in metrics.items()}
    result[f'{name}_test'] = exp.evaluate(state.params)
    for i, x in enumerate(jax.tree_util.tree_leaves(state.params)):
      arrays[f'{name}_{i}'] = np.asarray(x)
  np.savez(out_path + '.npz', **arrays)
  with open(out_path, 'w') as f:
    json.dump(result, f)


@pytest.fixture(scope='module')
def eight_devices(tmp_path_factory, data_dir):
  out = str(tmp_path_factory.mktemp('parallel') / 'result.json')
  code = f'import test_parallel; test_parallel._worker({data_dir!r}, {out!r})'
  proc = subprocess.run([sys.executable, '-c', code], env=_env(NUM_DEVICES),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out) as f:
    result = json.load(f)
  return result, dict(np.load(out + '.npz'))


def test_batch_is_sharded_and_gradients_all_reduced(eight_devices):
  result, _ = eight_devices
  # 8 devices: each holds 64 / 8 = 8 images of the batch, and the compiler adds
  # an all-reduce (the gradient mean); on one device neither appears.
  assert result['hlo_8'] == {'all_reduce': True, 'per_device_batch': True,
                             'eval_all_reduce': True, 'eval_per_device_batch': True}
  assert not result['hlo_1']['all_reduce'] and not result['hlo_1']['eval_all_reduce']


def test_state_stays_replicated(eight_devices):
  result, _ = eight_devices
  assert result['8_replicated'] and result['1_replicated']


def test_eight_devices_train_like_one(eight_devices):
  result, arrays = eight_devices
  one = sorted(k for k in arrays if k.startswith('1_'))
  assert one
  for k in one:
    np.testing.assert_allclose(arrays['8' + k[1:]], arrays[k],
                               rtol=PARAM_RTOL, atol=PARAM_ATOL, err_msg=k)
  m1, m8 = result['1_metrics'], result['8_metrics']
  assert m1.keys() == m8.keys()
  for k in m1:
    assert len(m1[k]) == NUM_STEPS
    np.testing.assert_allclose(m8[k], m1[k], rtol=METRIC_RTOL, atol=1e-6, err_msg=k)


def test_eight_devices_evaluate_like_one(eight_devices):
  result, _ = eight_devices
  t1, t8 = result['1_test'], result['8_test']
  assert t1.keys() == t8.keys() and 'elbo' in t1
  for k in t1:
    np.testing.assert_allclose(t8[k], t1[k], rtol=METRIC_RTOL, err_msg=k)


# ----------------------------------------------------------------------------
# jax.distributed start-up from the environment
# ----------------------------------------------------------------------------
def test_distributed_initialize_reads_environment(monkeypatch):
  import jax
  from vae_jax.infra import distributed

  calls = []
  monkeypatch.setattr(jax.distributed, 'initialize', lambda **kw: calls.append(kw))
  monkeypatch.setenv('VAE_JAX_COORDINATOR', 'host0:1234')
  monkeypatch.setenv('VAE_JAX_NUM_PROCESSES', '4')
  monkeypatch.setenv('VAE_JAX_PROCESS_ID', '3')
  distributed.initialize()
  assert calls == [dict(coordinator_address='host0:1234', num_processes=4, process_id=3)]

  calls.clear()
  for var in ('VAE_JAX_COORDINATOR', 'VAE_JAX_NUM_PROCESSES', 'VAE_JAX_PROCESS_ID'):
    monkeypatch.delenv(var)
  distributed.initialize()  # cluster auto-detection: no arguments
  assert calls == [{}]


def test_distributed_initialize_names_a_missing_variable(monkeypatch):
  import jax
  from vae_jax.infra import distributed

  monkeypatch.setattr(jax.distributed, 'initialize', lambda **kw: None)
  monkeypatch.setenv('VAE_JAX_COORDINATOR', 'host0:1234')
  monkeypatch.delenv('VAE_JAX_NUM_PROCESSES', raising=False)
  monkeypatch.setenv('VAE_JAX_PROCESS_ID', 'x')
  with pytest.raises(distributed.DistributedConfigError, match='VAE_JAX_NUM_PROCESSES'):
    distributed.initialize()
  monkeypatch.setenv('VAE_JAX_NUM_PROCESSES', '2')
  with pytest.raises(distributed.DistributedConfigError, match='VAE_JAX_PROCESS_ID'):
    distributed.initialize()
  monkeypatch.setenv('VAE_JAX_PROCESS_ID', '2')
  with pytest.raises(distributed.DistributedConfigError, match='VAE_JAX_PROCESS_ID'):
    distributed.initialize()


# ----------------------------------------------------------------------------
# Two processes (2 CPU devices each) vs one process with 4 devices
# ----------------------------------------------------------------------------
def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _write_config(path, data_dir):
  path.write_text(textwrap.dedent(f'''\
      from conftest import tiny_config

      def get_config():
        return tiny_config({data_dir!r}, eval_batch_size=40, num_epochs=2)
  '''))


def _train_cmd(config_path, workdir):
  return [sys.executable, '-m', 'vae_jax.main', f'--config={config_path}',
          f'--workdir={workdir}', '--quiet']


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path, data_dir):
  from vae_jax.core import experiment
  from vae_jax.infra import workdir as workdir_lib

  config_path = tmp_path / 'tiny_config.py'
  _write_config(config_path, data_dir)
  multi, single = tmp_path / 'two_processes', tmp_path / 'one_process'
  port = _free_port()
  procs = [subprocess.Popen(
      _train_cmd(config_path, multi) + ['--config.distributed=True'],
      env=_env(2, VAE_JAX_COORDINATOR=f'localhost:{port}', VAE_JAX_NUM_PROCESSES='2',
               VAE_JAX_PROCESS_ID=str(i)),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
  single_proc = subprocess.run(_train_cmd(config_path, single), env=_env(4),
                               capture_output=True, text=True, timeout=600)
  outputs = [p.communicate(timeout=600) for p in procs]
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]
  assert single_proc.returncode == 0, single_proc.stderr[-3000:]

  # Only process 0 writes metrics and TensorBoard: every row appears once.
  rows = [r for r in workdir_lib.read_metrics(str(multi)) if r['split'] in ('train', 'test')]
  ref = [r for r in workdir_lib.read_metrics(str(single)) if r['split'] in ('train', 'test')]
  assert [(r['step'], r['split']) for r in rows] == [(r['step'], r['split']) for r in ref]
  assert len({(r['step'], r['split']) for r in rows}) == len(rows)
  assert len(os.listdir(multi / 'tensorboard')) == 1
  for a, b in zip(rows, ref):
    for k in ('loss', 'elbo', 'kl', 'recon'):
      np.testing.assert_allclose(a[k], b[k], rtol=METRIC_RTOL, err_msg=f'{k} at {a["step"]}')
  # Both processes print the same test metrics.
  assert outputs[0][0].splitlines()[-1] == outputs[1][0].splitlines()[-1]

  # The checkpoint both processes saved together restores, and equals the
  # single-process run's parameters.
  _, _, params_multi, step_multi = experiment.restore(str(multi))
  _, _, params_single, step_single = experiment.restore(str(single))
  assert step_multi == step_single == 16
  import jax
  for a, b in zip(jax.tree_util.tree_leaves(params_multi),
                  jax.tree_util.tree_leaves(params_single), strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=PARAM_RTOL, atol=PARAM_ATOL)
