r"""More paired seeds of one study model at both dtypes, for a quality row the study left open.

  python -m vae_jax.study.precision_seeds --outdir=runs/precision_seeds [--workers=2]
  python -m vae_jax.study.precision_study --bfloat16=runs/study_bf16/summary.json \
      --more_seeds=results/precision_seeds.json --json=results/precision_study.json

The bfloat16 study (vae_jax/study/precision_study.py) left the conv VAE's test
ELBO inconclusive at the full schedule: 4 paired seeds, bfloat16 − float32 =
−0.56 [−2.13, +1.01] nats against a declared margin of ±1.33. This tool trains
the seeds its power calculation asked for and nothing else. What follows was
declared, and committed, before any of these seeds trained:

* **Model and schedule.** :data:`MODEL` exactly as the study trains it
  (``catalog.make_config`` at the full schedule, the study's ``train_one``),
  once in float32 and once in bfloat16 per seed: the same seed gives both the
  same initial parameters and data order.
* **How many.** :data:`TOTAL_SEEDS` pairs in all: seeds 0..3 are the two
  studies' own, this tool trains seeds 4..21. 22 is the ``seeds_to_settle`` of
  that row in results/precision_study.json (commit 8829004):
  ``verdicts.seeds_to_settle`` for 80 % power at α / 8 (Bonferroni over the
  study's 8 quality rows, the conservative end of Holm), from the 4 study
  pairs' mean difference and standard deviation. The number is fixed here, not
  reached by looking at the pairs as they come in.
* **The test.** Unchanged: precision_study's TOST against the same margin,
  Holm over the same 8 models, with this model's row built from all 22 pairs
  (``precision_study --more_seeds``).
* **How each model trains.** One XLA thread per process
  (:data:`ONE_THREAD_XLA_FLAGS`, set by this tool in every worker it starts),
  ``--workers`` processes side by side, each taking the next model nobody holds
  (one lock per workdir). A model's numbers therefore do not depend on how many
  workers ran. They do differ in the last bits from a two-thread run of the same
  seed (XLA splits reductions by thread), which is why the study's own seeds 0..3
  are taken from the studies and not retrained here; within a pair both dtypes
  ran the same way. On 2 cores two one-thread processes train about as many
  of these models per hour as one two-thread process does (a short trial
  promised more; the full-schedule models gave about the same): the point of
  one thread is numbers that do not depend on the worker count.

Rerunning the command continues where it stopped (every model checkpoints and
resumes bit-exact); a finished model is read, not retrained. It ends by
writing ``--json`` with one row per (seed, dtype): test ELBO, training seconds,
the model's quality gates.
"""

import json
import os
import signal
import subprocess
import sys

from vae_jax.infra import blocks, errors, flags, paths
from vae_jax.study import catalog, power
from vae_jax.study.precision_study import DTYPES

MODEL = 'fashion_mnist_conv_vae_2d'
TOTAL_SEEDS = 22        # pairs in all, from the power calculation above (declared, not tuned)
STUDY_SEEDS = power.STUDY_SEEDS[MODEL]   # seeds 0..3: the studies trained them
ONE_THREAD_XLA_FLAGS = '--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1'
ROW_FILE = 'precision_seed_row.json'   # in each model's workdir, once it is finished
JSON = 'results/precision_seeds.json'


def jobs(total=TOTAL_SEEDS):
  """(seed, dtype) in training order: seed by seed, float32 then bfloat16, so pairs fill up."""
  return [(seed, dtype) for seed in range(STUDY_SEEDS, total) for dtype in DTYPES]


def model_dir(outdir, seed, dtype):
  return os.path.join(outdir, dtype, 'models', f'{MODEL}_seed{seed}')


def _train(outdir, data_dir, seed, dtype, quick):
  """Trains (or resumes, or reads) one model and writes its row into its workdir."""
  from vae_jax.infra import workdir as workdir_lib
  from vae_jax.study import run
  spec = catalog.spec_named(MODEL)
  trained = run.train_one(spec, seed, os.path.join(outdir, dtype), data_dir, quick, True, dtype)
  row = {'seed': seed, 'dtype': dtype, 'elbo': trained.test['elbo'],
         'train_seconds': trained.test.get('train_seconds'),
         'test': {k: v for k, v in trained.test.items() if k != 'train_seconds'},
         'gates': run.check_gates(spec, trained, enforce=False),
         'xla_flags': os.environ.get('XLA_FLAGS', '')}
  workdir_lib.atomic_write_text(os.path.join(model_dir(outdir, seed, dtype), ROW_FILE),
                                json.dumps(row, indent=1))
  return row


def work(outdir, data_dir, quick=False, total=TOTAL_SEEDS):
  """One worker: every job not finished and not held by another worker, in order."""
  from vae_jax.infra import interrupts
  from vae_jax.infra import workdir as workdir_lib
  with interrupts.stop_on_signals() as stop:
    for seed, dtype in jobs(total):
      if os.path.exists(os.path.join(model_dir(outdir, seed, dtype), ROW_FILE)):
        continue
      try:
        row = _train(outdir, data_dir, seed, dtype, quick)
      except workdir_lib.WorkdirLockedError:
        continue   # another worker trains it
      print(f'precision_seeds: {MODEL} seed {seed} {dtype}: test ELBO {row["elbo"]:.3f}',
            file=sys.stderr, flush=True)
      stop.raise_if_requested(f'interrupted after seed {seed} {dtype}; rerun to continue')


