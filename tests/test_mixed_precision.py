"""config.compute_dtype='bfloat16': dot operands in bfloat16; accumulation, activations,
parameters, optimizer and losses in float32.

Tiny models (4x4 or 8x8 images) through the same builders as training; the
dtypes are read from the traced programs, not from the code's intent.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vae_jax.core import config as config_lib
from vae_jax.core import experiment, hierarchical, models, objective, optim, train

# bfloat16 keeps 8 significant bits: one rounding is a relative error of at most
# 2^-8. The per-example losses sum float32 terms, so the whole loss of a tiny
# model must stay within one such rounding of its float32 value.
LOSS_RTOL = 2.0 ** -8
FAMILIES = {'mlp': (4, 4, 1), 'conv': (8, 8, 1), 'rnn': (4, 4, 1)}


def _config(family, dtype, kind='vae'):
  c = config_lib.base_config()
  c.model.family, c.model.kind, c.compute_dtype = family, kind, dtype
  c.model.mlp.hidden_sizes = (16,)
  c.model.conv.features, c.model.conv.dense_size = (4, 8), 8
  c.model.rnn.size = 8
  config_lib.validate(c)
  return c


def _images(shape, n=6, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(n, *shape)).astype(np.float32))


def _state(model, c, shape):
  return experiment.init_state(model, optim.make_optimizer(c), jax.random.key(0), shape)


def _loss(model, c, params, x, step=None):
  obj = objective.Objective.from_config(c)
  return objective.loss_terms(model, params, x, x, jax.random.key(1), obj, train=False,
                              step=step)


def _eqns(jaxpr):
  """Every equation of a jaxpr, through scans, calls and custom derivatives."""
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in (value if isinstance(value, (tuple, list)) else (value,)):
        inner = getattr(sub, 'jaxpr', sub)
        if hasattr(inner, 'eqns'):
          yield from _eqns(inner)


def _dot_dtypes(jaxpr):
  """``{(lhs dtype, rhs dtype, output dtype)}`` of every dot_general of the program."""
  return {(str(e.invars[0].aval.dtype), str(e.invars[1].aval.dtype), str(e.outvars[0].aval.dtype))
          for e in _eqns(jaxpr) if e.primitive.name == 'dot_general'}


def _dtypes(jaxpr, primitives):
  """``{primitive: {dtypes of its outputs}}`` over the program."""
  out = {}
  for eqn in _eqns(jaxpr):
    if eqn.primitive.name in primitives:
      out.setdefault(eqn.primitive.name, set()).update(str(v.aval.dtype) for v in eqn.outvars)
  return out


def test_compute_dtype_is_validated_and_defaults_to_float32():
  assert config_lib.base_config().compute_dtype == 'float32'
  c = config_lib.base_config()
  c.compute_dtype = 'float16'
  with pytest.raises(config_lib.ConfigError, match=r'compute_dtype.*bfloat16'):
    config_lib.validate(c)


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_parameters_and_optimizer_state_stay_float32(family):
  shape = FAMILIES[family]
  for dtype in ('float32', 'bfloat16'):
    c = _config(family, dtype)
    model = models.build_model(c, shape)
    state = _state(model, c, shape)
    floats = {str(a.dtype) for a in jax.tree_util.tree_leaves((state.params, state.opt_state))
              if jnp.issubdtype(a.dtype, jnp.floating)}
    assert floats == {'float32'}, (family, dtype, floats)
    grads = jax.grad(lambda p: jnp.mean(_loss(model, c, p, _images(shape))['loss']))(state.params)
    assert {str(g.dtype) for g in jax.tree_util.tree_leaves(grads)} == {'float32'}


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_bfloat16_loss_is_within_one_rounding_of_float32(family):
  shape = FAMILIES[family]
  x = _images(shape)
  losses = {}
  for dtype in ('float32', 'bfloat16'):
    c = _config(family, dtype)
    model = models.build_model(c, shape)
    params = _state(model, c, shape).params   # the same float32 initial values
    losses[dtype] = np.asarray(_loss(model, c, params, x)['loss'])
    assert losses[dtype].dtype == np.float32
  np.testing.assert_allclose(losses['bfloat16'], losses['float32'], rtol=LOSS_RTOL)
  assert not np.array_equal(losses['bfloat16'], losses['float32']), 'bfloat16 was not used'


@pytest.mark.parametrize('family', sorted(FAMILIES))
def test_dots_take_bfloat16_operands_and_the_kl_and_likelihood_run_in_float32(family):
  shape = FAMILIES[family]
  c = _config(family, 'bfloat16')
  model = models.build_model(c, shape)
  params = _state(model, c, shape).params
  jaxpr = jax.make_jaxpr(lambda p: _loss(model, c, p, _images(shape)))(params).jaxpr
  dots = _dot_dtypes(jaxpr)
  assert {(lhs, rhs) for lhs, rhs, _ in dots} == {('bfloat16', 'bfloat16')}, dots
  assert 'float32' in {out for *_, out in dots}, 'the posterior head accumulates in float32'
  found = _dtypes(jaxpr, ('exp', 'log1p', 'reduce_sum', 'logistic'))
  # exp: reparameterisation and KL; log1p: the Bernoulli softplus; every sum: the
  # per-example losses.
  for name in ('exp', 'log1p', 'reduce_sum'):
    assert found[name] == {'float32'}, (name, found)
  out = _loss(model, c, params, _images(shape))
  assert {str(v.dtype) for v in out.values()} == {'float32'}


@pytest.mark.parametrize('family', ['mlp', 'conv'])
def test_backward_products_also_take_bfloat16_operands_and_the_rest_is_float32(family):
  """The gradient's products round their operands too; bias adds and ReLUs stay float32.

  (The recurrent family is left out: its LSTM/GRU cells are flax's and return
  bfloat16 gate products.)
  """
  shape = FAMILIES[family]
  c = _config(family, 'bfloat16')
  model = models.build_model(c, shape)
  params = _state(model, c, shape).params
  jaxpr = jax.make_jaxpr(jax.grad(lambda p: jnp.mean(_loss(model, c, p, _images(shape))
                                                        ['loss'])))(params).jaxpr
  dots = _dot_dtypes(jaxpr)
  assert dots == {('bfloat16', 'bfloat16', 'float32')}, dots
  n_dots = sum(e.primitive.name == 'dot_general' for e in _eqns(jaxpr))
  n_forward = sum(e.primitive.name == 'dot_general' for e in _eqns(
      jax.make_jaxpr(lambda p: _loss(model, c, p, _images(shape)))(params).jaxpr))
  assert n_dots >= 2 * n_forward, (n_dots, n_forward)   # the backward products are there
  found = _dtypes(jaxpr, ('max', 'add'))
  assert found['max'] == {'float32'} and found['add'] <= {'float32', 'int32'}, found
  # Weight gradients are accumulated and returned in float32, never rounded to
  # bfloat16 on the way (a rounded one would be exactly representable in it).
  grads = jax.grad(lambda p: jnp.mean(_loss(model, c, p, _images(shape))['loss']))(params)
  kernels = {jax.tree_util.keystr(k): np.asarray(v) for k, v in
             jax.tree_util.tree_leaves_with_path(grads) if 'kernel' in jax.tree_util.keystr(k)}
  rounded = [k for k, v in kernels.items() if np.array_equal(v, _round_bf16(v))]
  assert kernels and not rounded, rounded


def test_float32_default_traces_no_bfloat16_so_gradient_checks_stay_float32():
  c = _config('mlp', 'float32')
  model = models.build_model(c, (4, 4, 1))
  params = _state(model, c, (4, 4, 1)).params
  jaxpr = jax.make_jaxpr(jax.grad(lambda p: jnp.mean(_loss(model, c, p, _images((4, 4, 1)))
                                                        ['loss'])))(params).jaxpr
  dtypes = {str(v.aval.dtype) for e in _eqns(jaxpr) for v in e.outvars}
  assert 'bfloat16' not in dtypes


def test_bfloat16_gradient_points_where_the_float32_one_does():
  shape = FAMILIES['mlp']
  grads = {}
  for dtype in ('float32', 'bfloat16'):
    c = _config('mlp', dtype)
    model = models.build_model(c, shape)
    params = _state(model, c, shape).params
    g = jax.grad(lambda p: jnp.mean(_loss(model, c, p, _images(shape))['loss']))(params)
    grads[dtype] = np.concatenate([np.ravel(a) for a in jax.tree_util.tree_leaves(g)])
  a, b = grads['float32'], grads['bfloat16']
  # Cosine similarity: bfloat16's 2^-8 rounding per product may tilt it by ~1e-2 at most.
  assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.99


def test_two_layer_vae_log_weights_are_float32_with_bfloat16_dots():
  model = hierarchical.TwoLayerVAE((4, 4, 1), (8,), 4, (4,), 2, dtype=jnp.bfloat16)
  x = _images((4, 4, 1))
  params = model.init(jax.random.key(0), x, jax.random.key(1))['params']
  assert {str(a.dtype) for a in jax.tree_util.tree_leaves(params)} == {'float32'}
  c = _config('mlp', 'bfloat16')
  c.model.mlp.stochastic_layers = 2
  terms = _loss(model, c, params, x)
  assert {str(v.dtype) for v in terms.values()} == {'float32'}
  jaxpr = jax.make_jaxpr(lambda p: _loss(model, c, p, x))(params).jaxpr
  assert {(lhs, rhs) for lhs, rhs, _ in _dot_dtypes(jaxpr)} == {('bfloat16', 'bfloat16')}
  assert _dtypes(jaxpr, ('reduce_sum',))['reduce_sum'] == {'float32'}


class _PlainEncoder(nn.Module):
  """A user's module without a ``dtype`` field: it cannot take part, and need not."""

  @nn.compact
  def __call__(self, x, train=False):
    return nn.relu(nn.Dense(8)(x.reshape((x.shape[0], -1))))


