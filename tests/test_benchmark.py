"""vae_jax/bench/benchmark.py --quick runs every workload and its peers; its counters add up.

The roofline's work counters (vae_jax/bench/roofline.py) are checked against
FLOPs and bytes counted by hand on tiny models, not against their own formulas.
"""

import copy
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np

from conftest import README_PREFIXES, command_argv
from test_readme import readme_command, readme_commands

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from vae_jax.bench import report as bench_report
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
# bfloat16 rows in the report, from a measured file with made-up bfloat16 rates
# ----------------------------------------------------------------------------
def test_bf16_units_from_cpu_flags():
  assert bench_report.bf16_units(['avx512f', 'avx512_bf16', 'amx_bf16']) == 'AMX'
  assert bench_report.bf16_units(['avx512f', 'avx512_bf16']) == 'AVX512_BF16'
  assert bench_report.bf16_units(['avx2', 'fma']) == 'none'


def _with_bf16(results, speedup, keras_f32, keras_mixed):
  """``results`` plus bfloat16 rows ``speedup`` x its float32 ones and Keras at given rates."""
  r = copy.deepcopy(results)
  r['bfloat16'] = {k: copy.deepcopy(r[k]) for k, _, _ in bench_report.WORKLOADS}
  for section in r['bfloat16'].values():
    section['images_per_s'] = {k: v * speedup if k in ('median', 'min', 'max', 'per_cpu_second')
                               else v for k, v in section['images_per_s'].items()}
  r['matmul_bfloat16'] = copy.deepcopy(r['matmul'])
  r['matmul_limit_gflops_bfloat16'] = 2 * r['matmul_limit_gflops']
  r['matmul_limit_gflops_per_cpu_second_bfloat16'] = 2 * r['matmul_limit_gflops_per_cpu_second']
  for policy, rate in (('float32', keras_f32), ('mixed_bfloat16', keras_mixed)):
    key = bench_report.peers_key(policy)
    r[key] = copy.deepcopy(results['peers'])
    for backend in bench_report.PEER_BACKENDS:
      for kind in ('mlp', 'conv', 'rnn'):
        r[key][backend][kind]['images_per_s'] = {'median': rate, 'min': rate, 'max': rate,
                                                 'per_cpu_second': rate}
  return r


def test_report_judges_bf16_rows_against_their_float32_and_the_faster_keras_policy():
  with open(os.path.join(ROOT, 'results', 'benchmark.json')) as f:
    measured = json.load(f)
  # A file from before issue 28 (no bfloat16 keys) still renders, and says so.
  measured = {k: v for k, v in measured.items()
              if 'bfloat16' not in k and k != 'bfloat16'}
  assert 'bfloat16 not measured' in bench_report.markdown(bench_report.analyse(
      copy.deepcopy(measured))).splitlines()[0]
  mlp = measured['train_mlp']['images_per_s']['median']
  r = bench_report.analyse(_with_bf16(measured, 1.5, keras_f32=mlp, keras_mixed=mlp / 2))
  bf = r['bfloat16']['train_mlp']
  assert np.isclose(bf['vs_float32']['ratio'], 1.5)
  # Against the bfloat16 peak (twice the float32 one): the same share as float32 x 1.5 / 2.
  assert np.isclose(bf['roofline']['percent'], 0.75 * r['train_mlp']['roofline']['percent'])
  targets = {t['target']: t for t in r['targets_bfloat16']}
  own = targets['MLP VAE bfloat16 ≥ 1.3x its float32']
  assert own['met'] and np.isclose(own['value'], 1.5)
  keras = targets['MLP VAE bfloat16 ≥ 1.3x Keras on JAX (faster of float32, mixed_bfloat16)']
  assert np.isclose(keras['value'], 1.5)   # over the faster policy (float32 here), not 3.0
  conv = targets['conv VAE bfloat16 ≥ 1.6x its float32']
  assert conv['met'] is False
  text = bench_report.markdown(r)
  units = bench_report.bf16_units(measured['machine'].get('cpu_flags', []))  # the file's CPU
  assert text.splitlines()[0].startswith(f'bfloat16 units: {units}; bfloat16 matmul peak 2.00x')
  assert '| train MLP VAE 784-512-2, batch 128 (MNIST) | bfloat16 |' in text
  assert '| target (issue 28, bfloat16) |' in text
  # The README headline: each bfloat16 / float32 ratio and the targets met, only when measured.
  from vae_jax.bench import publish
  headline = publish.headline(r)
  assert 'MLP VAE 784-512-2 1.50x, conv VAE 1.50x, recurrent AE 1.50x' in headline
  assert "issue 28's targets met: 2 of 4" in headline
  assert 'compute_dtype' not in publish.headline(bench_report.analyse(copy.deepcopy(measured)))


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
  # Both dtypes: the same programs' dots (so the same FLOPs), bfloat16 rows beside float32.
  assert r['machine']['bf16_units'] in ('AMX', 'AVX512_BF16', 'none')
  assert stdout.splitlines()[0].startswith(f'bfloat16 units: {r["machine"]["bf16_units"]}')
  assert {'jnp_128x784x512', 'jnp_128x512x784'} <= set(r['matmul_bfloat16'])
  assert r['matmul_limit_gflops_bfloat16'] == max(
      m['gflops']['median'] for m in r['matmul_bfloat16'].values())
  for key in ('train_mlp', 'train_conv', 'train_rnn', 'eval_iwae'):
    bf = r['bfloat16'][key]
    _rate_ok(bf['images_per_s'])
    assert bf['matmul_flops_per_image'] == r[key]['matmul_flops_per_image']
    assert bf['vs_float32']['ratio'] > 0
  assert r['train_mlp']['compute_dtype'] == 'float32'
  assert r['bfloat16']['train_mlp']['compute_dtype'] == 'bfloat16'
  assert '| train MLP VAE 784-512-2, batch 128 (MNIST) | bfloat16 |' in stdout
  assert len(r['targets_bfloat16']) == 4
  assert '| train MLP VAE 784-512-2, batch 128 (MNIST) |' in stdout
  assert '| train recurrent AE (LSTM 128, 32-D code), batch 128 (MNIST) |' in stdout
  # Each peer ran every model under both policies, or says plainly that it is not installed.
  for backend, policy in [(b, p) for b in ('jax', 'tensorflow')
                          for p in ('float32', 'mixed_bfloat16')]:
    peer = r[bench_report.peers_key(policy)][backend]
    if 'error' in peer:
      assert peer['error'].startswith('not installed'), peer
      continue
    assert peer['backend'] == backend and peer['policy'] == policy
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


