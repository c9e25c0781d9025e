r"""Measures this machine: matmul rate, training and IWAE-evaluation throughput.

  python experiments/benchmark.py [--quick] [--json=bench.json] [--keras] \
      [--data_dir=../shared/datasets]

One run measures, on the machine it runs on:

* the float32 matmul rate (GFLOP/s) of ``jnp.dot`` at the MLP VAE's shapes
  ([128,784]x[784,512] and [128,512]x[512,784]) and at 2048x2048, and of
  NumPy at 2048x2048. The fastest median is the machine's *matmul limit*;
* training images/s of the article's MLP VAE (784-512-2, batch 128, MNIST),
  of the convolutional Fashion-MNIST VAE and of the recurrent AE (an LSTM
  over the 28 rows, MNIST; batch 128 each), through
  ``train.build_experiment`` and its scanned ``train_chunk`` on the real data;
* importance-weighted evaluation images/s at k = 5000 (``vae_jax.evaluate``);
* the matmul FLOPs per image of each (counted from the jaxpr: every
  ``dot_general``/convolution, forward and backward), hence the GFLOP/s each
  reaches and its % of the matmul limit; XLA's own count (``cost_analysis``,
  which adds the elementwise work) is in the JSON;
* with ``--keras``: the same two VAEs in Keras 3 on TensorFlow (a subprocess:
  TensorFlow and XLA in one process have crashed the XLA compiler), trained
  with ``fit`` for a few epochs on the same data.

Each figure is the median of several timed repetitions after a warm-up (the
table shows min-max too). The JSON also holds each figure per CPU-second of
this process (user + system time): on a machine shared with other jobs,
wall-clock rates drop while per-CPU-second rates mostly do not, so compare
those between noisy runs. ``--quick`` is a smoke run (seconds; small k, few
steps): its numbers are not the machine's.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, 'experiments', 'configs')
MLP_CONFIG = 'mnist_vae_2d'
CONV_CONFIG = 'fashion_mnist_conv_vae_2d'
RNN_CONFIG = 'mnist_rnn_ae'


# ----------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------
def _cpu_seconds():
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def measure(run, work, reps, warmup=1, min_seconds=0.25):
  """Calls ``run()`` after ``warmup`` calls; ``work`` units are done per call.

  ``run`` must block until its work is finished. A repetition repeats ``run``
  until it lasts at least ``min_seconds`` (so that the CPU-time clock, which
  ticks coarsely, is accurate too). Returns the rate summary: median/min/max of
  work per wall second over ``reps`` repetitions, and the median per CPU second.
  """
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
# FLOP counting
# ----------------------------------------------------------------------------
def _sub_jaxprs(value):
  from jax.extend import core
  if isinstance(value, core.ClosedJaxpr):
    yield value.jaxpr
  elif isinstance(value, core.Jaxpr):
    yield value
  elif isinstance(value, (tuple, list)):
    for v in value:
      yield from _sub_jaxprs(v)


def _jaxpr_matmul_flops(jaxpr):
  """2 x multiply-adds of every dot_general and convolution, through scans and calls."""
  total = 0
  for eqn in jaxpr.eqns:
    name = eqn.primitive.name
    if name == 'dot_general':
      (lhs_contract, _), _ = eqn.params['dimension_numbers']
      lhs = eqn.invars[0].aval.shape
      total += 2 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in lhs_contract)
    elif name == 'conv_general_dilated':
      rhs = eqn.invars[1].aval.shape
      spec = eqn.params['dimension_numbers'].rhs_spec  # (out, in, spatial...)
      in_per_group = rhs[spec[1]]
      kernel = math.prod(rhs[d] for d in spec[2:])
      total += 2 * math.prod(eqn.outvars[0].aval.shape) * in_per_group * kernel
    inner = sum(_jaxpr_matmul_flops(j) for v in eqn.params.values() for j in _sub_jaxprs(v))
    if name == 'scan':
      inner *= eqn.params['length']
    total += inner
  return total


def matmul_flops(fn, *args):
  """Matmul FLOPs of one call of ``fn(*args)`` (forward, and backward if it differentiates)."""
  import jax
  return _jaxpr_matmul_flops(jax.make_jaxpr(fn)(*args).jaxpr)


def xla_flops(jitted, *args, **kwargs):
  """XLA's FLOP count of one compiled call (dots plus elementwise work)."""
  analysis = jitted.lower(*args, **kwargs).compile().cost_analysis()
  if isinstance(analysis, (list, tuple)):
    analysis = analysis[0]
  return float(analysis.get('flops', float('nan')))


