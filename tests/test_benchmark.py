"""experiments/benchmark.py --quick runs end to end and writes positive numbers."""

import json
import os
import shlex
import subprocess
import sys

import pytest

from test_readme import readme_command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, 'experiments', 'benchmark.py')


def _rate_ok(rate):
  assert rate['min'] > 0 and rate['max'] >= rate['median'] >= rate['min'], rate
  assert rate['per_cpu_second'] > 0 and rate['reps'] >= 1


def _run(tmp_path, data_dir, *extra):
  out = tmp_path / 'bench.json'
  # The README's command, made --quick, writing its JSON into tmp_path.
  readme = shlex.split(readme_command('python experiments/benchmark.py '))
  assert os.path.join(ROOT, readme[1]) == SCRIPT, readme
  flags = [a for a in readme[2:] if not a.startswith('--json')]
  proc = subprocess.run([sys.executable, SCRIPT, *flags, '--quick', f'--json={out}',
                         f'--data_dir={data_dir}', *extra],
                        capture_output=True, text=True, timeout=600, cwd=ROOT,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out) as f:
    return json.load(f), proc.stdout


def test_quick_benchmark_writes_positive_numbers(tmp_path, data_dir):
  r, stdout = _run(tmp_path, data_dir)
  assert r['quick'] is True
  assert {'jnp_128x784x512', 'jnp_128x512x784'} <= set(r['matmul'])
  assert any(k.startswith('numpy_') for k in r['matmul'])
  for m in r['matmul'].values():
    _rate_ok(m['gflops'])
  assert r['matmul_limit_gflops'] == max(m['gflops']['median'] for m in r['matmul'].values())
  for key in ('train_mlp', 'train_conv', 'train_rnn', 'eval_iwae'):
    section = r[key]
    _rate_ok(section['images_per_s'])
    assert section['matmul_flops_per_image'] > 0 and section['xla_flops_per_image'] > 0
    assert section['matmul_gflops'] > 0 and 0 < section['percent_of_matmul_limit']
  # The article's MLP VAE: 784-512-2 (+ biases), 3 matmul passes but no input gradient:
  # 2 x (784*512 + 512*4 + 2*512 + 512*784) x 3 - 2 x 784*512 per image.
  fwd = 784 * 512 + 512 * 4 + 2 * 512 + 512 * 784
  assert r['train_mlp']['matmul_flops_per_image'] == 2 * (3 * fwd - 784 * 512)
  assert r['train_mlp']['batch_size'] == 128 and r['train_conv']['batch_size'] == 128
  assert r['train_conv']['train_loop'] == 'scan'
  assert r['eval_iwae']['num_samples'] == 100
  assert '| train MLP VAE 784-512-2, batch 128 (MNIST) |' in stdout
  assert '| train recurrent AE (LSTM 128, 32-D code), batch 128 (MNIST) |' in stdout


@pytest.mark.slow
def test_quick_benchmark_with_keras(tmp_path, data_dir):
  r, stdout = _run(tmp_path, data_dir, '--keras')
  assert 'error' not in r['keras'], r['keras']
  for kind in ('mlp', 'conv'):
    _rate_ok(r['keras'][kind]['images_per_s'])
  assert '| Keras ' in stdout
