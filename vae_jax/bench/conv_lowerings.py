r"""How fast can XLA's CPU backend train the conv VAE's convolutions, lowered three ways?

  python -m vae_jax.bench.conv_lowerings --json=results/conv_lowerings.json
  python -m vae_jax.bench.conv_lowerings --publish=results/conv_lowerings.json

Issue 11 asks for the conv VAE at >= 1.25x Keras on TensorFlow, whose
convolutions are oneDNN's direct kernels. This times gradient steps (forward
and backward passes, gradients of all five kernels, scanned in one program as
training scans its steps) through the conv VAE's five convolutions at
batch 128 (Fashion-MNIST shapes: two 3x3 stride-2 encoder convs, two 3x3
stride-2 transposed convs, the 3x3 output conv), lowered three ways:

* ``lax``: ``lax.conv_general_dilated`` / ``lax.conv_transpose``, what
  ``nn.Conv`` / ``nn.ConvTranspose`` compute; XLA picks the kernels.
* ``stride-1 convs``: every layer rewritten as stride-1, undilated
  convolutions, the form XLA's CPU backend can hand to YNNPACK (space-to-depth
  for the stride-2 convs; the transposed convs as a 2x2 conv to the four
  output phases, 16 taps where 9 are needed, then depth-to-space). Their
  input gradients are left to XLA (the table counts which of them YNNPACK
  runs); their kernel gradients are im2col + one dot.
* ``dots``: vae_jax's layers (``vae_jax/core/models.py``), every convolution as
  dots plus data movement, what the library trains with.

Each lowering's gradients are checked against ``lax``'s. The optimized
program's op counts say where the convolutions went (XLA's own ``convolution``
emitter or ``ynn_fusion`` calls). ``--publish`` copies the JSON to
results/conv_lowerings.json; ``vae-jax publish`` writes its table into
docs/performance.md (the ``conv-lowerings`` block).
"""

import functools
import json
import os
import re
import sys

from vae_jax.infra import flags
from vae_jax.bench import benchmark
from vae_jax.bench import publish as publish_benchmark

BEGIN, END = '<!-- conv-lowerings:begin -->', '<!-- conv-lowerings:end -->'
DN = ('NHWC', 'HWIO', 'NHWC')
BATCH = 128
STEPS = 8   # gradient steps per timed call, scanned in one program as training does
# (name, kernel shape): the conv VAE's layers in order, 28x28x1 Fashion-MNIST.
LAYERS = (('encoder conv 28->14', (3, 3, 1, 32)), ('encoder conv 14->7', (3, 3, 32, 64)),
          ('transposed conv 7->14', (3, 3, 64, 64)), ('transposed conv 14->28', (3, 3, 64, 32)),
          ('output conv 28->28', (3, 3, 32, 1)))
LABELS = {'lax': 'lax convolutions (what nn.Conv computes)',
          'stride1': 'stride-1 convolutions (YNNPACK form) + im2col kernel gradients',
          'dots': "vae_jax's dot-based layers"}


# ----------------------------------------------------------------------------
# The stride-1 lowering
# ----------------------------------------------------------------------------
def _stride1_conv_fn():
  import jax
  import jax.numpy as jnp

  def conv(x, w, padding):
    return jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=DN)

  @functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
  def stride1_conv(x, w, padding):
    return conv(x, w, padding)

  def fwd(x, w, padding):
    return conv(x, w, padding), (x, w)

  def bwd(padding, res, g):
    x, w = res
    dx = jax.vjp(lambda x: conv(x, w, padding), x)[1](g)[0]
    kh, kw, cin, cout = w.shape
    b, oh, ow, _ = g.shape
    xp = jnp.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    cols = jnp.concatenate([xp[:, i:i + oh, j:j + ow] for i in range(kh) for j in range(kw)], -1)
    dw = (cols.reshape(-1, kh * kw * cin).T @ g.reshape(-1, cout)).reshape(w.shape)
    return dx, dw

  stride1_conv.defvjp(fwd, bwd)
  return stride1_conv


def space_to_depth(x):
  """``[B, 2H, 2W, C] -> [B, H, W, 4C]``, channels ordered (row phase, column phase, C)."""
  b, h2, w2, c = x.shape
  return x.reshape(b, h2 // 2, 2, w2 // 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(
      b, h2 // 2, w2 // 2, 4 * c)


def depth_to_space(y):
  """The inverse of :func:`space_to_depth`."""
  b, h, w, c4 = y.shape
  c = c4 // 4
  return y.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, c)


