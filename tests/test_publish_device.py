"""The GPU check's block in docs/performance.md is what results/gpu/ says."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from vae_jax.bench import publish_device
from vae_jax.infra.blocks import PublishError


def test_docs_block_equals_what_the_result_files_say():
  with open(os.path.join(ROOT, 'docs', 'performance.md')) as f:
    text = f.read()
  start = text.index(publish_device.BEGIN) + len(publish_device.BEGIN) + 1
  published = text[start:text.index(publish_device.END) - 1]
  assert published == publish_device.block(), (
      'docs/performance.md is stale: run vae-jax publish device')


def test_tests_line_reads_pytest_summary_and_failures(tmp_path):
  log = tmp_path / 'pytest.log'
  log.write_text('..F.\nFAILED tests/test_a.py::test_b - AssertionError\n'
                 '1 failed, 92 passed, 2 warnings in 108.67s (0:01:48)\n')
  line = publish_device.tests_line(str(log))
  assert 'precision: 1 failed, 92 passed;' in line and '`tests/test_a.py::test_b`' in line
  log.write_text('no summary here\n')
  with pytest.raises(PublishError, match='no pytest summary'):
    publish_device.tests_line(str(log))


def test_precision_notes_are_the_differences_of_the_rows():
  row = dict(num_examples=10, data='mnist', step=5, num_samples=50, seed=0, machine='m')
  evals = [dict(row, backend='gpu', matmul_precision='default', neg_elbo=95.5, nll=85.25,
                seconds=2.0),
           dict(row, backend='gpu', matmul_precision='highest', neg_elbo=95.0, nll=85.0,
                seconds=6.0),
           dict(row, backend='cpu', matmul_precision='highest', neg_elbo=94.75, nll=85.0,
                seconds=60.0)]
  text = publish_device.precision_table(evals)
  assert '-ELBO +5.0e-01, NLL +2.5e-01 nats; full float32 took 3.0x as long' in text
  assert 'GPU (full float32) minus CPU: -ELBO +2.5e-01, NLL +0.0e+00 nats' in text


def test_protocols_table_groups_seeds_in_order():
  def row(protocol, seed, elbo, active):
    return {'protocol': protocol, 'workdir': f'conv_vae_2d_seed{seed}',
            'test': {'elbo': elbo, 'epoch': 30}, 'latent': {'active_units': active}}
  text = publish_device.protocols_table(
      [row('keras30', 1, -262.25, 2.0), row('keras30', 0, -270.0, 1.0)])
  assert '| keras30 | conv_vae_2d | 30 | -270.0, -262.2 | 1, 2 |' in text


def test_missing_result_files_stop_with_the_command_that_makes_them(tmp_path, monkeypatch):
  monkeypatch.setattr(publish_device, 'RESULTS', str(tmp_path))
  with pytest.raises(PublishError, match=r'expected one results/gpu/env_\*\.txt, found 0: run '
                                       'vae_jax/bench/device_check.sh'):
    publish_device.block()