def collect(outdir, total=TOTAL_SEEDS):
  """The rows written so far, in job order, and the seeds finished at both dtypes.

  Each row gets ``machines``: the machine of every segment its model trained
  in, from the training loop's own clock (a run split over sessions may have
  moved machines).
  """
  from vae_jax.infra import run_clock
  rows = []
  for seed, dtype in jobs(total):
    path = os.path.join(model_dir(outdir, seed, dtype), ROW_FILE)
    if os.path.exists(path):
      with open(path) as f:
        row = json.load(f)
      clock = run_clock.read(model_dir(outdir, seed, dtype)) or {}
      row['machines'] = sorted({s.get('machine', '?') for s in clock.get('segments', ())})
      rows.append(row)
  done = {(r['seed'], r['dtype']) for r in rows}
  paired = sorted({s for s, _ in done if all((s, d) in done for d in DTYPES)})
  return rows, paired


def summary(outdir, quick=False, total=TOTAL_SEEDS):
  rows, paired = collect(outdir, total)
  return {'model': MODEL, 'total_seeds': total, 'study_seeds': STUDY_SEEDS,
          'seeds': list(range(STUDY_SEEDS, total)), 'paired_seeds': paired,
          'complete': len(paired) == total - STUDY_SEEDS, 'quick': quick,
          'xla_flags': ONE_THREAD_XLA_FLAGS,
          'machine': '; '.join(sorted({m for r in rows for m in r['machines']})),
          'rows': rows}


def _run_workers(args, argv):
  """Starts ``args.workers`` one-thread workers and waits; a signal is passed on to them."""
  env = dict(os.environ, XLA_FLAGS=(os.environ.get('XLA_FLAGS', '') + ' '
                                    + ONE_THREAD_XLA_FLAGS).strip())
  command = [sys.executable, '-m', 'vae_jax.study.precision_seeds', '--worker', *argv]
  # Their own session: a terminal's Ctrl-C reaches only this process, which passes it on
  # once (a second signal would make a worker stop without saving).
  procs = [subprocess.Popen(command, env=env, start_new_session=True)
           for _ in range(args.workers)]
  def forward(signum, frame):
    del frame
    for p in procs:
      if p.poll() is None:
        p.send_signal(signum)
  old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    return [p.wait() for p in procs]
  finally:
    for s, handler in old.items():
      signal.signal(s, handler)


def main(argv=None, prog='python -m vae_jax.study.precision_seeds'):
  argv = sys.argv[1:] if argv is None else argv
  parser = flags.Parser(prog, __doc__.split('\n\n')[0],
                        f'{prog} --outdir=runs/precision_seeds --workers=2')
  parser.add_argument('--outdir', default=None, help='where the models go (one folder per dtype)')
  parser.add_argument('--data_dir', default=os.environ.get('VAE_JAX_DATA_DIR', ''),
                      help='directory of IDX files (default $VAE_JAX_DATA_DIR; empty: TFDS)')
  parser.add_argument('--workers', type=int, default=2,
                      help='one-thread training processes side by side (one per core)')
  parser.add_argument('--json', default=os.path.join(paths.REPO_ROOT, JSON),
                      help='where the rows go when the workers stop')
  parser.add_bool('quick', False, "the study's --quick schedule: a smoke test, not the "
                  'declared one (its JSON says quick)')
  parser.add_argument('--total_seeds', type=int, default=TOTAL_SEEDS,
                      help=f'pairs in all (declared: {TOTAL_SEEDS}; fewer only with --quick)')
  parser.add_bool('worker', False, 'internal: one worker process (started by this command)')
  args = parser.parse_args(argv)
  if not args.outdir:
    errors.exit_with(f'--outdir is required, e.g. {prog} --outdir=runs/precision_seeds')
  if args.total_seeds != TOTAL_SEEDS and not args.quick:
    errors.exit_with(f'--total_seeds={args.total_seeds} differs from the declared '
                     f'{TOTAL_SEEDS}: only a --quick smoke test may change it')
  if args.workers < 1:
    errors.exit_with(f'--workers={args.workers}: need at least 1, e.g. --workers=2')
  catalog.use_compilation_cache(args.outdir)
  if args.worker:
    with errors.user_errors():
      work(args.outdir, args.data_dir, args.quick, args.total_seeds)
    return 0
  codes = _run_workers(args, [a for a in argv if not a.startswith('--workers')])
  result = summary(args.outdir, args.quick, args.total_seeds)
  blocks.write_source(args.json, result)
  left = len(result['seeds']) - len(result['paired_seeds'])
  print(f'{len(result["paired_seeds"])} of {len(result["seeds"])} new seed pairs of {MODEL} '
        f'trained; wrote {args.json}' + (f'; {left} left: rerun the same command' if left else ''))
  return max([0] + [c for c in codes if c > 0])


if __name__ == '__main__':
  sys.exit(main())
