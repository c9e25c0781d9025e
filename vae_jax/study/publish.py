r"""A finished full study into the checkout, and the study's generated blocks.

  vae-jax study --outdir=runs/study --nocheck_gates
  vae-jax publish --study=runs/study     # import_run below, then every block

``import_run`` copies the study's figures to docs/figures, its summary.json to
docs/study_summary.json and its REPORT.md to docs/study_report.md (figure
links relative to docs/). The blocks rendered from docs/study_summary.json
(``results_section``: docs/results/study.md; ``headline`` and ``main_job``:
README.md) are written by the one publish step, vae_jax/publish.py; nothing
is typed by hand.
"""

import json
import os
import shutil
import sys

from vae_jax.infra import blocks, errors, flags, paths
from vae_jax.infra import workdir as workdir_lib
from vae_jax.study import claims as study_claims
from vae_jax.study import figures as study_figures
from vae_jax.analysis import verdicts
from vae_jax.study import report as study_report

ROOT = paths.REPO_ROOT
SUMMARY = os.path.join('docs', 'study_summary.json')   # the blocks' source, in the checkout
WRITTEN_BY = 'vae-jax study --outdir=runs/study && vae-jax publish --study=runs/study'

def _failed_gates(gates):
  failed = [f"{g['model']} seed {g['seed']}: `{g['gate']}`, measured {g['value']:.4g}"
            for g in gates if not g['passed']]
  if not failed:
    return ''
  return ('; below their gate, and drawn from only because the study ran with '
          '`--nocheck_gates`: ' + '; '.join(failed))


def _rejudged(s):
  """The sentence that says a summary's verdicts were re-judged under later rules, if so."""
  r = s.get('rejudged')
  return (f" Its verdicts were re-judged from its per-seed values under the rules of "
          f"[docs/statistics.md](../statistics.md) ({r}), after the run." if r else '')


def main_job(s):
  """README: the main job's measured wall time and the machine that ran it."""
  t = s.get('timing')
  if t and t['from_empty']:
    return (f"Measured on {'; '.join(t['machines'])}: {study_report.cost_sentence(t)} "
            "([docs/study_summary.json](docs/study_summary.json)).")
  wall, train = s['wall_seconds'] / 60, s['train_seconds_total'] / 60
  line = (f"Measured on {s['machine']}: {wall:.0f} minutes of wall time in the study's last "
          f"pass; its models' training summed over every model and seed (seeds {s['seeds']}) "
          f"is {train:.0f} minutes")
  if train > wall:
    # The last pass reused models that earlier passes trained: not a from-scratch time.
    line += (', more than that pass took, so it reused models trained in earlier passes '
             'and no wall time from an empty outdir is on file')
  return line + ' ([docs/study_summary.json](docs/study_summary.json)).'


def headline(s):
  """README: the verdict counts of each claim group, linking to the full tables."""
  gates_ok = sum(g['passed'] for g in s['gates'])
  secondary = {v: sum(study_report.verdict_counts(s['claims'], f)[v]
                      for f in study_claims.SECONDARY) for v in verdicts.VERDICTS}
  return '\n'.join([
      f"- **The article's claims** (the primary family, one row per claim, Holm-corrected), "
      f"{study_report.seeds_phrase(s)}, samples from N(0, I): "
      f"{study_report.counts_sentence(study_report.verdict_counts(s['claims']))}"
      + (' (re-judged under the current rules from the last full run)' if s.get('rejudged')
         else '') + ' ([table](docs/results/study.md#the-articles-claims-measured)).',
      f"- **Exploratory rows** (other metrics, samplers, replication on Fashion-MNIST, "
      f"wording; each family corrected within itself): {study_report.counts_sentence(secondary)} "
      '([tables](docs/results/study.md)).',
      f"- **Quality gates**: {gates_ok} of {len(s['gates'])} passed "
      '([metrics table](docs/results/study.md#metrics-table-mean--std-over-seeds), '
      '[every gate](docs/study_report.md)).'])


