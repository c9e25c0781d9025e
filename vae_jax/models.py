"""Flax linen autoencoders and VAEs over three encoder/decoder families, and any other.

An *encoder* maps images ``[B, H, W, C]`` to features ``[B, F]``; a *decoder*
maps codes ``[B, D]`` to Bernoulli logits ``[B, H, W, C]``. The two model kinds
put a head between them:

* :class:`Autoencoder`: ``Dense(D)`` gives a point code.
* :class:`VAE`: ``Dense(2D)`` gives the mean and log-variance of q(z|x), and
  z = mean + exp(logvar / 2) * eps with eps drawn from an explicit PRNG key.

Both return a :class:`ModelOutput`; everything stays pure-functional, so the
same modules serve training, evaluation and notebooks through ``apply``.
"""

import importlib
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


def posterior_sample(mean, logvar, eps):
  """z = mean + σ·eps with σ = exp(logvar / 2), for standard-normal ``eps``.

  ``eps`` may have leading sample axes (``[S, B, D]`` against ``[B, D]``): the
  one place the reparameterisation is written, for training, IWAE and evaluation.
  """
  return mean + jnp.exp(0.5 * logvar) * eps


def reparameterize(key, mean, logvar):
  """z = mean + sigma * eps, eps ~ N(0, I) from ``key``; differentiable in both."""
  return posterior_sample(mean, logvar, jax.random.normal(key, mean.shape, mean.dtype))


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


# ----------------------------------------------------------------------------
# Convolutions as matrix products (fast on XLA's CPU backend)
# ----------------------------------------------------------------------------
# XLA's CPU backend computes the *weight gradient* of a convolution, and any
# lhs-dilated (transposed) convolution, 5-20x slower than a matrix product of
# the same FLOPs, while its dots run near the machine's matmul rate. The conv
# family therefore writes every convolution as dots plus cheap data movement.
# Each function computes exactly what the flax layer named in its docstring
# computes (same parameters, outputs equal up to float rounding: see
# tests/test_speed_equivalence.py) on any backend.

def _same_padding(size, kernel, stride):
  """``(out_size, (pad_lo, pad_hi))`` of lax's 'SAME' padding along one axis."""
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return out, (total // 2, total - total // 2)


def conv_same(x, kernel, stride=1):
  """``lax.conv_general_dilated(x, kernel, (stride,) * 2, 'SAME')`` (NHWC, HWIO) via dots.

  Few output channels (a decoder's last layer): one dot ``x @ kernel[in, kh*kw*out]``
  computes every tap's contribution at every pixel, then the taps are shifted
  and added (stride 1 only). Otherwise im2col: the ``kh*kw`` shifted (strided)
  views of the padded input side by side, times ``kernel[kh*kw*in, out]``.
  """
  kh, kw, cin, cout = kernel.shape
  b, h, w, _ = x.shape
  oh, ph = _same_padding(h, kh, stride)
  ow, pw = _same_padding(w, kw, stride)
  if stride == 1 and cout < cin:
    y = x.reshape(-1, cin) @ kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout)
    y = jnp.pad(y.reshape(b, h, w, kh, kw, cout),
                ((0, 0), ph, pw, (0, 0), (0, 0), (0, 0)))
    out = 0
    for i in range(kh):
      for j in range(kw):
        out = out + y[:, i:i + oh, j:j + ow, i, j, :]
    return out
  xp = jnp.pad(x, ((0, 0), ph, pw, (0, 0)))
  cols = [jax.lax.slice(xp, (0, i, j, 0),
                        (b, i + (oh - 1) * stride + 1, j + (ow - 1) * stride + 1, cin),
                        (1, stride, stride, 1))
          for i in range(kh) for j in range(kw)]
  patches = jnp.concatenate(cols, axis=-1) if len(cols) > 1 else cols[0]
  out = patches.reshape(-1, kh * kw * cin) @ kernel.reshape(kh * kw * cin, cout)
  return out.reshape(b, oh, ow, cout)


# A stride-2, 3x3, 'SAME' transposed convolution (lax.conv_transpose pads (2, 1))
# writes output row 2m + a from input rows m - 1 and m: for even rows (a = 0)
# kernel row 0 reads input row m - 1 and kernel row 2 reads row m; for odd rows
# (a = 1) kernel row 1 reads row m. Same for columns. _PHASE_TAPS[a][d] is the
# kernel row read at input offset d - 1 by output phase a (None: no tap).
_PHASE_TAPS = ((0, 2), (None, 1))
# The inverse map, for the backward pass: kernel row -> (the output phase that
# reads it, s) where the output reading input row m through it is in row m + s
# of that phase's grid. Tap 0 is read by output row 2(m + 1): phase 0, s = 1.
_TAP_PHASE_SHIFT = {0: (0, 1), 1: (1, 0), 2: (0, 0)}


