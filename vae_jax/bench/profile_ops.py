r"""Where a benchmark workload's time goes: CPU time per XLA op, from a profiler trace.

  python -m vae_jax.bench.profile_ops --out=profile.json [--workloads=train_mlp,train_conv] \
      [--compute_dtypes=float32,bfloat16]
  python -m vae_jax.bench.publish bench.json --profile=profile.json   # then vae-jax publish

Traces a few scanned training chunks of each training workload (the
benchmark's configs, real data) and a few IWAE evaluations of 50 images with
``jax.profiler`` and XLA's per-thunk trace events
(``--xla_cpu_enable_xprof_traceme``, set here before JAX starts), sums each
HLO instruction's time over the XLA threads (CPU time: the two worker threads
run side by side) and writes the top ops, and a breakdown by category, to a
JSON file. Categories come from the instruction names XLA gives its thunks
(``dot``, ``ynn_fusion``, ``*_fusion`` named after their ops), so they are
approximate: a fusion's name lists only some of its ops. ``--compute_dtypes``
profiles each workload at each ``config.compute_dtype`` (default both), and
every matrix product is labelled with the dtypes XLA really gave its operands
(read from the compiled program: XLA may convert a product it has no
low-precision kernel for back to float32), so a bfloat16 run says how much of
its product time ran on bfloat16 operands and how much on float32.
"""

import collections
import glob
import json
import os
import re
import sys
import tempfile

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                           + ' --xla_cpu_enable_xprof_traceme=true').strip()

from vae_jax.infra import flags
from vae_jax.bench import benchmark

CONFIGS = {'train_mlp': benchmark.MLP_CONFIG, 'train_conv': benchmark.CONV_CONFIG,
           'train_rnn': benchmark.RNN_CONFIG}
# First match wins; matched against the lower-cased instruction name.
CATEGORIES = (
    ('matmul', ('dot', 'ynn', 'convolution', 'gemm', 'matmul')),
    ('dtype conversion', ('convert',)),
    ('random numbers', ('threefry', 'rng', 'shift-right', 'shift-left', 'xor')),
    ('reduction', ('reduce',)),
    ('data movement', ('copy', 'transpose', 'concatenate', 'stack', 'slice', 'pad', 'gather',
                       'scatter', 'reshape', 'tuple')),
    ('loop control', ('while', 'call', 'conditional', 'compare', 'get-tuple-element')),
)
# Thread-pool bookkeeping and waits, not work.
SKIP = ('ThreadpoolListener', 'ThunkExecutor', 'SlinkyThreadPool', 'end: ')


def category(name):
  lower = name.lower()
  for cat, words in CATEGORIES:
    if any(w in lower for w in words):
      return cat
  return 'elementwise'


def leaf_times(xplane):
  """Seconds per op name over the XLA threads; an event enclosing others is not counted."""
  from jax._src.lib import _profile_data
  data = _profile_data.ProfileData.from_file(xplane)
  totals = collections.Counter()
  for plane in data.planes:
    for line in plane.lines:
      if not line.name.startswith('tf_XLA'):
        continue
      events = sorted((e for e in line.events if not e.name.startswith(SKIP)),
                      key=lambda e: (e.start_ns, -e.duration_ns))
      for i, e in enumerate(events):
        nxt = events[i + 1] if i + 1 < len(events) else None
        if nxt is not None and nxt.start_ns < e.end_ns:
          continue  # encloses the next event: count the inner ones
        totals[e.name] += e.duration_ns / 1e9
  return totals


def _train_runner(config_name, data_dir, steps, compute_dtype):
  """One scanned chunk of ``steps`` training steps: (run, steps per call, unit, compiled HLO text)."""
  import jax
  from vae_jax.core import train

  c = benchmark.load_config(config_name, data_dir, compute_dtype=compute_dtype)
  exp = train.build_experiment(c)
  box = {'state': exp.init_state()}
  order = train.epoch_order(exp.keys['order'], 0, exp.train_images.shape[0], c.batch_size)

  def run():
    box['state'], metrics = exp.train_chunk(box['state'], exp.train_images, order, 0,
                                            exp.keys['train'], num_steps=steps)
    jax.block_until_ready((box['state'], metrics))

  def hlo():
    return exp.train_chunk.lower(box['state'], exp.train_images, order, 0, exp.keys['train'],
                                 num_steps=steps).compile().as_text()
  return run, steps, 'step', hlo


def _iwae_runner(data_dir, num_samples, compute_dtype, num_images=50):
  """IWAE-k of the (freshly initialised) MLP VAE on test images, as the benchmark calls it."""
  import jax
  from vae_jax.core import evaluate, train

  exp = train.build_experiment(benchmark.load_config(
      benchmark.MLP_CONFIG, data_dir, compute_dtype=compute_dtype))
  params = exp.init_state().params
  images = jax.device_get(exp.test_images[:num_images])

  def run():
    evaluate.iwae_per_example(exp.model, params, images, jax.random.key(0),
                              num_samples=num_samples, example_chunk=50, sample_chunk=100)
  return run, num_images, 'image', None   # several jitted calls: no one program to read


