r"""The seed study: every figure of the article, and the numbers behind its claims.

  vae-jax study --outdir=runs/study [--data_dir=../shared/datasets] [--seeds=0,1,2] [--quick]
                [--train_only] [--shard=i/N]

(``vae-jax reproduce`` and ``python -m vae_jax.study.run`` take the same flags.)

Trains (or resumes, or reuses when finished) every model under
``<outdir>/models/<name>_seed<k>/``, then writes ``<outdir>/figures/*.png``,
``<outdir>/summary.json`` (every number the figures, captions, tables and
verdicts rest on) and ``<outdir>/REPORT.md``. Every model must reach the
quality gates its experiment file declares (vae_jax/analysis/gates.py) or the study
stops with one line naming it. Each of the article's claims is judged from
per-seed paired differences with a 95 % interval (study_claims.py).
``--quick`` trains the same models for one epoch on a slice of the data:
minutes, for smoke tests; its numbers mean nothing and gates are not enforced.
The measured wall time of a full run is in summary.json (``wall_seconds``,
``train_seconds_total``), published into README.md by ``vae-jax publish``.
"""

import contextlib
import json
import os
import sys
import time

from vae_jax.infra import errors, flags
from vae_jax.study import figures as study_figures
from vae_jax.study import catalog as study_models
from vae_jax.study import report as study_report


def add_flags(parser, outdir_help, seeds_help, quick_help, gates_help):
  """The flags the study and the sweep share (vae_jax/study/sweep.py adds its own)."""
  parser.add_argument('--outdir', default=None, help=outdir_help)
  parser.add_argument('--data_dir', default=os.environ.get('VAE_JAX_DATA_DIR', ''),
                      help='directory of IDX files (default $VAE_JAX_DATA_DIR; empty: TFDS)')
  parser.add_argument('--seeds', type=flags.comma_list, default=None, metavar='0,1,...',
                      help=seeds_help)
  parser.add_bool('quick', False, quick_help)
  parser.add_bool('check_gates', None, gates_help)
  parser.add_bool('quiet', False, 'no progress bars')
  parser.add_verbosity()
  return parser


PASSES_FILE = 'study_passes.jsonl'  # one line per process, interrupted or not: its phases' time


def parser(prog='vae-jax study'):
  p = add_flags(
      flags.Parser(prog, __doc__.split('\n')[0], [
          'vae-jax study --outdir=runs/study --nocheck_gates',
          'vae-jax study --outdir=/tmp/study --quick --seeds=0,1']),
      'where models, figures, summary.json and REPORT.md go',
      'seeds of the study (default 0..9, each model its first catalog.Spec.seeds, '
      'from vae_jax/study/power.py; --quick: 0)',
      'one epoch on 2048 images per model: a smoke test',
      'stop at the first model below a quality gate '
      '(default: on for a full study, off for --quick)')
  p.add_bool('train_only', False,
             'train (or resume) every model and stop: no metrics, figures or summary; '
             'a later run without it reuses the models (split a long study over sessions)')
  p.add_argument('--compute_dtype', default='float32', choices=('float32', 'bfloat16'),
                 help="every model's config.compute_dtype (docs/performance.md); the "
                      'classifiers that score them stay float32. Use a fresh --outdir: a '
                      'model trained at the other dtype is refused, not reused')
  p.add_argument('--shard', default=None, metavar='i/N',
                 help='train only every N-th model from the i-th (implies --train_only): '
                      'N processes, a SLURM array or N GPUs train the study together; then '
                      'one run without --shard draws the figures and writes one summary')
  return p


class StudyError(errors.UserError, RuntimeError):
  """A model of the study failed; the message names it and why."""


def _status(message):
  """One plain line on stderr when it is not a terminal (a log file under a scheduler)."""
  if not sys.stderr.isatty():
    print(message, file=sys.stderr, flush=True)


def gate_values(trained):
  """What a quality gate may test: the test metrics, recon per pixel, active units."""
  from vae_jax.core import diagnostics
  return dict(trained.test, recon_per_pixel=trained.test['recon'] / study_figures.num_pixels(trained),
              active_units=diagnostics.summarize(trained.codes, per_dim=False)['active_units'])


