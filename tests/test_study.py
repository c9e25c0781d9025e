"""The seed study end to end (--quick), and the vae-jax plot command."""

import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from conftest import README_PREFIXES, command_argv
from vae_jax.study import figures as study_figures
from test_readme import readme_command  # noqa: E402

STUDY = [sys.executable, '-m', 'vae_jax.cli', 'study']  # vae-jax study

pytestmark = pytest.mark.slow


def _env(data_dir):
  return dict(os.environ, VAE_JAX_DATA_DIR=data_dir, TF_CPP_MIN_LOG_LEVEL='3')


@pytest.fixture(scope='module')
def study(tmp_path_factory, data_dir):
  outdir = str(tmp_path_factory.mktemp('study'))
  # Split as a long study is split over processes: one shard of two trains
  # every other model, --train_only trains the rest, and neither draws ...
  base = [*STUDY, f'--outdir={outdir}', '--quick', '--seeds=0,1', '--quiet']
  for extra, says in (('--shard=1/2', 'trained shard 1/2 of the study'),
                      ('--train_only', 'rerun without --train_only')):
    proc = subprocess.run(base + [extra], capture_output=True, text=True, env=_env(data_dir),
                          cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert says in proc.stdout
    assert not os.path.exists(os.path.join(outdir, 'summary.json'))
    assert not os.listdir(os.path.join(outdir, 'figures'))
    if extra.startswith('--shard'):
      from vae_jax.study import catalog
      jobs = [f'{spec.name}_seed{seed}' for spec in catalog.specs()
              for seed in spec.seed_list([0, 1])]
      assert sorted(os.listdir(os.path.join(outdir, 'models'))) == sorted(jobs[1::2])
  # ... then the README's main command, made --quick, in the same outdir.
  readme = command_argv(readme_command(README_PREFIXES['study']))
  proc = subprocess.run(
      [a for a in readme if not a.startswith('--outdir=')]
      + [f'--outdir={outdir}', '--quick', '--seeds=0,1', '--quiet'],
      capture_output=True, text=True, env=_env(data_dir), cwd=ROOT, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(outdir, 'stderr.txt'), 'w') as f:
    f.write(proc.stderr)
  return outdir


def _read_png(path):
  import matplotlib.image as mpimg
  return mpimg.imread(path)


def test_every_figure_is_a_non_blank_png(study):
  for name in study_figures.FIGURES:
    path = os.path.join(study, 'figures', f'{name}.png')
    assert os.path.exists(path), name
    with open(path, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n', name
    pixels = _read_png(path)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100, name
    assert np.std(pixels[..., :3]) > 0.02, f'{name} looks blank'
    if '_grid_' in name:   # one screen pixel or more per image pixel: 30 x 28 = 840
      assert min(pixels.shape[:2]) >= 840, (name, pixels.shape)


def test_summary_has_every_key(study):
  with open(os.path.join(study, 'summary.json')) as f:
    s = json.load(f)
  for key in ('quick', 'seeds', 'wall_seconds', 'figures', 'figures_facts', 'models',
              'per_seed', 'table', 'claims', 'classifiers', 'gates', 'captions', 'machine',
              'timing'):
    assert key in s, key
  # Three passes (a shard, --train_only, the rest): the time from empty is their sum, split.
  t = s['timing']
  assert t['passes'] == 3 and t['from_empty'] is True
  assert t['metrics_seconds'] > 0 and t['figures_seconds'] > 0
  assert t['wall_seconds_busy'] >= t['train_phase_seconds'] + t['metrics_seconds'] + t[
      'figures_seconds'] - 1e-6
  assert t['wall_seconds_busy'] > s['wall_seconds']   # this pass alone is not the whole cost
  assert s['quick'] is True and s['seeds'] == [0, 1]
  assert set(s['figures']) == set(study_figures.FIGURES) == set(s['captions'])
  for dataset in ('mnist', 'fashion_mnist'):
    for kind in ('ae_2d', 'vae_recon_only_2d', 'vae_2d', 'vae_dropout_maxnorm_2d'):
      row = s['table'][dataset][f'{dataset}_{kind}']
      assert row['recon']['n'] == 2 and np.isfinite(row['recon']['mean'])
      for sampler in ('prior', 'gaussian', 'gmm'):   # one protocol for every model
        for metric in ('hole_share', 'confident_share', 'frechet_distance', 'precision',
                       'confident_share_ratio_to_real'):
          assert row[f'{sampler}/{metric}']['n'] == 2, (kind, sampler, metric)
      # Every metric a primary claim names is computed for every table model.
      for metric in ('knn_accuracy_gain_over_pca', 'walk01/hole_past_halfway_share',
                     'cluster_overlap', 'centroid_distance_ratio_01_68',
                     'local/class_consistency'):
        assert row[metric]['n'] == 2, (kind, metric)
      assert ('posterior_std_median' in row) == (kind != 'ae_2d')
  conv = s['table']['fashion_mnist']['fashion_mnist_conv_vae_dropout_maxnorm_2d']
  assert conv['knn_accuracy']['n'] == 2
  facts = s['figures_facts']['denoising']
  assert facts['psnr_gain_db'] == pytest.approx(facts['psnr_denoised_db'] - facts['psnr_noisy_db'])
  # Every claim is judged from per-seed values, with its interval and a verdict.
  assert len(s['claims']) >= 20
  assert all(c['measured'] for c in s['claims'] if c['group'] == 'primary')
  for c in [c for c in s['claims'] if c['measured']]:
    assert c['verdict'] in ('supported', 'contradicted', 'equivalent', 'inconclusive')
    assert len(c['values_a']) == c['n'] == len(c['seeds']) == 2
    assert c['difference'] == pytest.approx(
        np.mean(np.asarray(c['values_a']) - np.asarray(c['values_b'] if c['values_b']
                                                        is not None else c['b'])))
  # Every model's gates were evaluated (and, --quick, not enforced).
  assert {g['model'] for g in s['gates']} == set(s['models'])
  # Captions state the measured facts they rest on.
  share = s['figures_facts']['vae_recon_kl_latent']['share_in_unit_box']
  assert f'{100 * share:.0f} %' in s['captions']['vae_recon_kl_latent']


def test_a_log_gets_one_plain_line_per_model(study):
  """Under a scheduler stderr is a file: the study says which model is done, with the time."""
  with open(os.path.join(study, 'stderr.txt')) as f:
    lines = [l for l in f.read().splitlines() if l.startswith('study: ')]
  with open(os.path.join(study, 'summary.json')) as f:
    s = json.load(f)
  trained = sum(len(per_seed) for per_seed in s['per_seed'].values())
  assert len(lines) == trained, lines
  assert re.match(rf'study: 1/{trained} mnist_ae_2d seed 0 done \(test recon [\d.]+ nats\); '
                  r'[\d.]+ min elapsed$', lines[0]), lines[0]


def test_report_lists_every_figure(study):
  with open(os.path.join(study, 'REPORT.md')) as f:
    report = f.read()
  for name in study_figures.FIGURES:
    assert f'(figures/{name}.png)' in report, name
  assert 'QUICK' in report


def test_second_run_reuses_finished_models(study, data_dir):
  before = {d: sorted(os.listdir(os.path.join(study, 'models', d, 'checkpoints')))
            for d in os.listdir(os.path.join(study, 'models'))}
  proc = subprocess.run(
      [*STUDY, f'--outdir={study}', '--quick', '--seeds=0,1', '--quiet'],
      capture_output=True, text=True, env=_env(data_dir), cwd=ROOT, timeout=900)
  assert proc.returncode == 0, proc.stderr[-3000:]
  after = {d: sorted(os.listdir(os.path.join(study, 'models', d, 'checkpoints')))
           for d in os.listdir(os.path.join(study, 'models'))}
  assert before == after  # nothing retrained: no new checkpoint anywhere


def test_a_model_trained_outside_the_study_is_reused_with_its_own_clock(study, data_dir,
                                                                        tmp_path):
  from vae_jax.study import run as run_study
  from vae_jax.study import catalog as study_models
  from vae_jax.infra import run_clock
  # mnist_vae_2d seed 0 as if trained by python -m vae_jax.main with the study's config:
  # no study_timing.json, only the training loop's timing.json.
  workdir = tmp_path / 'models' / 'mnist_vae_2d_seed0'
  shutil.copytree(os.path.join(study, 'models', 'mnist_vae_2d_seed0'), workdir)
  os.remove(workdir / 'study_timing.json')
  checkpoints = sorted(os.listdir(workdir / 'checkpoints'))
  spec = next(s for s in study_models.specs() if s.name == 'mnist_vae_2d')
  m = run_study.train_one(spec, 0, str(tmp_path), data_dir, quick=True, quiet=True)
  assert sorted(os.listdir(workdir / 'checkpoints')) == checkpoints  # restored, not retrained
  assert m.test['train_seconds'] == run_clock.read(str(workdir))['train_seconds'] > 0
  with open(os.path.join(study, 'summary.json')) as f:
    logged = json.load(f)['per_seed']['mnist_vae_2d']['0']
  assert m.test['elbo'] == logged['elbo']  # the final test row the study reported


def test_plot_command_writes_figures(study, data_dir, tmp_path):
  workdir = os.path.join(study, 'models', 'mnist_vae_2d_seed0')
  proc = subprocess.run([sys.executable, '-m', 'vae_jax.cli', 'plot', f'--workdir={workdir}',
                         f'--outdir={tmp_path}'],
                        capture_output=True, text=True, env=_env(data_dir), cwd=ROOT,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for name in ('latent', 'manifold', 'samples', 'reconstructions'):
    assert np.std(_read_png(os.path.join(tmp_path, f'{name}.png'))[..., :3]) > 0.02, name


def test_a_model_that_cannot_train_fails_the_study_clearly(tmp_path):
  proc = subprocess.run(
      [*STUDY, f'--outdir={tmp_path}', '--quick', '--quiet', f'--data_dir={tmp_path}/missing'],
      capture_output=True, text=True, env=_env(str(tmp_path / 'missing')), cwd=ROOT,
      timeout=300)
  assert proc.returncode == 2
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and 'mnist_ae_2d' in errors[0] and 'does not exist' in errors[0]


def test_a_model_below_its_quality_gate_stops_the_study(tmp_path, data_dir):
  """A model trained for one quick epoch is far below its gate: one line names model, gate, value."""
  proc = subprocess.run(
      [*STUDY, f'--outdir={tmp_path}', '--quick', '--quiet', '--check_gates'],
      capture_output=True, text=True, env=_env(data_dir), cwd=ROOT, timeout=600)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1, proc.stderr[-2000:]
  assert re.search(r'model mnist_ae_2d \(seed 0\) is below its quality gate '
                   r'recon_per_pixel <= 0\.2: measured 0\.\d+', errors[0]), errors[0]
  assert not os.path.exists(os.path.join(tmp_path, 'figures', 'classic_ae_latent.png'))


def test_publish_refuses_a_quick_study_and_rewrites_the_blocks_from_a_full_one(study, tmp_path):
  # `vae-jax publish --study=OUTDIR`: import the study's files into docs/, then publish.
  publish = [sys.executable, '-m', 'vae_jax.publish']
  names = ['study', 'study-headline', 'main-job']
  root = tmp_path / 'checkout'
  (root / 'docs' / 'results').mkdir(parents=True)
  for name in ('README.md', os.path.join('docs', 'results', 'study.md')):
    shutil.copy(os.path.join(ROOT, name), root / name)
  before = (root / 'README.md').read_text()

  proc = subprocess.run(publish + [f'--study={study}', f'--root={root}', *names],
                        capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert proc.returncode == 2 and proc.stderr.startswith('error: ') and '--quick' in proc.stderr
  assert proc.stderr.count('\n') == 1
  assert (root / 'README.md').read_text() == before

  # A copy of the quick study marked as full stands in for a full run.
  full = tmp_path / 'full'
  shutil.copytree(os.path.join(study, 'figures'), full / 'figures')
  with open(os.path.join(study, 'summary.json')) as f:
    summary = json.load(f)
  summary['quick'] = False
  (full / 'summary.json').write_text(json.dumps(summary))
  # An earlier publication drew a figure since renamed; another tool's figure sits beside it.
  (root / 'docs' / 'figures').mkdir()
  (root / 'docs' / 'study_summary.json').write_text(json.dumps({'figures': ['renamed_latent']}))
  for name in ('renamed_latent', 'sweep_samples_mnist'):
    (root / 'docs' / 'figures' / f'{name}.png').write_bytes(b'png')
  proc = subprocess.run(publish + [f'--study={full}', f'--root={root}', *names],
                        capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  after = (root / 'README.md').read_text()
  def outside_blocks(text):
    return re.sub(r'<!-- ([\w-]+):begin -->.*?<!-- \1:end -->', '', text, flags=re.S)
  assert outside_blocks(after) == outside_blocks(before)
  begin, end = '<!-- study-headline:begin -->', '<!-- study-headline:end -->'
  # --quick --seeds=0,1: the table models train both seeds, the figure models the first.
  assert '1–2 seeds per model' in after.split(begin)[1].split(end)[0]
  section = (root / 'docs' / 'results' / 'study.md').read_text()
  for claim in summary['claims']:
    assert claim['text'] in section
  for name in study_figures.FIGURES:
    assert summary['captions'][name] in section
  assert (root / 'docs' / 'study_report.md').read_text().startswith('# Seed study report')
  links = re.findall(r'!\[(\w+)\]\(\.\./figures/(\w+)\.png\)', section)
  assert sorted(a for a, _ in links) == sorted(study_figures.FIGURES)
  for name in study_figures.FIGURES:
    assert (root / 'docs' / 'figures' / f'{name}.png').read_bytes() == (
        full / 'figures' / f'{name}.png').read_bytes()
  published = json.loads((root / 'docs' / 'study_summary.json').read_text())
  # The run's summary, plus what the publication it replaced said (here: no claims).
  assert published.pop('previous_publication')['claims'] == []
  assert published == summary
  assert '## Verdicts changed since the previous publication' in section
  assert not (root / 'docs' / 'figures' / 'renamed_latent.png').exists()
  assert (root / 'docs' / 'figures' / 'sweep_samples_mnist.png').exists()


def _study_until(outdir, data_dir, models_done, sig):
  """Starts a --quick study, sends ``sig`` once ``models_done`` models are done, waits."""
  proc = subprocess.Popen(
      [*STUDY, f'--outdir={outdir}', '--quick', '--quiet'],
      stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=_env(data_dir),
      cwd=ROOT)
  lines = []
  for line in proc.stderr:
    lines.append(line.rstrip('\n'))
    if line.startswith(f'study: {models_done}/'):
      proc.send_signal(sig)
  return proc.wait(timeout=300), lines


def test_ctrl_c_stops_the_study_between_models_and_a_rerun_resumes(tmp_path, data_dir):
  import signal
  code, lines = _study_until(tmp_path, data_dir, 1, signal.SIGINT)
  assert code == 130, lines[-20:]
  assert not any('Traceback' in l for l in lines), lines
  assert re.match(r'interrupted after mnist_ae_2d seed 0; every finished model is saved; '
                  r'rerun the same command to resume$', lines[-1]) or \
      lines[-1].startswith('interrupted at step'), lines[-1]
  first = os.path.join(tmp_path, 'models', 'mnist_ae_2d_seed0', 'checkpoints')
  kept = sorted(os.listdir(first))
  assert not os.path.exists(os.path.join(tmp_path, 'vae_jax.lock'))   # lock released
  # SIGTERM (a scheduler's preemption) after the next model: exit 143, nothing retrained.
  code, lines = _study_until(tmp_path, data_dir, 2, signal.SIGTERM)
  assert code == 143, lines[-20:]
  assert sorted(os.listdir(first)) == kept


def test_a_second_study_on_an_outdir_in_use_exits_2(tmp_path, data_dir):
  from vae_jax.infra import workdir as workdir_lib
  with workdir_lib.lock(str(tmp_path), 'study'):   # held by this (live) process
    proc = subprocess.run(
        [*STUDY, f'--outdir={tmp_path}', '--quick', '--quiet'],
        capture_output=True, text=True, env=_env(data_dir), cwd=ROOT, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and 'is in use by another run (study, pid' in errors[0], errors
  assert not os.path.exists(os.path.join(tmp_path, 'models'))
