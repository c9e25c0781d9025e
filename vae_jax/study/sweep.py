r"""The sweep: latent size × β (and a classic AE, and free bits) × data set × seed.

  vae-jax sweep --outdir=runs/sweep [--shard=i/N] [--quick]
  vae-jax sweep --outdir=runs/sweep --summarize_only
  vae-jax sweep --outdir=runs/sweep --publish

(``python -m vae_jax.study.sweep`` takes the same flags.)

Trains (or resumes, or reuses when finished) every cell of the grid
(sweep_models.py) under ``<outdir>/models/<cell>_seed<k>/`` exactly as the
seed study trains its models, scores it with the study's metrics
(study_report.TableMetrics: continuity, completeness and sample quality under
N(0, I), a fitted Gaussian and a 10-component GMM) and writes the cell's
numbers to ``sweep_cell.json`` beside it. Then it merges whatever cells are
finished into ``<outdir>/summary.json``, ``REPORT.md`` and ``figures/``,
naming the missing ones. ``--shard=i/N`` trains only every N-th cell from the
i-th, so N processes (on one machine or a cluster, sharing the outdir) split
the grid; a lock per cell keeps two processes from training the same model.
``--publish`` copies a finished sweep into docs/ (then ``vae-jax publish``). ``--quick``:
a small grid on a data slice for one epoch, a smoke test whose numbers mean
nothing. docs/sweep.md has the details.
"""

import contextlib
import json
import os
import sys
import time

# One BLAS thread, set before NumPy loads: the metrics' many small NumPy
# matmuls and solves (the GMM's EM, the Fréchet distance) ran 5x slower with
# OpenBLAS's threads spinning on 2 cores shared with XLA and other shards.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

from vae_jax.core import data  # noqa: E402
from vae_jax.infra import flags  # noqa: E402
from vae_jax.infra import paths  # noqa: E402
from vae_jax.study import run as run_study  # noqa: E402
from vae_jax.study import catalog as study_models  # noqa: E402
from vae_jax.study import sweep_catalog as sweep_models  # noqa: E402


def parser(prog='vae-jax sweep'):
  p = run_study.add_flags(
      flags.Parser(prog, __doc__.split('\n')[0], [
          'vae-jax sweep --outdir=runs/sweep',
          'vae-jax sweep --outdir=runs/sweep --shard=0/4',
          'vae-jax sweep --outdir=runs/sweep --publish']),
      'where models, figures, summary.json and REPORT.md of the sweep go',
      'seeds (default 0,1,2; --quick: 0,1)',
      'a small grid on 2048 images for one epoch: a smoke test',
      'not used by the sweep (its cells have no quality gates)')
  p.add_argument('--shard', default='0/1', metavar='i/N',
                 help="train only this process's share of the grid")
  p.add_argument('--datasets', type=flags.comma_list, default=None,
                 help='data sets (default: mnist,fashion_mnist)')
  p.add_argument('--latent_dims', type=flags.comma_list, default=None,
                 help='latent sizes (default: 2,8,32)')
  p.add_argument('--variants', type=flags.comma_list, default=None,
                 help='objectives, some of ' + ','.join(sweep_models.VARIANT))
  p.add_bool('summarize_only', False, 'train nothing: merge the finished cells')
  p.add_bool('publish', False, 'copy a finished sweep into docs/ and README.md')
  p.add_bool('allow_incomplete', False,
             '--publish a sweep with missing cells (the report names them)')
  p.add_argument('--root', default=paths.REPO_ROOT, help='the checkout --publish updates')
  return p


CELL_FILE = 'sweep_cell.json'      # a cell's numbers: its presence marks the cell done
SAMPLES_FILE = 'sweep_samples.npz'  # decoded samples per sampler, for the figures
ERROR_FILE = 'sweep_error.txt'     # why a cell failed (it is retried on the next run)
PASSES_FILE = 'sweep_passes.jsonl'  # one line per process, interrupted or not: its wall time
SAMPLE_VARIANTS = ('ae', 'beta1')  # the cells the sample grids show
NUM_SHOWN = 16                     # decoded samples per sampler and cell