class _PlainDecoder(nn.Module):
  image_shape: tuple

  @nn.compact
  def __call__(self, z, train=False):
    return nn.Dense(int(np.prod(self.image_shape)))(z).reshape((z.shape[0], *self.image_shape))


def test_registered_family_that_ignores_the_dtype_still_trains():
  models.register_family('plain_test', lambda cfg, shape: (_PlainEncoder(), _PlainDecoder(shape)))
  try:
    c = _config('plain_test', 'bfloat16')
    c.learning_rate = 1e-2
    shape = (4, 4, 1)
    model = models.build_model(c, shape)
    assert model.encoder == _PlainEncoder()   # left alone: it has no dtype field
    tx = optim.make_optimizer(c)
    state = experiment.init_state(model, tx, jax.random.key(0), shape)
    step = jax.jit(train.make_train_step(model, tx, objective.Objective.from_config(c)))
    x = _images(shape, n=16)
    # The same evaluation (fixed key, all 16 images) before and after 100 steps.
    before = float(jnp.mean(_loss(model, c, state.params, x)['loss']))
    for _ in range(100):
      state, metrics = step(state, x, jax.random.key(2))
      assert np.isfinite(float(metrics['loss']))
    after = float(jnp.mean(_loss(model, c, state.params, x)['loss']))
    assert after < before - 1, (before, after)
    assert {str(a.dtype) for a in jax.tree_util.tree_leaves(state.params)} == {'float32'}
  finally:
    del models.FAMILIES['plain_test']


