"""Turns the benchmark's measurements into rooflines, peer ratios, targets and tables.

Used by ``vae_jax/bench/benchmark.py`` (after a run) and by
``vae_jax/bench/publish.py`` (from a run's JSON), so the printed
tables and the published ones are the same text. Nothing here is measured.
"""

from vae_jax.bench import roofline

PEER_BACKENDS = ('jax', 'tensorflow')
# Keras' dtype policies: each peer backend runs under both; the bfloat16 rows
# are compared with the mixed_bfloat16 peers (and the faster of the two).
PEER_POLICIES = ('float32', 'mixed_bfloat16')
DTYPES = ('float32', 'bfloat16')
WORKLOADS = (  # key in the results, peer kind, label
    ('train_mlp', 'mlp', 'train MLP VAE 784-512-2, batch 128 (MNIST)'),
    ('train_conv', 'conv', 'train conv VAE, batch 128 (Fashion-MNIST)'),
    ('train_rnn', 'rnn', 'train recurrent AE (LSTM 128, 32-D code), batch 128 (MNIST)'),
    ('eval_iwae', None, 'IWAE evaluation, MLP VAE'),
)
# Issue 16's targets: (label, workload, what, threshold). 'roofline': % of the
# workload's roofline; a backend name: images/s ratio over Keras on it;
# 'best': over the faster of the two Keras backends.
TARGETS = (
    ('MLP VAE training ≥ 85% of its roofline', 'train_mlp', 'roofline', 85.0),
    ('MLP VAE training ≥ 1.35x Keras on JAX', 'train_mlp', 'jax', 1.35),
    ('IWAE-5000 evaluation ≥ 75% of its roofline', 'eval_iwae', 'roofline', 75.0),
    ('recurrent AE ≥ 1.0x Keras (its faster backend)', 'train_rnn', 'best', 1.0),
    ('conv VAE ≥ 1.25x Keras on TensorFlow', 'train_conv', 'tensorflow', 1.25),
)
# Issue 28's targets for the bfloat16 rows: (label, workload, what, threshold).
# 'float32': over vae_jax's own float32 row; a backend name: over the faster of
# Keras on it in float32 and under mixed_bfloat16.
TARGETS_BF16 = (
    ('MLP VAE bfloat16 ≥ 1.3x its float32', 'train_mlp', 'float32', 1.3),
    ('MLP VAE bfloat16 ≥ 1.3x Keras on JAX (faster of float32, mixed_bfloat16)',
     'train_mlp', 'jax', 1.3),
    ('conv VAE bfloat16 ≥ 1.6x its float32', 'train_conv', 'float32', 1.6),
    ('conv VAE bfloat16 ≥ 1.25x Keras on TensorFlow (faster of float32, mixed_bfloat16)',
     'train_conv', 'tensorflow', 1.25),
)


def bf16_units(cpu_flags):
  """The CPU's bfloat16 matmul units from its ISA flags: 'AMX', 'AVX512_BF16' or 'none'."""
  if 'amx_bf16' in cpu_flags:
    return 'AMX'
  if 'avx512_bf16' in cpu_flags:
    return 'AVX512_BF16'
  return 'none'


def peers_key(policy):
  """Where the peers of a Keras policy are kept: 'peers' (float32) or 'peers_<policy>'."""
  return 'peers' if policy == 'float32' else f'peers_{policy}'


def _section(results, dtype):
  """The workloads measured in ``dtype`` (None: not measured in this run)."""
  return results if dtype == 'float32' else results.get('bfloat16')


def _peer(results, backend, kind, policy='float32'):
  r = results.get(peers_key(policy), {}).get(backend, {})
  return r.get(kind) if 'error' not in r else None


def analyse(results):
  """Adds each workload's roofline, its peers' ratios and the targets, in place.

  bfloat16 rows (``results['bfloat16']``, when measured) are held against the
  bfloat16 matmul peak and the mixed_bfloat16 peers.
  """
  for dtype in DTYPES:
    if _section(results, dtype) is not None:
      _analyse_dtype(results, dtype)
  results['targets'] = [_target(results, results, label, key, what, threshold)
                        for label, key, what, threshold in TARGETS]
  if 'bfloat16' in results:
    results['targets_bfloat16'] = [_target_bf16(results, label, key, what, threshold)
                                   for label, key, what, threshold in TARGETS_BF16]
  return results