def _taps_to_phases(y):
  """``y [B, H, W, 3, 3, F]`` (each tap's product at each input pixel) -> ``[B, 2H, 2W, F]``."""
  b, h, w, _, _, f = y.shape

  def shifted(th, tw, dh, dw):
    # y[:, m + dh - 1, n + dw - 1, th, tw], zero above / left of the image. Padding
    # each [B, H, W, F] term (not y itself) lets XLA fuse it into the sum.
    t = y[:, :h + dh - 1, :w + dw - 1, th, tw, :]
    return jnp.pad(t, ((0, 0), (1 - dh, 0), (1 - dw, 0), (0, 0)))

  def phase(a, c):
    out = 0
    for dh in range(2):
      for dw in range(2):
        th, tw = _PHASE_TAPS[a][dh], _PHASE_TAPS[c][dw]
        if th is not None and tw is not None:
          out = out + shifted(th, tw, dh, dw)
    return out

  out = jnp.stack([jnp.stack([phase(a, c) for c in range(2)], 3) for a in range(2)], 2)
  return out.reshape(b, 2 * h, 2 * w, f)   # [B, H, 2, W, 2, F] -> interleaved


def _phases_to_taps(g):
  """The transpose of :func:`_taps_to_phases`: ``[B, 2H, 2W, F] -> [B, H, W, 9, F]``.

  Every tap reads exactly one output phase, shifted by at most one row and
  column, so this is a copy, not the sum of nine zero-padded arrays that
  automatic differentiation of the slices would produce.
  """
  b, h2, w2, f = g.shape
  h, w = h2 // 2, w2 // 2
  g = g.reshape(b, h, 2, w, 2, f)
  taps = []
  for th in range(3):
    a, sh = _TAP_PHASE_SHIFT[th]
    for tw in range(3):
      c, sw = _TAP_PHASE_SHIFT[tw]
      taps.append(jnp.pad(g[:, sh:, a, sw:, c, :], ((0, 0), (0, sh), (0, sw), (0, 0))))
  return jnp.stack(taps, 3)


def _tap_kernel(kernel):
  """``[3, 3, in, out] -> [in, 9 * out]``: one dot gives every tap's product."""
  cin, cout = kernel.shape[2:]
  return kernel.transpose(2, 0, 1, 3).reshape(cin, 9 * cout)


@jax.custom_vjp
def conv_transpose_2x(x, kernel):
  """``lax.conv_transpose(x, kernel, (2, 2), 'SAME')`` for a 3x3 kernel, via dots.

  One dot ``x [B*H*W, in] @ [in, 9*out]`` computes each tap's contribution at
  each input pixel (exactly the 9 taps: no multiplications by zero), then the
  four output phases add up their taps (shifted by one pixel where the tap
  reads the previous row or column) and are interleaved into ``[B, 2H, 2W, out]``.
  The backward pass is written out (see :func:`_phases_to_taps`): the input and
  kernel gradients are again two dots. Reverse-mode only (``jax.grad``/``vjp``).
  """
  b, h, w, cin = x.shape
  cout = kernel.shape[-1]
  y = x.reshape(-1, cin) @ _tap_kernel(kernel)
  return _taps_to_phases(y.reshape(b, h, w, 3, 3, cout))


def _conv_transpose_2x_fwd(x, kernel):
  return conv_transpose_2x(x, kernel), (x, kernel)


def _conv_transpose_2x_bwd(residuals, g):
  x, kernel = residuals
  cin, cout = kernel.shape[2:]
  dy = _phases_to_taps(g).reshape(-1, 9 * cout)        # [B*H*W, 9*out]
  dx = (dy @ _tap_kernel(kernel).T).reshape(x.shape)
  dk = (x.reshape(-1, cin).T @ dy).reshape(cin, 3, 3, cout).transpose(1, 2, 0, 3)
  return dx, dk


conv_transpose_2x.defvjp(_conv_transpose_2x_fwd, _conv_transpose_2x_bwd)


class Conv(nn.Module):
  """``nn.Conv(features, (k, k), strides, padding='SAME')`` computed with :func:`conv_same`.

  Same parameters (``kernel [k, k, in, out]``, ``bias [out]``) and initialisers;
  give it the flax layer's name (``Conv_0``...) to keep checkpoints compatible.
  """
  features: int
  kernel_size: int = 3
  strides: int = 1

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return conv_same(x, kernel, self.strides) + bias


class ConvTranspose(nn.Module):
  """``nn.ConvTranspose(features, (k, k), padding='SAME')`` (stride 1, odd k) via :func:`conv_same`.

  With stride 1 and no kernel flip (flax's default), a 'SAME' transposed
  convolution is the 'SAME' convolution with the same kernel.
  """
  features: int
  kernel_size: int = 3

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    if k % 2 != 1:
      raise ValueError(f'ConvTranspose needs an odd kernel size, got {k}')
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return conv_same(x, kernel, 1) + bias


class ConvTranspose2x(nn.Module):
  """``nn.ConvTranspose(features, (3, 3), strides=(2, 2), padding='SAME')`` via :func:`conv_transpose_2x`."""
  features: int

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return conv_transpose_2x(x, kernel) + bias


