"""The likelihood table: collected from run files, published into docs/results and the README."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import README_PREFIXES, ROOT, command_argv, tiny_config
from vae_jax.infra import workdir as workdir_lib

from vae_jax import publish
from vae_jax.infra import blocks
from vae_jax.study import likelihood as lr

BLOCKS = lr.BLOCKS


def test_the_committed_readme_and_table_say_what_results_holds():
  proc = subprocess.run([sys.executable, '-m', 'vae_jax.publish', '--check', *BLOCKS],
                        capture_output=True, text=True, cwd=ROOT)
  assert proc.returncode == 0, proc.stderr


def _fake_run(path, seed, nll, neg_elbo, seconds, num_epochs=3, eval_step=None, machine=None):
  """A workdir as training and `vae-jax evaluate` leave it (no checkpoints needed).

  ``machine`` names the one machine of every segment and of the evaluation;
  without it, each segment and the evaluation ran on a machine of its own.
  """
  config = tiny_config(num_epochs=num_epochs, seed=seed, latent_dim=50)
  os.makedirs(path)
  workdir_lib.write_config(path, config)
  with open(os.path.join(path, 'metrics.jsonl'), 'w') as f:
    for epoch in range(1, num_epochs + 1):
      f.write(json.dumps({'split': 'train', 'step': 8 * epoch - 4, 'epoch': epoch,
                          'loss': 1.0}) + '\n')
      f.write(json.dumps({'split': 'test', 'step': 8 * epoch, 'epoch': epoch,
                          'elbo': -neg_elbo}) + '\n')
  evaluation = {'nll': nll, 'neg_elbo': neg_elbo, 'nll_bits_per_dim': nll / (784 * np.log(2)),
                'nll_stderr': 0.2 + seed / 100,
                'seconds': 60.0 * (seed + 1), 'step': eval_step or 8 * num_epochs,
                'machine': machine or 'Test CPU, 2 cores, x86_64'}
  with open(os.path.join(path, lr.EVAL_FILE), 'w') as f:
    json.dump(evaluation, f)
  segments = [{'from_step': 0, 'to_step': 8, 'seconds': seconds / 2,
                'machine': machine or 'Test CPU A', 'host': 'a', 'started': 'x'},
               {'from_step': 8, 'to_step': 24, 'seconds': seconds / 2,
                'machine': machine or 'Test CPU B', 'host': 'b', 'started': 'y'}]
  with open(os.path.join(path, 'timing.json'), 'w') as f:
    json.dump({'train_seconds': seconds, 'num_segments': 2, 'segments': segments}, f)
  return path


def _published(checkout):
  """The checkout's full likelihood table after publishing its results."""
  publish.publish(str(checkout), BLOCKS)
  return (checkout / 'docs' / 'results' / 'likelihood.md').read_text()


def _marked(name, body):
  begin, end = blocks.markers(name)
  return f'{begin}\n{body}\n{end}'


@pytest.fixture
def checkout(tmp_path):
  """A checkout with the likelihood table's page, the README's headline and a config."""
  root = tmp_path / 'checkout'
  (root / 'experiments' / 'configs').mkdir(parents=True)
  (root / 'docs' / 'results').mkdir(parents=True)
  (root / 'docs' / 'results' / 'likelihood.md').write_text(
      f"# x\n\n{_marked('likelihood', 'old table')}\n\n## after\n")
  (root / 'README.md').write_text(f"# r\n\n{_marked('likelihood-headline', 'old line')}\n")
  (root / 'experiments' / 'configs' / 'headline.py').write_text('"""A config."""\n')
  return root


