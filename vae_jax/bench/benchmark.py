r"""Measures this machine's roofline and each workload's share of it, beside its peers.

  vae-jax bench [--quick] [--json=bench.json] [--no-peers] [--data_dir=../shared/datasets]
  vae-jax bench --publish=bench.json  # into results/; then vae-jax publish

(``python -m vae_jax.bench.benchmark`` takes the same flags.)

One run measures, on the machine it runs on, at both compute dtypes
(``config.compute_dtype``: float32, and bfloat16 dots with float32 parameters):

* the machine's bfloat16 units (AMX, AVX512_BF16 or none, from the CPU flags);
* the machine's *roofline*: its float32 matmul peak (the fastest median of
  XLA's dot at the MLP VAE's shapes and at a large size, and of NumPy's), its
  bfloat16 peak (XLA's dot of bfloat16 inputs with float32 accumulation, the
  same shapes) and its memory bandwidth (one XLA elementwise pass, read and
  write, over a 256 MB array: beyond the caches);
* training images/s of the article's MLP VAE (784-512-2), of the conv
  Fashion-MNIST VAE and of the recurrent AE (an LSTM over the 28 rows; batch
  128 each), through ``train.build_experiment`` and its scanned
  ``train_chunk`` on the real data; and IWAE evaluation images/s at k = 5000;
  each in float32 and in bfloat16, the bfloat16 rows against the bfloat16 peak;
* each workload's matmul FLOPs and unavoidable bytes per image
  (``vae_jax/bench/roofline.py``: every dot and convolution of the traced
  program; parameters, gradients and Adam moments per step, each image once),
  hence its time lower bound ``max(FLOPs / peak, bytes / bandwidth)``, the
  share of that bound it reaches and which term binds;
* its peers, in the same run: the same models in Keras 3 on JAX and on
  TensorFlow (``vae_jax/bench/keras_peers.py``, one subprocess per backend and
  policy with ``KERAS_BACKEND`` set), trained with ``fit`` in float32 and under
  ``keras.mixed_precision`` ``'mixed_bfloat16'`` for the bfloat16 rows; and
  the targets of issues 16 and 28.

Each figure is the median of several timed repetitions after a warm-up
(min-max kept). The JSON also holds each figure per CPU-second of its process
(user + system time): on a machine shared with other jobs wall-clock rates
drop while per-CPU-second rates mostly do not. ``--quick`` is a smoke run
(under a minute; few steps, k = 100, the peers on a few hundred images, run
concurrently): its numbers are not the machine's.
"""

import argparse
import importlib.util
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np

from vae_jax.infra import blocks, flags
from vae_jax.bench import report as bench_report
from vae_jax.bench import roofline
from vae_jax.infra import paths

ROOT = paths.REPO_ROOT
PEERS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'keras_peers.py')
MLP_CONFIG = 'mnist_vae_2d'
CONV_CONFIG = 'fashion_mnist_conv_vae_2d'
RNN_CONFIG = 'mnist_rnn_ae'
# Training images per epoch for the peers (mlp, conv, rnn): about 5-15 s an
# epoch each on a quiet 2-core machine. Keras on JAX runs the conv VAE through
# XLA's CPU convolutions, far slower than oneDNN's, so it gets 5 batches.
PEER_IMAGES = {'jax': '60000,640,12800', 'tensorflow': '60000,12800,12800'}
PEER_IMAGES_QUICK = '256,128,128'
BANDWIDTH_ARRAY_BYTES = 1 << 28


# ----------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------
def _cpu_seconds():
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


MIN_SECONDS = {'value': 0.25}  # per repetition; --quick lowers it


