"""Turns the benchmark's measurements into rooflines, peer ratios, targets and tables.

Used by ``vae_jax/bench/benchmark.py`` (after a run) and by
``vae_jax/bench/publish.py`` (from a run's JSON), so the printed
tables and the published ones are the same text. Nothing here is measured.
"""

from vae_jax.bench import roofline

PEER_BACKENDS = ('jax', 'tensorflow')
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


def _peer(results, backend, kind):
  r = results.get('peers', {}).get(backend, {})
  return r.get(kind) if 'error' not in r else None


def analyse(results):
  """Adds each workload's roofline, its peers' ratios and the targets, in place."""
  peak = results['matmul_limit_gflops'] * 1e9
  peak_cpu = results['matmul_limit_gflops_per_cpu_second'] * 1e9
  bw = results['bandwidth']['gbytes_per_s']
  for key, kind, _ in WORKLOADS:
    r = results[key]
    ips = r['images_per_s']
    bound = roofline.roofline(r['matmul_flops_per_image'], r['bytes_per_image'], peak,
                              bw['median'] * 1e9)
    bound_cpu = roofline.roofline(r['matmul_flops_per_image'], r['bytes_per_image'],
                                  peak_cpu, bw['per_cpu_second'] * 1e9)
    r['roofline'] = dict(bound, images_per_s=1 / bound['seconds'],
                         percent=100 * ips['median'] * bound['seconds'],
                         percent_per_cpu_second=100 * ips['per_cpu_second'] * bound_cpu['seconds'])
    r['matmul_gflops'] = ips['median'] * r['matmul_flops_per_image'] / 1e9
    r['percent_of_matmul_limit'] = 100 * r['matmul_gflops'] / results['matmul_limit_gflops']
    if kind:
      r['vs_peers'] = {}
      for backend in PEER_BACKENDS:
        p = _peer(results, backend, kind)
        if p:
          r['vs_peers'][backend] = {
              'ratio': ips['median'] / p['images_per_s']['median'],
              'ratio_per_cpu_second': ips['per_cpu_second'] / p['images_per_s']['per_cpu_second']}
      if r['vs_peers']:  # the stronger peer: the lower ratio
        r['vs_peers']['best'] = min(r['vs_peers'].values(), key=lambda v: v['ratio'])
  results['targets'] = []
  for label, key, what, threshold in TARGETS:
    r = results[key]
    if what == 'roofline':
      value, cpu = r['roofline']['percent'], r['roofline']['percent_per_cpu_second']
    else:
      v = r.get('vs_peers', {}).get(what)
      value, cpu = (v['ratio'], v['ratio_per_cpu_second']) if v else (None, None)
    results['targets'].append({'target': label, 'workload': key, 'threshold': threshold,
                               'value': value, 'per_cpu_second': cpu,
                               'met': None if value is None else value >= threshold})
  return results


MET = {True: 'yes', False: '**no**', None: 'not measured'}


def _fmt(x, digits=0):
  return f'{x:,.{digits}f}'


def _rate(r):
  return (f'{_fmt(r["median"])} | {_fmt(r["min"])} – {_fmt(r["max"])} | '
          f'{_fmt(r["per_cpu_second"])}')


def machine_line(results):
  m, v = results['machine'], results.get('versions', {})
  flags = ', '.join(m.get('cpu_flags', [])) or 'unknown'
  soft = ', '.join(f'{k} {v[k]}' for k in ('jax', 'flax', 'keras', 'tensorflow') if k in v)
  before, after = results['load_average_before'][0], results['load_average_after'][0]
  return (f'{m["cpu"]} ({m["cpu_count"]} CPUs; ISA flags: {flags}); {soft}; load average '
          f'{before:.1f} before, {after:.1f} after; the run took {results["seconds"]:.0f} s'
          + ('; **--quick: smoke-test numbers, not the machine\'s**' if results['quick'] else ''))


def roofline_table(results):
  """The machine's limits, then each workload against its roofline."""
  bw = results['bandwidth']
  rows = ['| limit | median | min – max | per CPU-second | unit |', '|---|---:|---:|---:|---|']
  for name, r in results['matmul'].items():
    label = f'{name.split("_")[0]} matmul {"x".join(map(str, r["shape"]))}'
    g = r['gflops']
    rows.append(f'| {label} | {_fmt(g["median"], 1)} | {_fmt(g["min"], 1)} – {_fmt(g["max"], 1)} '
                f'| {_fmt(g["per_cpu_second"], 1)} | GFLOP/s |')
  g = bw['gbytes_per_s']
  rows.append(f'| memory bandwidth (XLA elementwise pass, {bw["array_bytes"] >> 20} MB) | '
              f'{_fmt(g["median"], 1)} | {_fmt(g["min"], 1)} – {_fmt(g["max"], 1)} | '
              f'{_fmt(g["per_cpu_second"], 1)} | GB/s |')
  rows += ['', '| workload | images/s median | min – max | per CPU-second | matmul MFLOP / image '
           '| bytes / image | roofline images/s | % of roofline | per CPU-second | binds |',
           '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|']
  for key, _, label in WORKLOADS:
    r = results[key]
    if key == 'eval_iwae':
      label = f'{label}, k = {r["num_samples"]}'
    f = r['roofline']
    rows.append(f'| {label} | {_rate(r["images_per_s"])} | {r["matmul_flops_per_image"] / 1e6:.3g} '
                f'| {_fmt(r["bytes_per_image"])} | {_fmt(f["images_per_s"])} | '
                f'{f["percent"]:.0f}% | {f["percent_per_cpu_second"]:.0f}% | {f["binds"]} |')
  return '\n'.join(rows)


def peers_table(results):
  peers = results.get('peers')
  if not peers:
    return 'Peers not run (--no-peers).'
  rows = ['| workload | vae_jax images/s | Keras on JAX | Keras on TensorFlow | '
          'ratio over Keras/JAX (per CPU-s) | ratio over Keras/TF (per CPU-s) |',
          '|---|---:|---:|---:|---:|---:|']
  for key, kind, label in WORKLOADS:
    if not kind:
      continue
    r = results[key]
    cells = [label, _fmt(r['images_per_s']['median'])]
    for backend in PEER_BACKENDS:
      p = _peer(results, backend, kind)
      cells.append(f'{_fmt(p["images_per_s"]["median"])} ({p["num_images"]} images x '
                   f'{p["epochs"] - 1} epochs)' if p else peers[backend].get('error', 'missing'))
    for backend in PEER_BACKENDS:
      v = r['vs_peers'].get(backend)
      cells.append(f'{v["ratio"]:.2f}x ({v["ratio_per_cpu_second"]:.2f}x)' if v else '–')
    rows.append('| ' + ' | '.join(cells) + ' |')
  versions = [f'Keras {p["keras"]} on {b} {p.get("backend_version", "")}'.strip()
              for b, p in peers.items() if 'error' not in p]
  return '\n'.join(rows) + ('\n\n' + '; '.join(versions) + '.' if versions else '')


def targets_table(results):
  rows = ['| target (issue 16) | measured | per CPU-second | met |', '|---|---:|---:|---|']
  for t in results['targets']:
    unit = '%' if t['threshold'] > 10 else 'x'
    show = (lambda x: '–' if x is None else (f'{x:.0f}%' if unit == '%' else f'{x:.2f}x'))
    rows.append(f'| {t["target"]} | {show(t["value"])} | {show(t["per_cpu_second"])} | '
                f'{MET[t["met"]]} |')
  return '\n'.join(rows)


def markdown(results):
  return '\n\n'.join([machine_line(results), roofline_table(results), peers_table(results),
                      targets_table(results)])