def check_gates(spec, trained, enforce):
  """Rows ``{model, seed, gate, value, passed}``; with ``enforce`` a failed gate is a StudyError."""
  from vae_jax.analysis import gates
  rows = []
  for gate, value, passed in gates.check(study_models.quality_gates(spec), gate_values(trained)):
    rows.append({'model': spec.name, 'seed': trained.seed, 'gate': str(gate), 'value': value,
                 'passed': passed})
    if enforce and not passed:
      raise StudyError(f'model {spec.name} (seed {trained.seed}) is below its quality gate '
                       f'{gate}: measured {value:.4g}; train it longer (experiments/configs/'
                       f'{spec.config}.py) or rerun with --nocheck_gates to draw nothing from '
                       'it knowingly')
  return rows


def _read_json(path):
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def train_one(spec, seed, outdir, data_dir, quick, quiet, compute_dtype='float32'):
  """Trains one model unless its workdir holds it finished; returns a study_figures.Trained.

  Training and restoring are separate: a finished model is restored with
  ``experiment.restore`` whether it was trained now or by an earlier run.
  """
  from vae_jax.core import data, experiment, latent, train
  from vae_jax.infra import run_clock
  from vae_jax.infra import workdir as workdir_lib

  config = study_models.make_config(spec, seed, data_dir, quick, compute_dtype)
  config.progress = not quiet
  workdir = os.path.join(outdir, 'models', f'{spec.name}_seed{seed}')
  timing_path = os.path.join(workdir, 'study_timing.json')
  found = experiment.restore_finished(workdir, config)
  if found is None:
    start = time.perf_counter()
    try:
      train.train_and_evaluate(config, workdir)
    except workdir_lib.WorkdirError:
      raise  # a locked workdir or a full disk: its own one line says what to do
    except Exception as e:
      raise StudyError(f'model {spec.name} (seed {seed}) failed to train: '
                       f'{type(e).__name__}: {e}') from e
    # Training time over every pass that trained this model (a resumed one adds up).
    workdir_lib.atomic_write_text(timing_path, json.dumps(
        {'train_seconds': _read_json(timing_path).get('train_seconds', 0.0)
         + time.perf_counter() - start}))
    found = experiment.restore_finished(workdir, config)
    if found is None:
      raise StudyError(f'model {spec.name} (seed {seed}) trained but {workdir} holds no final '
                       'checkpoint and test row: delete that directory and rerun')
  (_, model, params, _), test = found
  bad = [k for k, v in test.items() if not (abs(v) < float('inf'))]
  if bad:
    raise StudyError(f'model {spec.name} (seed {seed}) ended with non-finite test '
                     f'{bad}: see {workdir}/metrics.jsonl')
  timing = _read_json(timing_path)
  if not timing and run_clock.read(workdir):
    # Trained outside the study (python -m vae_jax.main with the same config):
    # the training loop's own clock, summed over its segments.
    timing = {'train_seconds': run_clock.read(workdir)['train_seconds']}
  test_images, test_labels = data.load_split(config.data, 'test')
  codes, logvars = latent.encode(model, params, test_images)
  return study_figures.Trained(spec.name, spec.label, seed, config, model, params, test_images,
                               test_labels, codes, logvars, dict(test, **timing))


def add_seed_facts(trained, seeds):
  """Per-seed facts that need two models (the walk) or a model's own data (denoising)."""
  for seed in seeds:
    ae, vae = trained.get(('mnist_ae_2d', seed)), trained.get(('mnist_vae_2d', seed))
    if ae is not None and vae is not None:
      walk = study_figures.walk_facts(ae, vae)
      for m in (ae, vae):
        m.facts['walk_evenness'] = walk[m.name]['evenness']
    denoiser = trained.get(('mnist_denoising_ae', seed))
    if denoiser is not None:
      denoiser.facts.update(study_figures.denoising_facts(denoiser))