def cell_dir(outdir, spec, seed):
  return os.path.join(outdir, 'models', sweep_models.job_id(spec, seed))


@contextlib.contextmanager
def _waiting_lock(directory, purpose, stop=None):
  """``directory``'s lock, waited for while another process holds it."""
  from vae_jax.infra import workdir as workdir_lib
  os.makedirs(directory, exist_ok=True)
  with contextlib.ExitStack() as held:
    while True:
      try:
        held.enter_context(workdir_lib.lock(directory, purpose))
        break
      except workdir_lib.WorkdirLockedError:
        if stop is not None:
          stop.raise_if_requested(f'interrupted while waiting for {directory}')
        time.sleep(5)
    yield


def _classifier_fns(table_metrics, dataset, stop):
  """The data set's classifier, trained by one process while the others wait for it."""
  with _waiting_lock(os.path.join(table_metrics.outdir, 'classifiers'), 'sweep classifier',
                     stop):
    return table_metrics.classifier_fns(dataset)


def _samples(m, seed):
  """``{sampler: uint8 [NUM_SHOWN, 28, 28]}`` decoded from each sampler fitted to the codes."""
  import jax
  import numpy as np
  from vae_jax.analysis import samplers
  from vae_jax.core import latent
  train_codes, _ = latent.encode(m.model, m.params, m.train_split()[0][:10000])
  out = {}
  for i, name in enumerate(samplers.SAMPLERS):
    fit_key, draw_key = jax.random.split(jax.random.fold_in(jax.random.key(20_000 + seed), i))
    z = samplers.make_sampler(name, train_codes, fit_key)(draw_key, NUM_SHOWN)
    images = m.decode(np.asarray(z, np.float32))[..., 0]
    out[name] = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
  return out


def run_cell(spec, seed, outdir, data_dir, quick, quiet, table_metrics, stop, sample_seed):
  """Trains and scores one cell; writes its CELL_FILE. Returns the row."""
  import jax
  import numpy as np
  from vae_jax.core import diagnostics
  from vae_jax.infra import workdir as workdir_lib

  _classifier_fns(table_metrics, spec.dataset, stop)
  m = run_study.train_one(spec, seed, outdir, data_dir, quick, quiet)
  start = time.perf_counter()
  row = dict(m.test, active_units=diagnostics.summarize(m.codes, per_dim=False)['active_units'])
  row.update({k: float(v) for k, v in table_metrics(m).items() if isinstance(v, (int, float))})
  row['metrics_seconds'] = time.perf_counter() - start
  row['epochs'] = m.config.num_epochs
  directory = cell_dir(outdir, spec, seed)
  variant = spec.name.rsplit('_', 1)[1]
  if seed == sample_seed and variant in SAMPLE_VARIANTS:
    np.savez_compressed(os.path.join(directory, SAMPLES_FILE), **_samples(m, seed))
  cell = {'name': spec.name, 'seed': seed, 'dataset': spec.dataset, 'quick': quick,
          'overrides': [list(o) for o in spec.overrides], 'metrics': row}
  workdir_lib.atomic_write_text(os.path.join(directory, CELL_FILE),
                                json.dumps(cell, indent=2, sort_keys=True))
  if os.path.exists(os.path.join(directory, ERROR_FILE)):
    os.remove(os.path.join(directory, ERROR_FILE))   # an earlier failure, now retried
  jax.clear_caches()
  return row