# ----------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------
def bench_matmul(quick):
  import jax
  import jax.numpy as jnp

  results = {}
  small_iters = 20 if quick else 200
  for name, (m, k, n) in {'jnp_128x784x512': (128, 784, 512),
                          'jnp_128x512x784': (128, 512, 784)}.items():
    a = jnp.asarray(np.random.default_rng(0).standard_normal((m, k), np.float32))
    b = jnp.asarray(np.random.default_rng(1).standard_normal((k, n), np.float32))

    @jax.jit
    def chain(a, b):
      # Dependent dots in one call: no dispatch overhead, nothing hoisted.
      def body(_, s):
        return 1.0 + jnp.dot(a * s, b)[0, 0] * 1e-30
      return jax.lax.fori_loop(0, small_iters, body, jnp.float32(1))

    flops = 2 * m * k * n * small_iters
    rate = measure(lambda: chain(a, b).block_until_ready(), flops / 1e9, 3 if quick else 7)
    results[name] = {'shape': [m, k, n], 'gflops': rate}

  size = 512 if quick else 2048
  a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size), np.float32))
  dot = jax.jit(jnp.dot)
  flops = 2 * size ** 3
  results[f'jnp_{size}'] = {'shape': [size] * 3, 'gflops': measure(
      lambda: dot(a, a).block_until_ready(), flops / 1e9, 3 if quick else 7)}
  an = np.asarray(a)
  results[f'numpy_{size}'] = {'shape': [size] * 3, 'gflops': measure(
      lambda: an @ an, flops / 1e9, 3 if quick else 7)}
  return results


def _load_config(name, data_dir, **overrides):
  spec = importlib.util.spec_from_file_location(name, os.path.join(CONFIGS, name + '.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.data.dir = data_dir
  c.progress = False
  for key, value in overrides.items():
    target = c
    *path, last = key.split('.')
    for p in path:
      target = target[p]
    target[last] = value
  return c


def bench_train(config_name, data_dir, steps, reps, **overrides):
  """Steady-state training images/s of a config: ``reps`` chunks of ``steps`` steps."""
  import jax
  from vae_jax import train

  c = _load_config(config_name, data_dir, **overrides)
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
  flops = matmul_flops(exp.train_step, box['state'], batch, exp.keys['train']) / b
  return {
      'config': config_name, 'batch_size': b, 'steps_per_rep': steps,
      'train_loop': 'scan', 'images_per_s': rate,
      'matmul_flops_per_image': flops,
      'xla_flops_per_image': xla_flops(step, box['state'], batch, exp.keys['train']) / b,
  }, exp, box['state']


def bench_iwae(exp, params, num_samples, num_images, reps):
  """Images/s of the IWAE-k bound (vae_jax.evaluate) on test images."""
  import jax
  import jax.numpy as jnp
  from vae_jax import evaluate

  images = np.asarray(exp.test_images[:num_images], np.float32)
  example_chunk = min(50, num_images)
  sample_chunk = min(100, num_samples)
  key = jax.random.key(0)

  def run():
    evaluate.iwae_per_example(exp.model, params, images, key, num_samples=num_samples,
                              example_chunk=example_chunk, sample_chunk=sample_chunk)

  rate = measure(run, num_images, reps)
  # Matmul FLOPs per image: one encoder pass and k decoder passes (public API only).
  model = exp.model
  x1 = jnp.asarray(images[:1])
  z1 = jnp.zeros((1, model.latent_dim), jnp.float32)
  per_image = (matmul_flops(lambda p, x: model.apply({'params': p}, x, method='encode'), params, x1)
               + num_samples * matmul_flops(
                   lambda p, z: model.apply({'params': p}, z, method='decode'), params, z1))
  # XLA's count of one chunk call (sample_chunk codes for example_chunk images).
  try:
    x = jnp.asarray(images[:example_chunk])
    mean, logvar = evaluate._encode(model, params, x)
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(example_chunk))
    lse = jnp.zeros((example_chunk,), jnp.float32)
    xla = xla_flops(evaluate._accumulate, params, x, mean, logvar, keys, 0, lse, lse,
                    model=model, log_lik=evaluate._log_likelihood_fn('bernoulli', 1.0),
                    num=sample_chunk) * num_samples / sample_chunk / example_chunk
  except (AttributeError, TypeError):  # evaluate's internals changed: skip XLA's count
    xla = float('nan')
  return {'num_samples': num_samples, 'num_images': num_images, 'images_per_s': rate,
          'matmul_flops_per_image': per_image, 'xla_flops_per_image': xla}


# ----------------------------------------------------------------------------
# Keras 3 on TensorFlow, in a subprocess
# ----------------------------------------------------------------------------
def _read_idx_images(data_dir, name):
  import gzip
  with gzip.open(os.path.join(data_dir, name, 'train-images-idx3-ubyte.gz'), 'rb') as f:
    raw = f.read()
  return (np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28, 1)
          .astype(np.float32) / 255.0)