def results_section(s, figures='../figures'):
  """docs/results/study.md: every claim with its interval, the metrics table, the gallery."""
  acc = ', '.join(f"{d} {m['test_accuracy'] * 100:.2f} %" for d, m in s['classifiers'].items())
  gates_ok = sum(g['passed'] for g in s['gates'])
  lines = [f"Generated from docs/study_summary.json, one full run of the seed study (seeds "
           f"{s['seeds']}; `{WRITTEN_BY}`). The whole report, with every family and every "
           'gate, is [docs/study_report.md](../study_report.md).' + _rejudged(s), '',
           '## The article\'s claims, measured', '',
           f"{study_report.counts_sentence(study_report.verdict_counts(s['claims']))} "
           f"(the primary family). {study_report.VERDICT_RULE} Samples are decoded from "
           "N(0, I) for every model, the article's own experiment; "
           '[docs/metrics.md](../metrics.md) defines each metric.', '']
  lines += study_report.claims_markdown(s['claims'])
  for family in study_claims.SECONDARY:
    lines += ['', f'## {study_report.FAMILY_TITLES[family]}', '']
    lines += study_report.claims_markdown(s['claims'], family)
  previous = s.get('previous_publication')
  if previous:
    changes = study_report.verdict_changes(previous['claims'], s['claims'])
    lines += ['', '## Verdicts changed since the previous publication', '',
              f"The previous publication: seeds {previous['seeds']} on {previous['machine']}"
              + (f" (re-judged: {previous['rejudged']})" if previous.get('rejudged') else '')
              + '. Each change and why, read off the two summaries:', '']
    lines += study_report.changes_markdown(changes, len(s['claims']) - sum(
        c['after'] is not None for c in changes))
  lines += ['', '## Metrics table (mean ± std over seeds)', '',
            f'Nats per test image. The independent classifier scores {acc} on the real test '
            f'sets. {gates_ok} of {len(s["gates"])} quality gates passed '
            '(docs/study_report.md lists each)' + _failed_gates(s['gates']) + '.', '']
  lines += study_report.table_markdown(s['table'])
  lines += ['', '## Gallery', '']
  # The study's own order (the article's), then any figure it no longer names.
  order = {n: i for i, n in enumerate(study_figures.FIGURES)}
  for name in sorted(s['figures'], key=lambda n: (order.get(n, len(order)), n)):
    lines += [f"**{name}**: {s['captions'][name]}", '', f'![{name}]({figures}/{name}.png)', '']
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


def import_run(outdir, root=ROOT):
  """Copies a finished full study's figures, summary and report into ``root``/docs."""
  summary_path = os.path.join(outdir, 'summary.json')
  summary = blocks.read_source(summary_path, f'vae-jax study --outdir={outdir}')
  figdir = os.path.join(root, 'docs', 'figures')
  os.makedirs(figdir, exist_ok=True)
  published = os.path.join(root, SUMMARY)
  for name in _stale_figures(published, study_figures.FIGURES):
    os.remove(os.path.join(figdir, f'{name}.png'))  # a figure the study no longer draws
  for name in study_figures.FIGURES:
    shutil.copy(os.path.join(outdir, 'figures', f'{name}.png'), figdir)
  if os.path.exists(published):
    # What the previous publication said, so the pages can say which verdicts
    # this run changed and why (the summary is otherwise the run's own).
    with open(published) as f:
      before = json.load(f)
    summary['previous_publication'] = {
        'claims': [{k: c.get(k) for k in ('id', 'group', 'metric', 'n', 'measured', 'verdict')}
                   for c in before.get('claims', [])],
        'seeds': before.get('seeds'), 'machine': before.get('machine'),
        'rejudged': before.get('rejudged')}
  workdir_lib.atomic_write_text(published, json.dumps(summary, indent=2, sort_keys=True))
  with open(os.path.join(root, 'docs', 'study_report.md'), 'w') as f:
    f.write(study_report.report_markdown(summary))
  return (f'imported {len(study_figures.FIGURES)} figures, docs/study_summary.json and '
          'docs/study_report.md')


def rejudge(root=ROOT):
  """Re-judges the published study's claims from its per-seed values under today's rules.

  For when the verdict rules (claims.py, verdicts.py) change between full runs:
  docs/study_summary.json keeps every measured value and gets the claims that
  the current code declares, marked ``rejudged``; docs/study_report.md follows.
  Nothing is retrained or re-measured: a claim whose metric the run did not
  compute stays open and says so.
  """
  path = os.path.join(root, SUMMARY)
  summary = blocks.read_source(path, WRITTEN_BY)
  summary['claims'] = study_report.judge(summary['per_seed'], summary['classifiers'])
  summary['captions'] = study_report.captions(summary)
  summary['rejudged'] = ('the families of vae_jax/study/claims.py applied to the per-seed '
                         'values of this run')
  workdir_lib.atomic_write_text(path, json.dumps(summary, indent=2, sort_keys=True))
  workdir_lib.atomic_write_text(os.path.join(root, 'docs', 'study_report.md'),
                                study_report.report_markdown(summary))
  counts = study_report.verdict_counts(summary['claims'])
  return f're-judged {len(summary["claims"])} claims: {study_report.counts_sentence(counts)} (primary)'


def parser(prog='python -m vae_jax.study.publish'):
  p = flags.Parser(prog, __doc__.split('\n\n')[0], f'{prog} --outdir=runs/study')
  p.add_argument('--outdir', default='runs/study', help='a finished study (not --quick)')
  p.add_argument('--root', default=ROOT, help='the checkout whose docs/ is updated')
  return p


def main(argv=None, prog='python -m vae_jax.study.publish'):
  args = parser(prog).parse_args(argv)
  with errors.user_errors():
    print(import_run(args.outdir, args.root) + '; `vae-jax publish` regenerates README.md and docs/results/study.md from them')
  return 0


if __name__ == '__main__':
  sys.exit(main())
