"""Flax linen autoencoders and VAEs over three encoder/decoder families.

An *encoder* maps images ``[B, H, W, C]`` to features ``[B, F]``; a *decoder*
maps codes ``[B, D]`` to Bernoulli logits ``[B, H, W, C]``. The two model kinds
put a head between them:

* :class:`Autoencoder`: ``Dense(D)`` gives a point code.
* :class:`VAE`: ``Dense(2D)`` gives the mean and log-variance of q(z|x), and
  z = mean + exp(logvar / 2) * eps with eps drawn from an explicit PRNG key.

Both return a :class:`ModelOutput`; everything stays pure-functional, so the
same modules serve training, evaluation and notebooks through ``apply``.
"""

from typing import Any, Callable, NamedTuple, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

# log-variance is clipped into this range before exp(): exp(20) ≈ 5e8 and
# exp(-30) ≈ 1e-13 keep the KL, the sampling and its gradients finite in
# float32 while never binding for a healthy model (see docs in README).
LOGVAR_MIN = -30.0
LOGVAR_MAX = 20.0


class ModelOutput(NamedTuple):
  logits: jax.Array          # [B, H, W, C] decoder logits
  z: jax.Array               # [B, D] the code fed to the decoder
  mean: jax.Array            # [B, D] posterior mean (the code itself for an AE)
  logvar: Optional[jax.Array]  # [B, D] posterior log-variance; None for an AE


def reparameterize(key, mean, logvar):
  """z = mean + sigma * eps, eps ~ N(0, I) from ``key``; differentiable in both."""
  eps = jax.random.normal(key, mean.shape, mean.dtype)
  return mean + jnp.exp(0.5 * logvar) * eps


# ----------------------------------------------------------------------------
# Families
# ----------------------------------------------------------------------------
class MLPEncoder(nn.Module):
  """Flatten, then Dense + ReLU (+ dropout) for each hidden size."""
  hidden_sizes: Sequence[int] = (512,)
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = x.reshape((x.shape[0], -1))
    for size in self.hidden_sizes:
      h = nn.relu(nn.Dense(size)(h))
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    return h


class MLPDecoder(nn.Module):
  """Mirror of :class:`MLPEncoder`: hidden sizes reversed, then pixel logits."""
  image_shape: Sequence[int]
  hidden_sizes: Sequence[int] = (512,)
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, z, train: bool = False):
    h = z
    for size in reversed(tuple(self.hidden_sizes)):
      h = nn.relu(nn.Dense(size)(h))
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    n = 1
    for d in self.image_shape:
      n *= d
    return nn.Dense(n)(h).reshape((z.shape[0], *self.image_shape))


# Output phase a ∈ {0, 1} of a stride-2, 3-tap, 'SAME' transposed convolution
# reads input offsets (-1, 0) with kernel taps (0, 2) for even outputs and
# (none, 1) for odd ones (derived from lax.conv_transpose's padding (2, 1)).
_PHASE_TAPS = ((0, 2), (None, 1))


class ConvTranspose2x(nn.Module):
  """``nn.ConvTranspose(features, (3, 3), strides=(2, 2), padding='SAME')``, fast on CPU.

  XLA's CPU backend runs the lhs-dilated convolution behind a strided
  transposed conv 3-5x slower than a plain one. This module computes exactly
  the same function (same parameter names and shapes, equal outputs up to
  float rounding; see tests) as a stride-1 2x2 convolution producing the four
  output phases as channels, followed by depth-to-space.
  """
  features: int

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    zero = jnp.zeros_like(kernel[0, 0])

    def tap(th, tw):
      return zero if th is None or tw is None else kernel[th, tw]

    # w[dh, dw] holds, for every phase (a, b), the tap that reads offset (dh-1, dw-1).
    w = jnp.stack([jnp.stack([
        jnp.concatenate([tap(_PHASE_TAPS[a][dh], _PHASE_TAPS[b][dw])
                         for a in range(2) for b in range(2)], axis=-1)
        for dw in range(2)]) for dh in range(2)])  # [2, 2, in, 4 * out]
    y = jax.lax.conv_general_dilated(
        x, w, (1, 1), ((1, 0), (1, 0)), dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    b, h, wd, _ = y.shape
    y = y.reshape(b, h, wd, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(b, 2 * h, 2 * wd, self.features) + bias


class ConvEncoder(nn.Module):
  """Strided 3x3 convs (the Keras "deconv" VAE), then a small dense layer."""
  features: Sequence[int] = (32, 64)
  dense_size: int = 16
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = x
    for f in self.features:
      h = nn.relu(nn.Conv(f, (3, 3), strides=(2, 2), padding='SAME')(h))
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    h = h.reshape((h.shape[0], -1))
    h = nn.relu(nn.Dense(self.dense_size)(h))
    return nn.Dropout(self.dropout_rate, deterministic=not train)(h)


class ConvDecoder(nn.Module):
  """Dense to a coarse feature map, strided ConvTranspose back to the image."""
  image_shape: Sequence[int]
  features: Sequence[int] = (32, 64)
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, z, train: bool = False):
    height, width, channels = self.image_shape
    scale = 2 ** len(self.features)
    if height % scale or width % scale:
      raise ValueError(
          f'conv decoder needs image sides divisible by {scale}, got '
          f'{height}x{width}: use fewer model.conv_features')
    h0, w0 = height // scale, width // scale
    h = nn.relu(nn.Dense(h0 * w0 * self.features[-1])(z))
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    h = h.reshape((z.shape[0], h0, w0, self.features[-1]))
    for f in reversed(tuple(self.features)):
      h = nn.relu(ConvTranspose2x(f)(h))
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    return nn.ConvTranspose(channels, (3, 3), padding='SAME')(h)


def _rnn_cell(kind, size):
  if kind == 'lstm':
    return nn.OptimizedLSTMCell(size)
  if kind == 'gru':
    return nn.GRUCell(size)
  raise ValueError(f"unknown model.rnn_cell {kind!r}: use 'lstm' or 'gru'")


class RNNEncoder(nn.Module):
  """Reads the image row by row; the last hidden state is the feature vector."""
  size: int = 256
  cell: str = 'lstm'
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    rows = x.reshape((x.shape[0], x.shape[1], -1))  # [B, H, W*C]
    carry, _ = nn.RNN(_rnn_cell(self.cell, self.size), return_carry=True)(rows)
    h = carry[1] if self.cell == 'lstm' else carry  # LSTM carry is (c, h)
    return nn.Dropout(self.dropout_rate, deterministic=not train)(h)


class RNNDecoder(nn.Module):
  """Feeds the code at every step (Keras' RepeatVector) and emits one row a step."""
  image_shape: Sequence[int]
  size: int = 256
  cell: str = 'lstm'
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, z, train: bool = False):
    height, width, channels = self.image_shape
    h = nn.relu(nn.Dense(self.size)(z))
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    inputs = jnp.broadcast_to(h[:, None, :], (z.shape[0], height, self.size))
    outputs = nn.RNN(_rnn_cell(self.cell, self.size))(inputs)  # [B, H, size]
    rows = nn.Dense(width * channels)(outputs)
    return rows.reshape((z.shape[0], height, width, channels))