def keras_worker(data_dir, num_images, epochs):
  """Runs in the subprocess: trains both Keras VAEs with fit(), prints one JSON line."""
  os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  import keras
  import tensorflow as tf
  from keras import layers, ops

  class Sampling(layers.Layer):
    def build(self, input_shape):
      self.seed_generator = keras.random.SeedGenerator(0)

    def call(self, inputs):
      mean, logvar = inputs
      return mean + ops.exp(0.5 * logvar) * keras.random.normal(
          ops.shape(mean), seed=self.seed_generator)

  class VAE(keras.Model):
    def train_step(self, data):
      with tf.GradientTape() as tape:
        logits, mean, logvar = self(data, training=True)
        recon = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
            labels=data, logits=logits), axis=[1, 2, 3])
        kl = -0.5 * tf.reduce_sum(1 + logvar - tf.square(mean) - tf.exp(logvar), axis=1)
        loss = tf.reduce_mean(recon + kl)
      grads = tape.gradient(loss, self.trainable_weights)
      self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
      return {'loss': loss}

  def build(kind):
    inputs = keras.Input((28, 28, 1))
    if kind == 'mlp':   # the article's MNIST VAE: 784-512-2
      h = layers.Dense(512, activation='relu')(layers.Flatten()(inputs))
    else:               # the article's Fashion-MNIST "deconv" VAE
      h = layers.Conv2D(32, 3, strides=2, padding='same', activation='relu')(inputs)
      h = layers.Conv2D(64, 3, strides=2, padding='same', activation='relu')(h)
      h = layers.Dense(16, activation='relu')(layers.Flatten()(h))
    mean, logvar = layers.Dense(2)(h), layers.Dense(2)(h)
    z = Sampling()([mean, logvar])
    if kind == 'mlp':
      d = layers.Dense(512, activation='relu')(z)
      logits = layers.Reshape((28, 28, 1))(layers.Dense(784)(d))
    else:
      d = layers.Reshape((7, 7, 64))(layers.Dense(7 * 7 * 64, activation='relu')(z))
      d = layers.Conv2DTranspose(64, 3, strides=2, padding='same', activation='relu')(d)
      d = layers.Conv2DTranspose(32, 3, strides=2, padding='same', activation='relu')(d)
      logits = layers.Conv2DTranspose(1, 3, padding='same')(d)
    model = VAE(inputs, [logits, mean, logvar])
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    return model

  class Timer(keras.callbacks.Callback):
    def __init__(self):
      super().__init__()
      self.wall, self.cpu = [], []

    def on_epoch_begin(self, epoch, logs=None):
      self.t, self.c = time.perf_counter(), _cpu_seconds()

    def on_epoch_end(self, epoch, logs=None):
      self.wall.append(time.perf_counter() - self.t)
      self.cpu.append(_cpu_seconds() - self.c)

  out = {'keras': keras.__version__, 'tensorflow': tf.__version__}
  for kind, data in (('mlp', 'mnist'), ('conv', 'fashion_mnist')):
    x = _read_idx_images(data_dir, data)[:num_images]
    model = build(kind)
    timer = Timer()
    model.fit(x, epochs=epochs, batch_size=128, shuffle=True, verbose=0, callbacks=[timer])
    n = len(x)
    rates = [n / w for w in timer.wall[1:]]   # epoch 1 includes tracing
    out[kind] = {'images_per_s': {
        'median': float(np.median(rates)), 'min': float(min(rates)), 'max': float(max(rates)),
        'per_cpu_second': float(np.median([n / c for c in timer.cpu[1:]])),
        'reps': len(rates), 'seconds_per_rep': float(np.median(timer.wall[1:]))},
        'num_images': int(len(x)), 'epochs': epochs, 'dataset': data,
        'jit_compile': bool(getattr(model, 'jit_compile', False))}
  print('KERAS_RESULT ' + json.dumps(out))


