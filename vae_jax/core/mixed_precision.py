"""Mixed precision as the models use it: low-precision dot operands, float32 everywhere else.

Under ``config.compute_dtype='bfloat16'`` every matrix product of the dense
layers and of the conv family (``conv_matmul.py``) rounds its two operands to
bfloat16 and accumulates and returns float32, in the forward pass and in both
products of the backward pass. Biases, activations, the tap sums of the
convolutions, the losses and the gradients of the parameters stay float32
(a product's weight gradient is accumulated and returned in float32, never
rounded); parameters and optimizer state are float32 throughout.

Why not flax's ``dtype`` convention (the whole layer, bias and activation
included, computed in bfloat16): XLA's CPU backend has bfloat16 arithmetic
only inside its dot kernels, so every bfloat16 add, ReLU and softplus is
converted to float32 and back, work a float32 step does not do.
``python -m vae_jax.bench.profile_ops`` measures where each dtype's step
spends its time (docs/results/benchmark.md). GPUs and TPUs have native
bfloat16 element-wise arithmetic, so there the float32 activations cost
memory traffic rather than conversions; the rule is the same on every
backend (its speed there is not measured yet: no device was lent).

The LSTM and GRU cells of the recurrent family are flax's and keep flax's
convention (gates computed in bfloat16).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp


def dot(a, b):
  """``a @ b``: plain for float32 operands; low-precision operands accumulate into float32.

  No custom gradient: for code that writes its own backward pass
  (``conv_matmul.conv_transpose_2x``); elsewhere use :func:`mm`.
  """
  if a.dtype == jnp.float32 and b.dtype == jnp.float32:
    return a @ b
  return jnp.dot(a, b, preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def matmul(x, w, dtype):
  """``x [..., K] @ w [K, N] -> float32 [..., N]`` with both operands rounded to ``dtype``.

  The backward pass rounds the incoming float32 gradient to ``dtype`` too, so
  its two products (``g @ w.T`` and ``x.T @ g``) also run on ``dtype``
  operands with float32 accumulation; the gradients it returns are in the
  dtypes of ``x`` and ``w`` (float32 for a parameter: no second rounding).
  """
  return dot(x.astype(dtype), w.astype(dtype))


def _matmul_fwd(x, w, dtype):
  # symbolic_zeros: x and w arrive as CustomVJPPrimal, telling whether each
  # needs a gradient (a first layer's input, the images, does not: its
  # product is then never formed, rather than formed and dropped by XLA).
  lo_x, lo_w = x.value.astype(dtype), w.value.astype(dtype)
  # Residuals in the low dtype (half the memory of the float32 inputs); a
  # zero-size array per input that needs a gradient carries its dtype, None
  # marks one that does not.
  needs = [jnp.zeros((0,), p.value.dtype) if p.perturbed else None for p in (x, w)]
  return dot(lo_x, lo_w), (lo_x, lo_w, *needs)


def _matmul_bwd(dtype, residuals, g):
  lo_x, lo_w, x_like, w_like = residuals
  if isinstance(g, jax.custom_derivatives.SymbolicZero):
    return None, None
  lo_g = g.astype(dtype)
  dx = None if x_like is None else dot(lo_g, lo_w.T).astype(x_like.dtype)
  dw = None if w_like is None else dot(lo_x.reshape(-1, lo_x.shape[-1]).T,
                                       lo_g.reshape(-1, lo_g.shape[-1])).astype(w_like.dtype)
  return dx, dw


matmul.defvjp(_matmul_fwd, _matmul_bwd, symbolic_zeros=True)


def mm(x, w):
  """``x @ w`` in the low dtype of ``x`` (see :func:`matmul`), or plain float32 ``x @ w``.

  The float32 path is the plain product, so float32 runs are unchanged by
  mixed precision existing.
  """
  if x.dtype == jnp.float32:
    return x @ w
  return matmul(x, w, x.dtype)


def dot_general_in(dtype):
  """A ``dot_general`` for ``nn.Dense(dot_general=...)`` computing its product by :func:`matmul`."""

  def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    del precision, preferred_element_type  # float32 accumulation is the point
    (lhs_contract, rhs_contract), batch = dimension_numbers
    if (tuple(lhs_contract) != (lhs.ndim - 1,) or tuple(rhs_contract) != (0,)
        or rhs.ndim != 2 or any(batch)):
      raise ValueError(f'mixed-precision dot_general takes a dense layer\'s product, '
                       f'got dimension numbers {dimension_numbers}')
    return matmul(lhs, rhs, dtype)

  return dot_general


def Dense(features, dtype=jnp.float32, **kwargs):  # pylint: disable=invalid-name
  """``nn.Dense(features)`` whose product computes in ``dtype`` (bias, output: float32).

  Named like the flax layer it returns, so parameter paths (``Dense_0``...) and
  checkpoints are those of ``nn.Dense``.
  """
  if jnp.dtype(dtype) == jnp.float32:
    return nn.Dense(features, **kwargs)
  return nn.Dense(features, dot_general=dot_general_in(jnp.dtype(dtype)), **kwargs)
