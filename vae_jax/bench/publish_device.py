r"""Writes the GPU check's results (results/gpu/) into docs/performance.md.

  bash vae_jax/bench/device_check.sh OUTDIR       # on the accelerator machine
  # copy OUTDIR's files into results/gpu/ (names below), evaluate the same
  # checkpoint on a CPU into results/gpu/eval_iwae5000_n2000_cpu_highest.json, then
  vae-jax publish device

The one publish step (vae_jax/publish.py) renders ``block`` into the text
between ``<!-- device:begin -->`` and ``<!-- device:end -->``: the accelerator and its software (``env_*.txt``); the benchmark's
roofline and workload tables run there (``benchmark_*.json``, the benchmark's
own report); the numeric tests run there at the backend's default matmul
precision (``pytest_*.log``); and one checkpoint's IWAE-5000 bounds on the
same test images with TF32 allowed, with full float32, and on a CPU
(``eval_iwae5000_n2000_*.json``); and the conv VAEs' training protocols
(``conv_protocols.jsonl``). Nothing in the block is typed by hand.
"""

import glob
import json
import os
import re

from vae_jax.bench import report as bench_report
from vae_jax.infra import blocks, paths

ROOT = paths.REPO_ROOT
RESULTS = os.path.join(ROOT, 'results', 'gpu')
BEGIN, END = blocks.markers('device')


def _one(pattern, results):
  paths = sorted(glob.glob(os.path.join(results, pattern)))
  if len(paths) != 1:
    raise blocks.PublishError(f'expected one results/gpu/{pattern}, found {len(paths)}: '
                              'run vae_jax/bench/device_check.sh and copy its files there')
  return paths[0]


def tests_line(log_path):
  """'N passed, M failed' and the failing tests, read off pytest's summary."""
  with open(log_path) as f:
    text = f.read()
  summary = re.findall(r'^=*\s*((?:\d+ (?:failed|passed|skipped|error)[, ]*)+).* in [\d.]+s',
                       text, re.M)
  if not summary:
    raise blocks.PublishError(f'{log_path} has no pytest summary line: copy the whole log '
                              'of device_check.sh')
  failed = re.findall(r'^FAILED (\S+)', text, re.M)
  line = ('Numeric tests on the accelerator at its default matmul precision: '
          + summary[-1].strip().rstrip(','))
  if failed:
    line += '; failed: ' + ', '.join(f'`{t}`' for t in failed)
  return line + '.'


def precision_table(evals):
  rows = ['| backend | matmul precision | -ELBO (nats) | NLL, IWAE-5000 (nats) | seconds | machine |',
          '|---|---|---:|---:|---:|---|']
  for r in evals:
    rows.append(f'| {r["backend"]} | {r["matmul_precision"]} | {r["neg_elbo"]:.4f} | '
                f'{r["nll"]:.4f} | {r["seconds"]:.1f} | {r["machine"]} |')
  by = {(r['backend'], r['matmul_precision']): r for r in evals}
  first = evals[0]
  notes = [f'{first["num_examples"]} test images of {first["data"]}, checkpoint step '
           f'{first["step"]}, k = {first["num_samples"]}, seed {first["seed"]}; the seconds '
           'include compilation.']
  tf32, full, cpu = by.get(('gpu', 'default')), by.get(('gpu', 'highest')), by.get(('cpu', 'highest'))
  if tf32 and full:
    notes.append(f'TF32 minus full float32 on the GPU: -ELBO {tf32["neg_elbo"] - full["neg_elbo"]:+.1e}, '
                 f'NLL {tf32["nll"] - full["nll"]:+.1e} nats; full float32 took '
                 f'{full["seconds"] / tf32["seconds"]:.1f}x as long.')
  if full and cpu:
    notes.append(f'GPU (full float32) minus CPU: -ELBO {full["neg_elbo"] - cpu["neg_elbo"]:+.1e}, '
                 f'NLL {full["nll"] - cpu["nll"]:+.1e} nats.')
  return '\n'.join(rows) + '\n\n' + ' '.join(notes)


def protocols_table(rows):
  """Test ELBO and active units per (protocol, model), one column entry per seed."""
  groups = {}
  for r in rows:
    model, seed = r['workdir'].rsplit('_seed', 1)
    groups.setdefault((r['protocol'], model), []).append(
        (int(seed), r['test']['elbo'], r['test']['epoch'], int(r['latent']['active_units'])))
  out = ['| protocol | model | epochs | test ELBO per seed (nats) | active units per seed |',
         '|---|---|---:|---|---|']
  for (protocol, model), seeds in groups.items():
    seeds.sort()
    out.append(f'| {protocol} | {model} | {seeds[0][2]} | '
               + ', '.join(f'{e:.1f}' for _, e, _, _ in seeds) + ' | '
               + ', '.join(str(a) for *_, a in seeds) + ' |')
  return ('Training protocols of the conv Fashion-MNIST VAEs, trained on the accelerator '
          '(three seeds side by side; issue 11; conv_protocols.jsonl):\n\n' + '\n'.join(out))


def block(results=None):
  """The block of the result files in ``results`` (default: results/gpu/)."""
  results = results or RESULTS
  with open(_one('env_*.txt', results)) as f:
    gpu, cores, versions, devices = [l.strip() for l in f if l.strip()][:4]
  gpu = re.sub(r'^GPU \d+: | \(UUID: .*\)$', '', gpu)
  with open(_one('benchmark_*.json', results)) as f:
    bench = json.load(f)
  bench_report.analyse(bench)
  evals = []
  for path in sorted(glob.glob(os.path.join(results, 'eval_iwae5000_n2000_*.json'))):
    with open(path) as f:
      evals.append(json.load(f))
  if not evals:
    raise blocks.PublishError('no results/gpu/eval_iwae5000_n2000_*.json: run the precision '
                              'part of vae_jax/bench/device_check.sh and the same evaluation '
                              'on a CPU')
  evals.sort(key=lambda r: (r['backend'] != 'gpu', r['matmul_precision'] != 'default'))
  with open(_one('conv_protocols.jsonl', results)) as f:
    protocols = [json.loads(line) for line in f]
  return '\n\n'.join([
      '<!-- generated by vae_jax/publish.py from results/gpu/; '
      'edit the check, not this text -->',
      f'Accelerator: {gpu}, {cores} CPU cores; {versions}; JAX devices {devices}.',
      bench_report.machine_line(bench), bench_report.roofline_table(bench),
      tests_line(_one('pytest_*.log', results)),
      precision_table(evals),
      protocols_table(protocols)])