# ----------------------------------------------------------------------------
# vae_jax/bench/precision_quality.py: its verdict rule and its published block
# ----------------------------------------------------------------------------
def test_precision_verdict_by_hand():
  from vae_jax.bench import precision_quality as pq
  # d = (1, 1, 1): no spread, the interval is the point 1.
  v = pq.paired_verdict([0, 0, 0], [1, 1, 1], margin=0.5)
  assert (v['low'], v['high'], v['verdict']) == (1.0, 1.0, pq.DIFFERENT)
  assert pq.paired_verdict([0, 0, 0], [1, 1, 1], margin=2)['verdict'] == pq.EQUIVALENT
  # d = (0, 1, -1): mean 0, sd 1; t(0.975, 2) = 4.3027 gives ± 4.3027 / √3 = ± 2.4842.
  v = pq.paired_verdict([0, 0, 0], [0, 1, -1], margin=1)
  assert np.isclose(v['high'], 2.4842, atol=1e-4) and v['verdict'] == pq.INCONCLUSIVE
  assert pq.paired_verdict([0, 0, 0], [0, 1, -1], margin=2.5)['verdict'] == pq.EQUIVALENT
  gates = pq.gate_results(('elbo >= -155', 'active_units >= 2'), {'elbo': -160, 'active_units': 2})
  assert [g['passed'] for g in gates] == [False, True]