def run_study(outdir, data_dir, seeds, quick, quiet=False, enforce_gates=None, train_only=False,
              shard=None, compute_dtype='float32'):
  """Runs the whole study; returns the summary dict (also written to disk).

  ``compute_dtype`` is every model's ``config.compute_dtype`` (the
  measurement classifiers stay float32, so both dtypes are scored alike).

  With ``train_only`` it trains (or resumes) every model and returns None;
  with ``shard`` ``(i, N)`` it does so for every N-th model from the i-th
  (:func:`catalog.shard`), and several shards may share the outdir: each model's
  workdir has its own lock.
  Every call appends its phases' seconds to ``<outdir>/study_passes.jsonl``,
  interrupted or not, so a study split over sessions reports its wall time
  from an empty outdir (:func:`timing`).
  """
  from vae_jax.infra import interrupts
  from vae_jax.infra import workdir as workdir_lib

  enforce_gates = (not quick) if enforce_gates is None else enforce_gates
  os.makedirs(outdir, exist_ok=True)
  # One study per outdir at a time; Ctrl-C / SIGTERM save the model in training
  # at its next chunk and stop between models (rerun to resume).
  # A shard only trains: the outdir stays open to the other shards.
  outdir_lock = (contextlib.nullcontext() if shard else workdir_lib.lock(outdir, 'study'))
  with outdir_lock, interrupts.stop_on_signals() as stop:
    clock = _PassClock(outdir, quick, train_only or bool(shard), shard, compute_dtype)
    try:
      summary = _run_study(outdir, data_dir, seeds, quick, quiet, enforce_gates, stop, clock,
                           train_only or bool(shard), shard, compute_dtype)
      clock.finished = True
    finally:
      clock.record()
    if summary is not None:
      summary['timing'] = timing(read_passes(outdir), summary['per_seed'])
      _write_summary(outdir, summary)
    return summary


class _PassClock:
  """Seconds this process spends in each phase; one line in PASSES_FILE at its end."""

  def __init__(self, outdir, quick, train_only, shard, compute_dtype='float32'):
    self.path = os.path.join(outdir, PASSES_FILE)
    models = os.path.join(outdir, 'models')
    self.fields = {'started': time.time(), 'quick': quick, 'train_only': train_only,
                   'compute_dtype': compute_dtype,
                   'shard': '/'.join(map(str, shard or (0, 1))),
                   # "From empty" holds only when the first pass found no models.
                   'found_models': bool(os.path.isdir(models) and os.listdir(models))}
    self.phases = {'train': 0.0, 'metrics': 0.0, 'figures': 0.0}
    self._t0 = time.perf_counter()
    self.finished = False

  def add(self, phase, since):
    """Adds the seconds from ``since`` (a perf_counter value) to ``phase``; returns now."""
    now = time.perf_counter()
    self.phases[phase] += now - since
    return now

  def record(self):
    from vae_jax.infra import run_clock
    from vae_jax.infra import workdir as workdir_lib
    line = dict(self.fields, wall_seconds=time.perf_counter() - self._t0,
                finished=self.finished, machine=run_clock.machine_description(),
                **{f'{k}_seconds': v for k, v in self.phases.items()})
    workdir_lib.append_line(self.path, json.dumps(line, sort_keys=True) + '\n')


def read_passes(outdir):
  from vae_jax.infra import workdir as workdir_lib
  return workdir_lib.read_jsonl(os.path.join(outdir, PASSES_FILE))


def timing(passes, per_seed):
  """The study's cost over every pass: wall time from an empty outdir, split by phase.

  ``wall_seconds_busy`` is the union of the passes' intervals (gaps between
  sessions do not count); ``from_empty`` says whether the first pass found no
  trained models. Training is the models' own clocks summed (a resumed
  model's segments add up); metrics and figures are the passes' phase sums.
  """
  from vae_jax.infra import run_clock
  passes = [p for p in passes if not p.get('quick')] or passes
  first = min(passes, key=lambda p: p['started']) if passes else {}
  return {
      'passes': len(passes),
      'from_empty': bool(passes) and not first.get('found_models', True),
      'wall_seconds_busy': run_clock.busy_seconds(passes),
      'train_seconds_total': float(sum(r.get('train_seconds', 0.0)
                                       for rows in per_seed.values() for r in rows.values())),
      'train_phase_seconds': float(sum(p.get('train_seconds', 0.0) for p in passes)),
      'metrics_seconds': float(sum(p.get('metrics_seconds', 0.0) for p in passes)),
      'figures_seconds': float(sum(p.get('figures_seconds', 0.0) for p in passes)),
      'machines': sorted({p.get('machine', '?') for p in passes})}


