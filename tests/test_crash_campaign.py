"""The random-kill campaign: a short run (slow), the hook that aims its kills, what it
found (stale temporary files, a checkpoint left without checksums), and proof that its
comparisons fail on a broken run."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import ROOT, assert_docs_block_current, cli, committed, straight_run, train_args
from vae_jax.bench import crash_campaign
from vae_jax.infra import checkpointing, crash_points, workdir as workdir_lib

HOOKED = r'''
import sys
from vae_jax.infra import workdir
for i in range(3):
  workdir.append_line(sys.argv[1], f'{{"step": {i}}}\n')
  workdir.atomic_write_text(sys.argv[2], str(i))
'''


def _hooked(tmp_path, crash_at):
  env = dict(os.environ, **{crash_points.ENV_VAR: crash_at})
  lines, text = tmp_path / 'm.jsonl', tmp_path / 't.txt'
  proc = subprocess.run([sys.executable, '-c', HOOKED, str(lines), str(text)], env=env,
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
  return proc, lines, text


def test_the_hook_kills_at_the_named_passage(tmp_path):
  proc, lines, text = _hooked(tmp_path, 'append_line:2')
  assert proc.returncode == -signal.SIGKILL
  assert lines.read_text() == '{"step": 0}\n' and text.read_text() == '0'
  proc, lines, text = _hooked(tmp_path, 'atomic_write:3')
  assert proc.returncode == -signal.SIGKILL
  assert text.read_text() == '1'  # the third write's temporary file is written, not renamed
  assert len([f for f in os.listdir(tmp_path) if f.startswith(workdir_lib.TEMP_PREFIX)]) == 1


def test_the_hook_refuses_an_unknown_point():
  with pytest.raises(ValueError, match="unknown point 'checkpoint'"):
    crash_points._parse('checkpoint:1')  # pylint: disable=protected-access


def test_the_next_lock_holder_removes_temporary_files_a_killed_writer_left(tmp_path):
  # Found by the campaign: a SIGKILL between a temporary file and its rename left it for good.
  step = tmp_path / 'checkpoints' / '8'
  step.mkdir(parents=True)
  stale = [tmp_path / f'{workdir_lib.TEMP_PREFIX}x{workdir_lib.TEMP_SUFFIX}',
           step / f'{workdir_lib.TEMP_PREFIX}y{workdir_lib.TEMP_SUFFIX}']
  kept = [tmp_path / 'notes.tmp', tmp_path / 'models' / f'{workdir_lib.TEMP_PREFIX}z.tmp']
  for path in stale + kept:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('half')
  with workdir_lib.lock(str(tmp_path)):
    assert not any(p.exists() for p in stale)
  assert all(p.exists() for p in kept)  # not ours, or another lock's (a study's model)


def test_a_rerun_writes_the_checksums_a_kill_kept_from_its_checkpoint(tmp_path_factory, data_dir):
  # Found by the campaign: killed while writing checkpoint 8's checksums, the rerun
  # restored 8 and left it without them for good.
  w = straight_run(tmp_path_factory, data_dir)
  manifest = os.path.join(w, 'checkpoints', '8', checkpointing.FILES_MANIFEST)
  with open(manifest) as f:
    written = json.load(f)
  os.remove(manifest)
  proc = cli(train_args(w), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert committed(w) == [8]
  with open(manifest) as f:
    assert json.load(f) == written


# ---------------------------------------------------------------------------
# The comparisons can fail
# ---------------------------------------------------------------------------
@pytest.fixture(scope='module')
def finished(tmp_path_factory, data_dir):
  w = straight_run(tmp_path_factory, data_dir)
  return w, crash_campaign.training_fingerprint(w)


def test_an_identical_run_compares_equal(finished, tmp_path):
  w, reference = finished
  copy = str(shutil.copytree(w, tmp_path / 'copy'))
  assert crash_campaign.compare_training(copy, reference) == []


@pytest.mark.parametrize('damage,expected', [
    ('duplicate_row', ['1 duplicate_rows in metrics.jsonl',
                       'metrics.jsonl differs from the reference']),
    ('half_row', ['1 half_rows in metrics.jsonl', 'metrics.jsonl differs from the reference']),
    ('leftover', ['left over: checkpoints/9.orbax-checkpoint-tmp-1',
                  'checkpoints/9.orbax-checkpoint-tmp-1/x not in the reference']),
    ('lock', ['left over: vae_jax.lock', './vae_jax.lock not in the reference']),
    ('no_manifest', [f'checkpoints/8/{checkpointing.FILES_MANIFEST} missing']),
])
def test_a_broken_run_is_reported(finished, tmp_path, damage, expected):
  w, reference = finished
  copy = str(shutil.copytree(w, tmp_path / 'copy'))
  metrics = os.path.join(copy, 'metrics.jsonl')
  with open(metrics) as f:
    rows = f.read().splitlines(keepends=True)
  if damage == 'duplicate_row':
    rows.insert(1, rows[1])
  elif damage == 'half_row':
    rows.append(rows[0][:10])
  elif damage == 'leftover':
    os.makedirs(os.path.join(copy, 'checkpoints', '9.orbax-checkpoint-tmp-1'))
    open(os.path.join(copy, 'checkpoints', '9.orbax-checkpoint-tmp-1', 'x'), 'w').close()
  elif damage == 'lock':
    open(os.path.join(copy, 'vae_jax.lock'), 'w').close()
  else:
    os.remove(os.path.join(copy, 'checkpoints', '8', checkpointing.FILES_MANIFEST))
  with open(metrics, 'w') as f:
    f.write(''.join(rows))
  assert crash_campaign.compare_training(copy, reference) == expected


def test_a_trial_whose_rerun_never_finishes_is_a_divergence(tmp_path):
  cmd = [sys.executable, '-c', 'import sys; print("error: broken", file=sys.stderr); sys.exit(2)']
  record = crash_campaign.run_trial(cmd, lambda _: dict(os.environ), [{'kind': 'timed',
                                                                      'delay': 30}], lambda: [])
  assert record['killed'] == [] and record['divergences'] == [
      'a killed run exited 2 before its kill']
  sleeper = [sys.executable, '-c', 'import os, sys, time\n'
             'if os.path.exists(sys.argv[1]): sys.exit(2)\n'
             'open(sys.argv[1], "w").close(); time.sleep(60)', str(tmp_path / 'ran')]
  record = crash_campaign.run_trial(sleeper, lambda _: dict(os.environ),
                                    [{'kind': 'timed', 'delay': 2}], lambda: [])
  assert len(record['killed']) == 1 and record['reruns'] == crash_campaign.MAX_RERUNS
  assert record['divergences'][0].startswith(f'no rerun finished in {crash_campaign.MAX_RERUNS}')
  assert crash_campaign.counts({'trials': [record]})['divergences'] == 1


def test_the_study_is_compared_without_its_timing_fields_only():
  summary = {'wall_seconds': 3.0, 'models': [{'train_seconds': 1.0, 'recon': 2.0}],
             'machine': 'x'}
  assert crash_campaign.without(summary, crash_campaign.STUDY_TIMING_FIELDS) == {
      'models': [{'recon': 2.0}]}


def test_the_docs_table_is_current():
  assert_docs_block_current(crash_campaign, 'crash_campaign.json', docs='docs/reliability.md')
  with open(os.path.join(ROOT, 'results', 'crash_campaign.json')) as f:
    parts = json.load(f)['parts']
  assert parts['train']['counts']['kill_points'] >= 30
  assert parts['evaluate']['counts']['kill_points'] >= 10
  assert parts['study']['counts']['kill_points'] >= 10


@pytest.mark.slow
def test_a_short_campaign_finds_no_divergence(tmp_path, data_dir):
  results = crash_campaign.main(['--quick', '--seed=1', f'--data_dir={data_dir}',
                                 f'--json={tmp_path / "campaign.json"}'])
  train, evaluate = results['parts']['train']['counts'], results['parts']['evaluate']['counts']
  assert train['kill_points'] >= 4 and evaluate['kill_points'] >= 2
  assert train['divergences'] == evaluate['divergences'] == 0, results
  assert train['refused_reruns'] == evaluate['refused_reruns'] == 0


def test_a_trained_classifier_is_described_as_one_loaded_from_its_file(tmp_path, data_dir,
                                                                      monkeypatch):
  # Found by the campaign: a study killed after saving its MNIST classifier loaded it on
  # the rerun, and its summary.json gained the file's format_version.
  import numpy as np
  from vae_jax.analysis import classifier
  monkeypatch.setattr(classifier, 'train', lambda *a, **k: {'dense': {'kernel': np.ones(2)}})
  monkeypatch.setattr(classifier, 'accuracy', lambda *a: 0.5)
  path = str(tmp_path / 'mnist.npz')
  _, trained = classifier.train_and_save(path, 'mnist', data_dir=data_dir)
  assert classifier.load(path)[1] == json.loads(json.dumps(trained))


def test_a_checkpoint_whose_deletion_was_cut_short_is_set_aside_by_the_rerun(tmp_path_factory,
                                                                         data_dir):
  # Found by the campaign: killed while orbax deleted checkpoint 8 (beyond max_checkpoints),
  # the directory lost its commit files and orbax never deleted it.
  w = straight_run(tmp_path_factory, data_dir, '--config.checkpoint_every_steps=3')
  half = os.path.join(w, 'checkpoints', '2')
  shutil.copytree(os.path.join(w, 'checkpoints', '3'), half)
  for name in ('_CHECKPOINT_METADATA', 'commit_success.txt'):
    os.remove(os.path.join(half, name))
  assert committed(w) == [2, 3, 6, 8]
  proc = cli(train_args(w, '--config.checkpoint_every_steps=3'), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert committed(w) == [3, 6, 8]
  assert 'checkpoint 2 in' in proc.stderr and 'a deletion was cut short' in proc.stderr
  assert os.listdir(os.path.join(w, 'checkpoints_damaged')) == ['2']