def test_precision_quality_docs_block_is_current():
  # Its block is one row of vae_jax/publish.py's table: tests/test_publish.py checks
  # that every row refuses a missing or --quick source.
  from conftest import assert_docs_block_current
  from vae_jax.bench import precision_quality
  assert_docs_block_current(precision_quality, 'precision_quality.json')


def test_a_run_from_before_compute_dtype_reads_as_float32():
  from vae_jax.infra import workdir as workdir_lib
  new = workdir_lib.config_to_dict(config_lib.base_config())
  old = {k: v for k, v in new.items() if k != 'compute_dtype'}
  assert config_lib.differences(old, new) == {}
  new['compute_dtype'] = 'bfloat16'   # a change of dtype is a change of the run
  assert set(config_lib.differences(old, new)) == {"compute_dtype"}


# ----------------------------------------------------------------------------
# vae_jax/core/mixed_precision.py against NumPy on bfloat16-rounded operands
def _round_bf16(a):
  return np.asarray(jnp.asarray(a, jnp.bfloat16).astype(jnp.float32), np.float64)


@pytest.mark.parametrize('x_shape', [(5, 7), (2, 3, 7)])
def test_matmul_and_its_gradient_are_products_of_rounded_operands(x_shape):
  from vae_jax.core import mixed_precision
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
  w = jnp.asarray(rng.normal(size=(7, 4)), jnp.float32)
  g = jnp.asarray(rng.normal(size=(*x_shape[:-1], 4)), jnp.float32)
  y, vjp = jax.vjp(lambda a, b: mixed_precision.matmul(a, b, jnp.bfloat16), x, w)
  dx, dw = vjp(g)
  assert y.dtype == dx.dtype == dw.dtype == jnp.float32
  # float32 accumulation of exact bfloat16 products: within float32 rounding of
  # the float64 product of the rounded operands, far from the unrounded one.
  xr, wr, gr = _round_bf16(x), _round_bf16(w), _round_bf16(g)
  np.testing.assert_allclose(y, xr @ wr, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dx, gr @ wr.T, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(dw, xr.reshape(-1, 7).T @ gr.reshape(-1, 4), rtol=1e-5, atol=1e-5)
  exact = np.asarray(x, np.float64) @ np.asarray(w, np.float64)
  assert np.max(np.abs(np.asarray(y) - exact)) > 1e-4, 'the operands were not rounded'


def test_mm_is_the_plain_product_in_float32_and_dense_keeps_flax_parameter_paths():
  from vae_jax.core import mixed_precision
  x = _images((6,), n=3)
  w = _images((6, 2), n=1)[0]
  assert np.array_equal(mixed_precision.mm(x, w), x @ w)
  for dtype in (jnp.float32, jnp.bfloat16):
    dense = mixed_precision.Dense(5, dtype)
    assert isinstance(dense, nn.Dense)
    params = dense.init(jax.random.key(0), x)['params']
    assert {k: v.dtype for k, v in params.items()} == {'kernel': jnp.float32, 'bias': jnp.float32}
    assert dense.apply({'params': params}, x).dtype == jnp.float32
  assert mixed_precision.Dense(5, jnp.float32).dot_general is None   # flax's own product
  with pytest.raises(ValueError, match='dimension numbers'):
    mixed_precision.dot_general_in(jnp.bfloat16)(x, w, (((0,), (0,)), ((), ())))


def test_matmul_forms_no_gradient_product_for_an_input_that_needs_none():
  """The images entering the first layer need no gradient: only forward + weight-gradient products."""
  from vae_jax.bench import roofline
  from vae_jax.core import mixed_precision
  x, w = jnp.ones((5, 7)), jnp.ones((7, 4))
  one = 2 * 5 * 7 * 4

  def loss(x, w):
    return jnp.sum(mixed_precision.matmul(x, w, jnp.bfloat16))
  assert roofline.matmul_flops(jax.grad(loss, argnums=1), x, w) == 2 * one
  assert roofline.matmul_flops(jax.grad(loss, argnums=(0, 1)), x, w) == 3 * one