# An HLO instruction of the compiled text: ``%name = type[shape]{layout} opcode(%a, %b), ...``.
_INSTRUCTION = re.compile(r'^\s*(?:ROOT )?%([\w.\-]+) = (\w+)\[[^\]]*\]\S* ([\w\-]+)\(([^)]*)\)')


def product_operand_dtypes(hlo_text):
  """``{instruction name: 'bf16 x bf16 -> f32'}`` for every matrix product of a compiled program.

  A product is a ``dot`` or ``convolution``, or a fusion (e.g. ``ynn_fusion``)
  whose computation holds one; its operand dtypes are those of the
  instructions feeding it in the program that runs, after XLA's own rewrites.
  """
  dtypes, fused_products, computation, found = {}, set(), None, {}
  entries = []
  for line in hlo_text.splitlines():
    head = re.match(r'^(?:ENTRY )?%([\w.\-]+) ', line)
    if head and line.rstrip().endswith('{'):
      computation = head.group(1)
      continue
    m = _INSTRUCTION.match(line)
    if not m:
      continue
    name, dtype, opcode, operands = m.groups()
    dtypes[name] = dtype
    if opcode in ('dot', 'convolution'):
      fused_products.add(computation)
    calls = re.search(r'calls=%([\w.\-]+)', line)
    entries.append((name, dtype, opcode, [o.strip().lstrip('%') for o in operands.split(',')
                                          if o.strip()], calls.group(1) if calls else None))
  for name, dtype, opcode, operands, calls in entries:
    if opcode in ('dot', 'convolution') or (opcode == 'fusion' and calls in fused_products):
      found[name] = ' x '.join(dtypes.get(o, '?') for o in operands[:2]) + f' -> {dtype}'
  return found


def profile(workload, data_dir, steps, chunks, top, iwae_samples, compute_dtype='float32'):
  """Traces ``chunks`` calls of the workload; its per-op CPU time and categories."""
  import jax

  if workload == 'eval_iwae':
    run, units, unit, hlo = _iwae_runner(data_dir, iwae_samples, compute_dtype)
  else:
    run, units, unit, hlo = _train_runner(CONFIGS[workload], data_dir, steps, compute_dtype)
  run()  # compile outside the trace
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d):
      for _ in range(chunks):
        run()
    totals = leaf_times(glob.glob(os.path.join(d, '**', '*.xplane.pb'), recursive=True)[0])
  n = units * chunks
  total = sum(totals.values())
  cats = collections.Counter()
  for name, s in totals.items():
    cats[category(name)] += s / total
  products = product_operand_dtypes(hlo()) if hlo else {}
  by_operands = collections.Counter()
  for name, s in totals.items():
    if name in products:
      by_operands[products[name]] += 1e3 * s / n
  return {'workload': workload, 'compute_dtype': compute_dtype, 'units': n, 'unit': unit,
          'total_ms_per_unit': 1e3 * total / n,
          'categories': dict(cats.most_common()),
          'category_ms_per_unit': {c: 1e3 * total / n * share for c, share in cats.most_common()},
          # Product time by the operand dtypes XLA ran them with (training workloads).
          'product_ms_by_operands': dict(by_operands.most_common()),
          'ops': [{'name': name, 'category': category(name), 'ms_per_unit': 1e3 * s / n,
                   'share': s / total, 'operands': products.get(name)}
                  for name, s in totals.most_common(top)]}


def main(argv=None, prog='python -m vae_jax.bench.profile_ops'):
  parser = flags.Parser(prog, __doc__.split('\n\n')[0], [
      'python -m vae_jax.bench.profile_ops --out=profile.json'])
  parser.add_argument('--out', required=True)
  parser.add_argument('--workloads', default='train_mlp,train_conv,train_rnn,eval_iwae')
  parser.add_argument('--iwae_samples', type=int, default=1000,
                      help='k of the profiled IWAE (50 images, chunks of 100 samples)')
  parser.add_argument('--steps', type=int, default=20)
  parser.add_argument('--chunks', type=int, default=3)
  parser.add_argument('--top', type=int, default=12)
  parser.add_argument('--compute_dtypes', '--compute_dtype', default='float32,bfloat16',
                      help='comma-separated config.compute_dtype values, each workload at each')
  parser.add_argument('--data_dir', default=os.environ.get('VAE_JAX_DATA_DIR') or
                      os.path.join(benchmark.ROOT, '..', 'shared', 'datasets'))
  args = parser.parse_args(argv)
  dtypes = args.compute_dtypes.split(',')
  unknown = sorted(set(dtypes) - {'float32', 'bfloat16'})
  if unknown:
    parser.error(f'--compute_dtypes takes float32 and bfloat16, got {",".join(unknown)}')
  out = [profile(w, os.path.abspath(args.data_dir), args.steps, args.chunks, args.top,
                 args.iwae_samples, d) for w in args.workloads.split(',') for d in dtypes]
  for p in out:
    print(f'{p["workload"]} ({p["compute_dtype"]}): {p["total_ms_per_unit"]:.2f} ms/{p["unit"]} of XLA op time; '
          + ', '.join(f'{c} {s:.0%}' for c, s in p['categories'].items()))
  with open(args.out, 'w') as f:
    json.dump(out, f, indent=2)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main(prog='python -m vae_jax.bench.profile_ops')
