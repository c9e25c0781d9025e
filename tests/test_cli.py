"""The training command end to end: what a run writes, and that a rerun resumes.

Faults and resume bit-exactness are in test_resume.py, bad input in
test_bad_input.py.
"""

import glob
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, cli, snapshot, split_steps, train_args
from vae_jax import cli as cli_lib

METRICS = {'loss', 'recon', 'kl', 'elbo'}


def test_run_writes_metrics_config_checkpoint_then_a_rerun_resumes(tmp_path, data_dir):
  w = str(tmp_path / 'run')
  proc = cli(train_args(w), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith('test: elbo ') and 'error' not in proc.stderr

  # metrics.jsonl: one JSON object a line, each with step, epoch, split and metrics.
  with open(os.path.join(w, 'metrics.jsonl')) as f:
    rows = [json.loads(line) for line in f]
  assert {r['split'] for r in rows} == {'train', 'test', 'latent'}
  for r in rows:
    assert isinstance(r['step'], int) and isinstance(r['epoch'], int) and len(r) > 3
  train_rows = [r for r in rows if r['split'] == 'train']
  test_rows = [r for r in rows if r['split'] == 'test']
  assert [r['step'] for r in train_rows] == [4, 8]  # log_every_steps=4, 8 steps an epoch
  assert METRICS | {'grad_norm'} <= set(train_rows[0])
  assert [(r['step'], r['epoch']) for r in test_rows] == [(8, 1)]
  assert METRICS <= set(test_rows[0])

  with open(os.path.join(w, 'config.json')) as f:
    config = json.load(f)
  assert config['latent_dim'] == 2 and config['model']['mlp']['hidden_sizes'] == [32]
  assert config['num_epochs'] == 1 and config['data']['num_train'] == 512
  assert os.listdir(os.path.join(w, 'checkpoints')) == ['8']
  assert os.path.isdir(os.path.join(w, 'checkpoints', '8', 'state'))
  assert glob.glob(os.path.join(w, 'tensorboard', 'events.out.tfevents.*'))

  # The same command again has nothing left to do: no new lines, no new checkpoint.
  proc = cli(train_args(w), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert split_steps(w) == [8] and os.listdir(os.path.join(w, 'checkpoints')) == ['8']

  # With num_epochs raised to 2 it continues from step 8 instead of starting over
  # (a deterministic retrain from 0 would write the same lines: the log says which).
  first = snapshot(os.path.join(w, 'checkpoints', '8'))
  proc = cli(train_args(w, '--config.num_epochs=2', '--verbosity=0'), data_dir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f'resuming {w} from step 8' in proc.stderr
  assert snapshot(os.path.join(w, 'checkpoints', '8')) == first
  assert split_steps(w) == [8, 16]
  assert split_steps(w, 'train') == [4, 8, 12, 16]
  assert sorted(os.listdir(os.path.join(w, 'checkpoints')), key=int) == ['8', '16']
  with open(os.path.join(w, 'config.json')) as f:
    assert json.load(f)['num_epochs'] == 2


# ---------------------------------------------------------------------------
# The vae-jax command and its flags
# ---------------------------------------------------------------------------
def vae_jax(*args, timeout=120):
  """``vae-jax *args`` as this interpreter runs it (the console script calls the same main)."""
  return subprocess.run([sys.executable, '-m', 'vae_jax.cli', *args], capture_output=True,
                        text=True, cwd=ROOT, timeout=timeout,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3'))


# subcommand -> a flag its --help must list (the module's own parser, not a stand-in).
HELP = {'train': '--allow_config_change', 'evaluate': '--iwae_samples', 'plot': '--count',
        'latent-report': '--classifier', 'study': '--check_gates', 'reproduce': '--check_gates',
        'sweep': '--shard', 'bench': '--publish', 'likelihood': '{collect,publish}',
        'publish': '--check', 'notebooks': '--check'}


@pytest.mark.parametrize('name', sorted(HELP))
def test_every_subcommand_has_help_with_an_example(name):
  proc = vae_jax(name, '--help')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith(f'usage: vae-jax {name} '), proc.stdout[:200]
  assert HELP[name] in proc.stdout
  example = proc.stdout.split('example')[-1]
  assert f'vae-jax {"study" if name == "reproduce" else name} ' in example, proc.stdout


def test_the_command_lists_its_subcommands():
  proc = vae_jax('--help')
  assert proc.returncode == 0
  assert set(cli_lib.SUBCOMMANDS) == set(HELP)
  for name in cli_lib.SUBCOMMANDS:
    assert f'\n  {name} ' in proc.stdout, name
  assert vae_jax().returncode == 2  # no subcommand: the same text, as a usage error


@pytest.mark.parametrize('args,message', [
    (['frobnicate'], "error: unknown subcommand 'frobnicate': use one of train, evaluate"),
    (['study', '--no_such_flag'], 'error: unrecognized arguments: --no_such_flag (see vae-jax '
                                  'study --help)'),
    (['study', '--quick=maybe'], "error: argument --quick: 'maybe' is not a bool"),
    (['study', '--quick'], 'error: --outdir is required, e.g. --outdir=runs/study'),
    (['sweep', '--outdir=/tmp/x', '--shard=3/2'], 'error: --shard=3/2'),
    (['study', '--outdir=/tmp/x', '--shard=half'], 'error: --shard=half must be i/N'),
    (['likelihood'], 'error: the following arguments are required: {collect,publish}'),
    (['bench', '--iwae_samples=many'], "error: argument --iwae_samples: invalid int value"),
])
def test_a_bad_command_line_is_one_line_and_exit_2(args, message):
  proc = vae_jax(*args)
  assert proc.returncode == 2, proc.stderr[-3000:]
  assert 'Traceback' not in proc.stderr and 'usage:' not in proc.stderr
  assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
  assert proc.stderr.startswith(message), proc.stderr


def test_publish_is_one_line_until_its_module_exists():
  proc = vae_jax('publish', '--help')
  if importlib.util.find_spec('vae_jax.publish') is not None:
    assert proc.returncode == 0 and proc.stdout.startswith('usage: '), proc.stderr
  else:
    assert proc.returncode == 2 and proc.stderr == (
        'error: vae-jax publish is not in this checkout (vae_jax/publish.py is missing): '
        'update the checkout (git pull) and reinstall\n')


def test_study_run_and_study_publish_share_one_process():
  # With absl's global registry both defined --outdir: importing the second one failed.
  code = ('import vae_jax.study.run as r, vae_jax.study.publish as p, vae_jax.study.sweep as s\n'
          "a = r.parser().parse_args(['--outdir=x', '--nocheck_gates', '--seeds=0,1'])\n"
          "b = p.parser().parse_args(['--outdir=y'])\n"
          "c = s.parser().parse_args(['--outdir=z', '--quick=true', '--shard=1/4'])\n"
          'print(a.outdir, a.check_gates, a.seeds, b.outdir, c.outdir, c.quick, c.shard)')
  proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT,
                        timeout=120)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.split() == ['x', 'False', "['0',", "'1']", 'y', 'z', 'True', '1/4']


@pytest.mark.parametrize('args,quick,gates', [
    ([], False, None), (['--quick'], True, None), (['--noquick'], False, None),
    (['--quick=false', '--check_gates'], False, True), (['--quick=T', '--nocheck_gates'], True, False),
    (['--check_gates=0', '--quick=1'], True, False), (['--quick', '--noquick'], False, None),
])
def test_booleans_read_as_absl_read_them(args, quick, gates):
  from vae_jax.study import run
  parsed = run.parser().parse_args(['--outdir=x', *args])
  assert (parsed.quick, parsed.check_gates) == (quick, gates)


def test_a_boolean_takes_no_value_after_a_space():
  from vae_jax import main
  with pytest.raises(SystemExit) as e:
    main.main(['--config=c.py', '--workdir=w', '--quiet', 'stray'])
  assert e.value.code == 2
