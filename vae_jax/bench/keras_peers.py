r"""The benchmark's peers: the same models in Keras 3, trained with ``fit``.

  KERAS_BACKEND=jax python -m vae_jax.bench.keras_peers --data_dir=DIR \
      [--kinds=mlp,conv,rnn] [--images=60000,12800,12800] [--epochs=3] \
      [--policy=float32|mixed_bfloat16]

Runs in its own process (``vae_jax/bench/benchmark.py`` starts one per backend:
TensorFlow and XLA in one process have crashed the XLA compiler, and Keras
picks its backend at import) and prints one ``KERAS_RESULT {json}`` line.

The models match ``vae_jax``'s: the article's MLP VAE (784-512-2), the
Fashion-MNIST conv VAE (32, 64 stride-2 convs, Dense 16, mirrored transposed
convs) and the recurrent AE (LSTM 128 over the 28 rows, 32-D code, the code
repeated into an LSTM 128 that emits the rows). All three minimise the same
loss with Adam(1e-3) at batch 128: the Bernoulli negative log-likelihood of
the grey values from logits, summed over pixels, plus the KL for the VAEs.
The loss is computed by a layer in ``keras.ops``, so the very same model code
runs on every backend, with each backend's default compilation (``fit``'s
``jit_compile='auto'``). ``--policy=mixed_bfloat16`` sets Keras' global
mixed-precision policy (layers compute in bfloat16, variables stay float32),
the peer of ``compute_dtype='bfloat16'``; the loss layer is float32 under
either policy, as vae_jax's losses are.
"""

import argparse
import gzip
import json
import os
import resource
import time

import numpy as np

KINDS = {'mlp': 'mnist', 'conv': 'fashion_mnist', 'rnn': 'mnist'}


def _cpu_seconds():
  r = resource.getrusage(resource.RUSAGE_SELF)
  return r.ru_utime + r.ru_stime


def read_idx_images(data_dir, name):
  with gzip.open(os.path.join(data_dir, name, 'train-images-idx3-ubyte.gz'), 'rb') as f:
    raw = f.read()
  return (np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28, 1)
          .astype(np.float32) / 255.0)


def build(kind):
  """The Keras model of ``kind``; its output is the per-example loss."""
  import keras
  from keras import layers, ops

  class Sampling(layers.Layer):
    """z = mean + σ·eps in float32 under either policy, as vae_jax samples."""

    def __init__(self):
      super().__init__(dtype='float32')

    def build(self, input_shape):
      self.seed_generator = keras.random.SeedGenerator(0)

    def call(self, inputs):
      mean, logvar = inputs
      return mean + ops.exp(0.5 * logvar) * keras.random.normal(
          ops.shape(mean), seed=self.seed_generator)

  class Loss(layers.Layer):
    """Bernoulli NLL from logits (softplus(l) - x l), plus the KL if given; float32."""

    def __init__(self):
      super().__init__(dtype='float32')  # casts its inputs: the loss stays float32

    def call(self, inputs):
      x, logits, *posterior = inputs
      x, logits = ops.reshape(x, (-1, 784)), ops.reshape(logits, (-1, 784))
      loss = ops.sum(ops.softplus(logits) - x * logits, axis=-1)
      if posterior:
        mean, logvar = posterior
        loss += -0.5 * ops.sum(1 + logvar - ops.square(mean) - ops.exp(logvar), axis=-1)
      return loss

  inputs = keras.Input((28, 28, 1))
  if kind == 'rnn':
    h = layers.LSTM(128)(layers.Reshape((28, 28))(inputs))
    code = layers.Dense(32)(h)
    d = layers.RepeatVector(28)(layers.Dense(128, activation='relu')(code))
    rows = layers.Dense(28)(layers.LSTM(128, return_sequences=True)(d))
    loss = Loss()([inputs, rows])
  else:
    if kind == 'mlp':
      h = layers.Dense(512, activation='relu')(layers.Flatten()(inputs))
    else:
      h = layers.Conv2D(32, 3, strides=2, padding='same', activation='relu')(inputs)
      h = layers.Conv2D(64, 3, strides=2, padding='same', activation='relu')(h)
      h = layers.Dense(16, activation='relu')(layers.Flatten()(h))
    mean, logvar = layers.Dense(2)(h), layers.Dense(2)(h)
    z = Sampling()([mean, logvar])
    if kind == 'mlp':
      logits = layers.Dense(784)(layers.Dense(512, activation='relu')(z))
    else:
      d = layers.Reshape((7, 7, 64))(layers.Dense(7 * 7 * 64, activation='relu')(z))
      d = layers.Conv2DTranspose(64, 3, strides=2, padding='same', activation='relu')(d)
      d = layers.Conv2DTranspose(32, 3, strides=2, padding='same', activation='relu')(d)
      logits = layers.Conv2DTranspose(1, 3, padding='same')(d)
    loss = Loss()([inputs, logits, mean, logvar])
  model = keras.Model(inputs, loss)
  # fit's loss is the batch mean of the model's output (the target is ignored).
  model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=lambda _, per_example: per_example)
  return model


