"""The latent-size × β sweep: grid, shards, locks, merging, verdict tables, publishing.

The default tests take seconds: pure functions on constructed numbers. The
test marked slow runs the real thing (--quick) as two processes sharing one
outdir.
"""

import json
import os
import re
import subprocess

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from vae_jax.infra import run_clock
from vae_jax.study import catalog as study_models
from vae_jax.study import sweep
from vae_jax.study import sweep_catalog as sweep_models
from vae_jax.study import sweep_publish
from vae_jax.study import sweep_report
from conftest import README_PREFIXES, command_argv
from test_readme import readme_command  # noqa: E402


def test_the_full_grid_has_every_cell_once_seed_outermost():
  jobs = sweep_models.grid()
  assert len(jobs) == 2 * 3 * 6 * len(sweep_models.DEFAULT_SEEDS)   # seeds: study/power.py
  ids = [sweep_models.job_id(s, seed) for s, seed in jobs]
  assert len(set(ids)) == len(ids)
  seeds = [seed for _, seed in jobs]
  assert seeds == sorted(seeds)   # a half-finished sweep has whole seeds done
  with pytest.raises(ValueError, match='unknown variant'):
    sweep_models.grid(variants=('beta2',))


@pytest.mark.parametrize('variant, kind, beta, free_bits', [
    ('ae', 'autoencoder', None, 0.0), ('beta0', 'vae', 0.0, 0.0),
    ('beta0p25', 'vae', 0.25, 0.0), ('beta4', 'vae', 4.0, 0.0),
    ('freebits', 'vae', 1.0, sweep_models.FREE_BITS)])
def test_a_cell_is_the_study_mlp_with_its_latent_size_and_objective(variant, kind, beta,
                                                                     free_bits):
  spec = sweep_models.spec('fashion_mnist', 32, variant)
  c = study_models.make_config(spec, 2, '/data', quick=False)
  assert (c.model.kind, c.latent_dim, c.data.name, c.seed) == (kind, 32, 'fashion_mnist', 2)
  assert c.model.mlp.hidden_sizes == (512,) and c.num_epochs == sweep_models.EPOCHS
  if beta is not None:
    assert (c.kl_weight, c.free_bits) == (beta, free_bits)
  # The study's own models are unchanged by the overrides field.
  study = study_models.make_config(study_models.specs()[0], 0, '', quick=False)
  assert study.latent_dim == 2


def test_shards_split_the_grid_deterministically_and_evenly():
  jobs = sweep_models.grid()
  for count in (1, 2, 3, 7):
    parts = [study_models.shard(jobs, i, count) for i in range(count)]
    flat = [sweep_models.job_id(s, k) for p in parts for s, k in p]
    assert sorted(flat) == sorted(sweep_models.job_id(s, k) for s, k in jobs)
    assert len(set(flat)) == len(flat)                       # no cell in two shards
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced
    assert parts == [study_models.shard(sweep_models.grid(), i, count) for i in range(count)]
  assert study_models.parse_shard('3/4') == (3, 4)
  for bad in ('4/4', '-1/2', '1', 'a/b', '0/0'):
    with pytest.raises(ValueError, match='--shard'):
      study_models.parse_shard(bad)


def test_a_cell_locked_by_another_process_is_skipped_not_trained(tmp_path):
  from vae_jax.infra import workdir as workdir_lib
  jobs = sweep_models.grid(datasets=('mnist',), latent_dims=(2,), variants=('ae',), seeds=(0,))
  lock_dir = tmp_path / 'locks' / sweep_models.job_id(*jobs[0])
  lock_dir.mkdir(parents=True)
  with workdir_lib.lock(str(lock_dir), 'another sweep'):
    counts = sweep.run_shard(str(tmp_path), '', jobs, quick=True, quiet=True)
  assert counts == {'done': 0, 'reused': 0, 'busy': 1, 'failed': 0}
  assert not (tmp_path / 'models').exists()
  passes = sweep.read_passes(str(tmp_path))
  assert len(passes) == 1 and passes[0]['busy'] == 1 and passes[0]['wall_seconds'] >= 0


def test_an_interrupted_pass_records_its_wall_time_as_unfinished(tmp_path, monkeypatch):
  import signal
  from vae_jax.infra import interrupts
  jobs = sweep_models.grid(datasets=('mnist',), latent_dims=(2,), variants=('ae',), seeds=(0,))

  def interrupted_cell(*args):
    raise interrupts.Interrupted('interrupted at step 3', signal.SIGTERM)

  monkeypatch.setattr(sweep, 'run_cell', interrupted_cell)
  with pytest.raises(interrupts.Interrupted):
    sweep.run_shard(str(tmp_path), '', jobs, quick=True, quiet=True)
  passes = sweep.read_passes(str(tmp_path))
  assert len(passes) == 1 and passes[0]['finished'] is False and passes[0]['wall_seconds'] >= 0


