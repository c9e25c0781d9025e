r"""Copies a finished full study's figures to docs/figures and its results into README.md.

docs/study_summary.json is the study's summary.json, docs/study_report.md its
REPORT.md (figure links relative to docs/).

  python -m vae_jax.study.publish --outdir=runs/study

The README section between the ``study:begin`` / ``study:end`` markers is
regenerated from ``<outdir>/summary.json``; nothing is typed by hand.
"""

import json
import os
import shutil
import sys

from absl import app, flags


from vae_jax.study import figures as study_figures
from vae_jax.study import report as study_report
from vae_jax.infra import paths

ROOT = paths.REPO_ROOT
BEGIN, END = '<!-- study:begin -->', '<!-- study:end -->'

FLAGS = flags.FLAGS
flags.DEFINE_string('outdir', 'runs/study', 'A finished study (not --quick).')
flags.DEFINE_string('root', ROOT, 'The checkout whose README.md and docs/ are updated.')


def _failed_gates(gates):
  failed = [f"{g['model']} seed {g['seed']}: `{g['gate']}`, measured {g['value']:.4g}"
            for g in gates if not g['passed']]
  if not failed:
    return ''
  return ('; below their gate, and drawn from only because the study ran with '
          '`--nocheck_gates`: ' + '; '.join(failed))


def readme_section(s):
  counts = study_report.verdict_counts(s['claims'])
  gates_ok = sum(g['passed'] for g in s['gates'])
  acc = ', '.join(f"{d} {m['test_accuracy'] * 100:.2f} %" for d, m in s['classifiers'].items())
  lines = [BEGIN, '',
           f"Everything below is generated from one full run of the seed study "
           f"(`python -m vae_jax.study.run --outdir=runs/study`, seeds "
           f"{s['seeds']}) by `python -m vae_jax.study.publish --outdir=runs/study`: "
           f"{s['wall_seconds'] / 60:.0f} minutes of wall time in its last pass, "
           f"{s['train_seconds_total'] / 60:.0f} minutes of training in all, on "
           f"{s['machine']}. The whole report, with every sampler and every gate, is "
           '[docs/study_report.md](docs/study_report.md); the numbers are in '
           '[docs/study_summary.json](docs/study_summary.json).', '',
           '### The article\'s claims, measured', '',
           f"{study_report.counts_sentence(counts)} (the primary family). "
           f"{study_report.VERDICT_RULE} Samples are decoded from N(0, I) for every model, the "
           'article\'s own experiment; [docs/metrics.md](docs/metrics.md) defines each metric.',
           '']
  lines += study_report.claims_markdown(s['claims'])
  lines += ['', '### The completeness claims under fitted samplers', '',
            'The same comparisons when each model is sampled from a Gaussian or a '
            '10-component GMM fitted to its own training codes (Ghosh et al. 2020):', '']
  lines += study_report.claims_markdown(s['claims'], 'samplers')
  lines += ['', '### Metrics table (mean ± std over seeds)', '',
            f'Nats per test image. The independent classifier scores {acc} on the real test '
            f'sets. {gates_ok} of {len(s["gates"])} quality gates passed '
            '(docs/study_report.md lists each)' + _failed_gates(s['gates']) + '.', '']
  lines += study_report.table_markdown(s['table'])
  lines += ['', '### Gallery', '']
  for name in study_figures.FIGURES:
    lines += [f"**{name}**: {s['captions'][name]}", '', f'![{name}](docs/figures/{name}.png)',
              '']
  lines.append(END)
  return '\n'.join(lines)


def _stale_figures(published_summary, figures):
  """Figures of the previously published study that the study no longer draws (renamed)."""
  if not os.path.exists(published_summary):
    return []
  with open(published_summary) as f:
    before = json.load(f).get('figures', [])
  figdir = os.path.join(os.path.dirname(published_summary), 'figures')
  return [n for n in before if n not in figures
          and os.path.exists(os.path.join(figdir, f'{n}.png'))]


def main(argv):
  del argv
  with open(os.path.join(FLAGS.outdir, 'summary.json')) as f:
    summary = json.load(f)
  if summary['quick']:
    print(f'error: {FLAGS.outdir} is a --quick study: publish a full run '
          '(run_study.py without --quick)', file=sys.stderr)
    sys.exit(2)
  figdir = os.path.join(FLAGS.root, 'docs', 'figures')
  os.makedirs(figdir, exist_ok=True)
  published = os.path.join(FLAGS.root, 'docs', 'study_summary.json')
  for name in _stale_figures(published, study_figures.FIGURES):
    os.remove(os.path.join(figdir, f'{name}.png'))  # a figure the study no longer draws
  for name in study_figures.FIGURES:
    shutil.copy(os.path.join(FLAGS.outdir, 'figures', f'{name}.png'), figdir)
  shutil.copy(os.path.join(FLAGS.outdir, 'summary.json'), published)
  with open(os.path.join(FLAGS.root, 'docs', 'study_report.md'), 'w') as f:
    f.write(study_report.report_markdown(summary))
  readme = os.path.join(FLAGS.root, 'README.md')
  with open(readme) as f:
    text = f.read()
  start, end = text.index(BEGIN), text.index(END) + len(END)
  with open(readme, 'w') as f:
    f.write(text[:start] + readme_section(summary) + text[end:])
  print(f'published {len(study_figures.FIGURES)} figures and the results section')


if __name__ == '__main__':
  app.run(main)