def test_collect_then_publish_gives_mean_and_std_over_seeds(tmp_path, checkout):
  nll, neg_elbo, seconds = [84.1, 84.5, 83.9], [88.0, 88.6, 87.7], [3600.0, 7200.0, 5400.0]
  for seed in range(3):
    w = _fake_run(str(tmp_path / f'run{seed}'), seed, nll[seed], neg_elbo[seed], seconds[seed])
    out = lr.collect(w, 'headline', root=str(checkout))
    assert sorted(os.listdir(out)) == sorted(lr.FILES)
    with open(os.path.join(out, 'metrics_test.jsonl')) as f:
      assert [json.loads(line)['split'] for line in f] == ['test'] * 3

  page = checkout / 'docs' / 'results' / 'likelihood.md'
  assert publish.publish(str(checkout), BLOCKS, check=True) != []   # stale, nothing written
  assert 'old table' in page.read_text()
  stale = publish.publish(str(checkout), BLOCKS)
  assert sorted(stale) == [('README.md', 'likelihood-headline'),
                           (os.path.join('docs', 'results', 'likelihood.md'), 'likelihood')]
  assert publish.publish(str(checkout), BLOCKS, check=True) == []

  readme = page.read_text()
  assert 'old table' not in readme and readme.endswith('\n\n## after\n')
  # Independent arithmetic: sample mean and standard deviation (n - 1).
  expected_nll = f'{np.mean(nll):.2f} ± {np.std(nll, ddof=1):.2f}'
  row = next(line for line in readme.splitlines() if 'vae_jax `headline`' in line)
  assert f'**{expected_nll}**' in row and 'seeds [0, 1, 2]' in row
  hours = np.array(seconds) / 3600
  assert (f'training {np.mean(hours):.2f} ± {np.std(hours, ddof=1):.2f} hours per seed '
          '(seed 0: 1.00, seed 1: 2.00, seed 2: 1.50) in 6 process segments') in readme
  assert f'{np.mean(neg_elbo):.2f} ± {np.std(neg_elbo, ddof=1):.2f} nats' in readme
  assert 'in 6 process segments' in readme
  bits = np.array(nll) / (784 * np.log(2))
  assert f'NLL {np.mean(bits):.4f} ± {np.std(bits, ddof=1):.4f} bits/dim' in readme
  assert 'Test CPU A; Test CPU B; Test CPU, 2 cores, x86_64' in readme
  for m, layers, k, value, _ in lr.ANCHORS:
    assert f"| {m} | {layers or '—'} | {k or '—'} | {value:.2f} |" in readme, m
  # The fake config has one stochastic layer and trains at k = 1: first Burda's one-layer
  # VAE (k = 1) at 86.76, then their IWAE k = 5 and k = 50 rows and the VampPrior.
  mean = np.mean(nll)
  assert (f'mean NLL {mean:.2f}; against the anchor trained like it (k = 1, 1 stochastic '
          f'layer): {86.76 - mean:.2f} nats below the VAE (k = 1) of Burda et al. 2015 at '
          f'86.76; beside the others: {85.54 - mean:.2f} nats below the IWAE (k = 5) of Burda '
          f'et al. 2015 at 85.54, {84.78 - mean:.2f} nats below the IWAE (k = 50) of Burda et '
          f'al. 2015 at 84.78, {85.57 - mean:.2f} nats below the VampPrior VAE of Tomczak & '
          'Welling 2018 at 85.57; test −ELBO') in readme

  headline = (checkout / 'README.md').read_text()
  assert 'old line' not in headline and f'seeds [0, 1, 2]): **{expected_nll}** nats' in headline
  assert '(docs/results/likelihood.md)' in headline


def test_a_single_run_gives_its_standard_error_and_says_above_or_below(tmp_path, checkout):
  lr.collect(_fake_run(str(tmp_path / 'run'), 2, 85.0, 90.0, 36.0), 'headline',
             root=str(checkout))
  assert ('`headline` (seed 2, one run; NLL ± 0.22 nats standard error over the test images): '
          'NLL 85.00; against the anchor trained like it (k = 1, 1 stochastic layer): 1.76 nats '
          'below the VAE (k = 1) of Burda et al. 2015 at 86.76; beside the others: 0.54 nats '
          'below the IWAE (k = 5) of Burda et al. 2015 at 85.54, 0.22 nats above the IWAE '
          '(k = 50) of Burda et al. 2015 at 84.78, 0.57 nats below the VampPrior VAE of Tomczak '
          '& Welling 2018 at 85.57; test −ELBO 90.00 nats') in _published(checkout)


def test_each_run_is_compared_first_with_the_anchor_trained_at_its_own_k_and_layers():
  row = {'nll_values': [83.90], 'seeds': [0], 'layers': 2, 'k': 5}
  text = lr._against_anchors(row)
  # Burda et al.'s two-layer IWAE trained at k = 5 (83.89): a reproduction, 0.01 above.
  assert text.startswith('NLL 83.90; against the anchor trained like it (k = 5, 2 stochastic '
                         'layers): 0.01 nats above the IWAE (k = 5) of Burda et al. 2015 at '
                         '83.89; beside the others: ')
  assert '82.90' in text and '85.33' in text and '86.76' not in text   # two-layer rows only
  # A k no published model was trained at says so, and still lists the others.
  text = lr._against_anchors(dict(row, k=7))
  assert 'no published anchor was trained like it (k = 7, 2 stochastic layers)' in text
  assert '83.89' in text


def test_collect_refuses_a_run_that_is_unfinished_or_not_evaluated(tmp_path, checkout):
  w = _fake_run(str(tmp_path / 'stale_eval'), 0, 84.0, 88.0, 10.0, eval_step=16)
  with pytest.raises(lr.ResultsError, match='not finished and evaluated'):
    lr.collect(w, 'headline', root=str(checkout))
  w = _fake_run(str(tmp_path / 'no_eval'), 0, 84.0, 88.0, 10.0)
  os.remove(os.path.join(w, lr.EVAL_FILE))
  with pytest.raises(lr.ResultsError, match='--iwae_samples=5000'):
    lr.collect(w, 'headline', root=str(checkout))
  assert not (checkout / 'results').exists()