def measure(run, work, reps, warmup=1, min_seconds=None):
  """Calls ``run()`` after ``warmup`` calls; ``work`` units are done per call.

  ``run`` must block until its work is finished. A repetition repeats ``run``
  until it lasts at least ``min_seconds`` (so that the CPU-time clock, which
  ticks coarsely, is accurate too). Returns the rate summary: median/min/max of
  work per wall second over ``reps`` repetitions, and the median per CPU second.
  """
  min_seconds = min_seconds or MIN_SECONDS['value']
  for _ in range(warmup):
    run()
  t = time.perf_counter()
  run()
  calls = max(1, math.ceil(min_seconds / max(time.perf_counter() - t, 1e-9)))
  wall, cpu = [], []
  for _ in range(reps):
    t, c = time.perf_counter(), _cpu_seconds()
    for _ in range(calls):
      run()
    wall.append(time.perf_counter() - t)
    cpu.append(_cpu_seconds() - c)
  rates = [calls * work / w for w in wall]
  return {'median': float(np.median(rates)), 'min': float(min(rates)),
          'max': float(max(rates)),
          'per_cpu_second': float(np.median([calls * work / c for c in cpu])),
          'reps': reps, 'calls_per_rep': calls, 'seconds_per_rep': float(np.median(wall))}


# ----------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------
def bench_matmul(quick, dtype='float32'):
  """GFLOP/s of XLA's dot (and NumPy's, in float32) with ``dtype`` inputs, float32 accumulation."""
  import jax
  import jax.numpy as jnp

  dt = jnp.dtype(dtype)
  results = {}
  small_iters = 20 if quick else 200
  for name, (m, k, n) in {'jnp_128x784x512': (128, 784, 512),
                          'jnp_128x512x784': (128, 512, 784)}.items():
    a = jnp.asarray(np.random.default_rng(0).standard_normal((m, k), np.float32), dt)
    b = jnp.asarray(np.random.default_rng(1).standard_normal((k, n), np.float32), dt)

    @jax.jit
    def chain(a, b):
      # Dependent dots in one call: no dispatch overhead, nothing hoisted.
      def body(_, s):
        y = jnp.dot(a * s.astype(dt), b, preferred_element_type=jnp.float32)
        return 1.0 + y[0, 0] * 1e-30
      return jax.lax.fori_loop(0, small_iters, body, jnp.float32(1))

    flops = 2 * m * k * n * small_iters
    rate = measure(lambda: chain(a, b).block_until_ready(), flops / 1e9, 3 if quick else 7)
    results[name] = {'shape': [m, k, n], 'gflops': rate}

  size = 512 if quick else 2048
  a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size), np.float32), dt)
  dot = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
  flops = 2 * size ** 3
  results[f'jnp_{size}'] = {'shape': [size] * 3, 'gflops': measure(
      lambda: dot(a, a).block_until_ready(), flops / 1e9, 3 if quick else 7)}
  if dt != jnp.float32:  # NumPy has no bfloat16 matmul kernel
    return results
  an = np.asarray(a)
  results[f'numpy_{size}'] = {'shape': [size] * 3, 'gflops': measure(
      lambda: an @ an, flops / 1e9, 3 if quick else 7)}
  return results


def bench_bandwidth(quick):
  """GB/s of one XLA elementwise pass (read + write, in place) over a large array."""
  import jax
  import jax.numpy as jnp

  n = BANDWIDTH_ARRAY_BYTES // 4
  step = jax.jit(lambda x: x * 1.0001 + 0.5, donate_argnums=0)
  box = {'x': step(jnp.zeros((n,), jnp.float32))}

  def run():
    box['x'] = step(box['x'])
    box['x'].block_until_ready()

  return {'array_bytes': 4 * n, 'gbytes_per_s': measure(run, 2 * 4 * n / 1e9, 3 if quick else 7)}


def xla_flops(jitted, *args, **kwargs):
  """XLA's FLOP count of one compiled call (dots plus elementwise work)."""
  analysis = jitted.lower(*args, **kwargs).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis.get('flops', float('nan')))


def load_config(name, data_dir, **overrides):
  """Config ``name`` of experiments/configs on ``data_dir``, quiet, with dotted ``overrides``."""
  from vae_jax.core import config as config_lib
  c = config_lib.load_file(name)
  return config_lib.apply_overrides(c, {'data.dir': data_dir, 'progress': False, **overrides})