# ----------------------------------------------------------------------------
# Model kinds
# ----------------------------------------------------------------------------
class Autoencoder(nn.Module):
  """Deterministic autoencoder: the code is a point, ``Dense(latent_dim)(features)``."""
  encoder: nn.Module
  decoder: nn.Module
  latent_dim: int

  def setup(self):
    self.code = nn.Dense(self.latent_dim)

  def encode(self, x, train: bool = False):
    """Returns ``(code, None)`` so callers can treat both kinds alike."""
    return self.code(self.encoder(x, train=train)), None

  def decode(self, z, train: bool = False):
    return self.decoder(z, train=train)

  def __call__(self, x, key=None, train: bool = False):
    del key  # deterministic: no sampling
    code, _ = self.encode(x, train)
    return ModelOutput(self.decode(code, train), code, code, None)


class VAE(nn.Module):
  """Variational autoencoder with a diagonal Gaussian q(z|x) and N(0, I) prior."""
  encoder: nn.Module
  decoder: nn.Module
  latent_dim: int

  def setup(self):
    self.posterior = nn.Dense(2 * self.latent_dim)

  def encode(self, x, train: bool = False):
    """Returns ``(mean, logvar)``, each ``[B, latent_dim]``."""
    stats = self.posterior(self.encoder(x, train=train))
    mean, logvar = jnp.split(stats, 2, axis=-1)
    return mean, jnp.clip(logvar, LOGVAR_MIN, LOGVAR_MAX)

  def decode(self, z, train: bool = False):
    return self.decoder(z, train=train)

  def __call__(self, x, key, train: bool = False):
    mean, logvar = self.encode(x, train)
    z = reparameterize(key, mean, logvar)
    return ModelOutput(self.decode(z, train), z, mean, logvar)


# ----------------------------------------------------------------------------
# Building from a config
# ----------------------------------------------------------------------------
def _mlp(cfg, image_shape):
  return (MLPEncoder(tuple(cfg.hidden_sizes), cfg.dropout_rate),
          MLPDecoder(tuple(image_shape), tuple(cfg.hidden_sizes), cfg.dropout_rate))


def _conv(cfg, image_shape):
  return (ConvEncoder(tuple(cfg.conv_features), cfg.dense_size, cfg.dropout_rate),
          ConvDecoder(tuple(image_shape), tuple(cfg.conv_features), cfg.dropout_rate))


def _rnn(cfg, image_shape):
  return (RNNEncoder(cfg.rnn_size, cfg.rnn_cell, cfg.dropout_rate),
          RNNDecoder(tuple(image_shape), cfg.rnn_size, cfg.rnn_cell, cfg.dropout_rate))


# name -> fn(model_config, image_shape) -> (encoder, decoder). Extend with
# :func:`register_family` to train a new architecture without editing the library.
FAMILIES: dict[str, Callable[[Any, Sequence[int]], tuple]] = {
    'mlp': _mlp, 'conv': _conv, 'rnn': _rnn}
KINDS = {'autoencoder': Autoencoder, 'vae': VAE}


def register_family(name, builder):
  """Adds ``builder(model_config, image_shape) -> (encoder, decoder)`` as ``name``."""
  FAMILIES[name] = builder


def build_model(config, image_shape=(28, 28, 1)):
  """The model a full experiment config describes (``config.model``, ``config.latent_dim``)."""
  cfg = config.model
  if cfg.kind not in KINDS:
    raise ValueError(f'unknown model.kind {cfg.kind!r}: use one of {sorted(KINDS)}')
  if cfg.family not in FAMILIES:
    raise ValueError(
        f'unknown model.family {cfg.family!r}: use one of {sorted(FAMILIES)}')
  encoder, decoder = FAMILIES[cfg.family](cfg, image_shape)
  return KINDS[cfg.kind](encoder, decoder, config.latent_dim)