def test_results_with_a_missing_file_fail_with_the_fix(tmp_path, checkout):
  w = _fake_run(str(tmp_path / 'run'), 0, 84.0, 88.0, 10.0)
  lr.collect(w, 'headline', root=str(checkout))
  os.remove(checkout / 'results' / 'headline_seed0' / 'timing.json')
  with pytest.raises(lr.ResultsError, match='lacks timing.json: collect it again'):
    publish.publish(str(checkout), BLOCKS)
  assert 'old table' in (checkout / 'docs' / 'results' / 'likelihood.md').read_text()


def test_no_results_directory_names_the_collect_command(checkout):
  with pytest.raises(blocks.PublishError, match='vae-jax likelihood collect'):
    publish.publish(str(checkout), BLOCKS)


def test_a_bit_identical_repeat_of_a_seed_replaces_it_and_keeps_the_earlier_times(tmp_path,
                                                                                 checkout):
  first = _fake_run(str(tmp_path / 'first'), 0, 84.487, 91.616, 7343.6, machine='Old CPU')
  out = lr.collect(first, 'headline', root=str(checkout))
  lr.collect(_fake_run(str(tmp_path / 'seed1'), 1, 84.6, 91.9, 6400.0, machine='Old CPU'),
             'headline', root=str(checkout))
  again = _fake_run(str(tmp_path / 'again'), 0, 84.487, 91.616, 6120.0, machine='New CPU')
  assert lr.collect(again, 'headline', root=str(checkout)) == out
  with open(os.path.join(out, 'timing.json')) as f:
    assert json.load(f)['train_seconds'] == 6120.0          # the newer run's files
  with open(os.path.join(out, lr.REPEATS_FILE)) as f:
    [earlier] = json.load(f)
  assert earlier['timing']['train_seconds'] == 7343.6 and earlier['eval_seconds'] == 60.0
  assert earlier['eval_machine'] == 'Old CPU'

  readme = _published(checkout)
  assert ('Seed 0 was trained and evaluated 2 times from scratch (2.04 h of training in 2 '
          'segments and 1.0 min of evaluation on Old CPU; 1.70 h of training in 2 segments '
          'and 1.0 min of evaluation on New CPU; the table gives the last): the test lines of '
          'all 3 epochs and the evaluations are bit-identical, NLL 84.487 nats, −ELBO 91.616 '
          'nats.') in readme
  assert '(seed 0: 1.70, seed 1: 1.78)' in readme                # the newer run's hours
  # Seed 0 on file now ran on New CPU, seed 1 on Old CPU: the row says which ran where.
  assert 'minutes per seed; on New CPU (seed 0); Old CPU (seed 1).' in readme


def test_a_different_run_of_a_seed_on_file_is_refused_unless_replaced(tmp_path, checkout):
  out = lr.collect(_fake_run(str(tmp_path / 'first'), 0, 84.487, 91.616, 100.0), 'headline',
                   root=str(checkout))
  before = {f: (checkout / 'results' / 'headline_seed0' / f).read_bytes() for f in lr.FILES}
  other = _fake_run(str(tmp_path / 'other'), 0, 84.487000001, 91.616, 50.0)
  with pytest.raises(lr.ResultsError, match=r'differs from it in nll \(NLL 84.487 on file, '
                     r'84.487000001 here\): it is not a repeat of that run; pass --replace'):
    lr.collect(other, 'headline', root=str(checkout))
  assert {f: (checkout / 'results' / 'headline_seed0' / f).read_bytes()
          for f in lr.FILES} == before
  longer = _fake_run(str(tmp_path / 'longer'), 0, 84.487, 91.616, 50.0, num_epochs=4)
  with pytest.raises(lr.ResultsError, match=r'differs from it in step, test lines, config'):
    lr.collect(longer, 'headline', root=str(checkout))
  # The same evaluation after a different training curve is not a repeat either.
  curve = _fake_run(str(tmp_path / 'curve'), 0, 84.487, 91.616, 50.0)
  metrics = os.path.join(curve, 'metrics.jsonl')
  with open(metrics) as f:
    text = f.read()
  with open(metrics, 'w') as f:
    f.write(text.replace('"elbo": -91.616}', '"elbo": -91.6160001}', 1))
  with pytest.raises(lr.ResultsError, match=r'differs from it in test lines \('):
    lr.collect(curve, 'headline', root=str(checkout))

  lr.collect(_fake_run(str(tmp_path / 'first_again'), 0, 84.487, 91.616, 70.0), 'headline',
             root=str(checkout))
  assert os.path.exists(os.path.join(out, lr.REPEATS_FILE))
  lr.collect(other, 'headline', root=str(checkout), replace=True)
  assert sorted(os.listdir(out)) == sorted(lr.FILES)     # repeats of another run dropped
  with open(os.path.join(out, lr.EVAL_FILE)) as f:
    assert json.load(f)['nll'] == 84.487000001