def bench_train(config_name, data_dir, steps, reps, count_xla=True, **overrides):
  """Steady-state training images/s of a config: ``reps`` chunks of ``steps`` steps.

  ``overrides`` set config fields (``compute_dtype='bfloat16'``, ``data.num_train``).
  """
  import jax
  from vae_jax.core import train

  c = load_config(config_name, data_dir, **overrides)
  exp = train.build_experiment(c)
  state = exp.init_state()
  b = c.batch_size
  steps = min(steps, exp.steps_per_epoch)
  order = train.epoch_order(exp.keys['order'], 0, exp.train_images.shape[0], b)
  box = {'state': state}

  def run():
    box['state'], metrics = exp.train_chunk(box['state'], exp.train_images, order, 0,
                                            exp.keys['train'], num_steps=steps)
    jax.block_until_ready((box['state'], metrics))

  rate = measure(run, steps * b, reps)
  batch = exp.train_images[:b]
  step = jax.jit(exp.train_step)
  flops = roofline.matmul_flops(exp.train_step, box['state'], batch, exp.keys['train']) / b
  params = roofline.num_params(box['state'].params)
  return {
      'config': config_name, 'compute_dtype': c.compute_dtype, 'batch_size': b,
      'steps_per_rep': steps,
      'train_loop': 'scan', 'images_per_s': rate,
      'matmul_flops_per_image': flops, 'params': params,
      'bytes_per_image': roofline.train_bytes_per_image(params, b, batch.shape[1:]),
      'xla_flops_per_image': (xla_flops(step, box['state'], batch, exp.keys['train']) / b
                              if count_xla else None),  # a second compilation
  }, exp, box['state']


def bench_iwae(exp, params, num_samples, num_images, reps, count_xla=True):
  """Images/s of the IWAE-k bound (vae_jax.core.evaluate) on test images."""
  import jax
  import jax.numpy as jnp
  from vae_jax.core import evaluate

  images = np.asarray(exp.test_images[:num_images], np.float32)
  example_chunk = min(50, num_images)
  sample_chunk = min(100, num_samples)
  key = jax.random.key(0)

  def run():
    evaluate.iwae_per_example(exp.model, params, images, key, num_samples=num_samples,
                              example_chunk=example_chunk, sample_chunk=sample_chunk)

  rate = measure(run, num_images, reps)
  # Matmul FLOPs per image: one encoder pass per chunk of samples (log_weights
  # encodes the image it scores) and k decoder passes (public API only).
  model = exp.model
  x1 = jnp.asarray(images[:1])
  z1 = jnp.zeros((1, model.latent_dim), jnp.float32)
  encode = lambda p, x: model.apply({'params': p}, x, method='encode')
  per_image = (math.ceil(num_samples / sample_chunk) * roofline.matmul_flops(encode, params, x1)
               + num_samples * roofline.matmul_flops(
                   lambda p, z: model.apply({'params': p}, z, method='decode'), params, z1))
  # XLA's count of one chunk call (sample_chunk codes for example_chunk images).
  try:
    if not count_xla:
      raise TypeError('not counted')
    x = jnp.asarray(images[:example_chunk])
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(example_chunk))
    lse = jnp.zeros((example_chunk,), jnp.float32)
    xla = xla_flops(evaluate._accumulate, params, x, keys, 0, lse, lse, lse,
                    model=model, log_lik=evaluate._log_likelihood_fn('bernoulli', 1.0),
                    num=sample_chunk) * num_samples / sample_chunk / example_chunk
  except (AttributeError, TypeError):  # --quick, or evaluate's internals changed
    xla = None
  return {'num_samples': num_samples, 'num_images': num_images, 'images_per_s': rate,
          'matmul_flops_per_image': per_image, 'xla_flops_per_image': xla,
          'bytes_per_image': roofline.eval_bytes_per_image(images.shape[1:])}