def bench_keras(data_dir, quick):
  num_images, epochs = (2560, 2) if quick else (60000, 3)
  env = dict(os.environ, KERAS_BACKEND='tensorflow', TF_CPP_MIN_LOG_LEVEL='3')
  proc = subprocess.run(
      [sys.executable, os.path.abspath(__file__), '--_keras_worker', f'--data_dir={data_dir}',
       f'--_keras_images={num_images}', f'--_keras_epochs={epochs}'],
      capture_output=True, text=True, env=env, timeout=3600)
  for line in proc.stdout.splitlines():
    if line.startswith('KERAS_RESULT '):
      return json.loads(line[len('KERAS_RESULT '):])
  return {'error': (proc.stderr or proc.stdout).strip().splitlines()[-1:]}


# ----------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------
def _machine():
  import jax
  info = {'platform': platform.platform(), 'python': platform.python_version(),
          'jax': jax.__version__, 'backend': jax.default_backend(),
          'devices': [str(d) for d in jax.devices()], 'cpu_count': os.cpu_count()}
  try:
    with open('/proc/cpuinfo') as f:
      models = [l.split(':', 1)[1].strip() for l in f if l.startswith('model name')]
    info['cpu'] = models[0] if models else platform.processor()
  except OSError:
    info['cpu'] = platform.processor()
  return info


def _fmt(x, digits=0):
  return f'{x:,.{digits}f}'