def _analyse_dtype(results, dtype):
  section = _section(results, dtype)
  suffix = '' if dtype == 'float32' else '_bfloat16'
  policy = 'float32' if dtype == 'float32' else 'mixed_bfloat16'
  peak = results[f'matmul_limit_gflops{suffix}'] * 1e9
  peak_cpu = results[f'matmul_limit_gflops_per_cpu_second{suffix}'] * 1e9
  bw = results['bandwidth']['gbytes_per_s']
  for key, kind, _ in WORKLOADS:
    r = section[key]
    ips = r['images_per_s']
    bound = roofline.roofline(r['matmul_flops_per_image'], r['bytes_per_image'], peak,
                              bw['median'] * 1e9)
    bound_cpu = roofline.roofline(r['matmul_flops_per_image'], r['bytes_per_image'],
                                  peak_cpu, bw['per_cpu_second'] * 1e9)
    r['roofline'] = dict(bound, images_per_s=1 / bound['seconds'],
                         percent=100 * ips['median'] * bound['seconds'],
                         percent_per_cpu_second=100 * ips['per_cpu_second'] * bound_cpu['seconds'])
    r['matmul_gflops'] = ips['median'] * r['matmul_flops_per_image'] / 1e9
    r['percent_of_matmul_limit'] = 100 * r['matmul_gflops'] / (peak / 1e9)
    if dtype != 'float32':
      r['vs_float32'] = _ratio(ips, results[key]['images_per_s'])
    if kind:
      r['vs_peers'] = {}
      for backend in PEER_BACKENDS:
        p = _peer(results, backend, kind, policy)
        if p:
          r['vs_peers'][backend] = _ratio(ips, p['images_per_s'])
      if r['vs_peers']:  # the stronger peer: the lower ratio
        r['vs_peers']['best'] = min(r['vs_peers'].values(), key=lambda v: v['ratio'])


def _ratio(rate, other):
  return {'ratio': rate['median'] / other['median'],
          'ratio_per_cpu_second': rate['per_cpu_second'] / other['per_cpu_second']}


def _met(label, key, threshold, v):
  value, cpu = (v['ratio'], v['ratio_per_cpu_second']) if v else (None, None)
  return {'target': label, 'workload': key, 'threshold': threshold, 'value': value,
          'per_cpu_second': cpu, 'met': None if value is None else value >= threshold}


def _target(results, section, label, key, what, threshold):
  r = section[key]
  if what == 'roofline':
    value, cpu = r['roofline']['percent'], r['roofline']['percent_per_cpu_second']
    return {'target': label, 'workload': key, 'threshold': threshold, 'value': value,
            'per_cpu_second': cpu, 'met': value >= threshold}
  return _met(label, key, threshold, r.get('vs_peers', {}).get(what))


def _target_bf16(results, label, key, what, threshold):
  r = results['bfloat16'][key]
  if what == 'float32':
    return _met(label, key, threshold, r['vs_float32'])
  kind = next(k for w, k, _ in WORKLOADS if w == key)
  peers = [p for policy in PEER_POLICIES if (p := _peer(results, what, kind, policy))]
  if not peers:
    return _met(label, key, threshold, None)
  faster = max(peers, key=lambda p: p['images_per_s']['median'])
  return _met(label, key, threshold, _ratio(r['images_per_s'], faster['images_per_s']))


MET = {True: 'yes', False: '**no**', None: 'not measured'}


def _fmt(x, digits=0):
  return f'{x:,.{digits}f}'


def _rate(r):
  return (f'{_fmt(r["median"])} | {_fmt(r["min"])} – {_fmt(r["max"])} | '
          f'{_fmt(r["per_cpu_second"])}')


def bf16_line(results):
  """The first line: the CPU's bfloat16 units, and what the bfloat16 rows mean without them."""
  m = results['machine']
  units = m.get('bf16_units') or bf16_units(m.get('cpu_flags', []))
  if 'bfloat16' not in results:
    return f'bfloat16 units: {units}; bfloat16 not measured in this run.'
  if units == 'none':
    return ('bfloat16 units: **none** on this CPU: its bfloat16 dots are converted to '
            'float32, so the bfloat16 rows show the cost of the conversions, not a gain.')
  speedup = results['matmul_limit_gflops_bfloat16'] / results['matmul_limit_gflops']
  return (f'bfloat16 units: {units}; bfloat16 matmul peak {speedup:.2f}x the float32 one '
          '(dots of bfloat16 inputs with float32 accumulation).')


def machine_line(results):
  m, v = results['machine'], results.get('versions', {})
  flags = ', '.join(m.get('cpu_flags', [])) or 'unknown'
  soft = ', '.join(f'{k} {v[k]}' for k in ('jax', 'flax', 'keras', 'tensorflow') if k in v)
  before, after = results['load_average_before'][0], results['load_average_after'][0]
  return (f'{m["cpu"]} ({m["cpu_count"]} CPUs; ISA flags: {flags}); {soft}; load average '
          f'{before:.1f} before, {after:.1f} after; the run took {results["seconds"]:.0f} s'
          + ('; **--quick: smoke-test numbers, not the machine\'s**' if results['quick'] else ''))


def _matmul_rows(results):
  rows = []
  for dtype in DTYPES:
    suffix = '' if dtype == 'float32' else '_bfloat16'
    for name, r in results.get(f'matmul{suffix}', {}).items():
      label = f'{name.split("_")[0]} matmul {"x".join(map(str, r["shape"]))}'
      if dtype != 'float32':
        label += ', bfloat16 inputs, float32 accumulation'
      g = r['gflops']
      rows.append(f'| {label} | {_fmt(g["median"], 1)} | {_fmt(g["min"], 1)} – '
                  f'{_fmt(g["max"], 1)} | {_fmt(g["per_cpu_second"], 1)} | GFLOP/s |')
  return rows


