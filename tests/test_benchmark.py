"""vae_jax/bench/benchmark.py --quick runs every workload and its peers; its counters add up.

The roofline's work counters (vae_jax/bench/roofline.py) are checked against
FLOPs and bytes counted by hand on tiny models, not against their own formulas.
"""

import json
import os
import subprocess

import jax
import jax.numpy as jnp
import numpy as np

from conftest import README_PREFIXES, command_argv
from test_readme import readme_command, readme_commands

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from vae_jax.bench import roofline


# ----------------------------------------------------------------------------
# Counters on tiny models, counted by hand
# ----------------------------------------------------------------------------
def test_matmul_flops_of_a_tiny_mlp_training_gradient():
  # 3 images of 4 pixels -> Dense 5 -> Dense 4 (biases: no multiply-adds).
  params = {'w1': jnp.ones((4, 5)), 'b1': jnp.ones(5), 'w2': jnp.ones((5, 4)), 'b2': jnp.ones(4)}
  x = jnp.ones((3, 4))

  def loss(p):
    h = jax.nn.relu(x @ p['w1'] + p['b1'])
    return jnp.sum((h @ p['w2'] + p['b2'] - x) ** 2)

  # Forward: 3*4*5 = 60 and 3*5*4 = 60 multiply-adds. Backward: the gradients
  # of w1 (60) and w2 (60), and of h (60); none of x. 300 multiply-adds.
  assert roofline.matmul_flops(jax.grad(loss), params) == 600
  assert roofline.matmul_flops(loss, params) == 240
  assert roofline.num_params(params) == 20 + 5 + 20 + 4


def test_matmul_flops_count_every_scan_step_and_convolutions():
  w = jnp.ones((6, 6))

  def recur(h):
    return jax.lax.scan(lambda h, _: (jnp.tanh(h @ w), None), h, None, length=7)[0]

  assert roofline.matmul_flops(recur, jnp.ones((2, 6))) == 7 * 2 * (2 * 6 * 6)
  # 3x3 'SAME' conv, 2 -> 3 channels, on one 5x5 image: 25 pixels x 3 outputs x 18 taps.
  conv = lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  x, k = jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 3))
  assert roofline.matmul_flops(conv, x, k) == 2 * 25 * 3 * 18


def test_bytes_and_roofline_by_hand():
  # 49 float32 parameters; an Adam step reads and writes the parameters, the
  # gradient, m and v: 49 x 4 bytes x 8 = 1568 bytes, over a batch of 3; plus
  # each 2x2 image read once (16 bytes).
  assert roofline.train_bytes_per_image(49, 3, (2, 2, 1)) == 1568 / 3 + 16
  assert roofline.eval_bytes_per_image((28, 28, 1)) == 3136
  # 1 GFLOP at 100 GFLOP/s is 10 ms; 1 GB at 50 GB/s is 20 ms: memory binds.
  r = roofline.roofline(1e9, 1e9, 100e9, 50e9)
  assert r['binds'] == 'memory' and np.isclose(r['seconds'], 0.02)
  assert roofline.roofline(4e9, 1e9, 100e9, 50e9)['binds'] == 'matmul'


# ----------------------------------------------------------------------------
# The quick run
# ----------------------------------------------------------------------------
def _rate_ok(rate):
  assert rate['min'] > 0 and rate['max'] >= rate['median'] >= rate['min'], rate
  assert rate['per_cpu_second'] > 0 and rate['reps'] >= 1