def run(data_dir, kinds, images, epochs, policy='float32'):
  """Trains each kind for ``epochs`` epochs; the first (compilation) is not timed."""
  import keras

  keras.mixed_precision.set_global_policy(policy)

  class Timer(keras.callbacks.Callback):
    def __init__(self):
      super().__init__()
      self.wall, self.cpu = [], []

    def on_epoch_begin(self, epoch, logs=None):
      self.t, self.c = time.perf_counter(), _cpu_seconds()

    def on_epoch_end(self, epoch, logs=None):
      self.wall.append(time.perf_counter() - self.t)
      self.cpu.append(_cpu_seconds() - self.c)

  backend = keras.backend.backend()
  out = {'keras': keras.__version__, 'backend': backend, 'policy': policy}
  if backend == 'tensorflow':
    import tensorflow as tf
    out['backend_version'] = tf.__version__
  elif backend == 'jax':
    import jax
    out['backend_version'] = jax.__version__
  for kind, n in zip(kinds, images):
    x = read_idx_images(data_dir, KINDS[kind])[:n]
    keras.utils.set_random_seed(0)
    model = build(kind)
    timer = Timer()
    model.fit(x, np.zeros(len(x), np.float32), epochs=epochs, batch_size=128, shuffle=True,
              verbose=0, callbacks=[timer])
    rates = [len(x) / w for w in timer.wall[1:]]
    out[kind] = {'images_per_s': {
        'median': float(np.median(rates)), 'min': float(min(rates)), 'max': float(max(rates)),
        'per_cpu_second': float(np.median([len(x) / c for c in timer.cpu[1:]])),
        'reps': len(rates), 'seconds_per_rep': float(np.median(timer.wall[1:]))},
        'num_images': len(x), 'epochs': epochs, 'dataset': KINDS[kind],
        'params': int(model.count_params()),
        'jit_compile': bool(getattr(model, 'jit_compile', False))}
  return out


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--data_dir', required=True)
  parser.add_argument('--kinds', default='mlp,conv,rnn')
  parser.add_argument('--images', default='60000,12800,12800',
                      help='training images per epoch, one per kind')
  parser.add_argument('--epochs', type=int, default=3, help='>= 2: the first is not timed')
  parser.add_argument('--policy', default='float32', choices=('float32', 'mixed_bfloat16'),
                      help="Keras' global dtype policy")
  args = parser.parse_args(argv)
  kinds = args.kinds.split(',')
  images = [int(n) for n in args.images.split(',')]
  if len(images) != len(kinds) or args.epochs < 2:
    parser.error('--images needs one count per kind and --epochs at least 2')
  print('KERAS_RESULT ' + json.dumps(run(args.data_dir, kinds, images, args.epochs, args.policy)),
        flush=True)


if __name__ == '__main__':
  main()