def run_shard(outdir, data_dir, jobs, quick, quiet=False, sample_seed=0, shard='0/1'):
  """Trains and scores the unfinished ``jobs`` whose lock is free; returns counts.

  ``shard`` (``i/N``, as --shard gave it) is recorded with the pass's wall time.
  """
  from vae_jax.study import report as study_report
  from vae_jax.infra import interrupts, run_clock
  from vae_jax.infra import workdir as workdir_lib

  started_at, started = time.time(), time.perf_counter()
  table_metrics = study_report.TableMetrics(outdir, data_dir, quick)
  counts = {'done': 0, 'reused': 0, 'busy': 0, 'failed': 0}
  finished = False
  try:
    with interrupts.stop_on_signals() as stop:
      for k, (spec, seed) in enumerate(jobs):
        directory = cell_dir(outdir, spec, seed)
        lock_dir = os.path.join(outdir, 'locks', sweep_models.job_id(spec, seed))
        os.makedirs(lock_dir, exist_ok=True)
        try:
          with workdir_lib.lock(lock_dir, 'sweep cell'):
            if os.path.exists(os.path.join(directory, CELL_FILE)):
              counts['reused'] += 1
              continue
            try:
              row = run_cell(spec, seed, outdir, data_dir, quick, quiet, table_metrics, stop,
                             sample_seed)
            except workdir_lib.WorkdirError:
              raise   # a full disk or a locked model: its own line says what to do
            except Exception as e:  # noqa: BLE001
              # One bad cell (a non-finite loss, a singular fit) must not stop a long
              # unattended run: it is recorded, reported and retried next time.
              counts['failed'] += 1
              os.makedirs(directory, exist_ok=True)
              workdir_lib.atomic_write_text(os.path.join(directory, ERROR_FILE),
                                            f'{type(e).__name__}: {e}\n')
              run_study._status(f'sweep: {spec.name} seed {seed} FAILED: {e}')
              continue
        except workdir_lib.WorkdirLockedError:
          counts['busy'] += 1   # another process is training it
          continue
        counts['done'] += 1
        run_study._status(
            f'sweep: {k + 1}/{len(jobs)} {spec.name} seed {seed} done (recon {row["recon"]:.1f} '
            f'nats, train {row["train_seconds"]:.0f} s, metrics {row["metrics_seconds"]:.0f} s); '
            f'{(time.perf_counter() - started) / 60:.1f} min elapsed')
        stop.raise_if_requested(f'interrupted after {spec.name} seed {seed}; rerun to resume')
    finished = True
  finally:
    # An interrupted pass is recorded too: a sweep split over sessions sums them all.
    record = {'started': started_at, 'wall_seconds': time.perf_counter() - started,
              'shard': shard, 'quick': quick,
              'machine': run_clock.machine_description(), 'finished': finished,
              **counts}
    workdir_lib.append_line(os.path.join(outdir, PASSES_FILE), json.dumps(record) + '\n')
  return counts


def read_cells(outdir, jobs):
  """``(per_seed, missing, failed)``: every finished job's row, the unfinished and failed ones."""
  per_seed, missing, failed = {}, [], []
  for spec, seed in jobs:
    directory = cell_dir(outdir, spec, seed)
    path = os.path.join(directory, CELL_FILE)
    if os.path.exists(path):
      with open(path) as f:
        per_seed.setdefault(spec.name, {})[str(seed)] = json.load(f)['metrics']
    else:
      missing.append(sweep_models.job_id(spec, seed))
      if os.path.exists(os.path.join(directory, ERROR_FILE)):
        failed.append(sweep_models.job_id(spec, seed))
  return per_seed, missing, failed


def read_passes(outdir):
  from vae_jax.infra import workdir as workdir_lib
  return workdir_lib.read_jsonl(os.path.join(outdir, PASSES_FILE))


def summarize(outdir, jobs, grid, quick):
  """Merges the finished cells into summary.json, REPORT.md and figures/; returns the summary.

  One process at a time: shards that end together would otherwise write the
  same figures at once.
  """
  with _waiting_lock(os.path.join(outdir, 'locks', 'summary'), 'sweep summary'):
    return _summarize(outdir, jobs, grid, quick)