# ----------------------------------------------------------------------------
# vae_jax/bench/profile_ops.py: the operand dtypes of the products XLA runs
def test_products_are_labelled_with_the_operand_dtypes_of_the_compiled_program():
  import jax
  import jax.numpy as jnp
  from vae_jax.bench import profile_ops

  a = jnp.ones((16, 32), jnp.bfloat16)
  b = jnp.ones((32, 8), jnp.bfloat16)
  low = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32) + 1)
  full = jax.jit(lambda x, y: jnp.tanh(x @ y))
  labels = profile_ops.product_operand_dtypes(low.lower(a, b).compile().as_text())
  assert labels and set(labels.values()) <= {'bf16 x bf16 -> f32', 'f32 x f32 -> f32'}, labels
  labels = profile_ops.product_operand_dtypes(
      full.lower(a.astype(jnp.float32), b.astype(jnp.float32)).compile().as_text())
  assert set(labels.values()) == {'f32 x f32 -> f32'}, labels
  # A hand-written program: the fused product reads a float32 convert and a
  # bfloat16 tuple element (hyphenated opcodes included).
  hlo = """HloModule m
%fused_computation.1 (param_0: f32[2,3], param_1: bf16[3,4]) -> f32[2,4] {
  %param_0 = f32[2,3]{1,0} parameter(0)
  %param_1 = bf16[3,4]{1,0} parameter(1)
  %c = f32[3,4]{1,0} convert(%param_1)
  ROOT %dot.1 = f32[2,4]{1,0} dot(%param_0, %c), lhs_contracting_dims={1}, rhs_contracting_dims={0}
}
ENTRY %main (p: (bf16[2,3], bf16[3,4])) -> f32[2,4] {
  %p = (bf16[2,3]{1,0}, bf16[3,4]{1,0}) parameter(0)
  %get-tuple-element.1 = bf16[2,3]{1,0} get-tuple-element(%p), index=0
  %get-tuple-element.2 = bf16[3,4]{1,0} get-tuple-element(%p), index=1
  %convert.3 = f32[2,3]{1,0} convert(%get-tuple-element.1)
  ROOT %ynn_fusion.7 = f32[2,4]{1,0} fusion(%convert.3, %get-tuple-element.2), kind=kCustom, calls=%fused_computation.1
}
"""
  assert profile_ops.product_operand_dtypes(hlo)['ynn_fusion.7'] == 'f32 x bf16 -> f32'
  # Element-wise programs hold no product.
  assert profile_ops.product_operand_dtypes(
      jax.jit(jnp.tanh).lower(a).compile().as_text()) == {}


def test_profile_block_compares_the_two_dtypes_of_a_workload():
  from vae_jax.bench import publish as bench_publish

  def run(dtype, matmul, convert, products):
    return {'workload': 'train_mlp', 'compute_dtype': dtype, 'units': 10, 'unit': 'step',
            'total_ms_per_unit': matmul + convert, 'categories': {},
            'category_ms_per_unit': {'matmul': matmul, 'dtype conversion': convert},
            'product_ms_by_operands': products, 'ops': []}
  text = bench_publish.profile_block([
      run('float32', 3.0, 0.0, {'f32 x f32 -> f32': 3.0}),
      run('bfloat16', 2.0, 1.5, {'f32 x f32 -> f32': 1.25, 'bf16 x bf16 -> f32': 0.75})])
  assert '**train_mlp: where bfloat16 gains and loses**' in text
  assert '| dtype conversion | 0.000 | 1.500 | +1.500 |' in text
  assert '| products on bf16 x bf16 -> f32 | 0.000 | 0.750 | +0.750 |' in text
  assert '| all XLA ops | 3.000 | 3.500 | +0.500 |' in text
  # A profile at one dtype only (the published one before both were traced) has no comparison.
  assert 'gains and loses' not in bench_publish.profile_block([run('float32', 3.0, 0.0, {})])