def roofline_table(results):
  """The machine's limits, then each workload against its roofline, in each dtype measured."""
  bw = results['bandwidth']
  rows = ['| limit | median | min – max | per CPU-second | unit |', '|---|---:|---:|---:|---|']
  rows += _matmul_rows(results)
  g = bw['gbytes_per_s']
  rows.append(f'| memory bandwidth (XLA elementwise pass, {bw["array_bytes"] >> 20} MB) | '
              f'{_fmt(g["median"], 1)} | {_fmt(g["min"], 1)} – {_fmt(g["max"], 1)} | '
              f'{_fmt(g["per_cpu_second"], 1)} | GB/s |')
  rows += ['', '| workload | compute | images/s median | min – max | per CPU-second | '
           'vs float32 (per CPU-s) | matmul MFLOP / image | bytes / image | roofline images/s '
           '| % of roofline | per CPU-second | binds |',
           '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|']
  for key, _, label in WORKLOADS:
    for dtype in DTYPES:
      section = _section(results, dtype)
      if section is None:
        continue
      r = section[key]
      name = f'{label}, k = {r["num_samples"]}' if key == 'eval_iwae' else label
      f = r['roofline']
      v = r.get('vs_float32')
      ratio = f'{v["ratio"]:.2f}x ({v["ratio_per_cpu_second"]:.2f}x)' if v else '–'
      rows.append(f'| {name} | {dtype} | {_rate(r["images_per_s"])} | {ratio} | '
                  f'{r["matmul_flops_per_image"] / 1e6:.3g} | {_fmt(r["bytes_per_image"])} | '
                  f'{_fmt(f["images_per_s"])} | {f["percent"]:.0f}% | '
                  f'{f["percent_per_cpu_second"]:.0f}% | {f["binds"]} |')
  return '\n'.join(rows)


def peers_table(results):
  """vae_jax beside Keras: float32 rows against float32 Keras, bfloat16 against mixed_bfloat16."""
  if not results.get('peers'):
    return 'Peers not run (--no-peers).'
  rows = ['| workload | vae_jax compute / Keras policy | vae_jax images/s | Keras on JAX | '
          'Keras on TensorFlow | ratio over Keras/JAX (per CPU-s) | '
          'ratio over Keras/TF (per CPU-s) |', '|---|---|---:|---:|---:|---:|---:|']
  versions = {}
  for key, kind, label in WORKLOADS:
    if not kind:
      continue
    for dtype, policy in zip(DTYPES, PEER_POLICIES):
      section, peers = _section(results, dtype), results.get(peers_key(policy))
      if section is None or not peers:
        continue
      r = section[key]
      cells = [label, f'{dtype} / {policy}', _fmt(r['images_per_s']['median'])]
      for backend in PEER_BACKENDS:
        p = _peer(results, backend, kind, policy)
        cells.append(f'{_fmt(p["images_per_s"]["median"])} ({p["num_images"]} images x '
                     f'{p["epochs"] - 1} epochs)' if p else peers[backend].get('error', 'missing'))
      for backend in PEER_BACKENDS:
        v = r['vs_peers'].get(backend)
        cells.append(f'{v["ratio"]:.2f}x ({v["ratio_per_cpu_second"]:.2f}x)' if v else '–')
      rows.append('| ' + ' | '.join(cells) + ' |')
      versions.update({b: p for b, p in peers.items() if 'error' not in p})
  text = [f'Keras {p["keras"]} on {b} {p.get("backend_version", "")}'.strip()
          for b, p in versions.items()]
  return '\n'.join(rows) + ('\n\n' + '; '.join(text) + '.' if text else '')


def _targets_rows(targets):
  rows = []
  for t in targets:
    unit = '%' if t['threshold'] > 10 else 'x'
    show = (lambda x: '–' if x is None else (f'{x:.0f}%' if unit == '%' else f'{x:.2f}x'))
    rows.append(f'| {t["target"]} | {show(t["value"])} | {show(t["per_cpu_second"])} | '
                f'{MET[t["met"]]} |')
  return rows


def targets_table(results):
  rows = ['| target (issue 16) | measured | per CPU-second | met |', '|---|---:|---:|---|']
  rows += _targets_rows(results['targets'])
  if 'targets_bfloat16' in results:
    rows += ['', '| target (issue 28, bfloat16) | measured | per CPU-second | met |',
             '|---|---:|---:|---|'] + _targets_rows(results['targets_bfloat16'])
  return '\n'.join(rows)


def markdown(results):
  return '\n\n'.join([bf16_line(results), machine_line(results), roofline_table(results),
                        peers_table(results), targets_table(results)])