def test_a_failing_cell_is_recorded_and_the_shard_goes_on(tmp_path, monkeypatch):
  jobs = sweep_models.grid(datasets=('mnist',), latent_dims=(2,), variants=('ae', 'beta1'),
                           seeds=(0,))

  def fake_run_cell(spec, seed, *args):
    if spec.name.endswith('_ae'):
      raise FloatingPointError('singular covariance')
    d = sweep.cell_dir(str(tmp_path), spec, seed)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, sweep.CELL_FILE), 'w') as f:
      json.dump({'metrics': {'recon': 1.0, 'train_seconds': 1.0, 'metrics_seconds': 1.0}}, f)
    return {'recon': 1.0, 'train_seconds': 1.0, 'metrics_seconds': 1.0}

  monkeypatch.setattr(sweep, 'run_cell', fake_run_cell)
  counts = sweep.run_shard(str(tmp_path), '', jobs, quick=True, quiet=True)
  assert counts == {'done': 1, 'reused': 0, 'busy': 0, 'failed': 1}
  _, missing, failed = sweep.read_cells(str(tmp_path), jobs)
  assert missing == failed == ['mnist_z2_ae_seed0']
  error = os.path.join(sweep.cell_dir(str(tmp_path), *jobs[0]), sweep.ERROR_FILE)
  assert 'FloatingPointError: singular covariance' in open(error).read()
  # A rerun retries the failed cell only.
  counts = sweep.run_shard(str(tmp_path), '', jobs, quick=True, quiet=True)
  assert counts == {'done': 0, 'reused': 1, 'busy': 0, 'failed': 1}


# ----------------------------------------------------------------------------
# Merging and the verdict tables, on constructed numbers
# ----------------------------------------------------------------------------
GRID = {'datasets': ('mnist',), 'latent_dims': (2, 32),
        'variants': ('ae', 'beta0', 'beta1', 'beta4'), 'seeds': (0, 1, 2, 3)}
NOISE = np.array([0.3, -0.2, 0.15, -0.25])   # per-seed noise shared by every model, mean 0
# The classic AE's N(0, I) samples vary on their own from seed to seed (mean 0).
AE_NOISE = np.array([0.05, -0.05, -0.04, 0.04])


def _row(variant, z, seed):
  """Constructed metrics: continuity holds from β = 0 on, completeness from β = 1 on."""
  i = GRID['seeds'].index(seed)
  jump = {'ae': 3.0, 'beta0': 2.0, 'beta1': 1.5, 'beta4': 1.4}[variant]
  confident = {'ae': 0.5, 'beta0': 0.5, 'beta1': 0.8, 'beta4': 0.9}[variant]
  row = {'recon': 100.0 + z, 'active_units': float(z), 'path_jump_ratio': jump + NOISE[i],
         'lipschitz_p99_relative': 3.0, 'knn_accuracy': 0.7, 'path_confident_share': 1.0 - jump / 5,
         'train_seconds': 20.0,
         'metrics_seconds': 10.0, 'epochs': 10}
  if variant != 'ae':
    row.update(kl=5.0 + 10 * (4 - (GRID['variants'].index(variant))), elbo=-120.0)
  for sampler in ('prior', 'gaussian', 'gmm'):
    fd = 100.0 + NOISE[i] * 10
    if variant == 'ae' and sampler == 'gmm':
      fd -= 20.0    # the AE with a GMM beats the VAE from its prior, on every seed
    conf = confident + (AE_NOISE[i] if variant == 'ae' else 0.01 * NOISE[i])
    row.update({f'{sampler}/balanced_confident_share': conf, f'{sampler}/hole_share': 1 - conf,
                f'{sampler}/coverage': 0.5 + 0.01 * NOISE[i],
                f'{sampler}/frechet_distance': fd, f'{sampler}/precision': 0.8,
                f'{sampler}/recall': 0.1 + 0.01 * NOISE[i]})
  return row


def _write_cells(outdir, skip=(), fail=()):
  jobs = sweep_models.grid(**GRID)
  for spec, seed in jobs:
    job = sweep_models.job_id(spec, seed)
    d = os.path.join(outdir, 'models', job)
    os.makedirs(d, exist_ok=True)
    if job in fail:
      with open(os.path.join(d, sweep.ERROR_FILE), 'w') as f:
        f.write('model failed\n')
    if job in skip or job in fail:
      continue
    _, z, variant = spec.name.split('_')
    with open(os.path.join(d, sweep.CELL_FILE), 'w') as f:
      json.dump({'metrics': _row(variant, int(z[1:]), seed)}, f)
  return jobs