def _run(tmp_path, data_dir, *extra):
  out = tmp_path / 'bench.json'
  # The README's command, made --quick, writing its JSON into tmp_path.
  readme = command_argv(readme_command(README_PREFIXES['bench']))
  proc = subprocess.run([a for a in readme if not a.startswith('--json')]
                        + ['--quick', f'--json={out}', f'--data_dir={data_dir}', *extra],
                        capture_output=True, text=True, timeout=600, cwd=ROOT,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(out) as f:
    return json.load(f), proc.stdout


def test_quick_benchmark_runs_every_workload_and_peer(tmp_path, data_dir):
  r, stdout = _run(tmp_path, data_dir)
  assert r['quick'] is True
  assert {'jnp_128x784x512', 'jnp_128x512x784'} <= set(r['matmul'])
  assert any(k.startswith('numpy_') for k in r['matmul'])
  for m in r['matmul'].values():
    _rate_ok(m['gflops'])
  assert r['matmul_limit_gflops'] == max(m['gflops']['median'] for m in r['matmul'].values())
  _rate_ok(r['bandwidth']['gbytes_per_s'])
  for key in ('train_mlp', 'train_conv', 'train_rnn', 'eval_iwae'):
    section = r[key]
    _rate_ok(section['images_per_s'])
    assert section['matmul_flops_per_image'] > 0 and section['bytes_per_image'] > 0
    f = section['roofline']
    assert f['binds'] in ('matmul', 'memory') and f['percent'] > 0
    assert np.isclose(f['percent'], 100 * section['images_per_s']['median'] * f['seconds'])
  # The article's MLP VAE: 784-512-2 (+ biases), 3 matmul passes but no input gradient:
  # 2 x (784*512 + 512*4 + 2*512 + 512*784) x 3 - 2 x 784*512 per image.
  fwd = 784 * 512 + 512 * 4 + 2 * 512 + 512 * 784
  assert r['train_mlp']['matmul_flops_per_image'] == 2 * (3 * fwd - 784 * 512)
  assert r['train_mlp']['params'] == fwd + 512 + 4 + 512 + 784
  assert r['train_mlp']['batch_size'] == 128 and r['train_conv']['batch_size'] == 128
  assert r['train_conv']['train_loop'] == 'scan'
  assert r['eval_iwae']['num_samples'] == 100
  assert '| train MLP VAE 784-512-2, batch 128 (MNIST) |' in stdout
  assert '| train recurrent AE (LSTM 128, 32-D code), batch 128 (MNIST) |' in stdout
  # Each peer ran every model, or says plainly that it is not installed.
  for backend in ('jax', 'tensorflow'):
    peer = r['peers'][backend]
    if 'error' in peer:
      assert peer['error'].startswith('not installed'), peer
      continue
    assert peer['backend'] == backend
    for kind in ('mlp', 'conv', 'rnn'):
      _rate_ok(peer[kind]['images_per_s'])
    # The same models: as many parameters as vae_jax's.
    assert peer['mlp']['params'] == r['train_mlp']['params']
    assert peer['conv']['params'] == r['train_conv']['params']
    assert peer['rnn']['params'] == r['train_rnn']['params']
  assert len(r['targets']) == 5
  assert '| target (issue 16) |' in stdout
  _check_publish(tmp_path, r)


def _check_publish(tmp_path, r):
  """The README's --publish command refuses a --quick run; a full one reaches both pages."""
  from vae_jax import publish
  command = [c for c in readme_commands() if c.startswith('vae-jax bench --publish=')]
  assert command, 'README.md has no `vae-jax bench --publish=` command'
  root = tmp_path / 'checkout'
  (root / 'docs' / 'results').mkdir(parents=True)
  for name in ('README.md', os.path.join('docs', 'results', 'benchmark.md')):
    (root / name).write_text(open(os.path.join(ROOT, name)).read())
  bench = tmp_path / 'bench.json'
  proc = subprocess.run([sys.executable, '-m', 'vae_jax.bench.publish', str(bench),
                         f'--root={root}'], capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert proc.returncode == 2 and proc.stderr.startswith('error: ') and 'smoke run' in proc.stderr
  assert proc.stderr.count('\n') == 1 and not (root / 'results').exists()
  # The same numbers marked as a full run stand in for one.
  bench.write_text(json.dumps(dict(r, quick=False)))
  proc = subprocess.run([sys.executable, '-m', 'vae_jax.bench.publish', str(bench),
                         f'--profile={os.path.join(ROOT, "results", "profile.json")}',
                         f'--root={root}'], capture_output=True, text=True, timeout=120, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert publish.publish(str(root), ('benchmark', 'benchmark-headline', 'profile'))
  mlp = f'{r["train_mlp"]["images_per_s"]["median"]:,.0f}'
  for name in ('README.md', os.path.join('docs', 'results', 'benchmark.md')):
    text = (root / name).read_text()
    assert mlp in text and r['machine']['cpu'] in text, name
  assert 'generated by vae_jax/publish.py' in (root / 'docs' / 'results' / 'benchmark.md').read_text()