def markdown(results):
  """The table: wall-clock rates, and the same per CPU-second of this process."""
  limit, limit_cpu = results['matmul_limit_gflops'], results['matmul_limit_gflops_per_cpu_second']
  rows = ['| measurement | median | min – max | per CPU-second | unit | matmul GFLOP / image '
          '| matmul GFLOP/s | % of matmul limit | % of limit per CPU-second |',
          '|---|---:|---:|---:|---|---:|---:|---:|---:|']
  for name, r in results['matmul'].items():
    g = r['gflops']
    label = f'{name.split("_")[0]} matmul {"x".join(map(str, r["shape"]))}'
    rows.append(f'| {label} | {_fmt(g["median"], 1)} | {_fmt(g["min"], 1)} – '
                f'{_fmt(g["max"], 1)} | {_fmt(g["per_cpu_second"], 1)} | GFLOP/s | | '
                f'{_fmt(g["median"], 1)} | {100 * g["median"] / limit:.0f}% | '
                f'{100 * g["per_cpu_second"] / limit_cpu:.0f}% |')

  def work_row(label, r):
    ips = r['images_per_s']
    gflop = r['matmul_flops_per_image'] / 1e9
    rate, rate_cpu = ips['median'] * gflop, ips['per_cpu_second'] * gflop
    return (f'| {label} | {_fmt(ips["median"])} | {_fmt(ips["min"])} – {_fmt(ips["max"])} | '
            f'{_fmt(ips["per_cpu_second"])} | images/s | {gflop:.4g} | {_fmt(rate, 1)} | '
            f'{100 * rate / limit:.0f}% | {100 * rate_cpu / limit_cpu:.0f}% |')

  rows.append(work_row('train MLP VAE 784-512-2, batch 128 (MNIST)', results['train_mlp']))
  rows.append(work_row('train conv VAE, batch 128 (Fashion-MNIST)', results['train_conv']))
  rows.append(work_row('train recurrent AE (LSTM 128, 32-D code), batch 128 (MNIST)',
                       results['train_rnn']))
  k = results['eval_iwae']['num_samples']
  rows.append(work_row(f'IWAE evaluation, k={k}, MLP VAE', results['eval_iwae']))
  keras = results.get('keras')
  if keras and 'error' not in keras:
    for kind, label in (('mlp', 'MLP VAE (MNIST)'), ('conv', 'conv VAE (Fashion-MNIST)')):
      r = dict(keras[kind], matmul_flops_per_image=results[f'train_{kind}']['matmul_flops_per_image'])
      rows.append(work_row(f'Keras {keras["keras"]}/TF {keras["tensorflow"]} fit, {label}', r))
  elif keras:
    rows.append(f'| Keras | failed: {keras["error"]} | | | | | | | |')
  return '\n'.join(rows)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--quick', action='store_true', help='seconds-long smoke run')
  parser.add_argument('--json', default=None, help='write the numbers to this file')
  parser.add_argument('--keras', action='store_true',
                      help='also train both VAEs in Keras 3 on TensorFlow (a subprocess)')
  parser.add_argument('--data_dir', default=os.environ.get('VAE_JAX_DATA_DIR') or
                      os.path.join(ROOT, '..', 'shared', 'datasets'),
                      help='directory with mnist/ and fashion_mnist/ IDX files')
  parser.add_argument('--iwae_samples', type=int, default=None,
                      help='k of the IWAE evaluation (default 5000; --quick: 100)')
  parser.add_argument('--_keras_worker', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('--_keras_images', type=int, default=0, help=argparse.SUPPRESS)
  parser.add_argument('--_keras_epochs', type=int, default=0, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  data_dir = os.path.abspath(args.data_dir)
  if args._keras_worker:
    keras_worker(data_dir, args._keras_images, args._keras_epochs)
    return None

  quick = args.quick
  load_before = os.getloadavg()
  started = time.time()
  results = {'quick': quick, 'machine': _machine(), 'load_average_before': load_before}
  results['matmul'] = bench_matmul(quick)
  results['matmul_limit_gflops'] = max(r['gflops']['median'] for r in results['matmul'].values())
  results['matmul_limit_gflops_per_cpu_second'] = max(
      r['gflops']['per_cpu_second'] for r in results['matmul'].values())

  overrides = {'data.num_train': 2048} if quick else {}
  results['train_mlp'], mlp_exp, mlp_state = bench_train(
      MLP_CONFIG, data_dir, steps=16 if quick else 468, reps=3 if quick else 5, **overrides)
  results['train_conv'], _, _ = bench_train(
      CONV_CONFIG, data_dir, steps=2 if quick else 40, reps=2 if quick else 5, **overrides)
  results['train_rnn'], _, _ = bench_train(
      RNN_CONFIG, data_dir, steps=2 if quick else 40, reps=2 if quick else 5, **overrides)
  k = args.iwae_samples or (100 if quick else 5000)
  results['eval_iwae'] = bench_iwae(mlp_exp, mlp_state.params, k,
                                    num_images=10 if quick else 100, reps=2 if quick else 3)
  if args.keras:
    results['keras'] = bench_keras(data_dir, quick)
  results['load_average_after'] = os.getloadavg()
  results['seconds'] = time.time() - started
  for key in ('train_mlp', 'train_conv', 'train_rnn', 'eval_iwae'):
    r = results[key]
    r['matmul_gflops'] = r['images_per_s']['median'] * r['matmul_flops_per_image'] / 1e9
    r['percent_of_matmul_limit'] = 100 * r['matmul_gflops'] / results['matmul_limit_gflops']
    r['matmul_gflops_per_cpu_second'] = (r['images_per_s']['per_cpu_second']
                                         * r['matmul_flops_per_image'] / 1e9)
    r['percent_of_matmul_limit_per_cpu_second'] = (
        100 * r['matmul_gflops_per_cpu_second'] / results['matmul_limit_gflops_per_cpu_second'])

  m = results['machine']
  print(f'{m["cpu"]}, {m["cpu_count"]} CPUs, JAX {m["jax"]} ({m["backend"]}); '
        f'load average {load_before[0]:.1f} before, {results["load_average_after"][0]:.1f} after'
        f'{"; --quick: smoke-test numbers" if quick else ""}\n')
  print(markdown(results))
  print(f'\nmatmul limit = fastest matmul median above: {results["matmul_limit_gflops"]:.1f} '
        f'GFLOP/s wall-clock, {results["matmul_limit_gflops_per_cpu_second"]:.1f} per CPU-second. '
        'On a shared machine compare the per-CPU-second columns.')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=2)
    print(f'wrote {args.json}')
  return results


if __name__ == '__main__':
  main()