def _write_summary(outdir, summary):
  from vae_jax.infra import workdir as workdir_lib
  workdir_lib.atomic_write_text(os.path.join(outdir, 'summary.json'),
                                json.dumps(summary, indent=2, sort_keys=True))
  workdir_lib.atomic_write_text(os.path.join(outdir, 'REPORT.md'),
                                study_report.report_markdown(summary))


def _run_study(outdir, data_dir, seeds, quick, quiet, enforce_gates, stop, clock, train_only,
               shard, compute_dtype='float32'):
  from tqdm import tqdm

  started = time.perf_counter()
  figdir = os.path.join(outdir, 'figures')
  os.makedirs(figdir, exist_ok=True)
  jobs = [(spec, seed) for spec in study_models.specs() for seed in spec.seed_list(seeds)]
  if shard:
    jobs = study_models.shard(jobs, *shard)
  trained, gate_rows = {}, []
  table_metrics = study_report.TableMetrics(outdir, data_dir, quick)
  bar = tqdm(jobs, desc='study', unit='model', disable=quiet or not sys.stderr.isatty())
  for done, (spec, seed) in enumerate(bar):
    bar.set_postfix_str(f'{spec.name} seed {seed}')
    since = time.perf_counter()
    m = train_one(spec, seed, outdir, data_dir, quick, quiet, compute_dtype)
    gate_rows += check_gates(spec, m, enforce_gates)
    since = clock.add('train', since)
    if spec.table and not train_only:
      m.table = table_metrics(m)
      clock.add('metrics', since)
    trained[(spec.name, seed)] = m
    elapsed = time.perf_counter() - started
    _status(f'study: {done + 1}/{len(jobs)} {spec.name} seed {seed} done '
            f'(test recon {m.test["recon"]:.1f} nats); {elapsed / 60:.1f} min elapsed')
    stop.raise_if_requested(f'interrupted after {spec.name} seed {seed}; every finished '
                            'model is saved; rerun the same command to resume')
  if train_only:
    return None
  since = time.perf_counter()
  add_seed_facts(trained, seeds)
  since = clock.add('metrics', since)
  first = {name: m for (name, seed), m in trained.items() if seed == seeds[0]}

  facts = {}
  for make in study_figures.ALL:
    facts.update(make(first, figdir, table_metrics.confident_share))
  clock.add('figures', since)
  missing = [f for f in study_figures.FIGURES
             if not os.path.exists(os.path.join(figdir, f'{f}.png'))]
  if missing:
    raise StudyError(f'figures not written: {missing}')

  summary = study_report.summarise(trained, seeds, facts, gate_rows, table_metrics.classifiers,
                                   quick, time.perf_counter() - started)
  summary['compute_dtype'] = compute_dtype
  return summary   # run_study adds the timing of every pass, this one's too, and writes it


def main(argv=None, prog='vae-jax study'):
  argv = sys.argv[1:] if argv is None else argv
  args = parser(prog).parse_args(argv)
  flags.configure_logging(args.verbosity)
  if not args.outdir:
    errors.exit_with('--outdir is required, e.g. --outdir=runs/study')
  default = ['0'] if args.quick else [str(s) for s in study_models.DEFAULT_SEEDS]
  try:
    seeds = [int(s) for s in (args.seeds or default)]
  except ValueError:
    errors.exit_with(f'--seeds={",".join(args.seeds)} must be integers, e.g. --seeds=0,1,2')
  try:
    shard = study_models.parse_shard(args.shard) if args.shard else None
  except ValueError as e:
    errors.exit_with(str(e))
  study_models.use_compilation_cache(args.outdir)
  with errors.user_errors():
    summary = run_study(args.outdir, args.data_dir, seeds, args.quick, args.quiet,
                        args.check_gates, args.train_only, shard, args.compute_dtype)
  if summary is None:
    which = f'shard {args.shard} of the study' if shard else 'every model of the study'
    print(f'trained {which} under {args.outdir}/models; rerun without '
          f'{"--shard" if shard else "--train_only"} to draw the figures and write the report')
    return 0
  print(f'wrote {args.outdir}/REPORT.md, summary.json and '
        f'{len(summary["figures"])} figures in {summary["wall_seconds"] / 60:.1f} min')
  return 0


if __name__ == '__main__':
  sys.exit(main(prog='python -m vae_jax.study.run'))