def test_a_run_collected_with_the_older_flat_model_fields_is_described_the_same(tmp_path,
                                                                              checkout):
  # Long runs started before each family's fields had a node write them flat.
  out = lr.collect(_fake_run(str(tmp_path / 'run'), 0, 84.0, 88.0, 10.0), 'headline',
                   root=str(checkout))
  [nested] = lr.summarise(lr.load_results(str(checkout)))
  path = os.path.join(out, 'config.json')
  with open(path) as f:
    config = json.load(f)
  mlp = config['model'].pop('mlp')
  config['model'].update(hidden_sizes=mlp['hidden_sizes'], stochastic_layers=1)
  with open(path, 'w') as f:
    json.dump(config, f)
  [flat] = lr.summarise(lr.load_results(str(checkout)))
  assert flat['description'] == nested['description'] and flat['layers'] == 1
  assert 'deterministic 32, 3 epochs' in flat['description']


def test_publish_runs_the_one_publish_step_it_is_given(checkout, tmp_path, capsys):
  lr.collect(_fake_run(str(tmp_path / 'run'), 0, 84.0, 88.0, 10.0), 'headline',
             root=str(checkout))
  assert lr.main(['publish', f'--root={checkout}']) == 2       # no step given: names it
  assert 'vae-jax publish likelihood likelihood-headline' in capsys.readouterr().err
  assert 'old table' in (checkout / 'docs' / 'results' / 'likelihood.md').read_text()
  assert lr.main(['publish', '--check', f'--root={checkout}'], publish.main) == 1
  assert lr.main(['publish', f'--root={checkout}'], publish.main) == 0
  assert lr.main(['publish', '--check', f'--root={checkout}'], publish.main) == 0
  assert 'vae_jax `headline`' in (checkout / 'docs' / 'results' / 'likelihood.md').read_text()


def test_the_readme_commands_collect_and_publish(tmp_path, checkout):
  from test_readme import readme_command
  w = _fake_run(str(tmp_path / 'run'), 0, 84.0, 88.0, 10.0)
  for step in ('likelihood collect', 'likelihood publish'):
    args = command_argv(readme_command(README_PREFIXES[step]))
    args = [f'--workdir={w}' if a.startswith('--workdir=') else a for a in args]
    args = [a.replace('mnist_vae_50d_dynamic', 'headline') for a in args]
    proc = subprocess.run([*args, f'--root={checkout}'], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
  assert 'vae_jax `headline`' in (checkout / 'docs' / 'results' / 'likelihood.md').read_text()


@pytest.mark.slow
def test_cost_measurement_prices_each_k(tmp_path, data_dir):
  out = tmp_path / 'cost.json'
  proc = subprocess.run([sys.executable, '-m', 'vae_jax.bench.likelihood_cost',
                         f'--json={out}', '--ks=1,3', '--steps=2', '--reps=1', '--epochs=10',
                         f'--data_dir={data_dir}'], capture_output=True, text=True, cwd=ROOT,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = json.loads(out.read_text())
  assert [r['k'] for r in result['rows']] == [1, 3]
  for r in result['rows']:
    assert r['images_per_s'] > 0
    assert r['hours'] == pytest.approx(10 * 60000 / r['images_per_s'] / 3600)
  assert 'k=3:' in proc.stdout


def test_bad_input_is_one_error_line_naming_the_fix(tmp_path, checkout):
  script = '-m', 'vae_jax.cli', 'likelihood'
  proc = subprocess.run([sys.executable, *script, 'collect', f'--workdir={tmp_path}',
                         '--experiment=headline', f'--root={checkout}'],
                        capture_output=True, text=True, cwd=ROOT)
  assert proc.returncode == 2 and 'Traceback' not in proc.stderr
  assert proc.stderr.strip().splitlines() == [
      f'error: {tmp_path} has no config.json: it is not a vae_jax run directory; pass '
      'the --workdir you trained in']
  cost = '-m', 'vae_jax.bench.likelihood_cost'
  proc = subprocess.run([sys.executable, *cost, f'--json={tmp_path}/c.json', '--ks=1,five'],
                        capture_output=True, text=True, cwd=ROOT)
  assert proc.returncode == 2 and 'must be comma-separated integers' in proc.stderr
  assert 'Traceback' not in proc.stderr