def _summary(tmp_path, skip=(), fail=(), quick=False):
  jobs = _write_cells(str(tmp_path), skip, fail)
  per_seed, missing, failed = sweep.read_cells(str(tmp_path), jobs)
  passes = [{'started': 100.0, 'wall_seconds': 60.0, 'machine': 'test cpu'},
            {'started': 130.0, 'wall_seconds': 90.0, 'machine': 'test cpu'}]
  return sweep_report.summarise(per_seed, missing, failed, GRID, quick, passes, {})


def test_merging_names_the_missing_and_failed_cells(tmp_path):
  s = _summary(tmp_path, skip=('mnist_z32_beta4_seed3',), fail=('mnist_z2_ae_seed1',))
  assert s['expected_cells'] == 2 * 4 * 4
  assert s['missing'] == ['mnist_z2_ae_seed1', 'mnist_z32_beta4_seed3']
  assert s['failed'] == ['mnist_z2_ae_seed1']
  assert s['cells']['mnist_z32_beta4']['n'] == 3 and s['cells']['mnist_z2_beta1']['n'] == 4
  status = ' '.join(sweep_report.status_lines(s))
  assert 'INCOMPLETE: 30 of 32 cells' in status and 'mnist_z32_beta4_seed3' in status
  # Wall time: first start to last end over the processes, and their sum.
  assert s['timing']['wall_seconds_span'] == 120.0 and s['timing']['wall_seconds_sum'] == 150.0
  assert s['timing']['wall_seconds_busy'] == 120.0  # the two runs overlap for 30 s
  assert 'Measured wall time: 2.0 min' in status
  assert s['timing']['train_seconds_total'] == 30 * 20.0


@pytest.mark.parametrize('intervals,busy', [
    ([], 0.0),
    ([(0, 60)], 60.0),
    ([(0, 60), (1000, 90)], 150.0),           # resumed in a later session: the gap is idle
    ([(100, 60), (130, 90)], 120.0),          # two shards overlapping for 30 s
    ([(0, 100), (10, 20), (50, 10)], 100.0),  # runs inside another one add nothing
])
def test_busy_seconds_is_the_union_of_the_runs(intervals, busy):
  passes = [{'started': float(a), 'wall_seconds': float(w)} for a, w in intervals]
  assert run_clock.busy_seconds(passes) == busy


def test_verdicts_and_interval_tables_follow_the_numbers(tmp_path):
  s = _summary(tmp_path)
  assert s['missing'] == [] and 'All 32 cells finished.' in sweep_report.status_lines(s)
  by_id = {c['id']: c for c in s['claims']}
  ghosh = by_id['mnist_z2_ae_gmm_vs_prior_frechet_distance']
  assert ghosh['verdict'] == 'supported' and ghosh['difference'] == pytest.approx(-20.0)
  assert ghosh['values_a'] == pytest.approx([80.0 + 10 * x for x in NOISE])
  assert by_id['mnist_z2_ae_gmm_vs_prior_precision']['verdict'] == 'inconclusive'  # equal
  # Continuity appears at β = 0 already; completeness (against the AE) only from β = 1.
  onset = {(g, r['latent_dim']): r for g, rows in s['onsets'].items() for r in rows}
  cont = onset[(sweep_report.matrix_group('path_jump_ratio', 'ae'), 2)]
  assert cont['onset'] == 0.0 and cont['stays']
  comp = onset[(sweep_report.matrix_group('prior/balanced_confident_share', 'ae'), 32)]
  assert comp['verdicts'] == ['inconclusive', 'supported', 'supported']
  assert comp['onset'] == 1.0 and comp['stays']
  table = '\n'.join(sweep_report.matrix_markdown(s, 'prior/balanced_confident_share', 'beta0'))
  assert '| mnist | 2 | 0.300 [' in table and table.count('✓') == 4
  sentences = '\n'.join(sweep_report.onset_sentences(s))
  assert 'MNIST 2-D: from β = 1' in sentences and 'MNIST 32-D: from β = 0.' in sentences
  assert 'better (Holm-adjusted p < 0.05) in 2, worse in 0' in sweep_report.ghosh_finding(s)