def conv_stride2(x, k, stride1_conv):
  """``lax.conv_general_dilated(x, k, (2, 2), 'SAME')`` (3x3, even sides) as a 2x2 stride-1 conv.

  'SAME' pads (0, 1), so output row m reads input rows 2m, 2m + 1, 2m + 2:
  rows (m, phase 0), (m, phase 1), (m + 1, phase 0) of the space-to-depth grid.
  """
  import jax.numpy as jnp
  cin, cout = k.shape[2:]
  kp = jnp.pad(k, ((0, 1), (0, 1), (0, 0), (0, 0)))          # tap 3 reads nothing
  w = kp.reshape(2, 2, 2, 2, cin, cout).transpose(0, 2, 1, 3, 4, 5).reshape(2, 2, 4 * cin, cout)
  return stride1_conv(space_to_depth(x), w, ((0, 1), (0, 1)))


def conv_transpose_stride2(x, k, stride1_conv):
  """``lax.conv_transpose(x, k, (2, 2), 'SAME')`` (3x3) as a 2x2 stride-1 conv to 4 phases."""
  import jax.numpy as jnp
  from vae_jax.core import conv_matmul
  cin, cout = k.shape[2:]
  zero = jnp.zeros((cin, cout), k.dtype)
  # w[dh, dw, :, (a, c, :)] = k[taps[a][dh], taps[c][dw]], zero where a phase reads no tap.
  taps = conv_matmul._PHASE_TAPS  # pylint: disable=protected-access
  w = jnp.stack([jnp.stack([
      jnp.stack([zero if taps[a][dh] is None or taps[c][dw] is None
                 else k[taps[a][dh], taps[c][dw]] for a in range(2) for c in range(2)], 1)
      .reshape(cin, 4 * cout) for dw in range(2)]) for dh in range(2)])
  return depth_to_space(stride1_conv(x, w, ((1, 0), (1, 0))))


# ----------------------------------------------------------------------------
# The five layers, three ways
# ----------------------------------------------------------------------------
def forward(lowering):
  """``f(kernels, images, codes_map) -> scalar``: the five conv layers with ReLUs between."""
  import jax
  import jax.numpy as jnp
  from vae_jax.core import conv_matmul

  if lowering == 'lax':
    conv = lambda x, k, s: jax.lax.conv_general_dilated(x, k, (s, s), 'SAME',
                                                         dimension_numbers=DN)
    up = lambda x, k: jax.lax.conv_transpose(x, k, (2, 2), 'SAME', dimension_numbers=DN)
  elif lowering == 'stride1':
    s1 = _stride1_conv_fn()
    conv = lambda x, k, s: (conv_stride2(x, k, s1) if s == 2
                            else s1(x, k, ((1, 1), (1, 1))))
    up = lambda x, k: conv_transpose_stride2(x, k, s1)
  elif lowering == 'dots':
    conv, up = conv_matmul.conv_same, conv_matmul.conv_transpose_2x
  else:
    raise ValueError(f'unknown lowering {lowering!r}: use one of {sorted(LABELS)}')

  def f(kernels, images, codes_map):
    k0, k1, t0, t1, t2 = kernels
    h = jax.nn.relu(conv(jax.nn.relu(conv(images, k0, 2)), k1, 2))
    d = jax.nn.relu(up(jax.nn.relu(up(codes_map, t0)), t1))
    out = conv(d, t2, 1)
    return jnp.sum(h * h) + jnp.sum(out * out)
  return f


def inputs(batch, seed=0):
  import jax.numpy as jnp
  import numpy as np
  rng = np.random.default_rng(seed)
  r = lambda *s: jnp.asarray(rng.standard_normal(s, np.float32) / np.sqrt(np.prod(s[:-1])))
  kernels = tuple(r(*shape) for _, shape in LAYERS)
  return kernels, r(batch, 28, 28, 1), r(batch, 7, 7, 64)


def op_counts(compiled_text):
  """Convolutions and dots of an optimized HLO program: run by YNNPACK or by XLA itself.

  A ``ynn_fusion`` instruction hands its fused computation (``calls=%name``) to
  YNNPACK; a convolution or dot anywhere else is emitted by XLA.
  """
  ynn_bodies = set(re.findall(r'calls=%([\w.-]+)[^\n]*"__ynn_fusion"', compiled_text))
  counts = {'xla_convolutions': 0, 'ynn_convolutions': 0, 'ynn_fusions': len(ynn_bodies)}
  body = None
  for line in compiled_text.splitlines():
    header = re.match(r'^(?:ENTRY )?%([\w.-]+) ', line)
    if header and line.rstrip().endswith('{'):
      body = header.group(1)
    elif re.search(r'= \S+ convolution\(', line):
      counts['ynn_convolutions' if body in ynn_bodies else 'xla_convolutions'] += 1
  return counts