def _summarize(outdir, jobs, grid, quick):
  from vae_jax.study import sweep_figures
  from vae_jax.study import sweep_report
  from vae_jax.infra import workdir as workdir_lib

  per_seed, missing, failed = read_cells(outdir, jobs)
  samples = {}
  for spec, seed in jobs:
    path = os.path.join(cell_dir(outdir, spec, seed), SAMPLES_FILE)
    if os.path.exists(path) and spec.name not in samples:
      import numpy as np
      with np.load(path) as f:
        samples[spec.name] = {k: f[k] for k in f.files}
  classifiers = {}
  for dataset in grid['datasets']:
    path = os.path.join(outdir, 'classifiers', f'{dataset}{"_quick" if quick else ""}.npz')
    if os.path.exists(path):
      from vae_jax.analysis import classifier
      classifiers[dataset] = classifier.load(path)[1]
  summary = sweep_report.summarise(per_seed, missing, failed, grid, quick,
                                   read_passes(outdir), classifiers)
  figdir = os.path.join(outdir, 'figures')
  os.makedirs(figdir, exist_ok=True)
  summary['figures_facts'] = sweep_figures.draw_all(summary, samples, figdir)
  summary['captions'] = sweep_figures.captions(summary)
  summary['figures'] = sorted(summary['captions'])
  workdir_lib.atomic_write_text(os.path.join(outdir, 'summary.json'),
                                json.dumps(summary, indent=2, sort_keys=True))
  workdir_lib.atomic_write_text(os.path.join(outdir, 'REPORT.md'),
                                sweep_report.report_markdown(summary, 'figures'))
  return summary


def _grid_from_flags(args):
  from vae_jax.infra import errors
  base = sweep_models.QUICK_GRID if args.quick else {
      'datasets': data.study_datasets(), 'latent_dims': sweep_models.LATENT_DIMS,
      'variants': tuple(sweep_models.VARIANT), 'seeds': sweep_models.DEFAULT_SEEDS}
  try:
    g = {'datasets': tuple(args.datasets or base['datasets']),
         'latent_dims': tuple(int(z) for z in (args.latent_dims or base['latent_dims'])),
         'variants': tuple(args.variants or base['variants']),
         'seeds': tuple(int(s) for s in (args.seeds or base['seeds']))}
    jobs = sweep_models.grid(**g)
  except ValueError as e:
    errors.exit_with(str(e))
  return g, jobs


def main(argv=None, prog='vae-jax sweep'):
  from vae_jax.infra import errors

  args = parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
  flags.configure_logging(args.verbosity)
  if not args.outdir:
    errors.exit_with('--outdir is required, e.g. --outdir=runs/sweep')
  if args.publish:
    from vae_jax.study import sweep_publish
    with errors.user_errors():
      print(sweep_publish.publish(args.outdir, args.root, args.allow_incomplete))
    return 0
  g, jobs = _grid_from_flags(args)
  try:
    index, count = study_models.parse_shard(args.shard)
  except ValueError as e:
    errors.exit_with(str(e))
  os.makedirs(args.outdir, exist_ok=True)
  study_models.use_compilation_cache(args.outdir)
  with errors.user_errors():
    if not args.summarize_only:
      counts = run_shard(args.outdir, args.data_dir, study_models.shard(jobs, index, count),
                         args.quick, args.quiet, sample_seed=g['seeds'][0], shard=args.shard)
      print(f'shard {index}/{count}: ' + ', '.join(f'{v} {k}' for k, v in counts.items()))
    summary = summarize(args.outdir, jobs, g, args.quick)
  missing = summary['missing']
  print(f'wrote {args.outdir}/summary.json, REPORT.md and {len(summary["figures"])} figures: '
        f'{len(jobs) - len(missing)} of {len(jobs)} cells'
        + (f'; missing {len(missing)}: {", ".join(missing[:6])}'
           f'{" ..." if len(missing) > 6 else ""}' if missing else ''))
  return 0


if __name__ == '__main__':
  sys.exit(main(prog='python -m vae_jax.study.sweep'))