# ----------------------------------------------------------------------------
# Peers: Keras 3 on each backend, one subprocess each
# ----------------------------------------------------------------------------
def start_peer(backend, data_dir, quick, policy='float32'):
  """Starts keras_peers.py on ``backend`` under a Keras dtype ``policy``; returns the
  process, or a dict if it cannot run."""
  missing = [m for m in ('keras', backend) if importlib.util.find_spec(m) is None]
  if missing:
    return {'error': f'not installed: {", ".join(missing)}'}
  images = PEER_IMAGES_QUICK if quick else PEER_IMAGES[backend]
  env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL='3')
  return subprocess.Popen(
      [sys.executable, PEERS_SCRIPT, f'--data_dir={data_dir}', f'--images={images}',
       f'--epochs={2 if quick else 3}', f'--policy={policy}'],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def finish_peer(proc):
  """The peer's result dict, or ``{'error': ...}`` with its last line of output."""
  if isinstance(proc, dict):
    return proc
  try:
    stdout, stderr = proc.communicate(timeout=3600)
  except subprocess.TimeoutExpired:
    proc.kill()
    return {'error': 'timed out after an hour'}
  for line in stdout.splitlines():
    if line.startswith('KERAS_RESULT '):
      return json.loads(line[len('KERAS_RESULT '):])
  tail = (stderr or stdout).strip().splitlines()[-1:]
  return {'error': f'exit {proc.returncode}: {" ".join(tail)}'}


# ----------------------------------------------------------------------------
# Machine
# ----------------------------------------------------------------------------
# The instruction-set flags that decide matmul speed on x86 CPUs.
ISA_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'avx512_fp16',
             'amx_tile', 'amx_bf16', 'amx_int8')


def _machine():
  import jax
  info = {'platform': platform.platform(), 'python': platform.python_version(),
          'jax': jax.__version__, 'backend': jax.default_backend(),
          'devices': [str(d) for d in jax.devices()], 'cpu_count': os.cpu_count()}
  from vae_jax.infra import run_clock
  info['cpu'] = run_clock.cpu_model()
  info['cpu_flags'] = _cpu_flags()
  info['bf16_units'] = bench_report.bf16_units(info['cpu_flags'])
  return info



def _cpu_flags():
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('flags'):
          present = set(line.split(':', 1)[1].split())
          return [flag for flag in ISA_FLAGS if flag in present]
  except OSError:
    pass
  return []


def _versions():
  out = {}
  for name in ('jax', 'jaxlib', 'flax', 'optax', 'keras', 'tensorflow'):
    try:
      from importlib import metadata
      out[name] = metadata.version(name)
    except Exception:  # pylint: disable=broad-except  # not installed
      pass
  return out


