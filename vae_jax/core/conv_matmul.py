"""Convolutions written as matrix products, and the flax layers built on them.

XLA's CPU backend computes the *weight gradient* of a convolution, and any
lhs-dilated (transposed) convolution, 5-20x slower than a matrix product of
the same FLOPs, while its dots run near the machine's matmul rate. The conv
family therefore writes every convolution as dots plus cheap data movement.
Each function computes exactly what the flax layer named in its docstring
computes (same parameters, outputs equal up to float rounding: see
tests/test_speed_equivalence.py) on any backend. A module's ``dtype`` is the
dtype of its products' operands (``mixed_precision.py``): under
``config.compute_dtype='bfloat16'`` the input is rounded once, before the
patches are cut (so the data movement moves half the bytes), the kernel
stays float32 and is rounded inside the products (so its gradient is float32
too), the products accumulate in float32, and the tap sums and the bias add
run in float32.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vae_jax.core.mixed_precision import dot, mm


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
    y = mm(x.reshape(-1, cin), kernel.transpose(2, 0, 1, 3).reshape(cin, kh * kw * cout))
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
  out = mm(patches.reshape(-1, kh * kw * cin), kernel.reshape(kh * kw * cin, cout))
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

  The products take their operands in ``x``'s dtype and accumulate in float32
  (``mixed_precision.dot``); the kernel's gradient comes back in its own dtype.

  One dot ``x [B*H*W, in] @ [in, 9*out]`` computes each tap's contribution at
  each input pixel (exactly the 9 taps: no multiplications by zero), then the
  four output phases add up their taps (shifted by one pixel where the tap
  reads the previous row or column) and are interleaved into ``[B, 2H, 2W, out]``.
  The backward pass is written out (see :func:`_phases_to_taps`): the input and
  kernel gradients are again two dots. Reverse-mode only (``jax.grad``/``vjp``).
  """
  b, h, w, cin = x.shape
  cout = kernel.shape[-1]
  y = dot(x.reshape(-1, cin), _tap_kernel(kernel).astype(x.dtype))
  return _taps_to_phases(y.reshape(b, h, w, 3, 3, cout))


def _conv_transpose_2x_fwd(x, kernel):
  return conv_transpose_2x(x, kernel), (x, kernel)


def _conv_transpose_2x_bwd(residuals, g):
  x, kernel = residuals
  cin, cout = kernel.shape[2:]
  # The gradient is rounded to the operands' dtype first (a no-op in float32).
  dy = _phases_to_taps(g.astype(x.dtype)).reshape(-1, 9 * cout)        # [B*H*W, 9*out]
  dx = dot(dy, _tap_kernel(kernel).astype(x.dtype).T).reshape(x.shape)
  dk = dot(x.reshape(-1, cin).T, dy).reshape(cin, 3, 3, cout).transpose(1, 2, 0, 3)
  return dx.astype(x.dtype), dk.astype(kernel.dtype)


conv_transpose_2x.defvjp(_conv_transpose_2x_fwd, _conv_transpose_2x_bwd)


class Conv(nn.Module):
  """``nn.Conv(features, (k, k), strides, padding='SAME')`` computed with :func:`conv_same`.

  Same parameters (``kernel [k, k, in, out]``, ``bias [out]``) and initialisers;
  give it the flax layer's name (``Conv_0``...) to keep checkpoints compatible.
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return conv_same(jnp.asarray(x, self.dtype), kernel, self.strides) + bias


class ConvTranspose(nn.Module):
  """``nn.ConvTranspose(features, (k, k), padding='SAME')`` (stride 1, odd k) via :func:`conv_same`.

  With stride 1 and no kernel flip (flax's default), a 'SAME' transposed
  convolution is the 'SAME' convolution with the same kernel.
  """
  features: int
  kernel_size: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    if k % 2 != 1:
      raise ValueError(f'ConvTranspose needs an odd kernel size, got {k}')
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (k, k, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return conv_same(jnp.asarray(x, self.dtype), kernel, 1) + bias


class ConvTranspose2x(nn.Module):
  """``nn.ConvTranspose(features, (3, 3), strides=(2, 2), padding='SAME')`` via :func:`conv_transpose_2x`."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (3, 3, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros_init(), (self.features,))
    return conv_transpose_2x(jnp.asarray(x, self.dtype), kernel) + bias
