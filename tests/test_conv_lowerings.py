"""vae_jax/bench/conv_lowerings.py: its lowerings compute lax's convolutions; docs agree with its file."""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from vae_jax.bench import conv_lowerings
from conftest import assert_docs_block_current, assert_publish_refuses_missing_or_quick  # noqa: E402


def _rand(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, np.float32))


def test_space_to_depth_round_trip_and_channel_order():
  x = _rand(0, (2, 4, 6, 3))
  y = conv_lowerings.space_to_depth(x)
  assert y.shape == (2, 2, 3, 12)
  # Channel (row phase 1, column phase 0, c = 2) of coarse pixel (1, 2) is pixel (3, 4).
  assert y[1, 1, 2, 1 * 6 + 0 * 3 + 2] == x[1, 3, 4, 2]
  np.testing.assert_array_equal(conv_lowerings.depth_to_space(y), x)


def _lax_stride2(x, k):
  return jax.lax.conv_general_dilated(x, k, (2, 2), 'SAME', dimension_numbers=conv_lowerings.DN)


def _lax_transpose2(x, k):
  return jax.lax.conv_transpose(x, k, (2, 2), 'SAME', dimension_numbers=conv_lowerings.DN)


@pytest.mark.parametrize('fast,ref,shape,features', [
    (conv_lowerings.conv_stride2, _lax_stride2, (2, 8, 6, 3), 5),
    (conv_lowerings.conv_stride2, _lax_stride2, (1, 28, 28, 1), 4),
    (conv_lowerings.conv_transpose_stride2, _lax_transpose2, (2, 3, 5, 4), 6),
    (conv_lowerings.conv_transpose_stride2, _lax_transpose2, (1, 7, 7, 8), 2)])
def test_strided_convs_as_stride1_equal_lax(fast, ref, shape, features):
  x, k = _rand(1, shape), _rand(2, (3, 3, shape[-1], features))
  got = fast(x, k, conv_lowerings._stride1_conv_fn())  # pylint: disable=protected-access
  want = ref(x, k)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(want))))


@pytest.mark.parametrize('lowering', ['stride1', 'dots'])
def test_every_lowering_has_lax_gradients(lowering):
  # Only float rounding may differ (the sums run in another order).
  assert conv_lowerings.max_rel_grad_difference(lowering, batch=2) < 1e-5


def test_timed_program_takes_the_steps_lax_takes():
  kernels, images, codes_map = conv_lowerings.inputs(2, seed=2)
  want = conv_lowerings.descent_steps('lax', 2)(kernels, images, codes_map)
  kernels, images, codes_map = conv_lowerings.inputs(2, seed=2)   # the call donated them
  got = conv_lowerings.descent_steps('dots', 2)(kernels, images, codes_map)
  moved = False
  for a, b, k0 in zip(got, want, conv_lowerings.inputs(2, seed=2)[0]):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    moved |= bool(jnp.any(b != k0))
  assert moved   # the steps changed the kernels: the scan did not compute nothing


def test_unknown_lowering_is_named():
  with pytest.raises(ValueError, match="unknown lowering 'direct'"):
    conv_lowerings.forward('direct')


def test_op_counts_tell_xla_convolutions_from_ynnpack_ones():
  text = '\n'.join([
      '%fused_computation.1 (p0: f32[2,4], p1: f32[4,4]) -> f32[2,4] {',
      '  ROOT %convolution.1 = f32[2,4]{1,0} convolution(%p0, %p1), window={size=1}',
      '}',
      'ENTRY %main (a: f32[2,4], b: f32[4,4]) -> f32[2,4] {',
      '  %ynn_fusion = f32[2,4]{1,0} fusion(%a, %b), kind=kCustom, calls=%fused_computation.1, '
      'backend_config={"fusion_config":{"kind":"__ynn_fusion"}}',
      '  %convolution.2 = f32[4,4]{1,0} convolution(%a, %ynn_fusion), window={size=2}',
      '  ROOT %convolution.3 = f32[2,4]{1,0} convolution(%a, %convolution.2), window={size=1}',
      '}'])
  assert conv_lowerings.op_counts(text) == {
      'xla_convolutions': 2, 'ynn_convolutions': 1, 'ynn_fusions': 1}


def _row(lowering, median, cpu, xla, ynn):
  return {'lowering': lowering, 'label': conv_lowerings.LABELS[lowering],
          'rate': {'median': median, 'min': median - 1, 'max': median + 1,
                   'per_cpu_second': cpu, 'reps': 5},
          'xla_convolutions': xla, 'ynn_convolutions': ynn, 'ynn_fusions': ynn,
          'steps_per_call': 8,
          'max_rel_grad_difference': 3e-7}


def test_table_compares_each_lowering_with_the_dots():
  results = {'machine': {'cpu': 'Some CPU', 'cpu_count': 2}, 'jax': '0.0', 'batch': 128,
             'quick': False,
             'lowerings': [_row('lax', 100.0, 50.0, 6, 7), _row('dots', 1000.0, 600.0, 0, 0)]}
  text = conv_lowerings.markdown(results)
  assert ('| lax convolutions (what nn.Conv computes) | 100 | 99 – 101 | 50 | 0.10x (0.08x) '
          '| 6 | 7 | 3.0e-07 |') in text
  assert "Fastest here: vae_jax's dot-based layers." in text
  assert 'Some CPU (2 CPUs)' in text and 'mean nothing' not in text
  assert 'batch 128, 8 gradient steps scanned per call' in text


def test_docs_block_equals_what_the_result_file_says():
  assert_docs_block_current(conv_lowerings, 'conv_lowerings.json')


def test_publish_refuses_a_missing_file_or_a_quick_run(tmp_path):
  assert_publish_refuses_missing_or_quick(conv_lowerings.main, tmp_path)