# ----------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------
def main(argv=None, prog='vae-jax bench'):
  parser = flags.Parser(prog, __doc__.split('\n\n')[0], [
      'vae-jax bench --json=bench.json',
      'vae-jax bench --publish=bench.json',
      'vae-jax bench --quick'])
  parser.add_argument('--quick', action='store_true', help='smoke run, under a minute')
  parser.add_argument('--json', default=None, help='write the numbers to this file')
  parser.add_argument('--peers', action=argparse.BooleanOptionalAction, default=True,
                      help='train the Keras peers on JAX and TensorFlow (default: yes)')
  # The old flag: the peers run anyway.
  parser.add_argument('--keras', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('--data_dir', default=os.environ.get('VAE_JAX_DATA_DIR') or
                      os.path.join(ROOT, '..', 'shared', 'datasets'),
                      help='directory with mnist/ and fashion_mnist/ IDX files')
  parser.add_argument('--iwae_samples', type=int, default=None,
                      help='k of the IWAE evaluation (default 5000; --quick: 100)')
  parser.add_argument('--publish', default=None, metavar='JSON',
                      help="measure nothing: copy this run's JSON into results/, where "
                           '`vae-jax publish` reads it (vae_jax/bench/publish.py)')
  parser.add_argument('--profile', default=None,
                      help="with --publish: vae_jax/bench/profile_ops.py's JSON")
  for hidden in ('--readme', '--docs'):  # with --publish: other files (tests)
    parser.add_argument(hidden, default=None, help=argparse.SUPPRESS)
  parser.add_argument('--allow_quick', action='store_true', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.publish:
    from vae_jax.bench import publish as publish_benchmark
    publish_benchmark.main([args.publish] + ([f'--profile={args.profile}'] if args.profile else []))
    return None
  data_dir = os.path.abspath(args.data_dir)
  quick = args.quick
  load_before = os.getloadavg()
  started = time.time()
  results = {'quick': quick, 'machine': _machine(), 'versions': _versions(),
             'load_average_before': load_before}
  # --quick: the peers run beside the benchmark (their numbers do not count);
  # a full run trains them after it, alone.
  peers = {}
  if args.peers and quick:
    peers = {(b, p): start_peer(b, data_dir, quick, p)
             for b in bench_report.PEER_BACKENDS for p in bench_report.PEER_POLICIES}

  sections = results['section_seconds'] = {}

  def timed(name, fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    sections[name] = time.perf_counter() - t
    return out

  for dtype, suffix in (('float32', ''), ('bfloat16', '_bfloat16')):
    matmul = results[f'matmul{suffix}'] = timed(f'matmul{suffix}', bench_matmul, quick, dtype)
    results[f'matmul_limit_gflops{suffix}'] = max(r['gflops']['median'] for r in matmul.values())
    results[f'matmul_limit_gflops_per_cpu_second{suffix}'] = max(
        r['gflops']['per_cpu_second'] for r in matmul.values())
  results['bandwidth'] = timed('bandwidth', bench_bandwidth, quick)

  overrides = {'data.num_train': 2048, 'count_xla': False} if quick else {}
  if quick:
    MIN_SECONDS['value'] = 0.05
  k = args.iwae_samples or (100 if quick else 5000)
  # float32 rows at the top level (as before issue 28), bfloat16 rows under 'bfloat16'.
  for dtype in ('float32', 'bfloat16'):
    out = results if dtype == 'float32' else results.setdefault('bfloat16', {})
    tag = '' if dtype == 'float32' else '_bfloat16'
    kw = dict(overrides, compute_dtype=dtype)
    out['train_mlp'], mlp_exp, mlp_state = timed(
        f'train_mlp{tag}', bench_train, MLP_CONFIG, data_dir, steps=16 if quick else 468,
        reps=3 if quick else 5, **kw)
    out['train_conv'], _, _ = timed(
        f'train_conv{tag}', bench_train, CONV_CONFIG, data_dir, steps=2 if quick else 40,
        reps=2 if quick else 5, **kw)
    out['train_rnn'], _, _ = timed(
        f'train_rnn{tag}', bench_train, RNN_CONFIG, data_dir, steps=2 if quick else 40,
        reps=2 if quick else 5, **kw)
    out['eval_iwae'] = timed(f'eval_iwae{tag}', bench_iwae, mlp_exp, mlp_state.params, k,
                             num_images=10 if quick else 100, reps=2 if quick else 3,
                             count_xla=not quick)
  if args.peers:
    for policy in bench_report.PEER_POLICIES:
      section = results[bench_report.peers_key(policy)] = {}
      for backend in bench_report.PEER_BACKENDS:
        proc = peers.get((backend, policy)) or start_peer(backend, data_dir, quick, policy)
        section[backend] = timed(f'peer_{backend}_{policy}', finish_peer, proc)
  results['load_average_after'] = os.getloadavg()
  results['seconds'] = time.time() - started
  bench_report.analyse(results)
  print(bench_report.markdown(results))
  if args.json:
    blocks.write_source(args.json, results)
  return results


if __name__ == '__main__':
  main(prog='python -m vae_jax.bench.benchmark')