class ConvEncoder(nn.Module):
  """Strided 3x3 convs (the Keras "deconv" VAE), then a small dense layer."""
  features: Sequence[int] = (32, 64)
  dense_size: int = 16
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = x
    for i, f in enumerate(self.features):
      # == nn.Conv(f, (3, 3), strides=(2, 2), padding='SAME'), same parameter names.
      h = nn.relu(Conv(f, 3, 2, name=f'Conv_{i}')(h))
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
          f'{height}x{width}: use fewer model.conv.features')
    h0, w0 = height // scale, width // scale
    h = nn.relu(nn.Dense(h0 * w0 * self.features[-1])(z))
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    h = h.reshape((z.shape[0], h0, w0, self.features[-1]))
    for f in reversed(tuple(self.features)):
      h = nn.relu(ConvTranspose2x(f)(h))
      h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)
    # == nn.ConvTranspose(channels, (3, 3), padding='SAME'), same parameter names.
    return ConvTranspose(channels, 3, name='ConvTranspose_0')(h)


def _rnn_cell(kind, size):
  if kind == 'lstm':
    return nn.OptimizedLSTMCell(size)
  if kind == 'gru':
    return nn.GRUCell(size)
  raise ValueError(f"unknown model.rnn.cell {kind!r}: use 'lstm' or 'gru'")


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
# Each built-in builder reads the shared fields of ``config.model`` (``cfg``) and
# its own node: ``cfg.mlp``, ``cfg.conv`` or ``cfg.rnn``.
def _mlp(cfg, image_shape):
  sizes = tuple(cfg.mlp.hidden_sizes)
  return (MLPEncoder(sizes, cfg.dropout_rate),
          MLPDecoder(tuple(image_shape), sizes, cfg.dropout_rate))


def _conv(cfg, image_shape):
  features = tuple(cfg.conv.features)
  return (ConvEncoder(features, cfg.conv.dense_size, cfg.dropout_rate),
          ConvDecoder(tuple(image_shape), features, cfg.dropout_rate))


def _rnn(cfg, image_shape):
  return (RNNEncoder(cfg.rnn.size, cfg.rnn.cell, cfg.dropout_rate),
          RNNDecoder(tuple(image_shape), cfg.rnn.size, cfg.rnn.cell, cfg.dropout_rate))


# name -> fn(model_config, image_shape) -> (encoder, decoder), where model_config
# is the whole ``config.model`` node. Extend with :func:`register_family` to
# train a new architecture without editing the library.
FAMILIES: dict[str, Callable[[Any, Sequence[int]], tuple]] = {
    'mlp': _mlp, 'conv': _conv, 'rnn': _rnn}
KINDS = {'autoencoder': Autoencoder, 'vae': VAE}


def register_family(name, builder):
  """Adds ``builder(model_config, image_shape) -> (encoder, decoder)`` as ``name``.

  ``model_config`` is the whole ``config.model`` node: the shared fields
  (``dropout_rate``, ``max_norm``, ...) and, by convention, the family's own
  fields in a node named after it (``config.model.<name>``), which the user's
  config adds; ``config.validate`` checks only the built-in families' nodes.
  """
  FAMILIES[name] = builder


def family_builder(name):
  """The builder of family ``name``: a registered name or ``'package.module:builder'``.

  The second form imports ``package.module`` (from ``sys.path``, e.g.
  ``$PYTHONPATH``) and takes its ``builder(model_config, image_shape) ->
  (encoder, decoder)``: a family defined outside vae_jax, usable from the
  command line (``--config.model.family=my_models:wide_mlp``) and restorable
  in any process that can import it. Either builder gets the whole
  ``config.model`` node, as :func:`register_family` describes.

  Raises:
    ValueError: the name is not registered, or the module or attribute is missing.
  """
  if name in FAMILIES:
    return FAMILIES[name]
  if not isinstance(name, str) or name.count(':') != 1:
    raise ValueError(f'use one of {sorted(FAMILIES)} or package.module:builder')
  module_name, attribute = name.split(':')
  try:
    module = importlib.import_module(module_name)
  except ImportError as e:
    raise ValueError(f'cannot import {module_name} ({e}): put its directory on '
                     'PYTHONPATH') from e
  builder = getattr(module, attribute, None)
  if not callable(builder):
    raise ValueError(f'{module_name} has no function {attribute}(model_config, '
                     'image_shape) -> (encoder, decoder)')
  return builder


def build_model(config, image_shape):
  """The one-stochastic-layer model of ``config.model`` and ``config.latent_dim``.

  ``experiment.build_model(config)`` validates the config, takes the image
  shape from its data set and also builds the two-layer VAE
  (hierarchical.py, which builds on this module); call that unless the images
  come from elsewhere.
  """
  cfg = config.model
  encoder, decoder = family_builder(cfg.family)(cfg, image_shape)
  return KINDS[cfg.kind](encoder, decoder, config.latent_dim)
