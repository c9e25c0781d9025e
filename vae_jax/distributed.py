"""Multi-process start-up: ``jax.distributed.initialize`` from flags or environment.

JAX reads the coordinator address, process count and process id from the
cluster environment on TPU pods, SLURM and GKE. Elsewhere set
``VAE_JAX_COORDINATOR`` (host:port), ``VAE_JAX_NUM_PROCESSES`` and
``VAE_JAX_PROCESS_ID`` on every process.
"""

import os

import jax


def initialize():
  env = os.environ
  kwargs = {}
  if 'VAE_JAX_COORDINATOR' in env:
    kwargs = dict(coordinator_address=env['VAE_JAX_COORDINATOR'],
                  num_processes=int(env['VAE_JAX_NUM_PROCESSES']),
                  process_id=int(env['VAE_JAX_PROCESS_ID']))
  jax.distributed.initialize(**kwargs)
