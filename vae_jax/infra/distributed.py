"""Multi-process start-up: ``jax.distributed.initialize`` from the environment.

``--config.distributed=True`` calls :func:`initialize` before anything touches
the devices. JAX finds the coordinator address, process count and process id
by itself on Cloud TPU VMs/pods, SLURM, Open MPI and GKE. Elsewhere (several
plain machines, or several processes on one machine) set on every process::

  VAE_JAX_COORDINATOR=host0:1234   # process 0's address and a free port
  VAE_JAX_NUM_PROCESSES=2
  VAE_JAX_PROCESS_ID=0             # 0 .. NUM_PROCESSES-1, different on each

Every process runs the same command with the same config and ``--workdir``
(a directory all of them can reach: orbax writes one checkpoint together).
On CPU the processes exchange gradients through Gloo (JAX's default CPU
collectives, ``jax_cpu_collectives_implementation='gloo'``).
"""

import os

import jax
from vae_jax.infra import errors


ENV_COORDINATOR = 'VAE_JAX_COORDINATOR'
ENV_NUM_PROCESSES = 'VAE_JAX_NUM_PROCESSES'
ENV_PROCESS_ID = 'VAE_JAX_PROCESS_ID'


class DistributedConfigError(errors.UserError, ValueError):
  """The multi-process environment variables are incomplete or invalid (a user error)."""


def _int_var(env, name):
  value = env.get(name)
  if value is None:
    raise DistributedConfigError(
        f'{ENV_COORDINATOR} is set but {name} is not: set {ENV_COORDINATOR}, '
        f'{ENV_NUM_PROCESSES} and {ENV_PROCESS_ID} on every process (or none '
        'of them, to let JAX detect the cluster)')
  try:
    return int(value)
  except ValueError:
    raise DistributedConfigError(f'{name}={value!r} is not an integer') from None


def initialize(env=None):
  """Calls ``jax.distributed.initialize``, with explicit arguments when the env sets them."""
  env = os.environ if env is None else env
  kwargs = {}
  if env.get(ENV_COORDINATOR):
    num = _int_var(env, ENV_NUM_PROCESSES)
    pid = _int_var(env, ENV_PROCESS_ID)
    if num < 1 or not 0 <= pid < num:
      raise DistributedConfigError(
          f'{ENV_PROCESS_ID}={pid} must be in 0..{ENV_NUM_PROCESSES}-1 = 0..{num - 1}')
    kwargs = dict(coordinator_address=env[ENV_COORDINATOR], num_processes=num,
                  process_id=pid)
  jax.distributed.initialize(**kwargs)
