r"""The seed study: every figure of the article, and the numbers behind its claims.

  python experiments/reproduce_seed.py --outdir=runs/study \
      [--data_dir=../shared/datasets] [--seeds=0,1,2] [--quick]

Trains (or resumes, or reuses when finished) every model under
``<outdir>/models/<name>_seed<k>/``, then writes ``<outdir>/figures/*.png``,
``<outdir>/summary.json`` (every number the figures and the table rest on) and
``<outdir>/REPORT.md``. ``--quick`` trains the same models for one epoch on a
slice of the data: minutes, for smoke tests; its numbers mean little.
Full run on a 2-core CPU: 19 minutes on an idle Zen 5 EPYC (about twice that
when another job shares the cores).
"""

import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import study_figures  # noqa: E402
import study_models  # noqa: E402
import study_report  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string('outdir', None, 'Where models, figures, summary.json and REPORT.md go.')
flags.DEFINE_string('data_dir', os.environ.get('VAE_JAX_DATA_DIR', ''),
                    'Directory of IDX files (default $VAE_JAX_DATA_DIR; empty: TFDS).')
flags.DEFINE_list('seeds', None, 'Seeds of the table models (default 0,1,2; --quick: 0).')
flags.DEFINE_bool('quick', False, 'One epoch on 2048 images per model: a smoke test.')
flags.DEFINE_bool('quiet', False, 'No progress bars.')


class StudyError(RuntimeError):
  """A model of the study failed; the message names it and why."""


def train_one(spec, seed, outdir, data_dir, quick, quiet, table_metrics=None):
  """Trains (or reuses) one model; returns a study_figures.Trained."""
  import jax
  from vae_jax import latent, train

  config = study_models.make_config(spec, seed, data_dir, quick)
  config.progress = not quiet
  workdir = os.path.join(outdir, 'models', f'{spec.name}_seed{seed}')
  timing_path = os.path.join(workdir, 'study_timing.json')
  start = time.perf_counter()
  try:
    result = train.train_and_evaluate(config, workdir)
  except Exception as e:
    raise StudyError(f'model {spec.name} (seed {seed}) failed to train: '
                     f'{type(e).__name__}: {e}') from e
  elapsed = time.perf_counter() - start
  test = result['test']
  bad = [k for k, v in test.items() if not (abs(v) < float('inf'))]
  if bad:
    raise StudyError(f'model {spec.name} (seed {seed}) ended with non-finite test '
                     f'{bad}: see {workdir}/metrics.jsonl')
  # The training time of a reused model is the one measured when it was trained.
  timing = {'train_seconds': elapsed}
  if os.path.exists(timing_path):
    with open(timing_path) as f:
      timing = json.load(f)
  elif result['state'].step > 0:
    with open(timing_path, 'w') as f:
      json.dump(timing, f)
  exp, params = result['experiment'], jax.device_get(result['state'].params)
  codes, logvars = latent.encode(exp.model, params, exp.test_images)
  trained = study_figures.Trained(spec.name, spec.label, seed, exp, params, codes, logvars,
                                  dict(test, **timing))
  if spec.all_seeds and table_metrics is not None:
    trained.table = table_metrics(trained)
  # Free the device copy of the training set: dozens of models stay in memory.
  exp.train_images = None
  return trained


def run_study(outdir, data_dir, seeds, quick, quiet=False):
  """Runs the whole study; returns the summary dict (also written to disk)."""
  import jax
  from tqdm import tqdm

  started = time.perf_counter()
  figdir = os.path.join(outdir, 'figures')
  os.makedirs(figdir, exist_ok=True)
  jobs = [(spec, seed) for spec in study_models.SPECS
          for seed in (seeds if spec.all_seeds else seeds[:1])]
  trained = {}
  table_metrics = study_report.TableMetrics(outdir, data_dir, quick)
  bar = tqdm(jobs, desc='study', unit='model', disable=quiet or not sys.stderr.isatty())
  for spec, seed in bar:
    bar.set_postfix_str(f'{spec.name} seed {seed}')
    trained[(spec.name, seed)] = train_one(spec, seed, outdir, data_dir, quick, quiet,
                                           table_metrics)
    jax.clear_caches()  # each model compiles its own functions: don't let them pile up
  first = {name: trained[(name, seeds[0])] for name, _ in trained if (name, seeds[0]) in trained}

  facts = {}
  for make in study_figures.ALL:
    facts.update(make(first, figdir))
  missing = [f for f in study_figures.FIGURES
             if not os.path.exists(os.path.join(figdir, f'{f}.png'))]
  if missing:
    raise StudyError(f'figures not written: {missing}')

  summary = study_report.summarise(trained, seeds, facts, table_metrics.classifiers,
                                   quick, time.perf_counter() - started)
  with open(os.path.join(outdir, 'summary.json'), 'w') as f:
    json.dump(summary, f, indent=2, sort_keys=True)
  with open(os.path.join(outdir, 'REPORT.md'), 'w') as f:
    f.write(study_report.report_markdown(summary))
  return summary


def main(argv):
  del argv
  from vae_jax import errors

  if not FLAGS.outdir:
    errors.exit_with('--outdir is required, e.g. --outdir=runs/study')
  seeds = [int(s) for s in (FLAGS.seeds or (['0'] if FLAGS.quick else ['0', '1', '2']))]
  with errors.user_errors(extra=(StudyError,)):
    summary = run_study(FLAGS.outdir, FLAGS.data_dir, seeds, FLAGS.quick, FLAGS.quiet)
  print(f'wrote {FLAGS.outdir}/REPORT.md, summary.json and '
        f'{len(summary["figures"])} figures in {summary["wall_seconds"] / 60:.1f} min')


if __name__ == '__main__':
  from vae_jax.errors import run_absl_app
  run_absl_app(main, sys.argv)