def max_rel_grad_difference(lowering, batch=4):
  """Largest difference of the kernel gradients from ``lax``'s, relative to each gradient's scale."""
  import jax
  import numpy as np
  args = inputs(batch, seed=1)
  ref = jax.jit(jax.grad(forward('lax')))(*args)
  got = jax.jit(jax.grad(forward(lowering)))(*args)
  return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))
             for a, b in zip(got, ref))


def descent_steps(lowering, steps):
  """``kernels -> kernels`` after ``steps`` gradient steps, scanned as training scans its steps.

  In one program, as ``train_chunk`` runs training: XLA allocates its buffers
  once per call, not once per step, and each step depends on the last.
  """
  import jax
  grad = jax.grad(forward(lowering))

  def run(kernels, images, codes_map):
    def step(k, _):
      return jax.tree.map(lambda a, g: a - 1e-3 * g, k, grad(k, images, codes_map)), None
    return jax.lax.scan(step, kernels, None, length=steps)[0]
  return jax.jit(run, donate_argnums=0)


def measure_lowering(lowering, batch, reps, steps=STEPS):
  import jax
  run_steps = descent_steps(lowering, steps)
  kernels, images, codes_map = inputs(batch)
  counts = op_counts(run_steps.lower(kernels, images, codes_map).compile().as_text())
  box = {'kernels': kernels}

  def run():
    box['kernels'] = jax.block_until_ready(run_steps(box['kernels'], images, codes_map))
  return {'lowering': lowering, 'label': LABELS[lowering], **counts, 'steps_per_call': steps,
          'rate': benchmark.measure(run, steps * batch, reps),
          'max_rel_grad_difference': max_rel_grad_difference(lowering)}


def markdown(results):
  rows = {r['lowering']: r for r in results['lowerings']}
  dots = rows['dots']['rate']
  lines = ['<!-- generated by vae_jax/bench/conv_lowerings.py from results/conv_lowerings.json; '
           'edit the script, not this text -->', '', machine_line(results), '',
           '| lowering | images/s | min – max | per CPU-second | vs dots (per CPU-s) '
           '| convolutions run by XLA | by YNNPACK | largest relative gradient difference from lax |',
           '|---|---:|---:|---:|---:|---:|---:|---:|']
  for r in results['lowerings']:
    rate = r['rate']
    lines.append(f'| {r["label"]} | {rate["median"]:,.0f} | {rate["min"]:,.0f} – '
                 f'{rate["max"]:,.0f} | {rate["per_cpu_second"]:,.0f} | '
                 f'{rate["median"] / dots["median"]:.2f}x '
                 f'({rate["per_cpu_second"] / dots["per_cpu_second"]:.2f}x) | '
                 f'{r["xla_convolutions"]} | {r["ynn_convolutions"]} | '
                 f'{r["max_rel_grad_difference"]:.1e} |')
  fastest = max(results['lowerings'], key=lambda r: r['rate']['median'])
  lines += ['', f'Fastest here: {fastest["label"]}.']
  return '\n'.join(lines)


def machine_line(results):
  first = results['lowerings'][0]
  return publish_benchmark.machine_line(
      results, f'the five conv layers forward and backward at batch {results["batch"]}, '
      f'{first["steps_per_call"]} gradient steps scanned per call; '
      f'{first["rate"]["reps"]} repetitions each, median.')


def main(argv=None, prog='python -m vae_jax.bench.conv_lowerings'):
  parser = flags.Parser(prog, __doc__.split('\n\n')[0], [
      'python -m vae_jax.bench.conv_lowerings --json=results/conv_lowerings.json'])
  parser.add_argument('--json', default=None, help='write the numbers to this file')
  parser.add_argument('--reps', type=int, default=5)
  parser.add_argument('--quick', action='store_true',
                      help='smoke run: batch 8, 2 repetitions; numbers mean nothing')
  publish_benchmark.add_publish_flag(parser, 'conv_lowerings.json')
  args = parser.parse_args(argv)
  if publish_benchmark.publish_if_asked(args.publish, 'conv_lowerings.json', 'conv_lowerings'):
    return
  import jax
  if args.quick:
    benchmark.MIN_SECONDS['value'] = 0.01
  batch = 8 if args.quick else BATCH
  results = {'machine': benchmark._machine(), 'jax': jax.__version__,  # pylint: disable=protected-access
             'batch': batch, 'quick': args.quick, 'lowerings': []}
  for lowering in ('lax', 'stride1', 'dots'):
    row = measure_lowering(lowering, batch, 2 if args.quick else args.reps,
                           2 if args.quick else STEPS)
    results['lowerings'].append(row)
    print(f'{row["label"]}: {row["rate"]["median"]:,.0f} images/s', flush=True)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=2)
  print(markdown(results))


if __name__ == '__main__':
  main(prog='python -m vae_jax.bench.conv_lowerings')