def test_figures_and_captions_come_from_the_summary(tmp_path):
  from vae_jax.study import sweep_figures
  s = _summary(tmp_path)
  samples = {'mnist_z2_ae': {k: np.zeros((16, 28, 28), np.uint8)
                             for k in ('prior', 'gaussian', 'gmm')}}
  s['figures_facts'] = sweep_figures.draw_all(s, samples, str(tmp_path))
  s['captions'] = sweep_figures.captions(s)
  assert set(s['captions']) == {'sweep_rd_completeness', 'sweep_rd_continuity',
                                'sweep_samples_mnist', 'sweep_vs_latent'}
  for name in s['captions']:
    assert os.path.getsize(tmp_path / f'{name}.png') > 1000
  assert 'mnist_z2_ae from gmm: FD 80' in s['captions']['sweep_samples_mnist']
  # AE then β = 1: jump ratio from 2-D to 32-D, as constructed (mean over seeds).
  assert 'MNIST AE: path_jump_ratio 3 → 3' in s['captions']['sweep_vs_latent']
  assert re.search(r'highest mnist_z(2|32)_beta4 \(0.9\)', s['captions']['sweep_rd_completeness'])


def test_publish_refuses_quick_and_incomplete_sweeps_and_marks_partial_ones(tmp_path):
  from vae_jax import publish
  root = tmp_path / 'repo'
  (root / 'docs' / 'results').mkdir(parents=True)
  (root / 'docs' / 'results' / 'sweep.md').write_text(
      '# x\n\n<!-- sweep:begin -->\nold\n<!-- sweep:end -->\ntail\n')
  (root / 'README.md').write_text('# r\n<!-- sweep-headline:begin -->\n<!-- sweep-headline:end -->\n')
  out = tmp_path / 'out'
  s = _summary(out, skip=('mnist_z32_beta4_seed3',))
  s.update(figures_facts={}, captions={}, figures=[])
  (out / 'summary.json').write_text(json.dumps(s))
  with pytest.raises(sweep_publish.PublishError, match='1 of 32 cells are missing'):
    sweep_publish.import_run(str(out), str(root))
  assert not (root / 'docs' / 'sweep_summary.json').exists()
  publish.main([f'--sweep={out}', '--allow_incomplete', f'--root={root}',
                'sweep', 'sweep-headline'])
  page = (root / 'docs' / 'results' / 'sweep.md').read_text()
  assert page.startswith('# x\n\n<!-- sweep:begin -->') and page.endswith('end -->\ntail\n')
  assert 'old' not in page and 'INCOMPLETE: 31 of 32 cells' in page
  assert '(31 of 32 cells)' in (root / 'README.md').read_text()
  assert 'INCOMPLETE' in (root / 'docs' / 'sweep_report.md').read_text()
  s['quick'] = True
  (out / 'summary.json').write_text(json.dumps(s))
  with pytest.raises(sweep_publish.PublishError, match='--quick'):
    sweep_publish.publish(str(out), str(root), allow_incomplete=True)


# ----------------------------------------------------------------------------
# The real thing: two processes share one outdir
# ----------------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_share_a_quick_sweep_and_the_summary_merges_them(tmp_path, data_dir):
  env = dict(os.environ, VAE_JAX_DATA_DIR=data_dir, TF_CPP_MIN_LOG_LEVEL='3',
             PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
  out = str(tmp_path / 'sweep')
  # The README's sweep command, made --quick and cut to 4 cells, in a temporary outdir.
  readme = command_argv(readme_command(README_PREFIXES['sweep']))
  args = [a for a in readme if not a.startswith('--outdir=')] + [
          f'--outdir={out}', '--quick', '--latent_dims=2', '--variants=ae,beta1', '--seeds=0,1', '--quiet']
  # Overlapping shares: process A trains half the grid, process B all of it. The
  # per-cell lock must let each cell be trained exactly once between them.
  procs = [subprocess.Popen(args + [shard], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=ROOT) for shard in ('--shard=0/2',
                                                                      '--shard=0/1')]
  for p in procs:
    stdout, stderr = p.communicate(timeout=900)
    assert p.returncode == 0, stderr[-3000:]
  passes = {p['shard']: p for p in sweep.read_passes(out)}
  assert set(passes) == {'0/2', '0/1'}
  assert passes['0/2']['done'] + passes['0/1']['done'] == 4        # no cell trained twice
  seen = {k: sum(p[k] for p in passes.values()) for k in ('done', 'reused', 'busy')}
  assert sum(seen.values()) == 2 + 4 and passes['0/2']['failed'] == passes['0/1']['failed'] == 0
  # A third run over the whole grid trains nothing: every cell is reused.
  proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert '0 done, 4 reused' in proc.stdout and '4 of 4 cells' in proc.stdout
  with open(os.path.join(out, 'summary.json')) as f:
    s = json.load(f)
  assert s['quick'] and s['missing'] == [] and len(s['timing']['passes']) == 3
  assert {c['id'] for c in s['claims']} >= {'mnist_z2_ae_gmm_vs_prior_frechet_distance'}
  for name in s['figures']:
    assert os.path.getsize(os.path.join(out, 'figures', f'{name}.png')) > 1000
  assert 'QUICK smoke run' in open(os.path.join(out, 'REPORT.md')).read()
