r"""SIGKILL training, the IWAE evaluation and a --quick study at random moments; reruns must agree.

  python -m vae_jax.bench.crash_campaign --seed=0 --json=results/crash_campaign.json
  python -m vae_jax.bench.crash_campaign --quick            # the slow test's short version
  python -m vae_jax.bench.crash_campaign --publish=results/crash_campaign.json   # then vae-jax publish

What SQLite and orbax do for their users, done for a run directory. Each
*trial* starts the real command (``python -m vae_jax.main``, ``python -m
vae_jax.core.evaluate``, ``python -m vae_jax.study.run``) in a fresh directory,
SIGKILLs it, reruns the same command (killing some reruns too), then reruns
it until it exits 0, and compares what is left with one uninterrupted
reference run of the same command:

* training: ``metrics.jsonl`` byte for byte (so no duplicated or half rows),
  the final checkpoint's restored state by its SHA-256 (bitwise parameters and
  optimizer state), the same checkpoint steps;
* evaluation: the result JSON but ``seconds``, ``machine`` and ``workdir``
  (how long, where and in which directory, which differ by design);
* study: ``summary.json`` but :data:`STUDY_TIMING_FIELDS`, and every model's
  ``metrics.jsonl`` and final state as for training;
* all: no leftover ``*.orbax-checkpoint-tmp*`` directory, temporary file or
  lock file, and no rerun refused (a stale lock that blocks a rerun would
  show as a refused rerun).

A kill lands either after a random delay (uniform over the reference run's
wall time, startup included), or, for training, aimed by
``$VAE_JAX_CRASH_AT`` (``vae_jax/infra/crash_points.py``) inside an atomic
file write, a metrics append, an orbax save or between orbax's commit and
the checksum manifest. A kill point counts only when the process died of it
(a run that ended first is not counted). Everything random is drawn from
``--seed``: the plan (which trial, which point, which delay) replays exactly;
where a timed kill lands depends on the machine's speed.
"""

import glob
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from vae_jax.infra import crash_points, flags, paths

ROOT = paths.REPO_ROOT
BEGIN, END = '<!-- crash_campaign:begin -->', '<!-- crash_campaign:end -->'
CONFIG = os.path.join(ROOT, 'experiments', 'configs', 'mnist_vae_2d.py')
# 8 steps an epoch, 2 epochs: checkpoints at 3, 6, 8, 11, 14, 16 (3 kept), a
# metrics line every 2 steps: a few seconds a run, many saves and appends to hit.
TRAIN_FLAGS = ('--config.data.num_train=512', '--config.data.num_test=200',
               '--config.batch_size=64', '--config.eval_batch_size=100',
               '--config.num_epochs=2', '--config.log_every_steps=2',
               '--config.checkpoint_every_steps=3', '--config.model.mlp.hidden_sizes=(32,)',
               '--quiet')
TRAIN_STEPS, STEPS_PER_EPOCH, CHECKPOINT_EVERY = 16, 8, 3
EVAL_FLAGS = ('--iwae_samples=64', '--num_examples=200', '--example_chunk=20',
              '--sample_chunk=16', '--quiet')
# How long and where: a rerun changes them by design. wall_seconds and
# train_seconds_total are the study's clock; train_seconds each model's
# (its segments: a killed process's work up to its last checkpoint counts);
# machine names the CPU of the run.
STUDY_TIMING_FIELDS = frozenset({'wall_seconds', 'train_seconds_total', 'train_seconds',
                                 'seconds', 'machine'})
# An evaluation's result also names the workdir it read, which differs by design.
EVAL_IGNORED_FIELDS = frozenset({'seconds', 'machine', 'workdir'})
# Kills in a row per trial (each rerun killed again): a trial's runs are shared
# by its kills, which the 2 shared cores of the campaign's machine need.
CHAIN = (1, 2, 3)
# Reruns of one trial before it is counted a divergence (a rerun that never ends).
MAX_RERUNS = 4


# ----------------------------------------------------------------------------
# Running a command, killed or not
# ----------------------------------------------------------------------------
def environment(cache_dir, crash_at=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', JAX_COMPILATION_CACHE_DIR=cache_dir,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')
  env.pop(crash_points.ENV_VAR, None)
  if crash_at:
    env[crash_points.ENV_VAR] = crash_at
  return env


def run(cmd, env, kill_after=None, timeout=1800):
  """``(exit status, wall seconds, last stderr line)``; SIGKILLed after ``kill_after`` s if given."""
  started = time.perf_counter()
  with tempfile.TemporaryFile() as err:
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    try:
      proc.wait(timeout=kill_after if kill_after is not None else timeout)
    except subprocess.TimeoutExpired:
      proc.send_signal(signal.SIGKILL)
      proc.wait()
    err.seek(0)
    lines = err.read().decode(errors='replace').strip().splitlines()
  return proc.returncode, time.perf_counter() - started, lines[-1] if lines else ''


def train_cmd(workdir):
  return [sys.executable, '-m', 'vae_jax.main', f'--config={CONFIG}', f'--workdir={workdir}',
          *TRAIN_FLAGS]


def eval_cmd(workdir):
  return [sys.executable, '-m', 'vae_jax.core.evaluate', f'--workdir={workdir}', *EVAL_FLAGS]


def study_cmd(outdir, data_dir):
  return [sys.executable, '-m', 'vae_jax.study.run', f'--outdir={outdir}', '--quick',
          '--seeds=0', '--quiet', f'--data_dir={data_dir}']


# ----------------------------------------------------------------------------
# What a finished directory holds, to compare with the reference
# ----------------------------------------------------------------------------
def state_digest(workdir):
  """``(step, SHA-256 of the restored state)`` of a run's newest checkpoint."""
  from vae_jax.core import experiment
  from vae_jax.infra import checkpointing
  warnings = []
  _, _, step, state, _ = experiment.restore_state(workdir, warn=warnings.append)
  if warnings:
    raise AssertionError(f'damaged checkpoints: {warnings}')
  return step, checkpointing.state_digest(state)


def committed_steps(workdir):
  d = os.path.join(workdir, 'checkpoints')
  return sorted(int(n) for n in os.listdir(d) if n.isdigit()) if os.path.isdir(d) else []


def leftovers(directory):
  """Temporary checkpoints, temporary files and lock files left under ``directory``."""
  found = []
  for root, dirs, files in os.walk(directory):
    if os.path.basename(root) == 'xla_cache':
      dirs[:] = []
      continue
    found += [os.path.join(root, d) for d in dirs if '.orbax-checkpoint-tmp' in d]
    found += [os.path.join(root, f) for f in files
              if f.endswith('.tmp') or f == 'vae_jax.lock' or f.endswith('.partial.npz')]
  return sorted(os.path.relpath(p, directory) for p in found)


def metrics_problems(path):
  """Half lines and duplicated (step, split) rows of a metrics.jsonl."""
  half, seen, dup = 0, set(), 0
  with open(path, 'rb') as f:
    data = f.read()
  lines = data.splitlines()
  for i, line in enumerate(lines):
    try:
      row = json.loads(line)
    except ValueError:
      half += 1
      continue
    if i == len(lines) - 1 and not data.endswith(b'\n'):
      half += 1  # a whole object, but its newline was never written
      continue
    key = (row.get('step'), row.get('split'))
    dup += key in seen
    seen.add(key)
  return {'half_rows': half, 'duplicate_rows': dup}


def files(directory):
  """Relative paths of a run's files, TensorBoard's event files (named by time and host) left
  out, and the names of OCDBT's data files (random, in a ``d/`` folder) as ``d/<data>``."""
  out = []
  for root, _, names in os.walk(directory):
    rel = os.path.relpath(root, directory)
    if 'tensorboard' in rel.split(os.sep):
      continue
    out += [os.path.join(rel, '<data>' if os.path.basename(root) == 'd' else f) for f in names]
  return sorted(set(out))


def _sha(path):
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()


def compare_training(workdir, reference):
  """Differences of a finished run from the reference run, as strings (none: equal)."""
  out = []
  problems = metrics_problems(os.path.join(workdir, 'metrics.jsonl'))
  out += [f'{n} {k} in metrics.jsonl' for k, n in problems.items() if n]
  if _sha(os.path.join(workdir, 'metrics.jsonl')) != reference['metrics_sha256']:
    out.append('metrics.jsonl differs from the reference')
  if committed_steps(workdir) != reference['checkpoints']:
    out.append(f'checkpoints {committed_steps(workdir)} != {reference["checkpoints"]}')
  try:
    if list(state_digest(workdir)) != reference['state']:
      out.append('final state differs from the reference')
  except Exception as e:  # pylint: disable=broad-except
    out.append(f'final state unreadable ({type(e).__name__}: {e})')
  out += [f'left over: {p}' for p in leftovers(workdir)]
  got, want = set(files(workdir)), set(reference['files'])
  out += [f'{p} missing' for p in sorted(want - got)]
  out += [f'{p} not in the reference' for p in sorted(got - want)]
  if os.path.exists(os.path.join(workdir, 'checkpoints_damaged')):
    out.append('a checkpoint was set aside as damaged')
  return out


def training_fingerprint(workdir):
  return {'metrics_sha256': _sha(os.path.join(workdir, 'metrics.jsonl')),
          'checkpoints': committed_steps(workdir), 'state': list(state_digest(workdir)),
          'files': files(workdir)}


def without(d, fields):
  """``d`` (nested dicts and lists) without any key in ``fields``, at any depth."""
  if isinstance(d, dict):
    return {k: without(v, fields) for k, v in d.items() if k not in fields}
  if isinstance(d, list):
    return [without(v, fields) for v in d]
  return d


def _read_json(path):
  with open(path) as f:
    return json.load(f)


def _differing_keys(a, b, prefix=''):
  if isinstance(a, dict) and isinstance(b, dict):
    return [k for key in sorted(set(a) | set(b))
            for k in _differing_keys(a.get(key), b.get(key), f'{prefix}{key}.')]
  return [] if a == b else [prefix.rstrip('.')]


# ----------------------------------------------------------------------------
# Trials
# ----------------------------------------------------------------------------
def checkpoint_steps():
  """The training config's saves: every CHECKPOINT_EVERY steps of an epoch and its end."""
  steps = set()
  for start in range(0, TRAIN_STEPS, STEPS_PER_EPOCH):
    steps |= {start + s for s in range(CHECKPOINT_EVERY, STEPS_PER_EPOCH, CHECKPOINT_EVERY)}
    steps.add(start + STEPS_PER_EPOCH)
  return sorted(steps)


def train_kill_plan(rng, reference_seconds, metrics_lines):
  """One kill of a training trial: a timed one, or aimed at a crash point."""
  saves = len(checkpoint_steps())
  # atomic writes: config.json, then timing.json and the checksum manifest at each save
  passages = {'append_line': metrics_lines, 'checkpoint_save': saves,
              'checkpoint_manifest': saves, 'atomic_write': 1 + 2 * saves}
  kind = rng.choice(('timed', 'timed') + crash_points.POINTS)
  if kind == 'timed':
    return {'kind': 'timed', 'delay': round(rng.uniform(0, reference_seconds), 3)}
  # with a delay after the save starts, the kill lands inside orbax's write
  delay = round(rng.uniform(0, 0.3), 3) if kind == 'checkpoint_save' else 0.0
  return {'kind': kind, 'crash_at': f'{kind}:{rng.randint(1, passages[kind])}:{delay}'}


def run_trial(cmd, env_for, plans, compare):
  """Runs ``cmd`` killed per ``plans`` (each rerun the next), then to completion; compares.

  ``env_for(crash_at)`` gives the environment. Returns the trial's record.
  """
  record = {'plans': plans, 'killed': [], 'reruns': 0, 'refused': [], 'divergences': []}
  for plan in plans:
    rc, seconds, _ = run(cmd, env_for(plan.get('crash_at')),
                         kill_after=plan.get('delay', 600 if plan.get('crash_at') else None))
    if rc == -signal.SIGKILL:
      record['killed'].append({**plan, 'after_seconds': round(seconds, 2)})
    elif rc != 0:
      record['divergences'].append(f'a killed run exited {rc} before its kill')
    if rc != -signal.SIGKILL:
      break  # it ended before the kill: nothing more to rerun against
  rc = -signal.SIGKILL if record['killed'] else 0
  while rc != 0 and record['reruns'] < MAX_RERUNS:
    rc, _, last = run(cmd, env_for(None))
    record['reruns'] += 1
    if rc != 0:
      record['refused'].append(f'exit {rc}: {last}')
  if rc != 0:
    record['divergences'].append(f'no rerun finished in {MAX_RERUNS}: {record["refused"]}')
  else:
    record['divergences'] += compare()
  return record


def training_campaign(rng, kills, base, cache, log):
  env_for = lambda crash_at: environment(cache, crash_at)  # noqa: E731
  ref = os.path.join(base, 'train_reference')
  rc, seconds, last = run(train_cmd(ref), env_for(None))
  if rc != 0:
    raise RuntimeError(f'the reference training run failed ({rc}): {last}')
  rc, seconds, _ = run(train_cmd(os.path.join(base, 'train_reference_timed')), env_for(None))
  reference = training_fingerprint(ref)
  with open(os.path.join(ref, 'metrics.jsonl')) as f:
    lines = sum(1 for _ in f)
  trials = []
  while sum(len(t['killed']) for t in trials) < kills:
    w = os.path.join(base, f'train_{len(trials)}')
    plans = [train_kill_plan(rng, seconds, lines) for _ in range(rng.choice(CHAIN))]
    t = run_trial(train_cmd(w), env_for, plans, lambda w=w: compare_training(w, reference))
    trials.append(t)
    log(f'train trial {len(trials)}: killed {len(t["killed"])} '
        f'({", ".join(p["kind"] for p in t["killed"]) or "none"}), reruns {t["reruns"]}, '
        f'divergences {len(t["divergences"])} {t["divergences"] or ""}')
    shutil.rmtree(w, ignore_errors=True)
  return {'reference_seconds': round(seconds, 2), 'trials': trials}, ref


def eval_campaign(rng, kills, base, cache, trained, log):
  env_for = lambda crash_at: environment(cache, crash_at)  # noqa: E731
  out_name = 'eval_iwae64_n200.json'
  ref = os.path.join(base, 'eval_reference')
  shutil.copytree(trained, ref)
  rc, seconds, last = run(eval_cmd(ref), env_for(None))
  if rc != 0:
    raise RuntimeError(f'the reference evaluation failed ({rc}): {last}')
  reference = without(_read_json(os.path.join(ref, out_name)), EVAL_IGNORED_FIELDS)

  def compare(w):
    out = [f'left over: {p}' for p in leftovers(w)]
    path = os.path.join(w, out_name)
    if not os.path.exists(path):
      return out + [f'{out_name} missing']
    got = without(_read_json(path), EVAL_IGNORED_FIELDS)
    return out + [f'{k} differs' for k in _differing_keys(got, reference)]

  trials = []
  while sum(len(t['killed']) for t in trials) < kills:
    w = os.path.join(base, f'eval_{len(trials)}')
    shutil.copytree(trained, w)
    plans = [{'kind': 'timed', 'delay': round(rng.uniform(0, seconds), 3)}
             for _ in range(rng.choice(CHAIN))]
    t = run_trial(eval_cmd(w), env_for, plans, lambda w=w: compare(w))
    trials.append(t)
    log(f'eval trial {len(trials)}: killed {len(t["killed"])}, reruns {t["reruns"]}, '
        f'divergences {len(t["divergences"])} {t["divergences"] or ""}')
    shutil.rmtree(w, ignore_errors=True)
  return {'reference_seconds': round(seconds, 2), 'trials': trials}


def study_fingerprint(outdir):
  summary = without(_read_json(os.path.join(outdir, 'summary.json')), STUDY_TIMING_FIELDS)
  models = {}
  for w in sorted(glob.glob(os.path.join(outdir, 'models', '*'))):
    models[os.path.basename(w)] = {'metrics_sha256': _sha(os.path.join(w, 'metrics.jsonl')),
                                   'state': list(state_digest(w))}
  return {'summary': summary, 'models': models}


def study_campaign(rng, kills, base, cache, data_dir, log, reference_dir=None):
  """One outdir, killed ``kills`` times in a row (each rerun resumes), then finished.

  A quick study takes minutes: its kills are chained through one outdir, each
  after a delay uniform over twice the reference's wall time shared by the
  kills, so they spread over the whole study. ``reference_dir``: a finished
  uninterrupted study of the same command, used instead of running one.
  """
  env_for = lambda crash_at: environment(cache, crash_at)  # noqa: E731
  ref = reference_dir or os.path.join(base, 'study_reference')
  if reference_dir:
    seconds = _read_json(os.path.join(ref, 'summary.json'))['wall_seconds']
  else:
    rc, seconds, last = run(study_cmd(ref, data_dir), env_for(None))
    if rc != 0:
      raise RuntimeError(f'the reference study failed ({rc}): {last}')
  reference = study_fingerprint(ref)
  trials = []
  while sum(len(t['killed']) for t in trials) < kills:
    w = os.path.join(base, f'study_{len(trials)}')
    left = kills - sum(len(t['killed']) for t in trials)
    plans = [{'kind': 'timed', 'delay': round(rng.uniform(0, 2 * seconds / kills), 3)}
             for _ in range(left)]

    def compare(w=w):
      out = [f'left over: {p}' for p in leftovers(w)]
      got = study_fingerprint(w)
      out += [f'summary.json: {k} differs'
              for k in _differing_keys(got['summary'], reference['summary'])]
      out += [f'model {m} differs ({sorted(k for k in got["models"].get(m, {}) if got["models"].get(m, {}).get(k) != v)})'
              for m, r in reference['models'].items()
              for v in [r] if got['models'].get(m) != r]
      return out

    t = run_trial(study_cmd(w, data_dir), env_for, plans, compare)
    trials.append(t)
    log(f'study trial {len(trials)}: killed {len(t["killed"])}, reruns {t["reruns"]}, '
        f'divergences {len(t["divergences"])} {t["divergences"] or ""}')
  return {'reference_seconds': round(seconds, 2), 'trials': trials,
          'reference_reused': bool(reference_dir), 'ignored_fields': sorted(STUDY_TIMING_FIELDS)}


# ----------------------------------------------------------------------------
# Counts and the table
# ----------------------------------------------------------------------------
def counts(part):
  trials = part['trials']
  kinds = {}
  for t in trials:
    for k in t['killed']:
      kinds[k['kind']] = kinds.get(k['kind'], 0) + 1
  return {'trials': len(trials), 'kill_points': sum(kinds.values()), 'by_kind': kinds,
          'reruns': sum(t['reruns'] for t in trials),
          'refused_reruns': sum(len(t['refused']) for t in trials),
          'divergences': sum(len(t['divergences']) for t in trials)}


KIND_LABELS = {'timed': 'at a random moment', 'atomic_write': 'inside an atomic file write',
               'append_line': 'before a metrics append', 'checkpoint_save': 'inside an orbax save',
               'checkpoint_manifest': "between orbax's commit and the checksums"}


def markdown(results):
  lines = [f'<!-- generated by vae_jax/bench/crash_campaign.py from results/crash_campaign.json; '
           'edit the script, not this text -->', '',
           f'Seed {results["seed"]}, {results["machine"]}; its parts took '
           f'{sum(p["seconds"] for p in results["parts"].values()) / 60:.0f} min together.'
           + (' A --quick smoke run: these counts are not the campaign.' if results['quick']
              else ''), '',
           '| command | kill points | where the kills landed | reruns | reruns refused | '
           'divergences |', '|---|---:|---|---:|---:|---:|']
  for name, label in (('train', 'training (`vae_jax.main`)'),
                      ('evaluate', 'IWAE evaluation (`vae_jax.core.evaluate`)'),
                      ('study', '`--quick` study (`vae_jax.study.run`)')):
    if name not in results['parts']:
      continue
    c = results['parts'][name]['counts']
    where = ', '.join(f'{n} {KIND_LABELS[k]}' for k, n in sorted(c['by_kind'].items()))
    lines.append(f'| {label} | {c["kill_points"]} | {where} | {c["reruns"]} | '
                 f'{c["refused_reruns"]} | {c["divergences"]} |')
  if 'study' in results['parts']:
    study = results['parts']['study']
    lines += ['', 'The study\'s `summary.json` is compared without '
              + ', '.join(f'`{f}`' for f in study['ignored_fields'])
              + ' (how long and where it ran, which a rerun changes by design)'
              + ('; its uninterrupted reference was an earlier run of the same command '
                 '(`--study_reference`)' if study.get('reference_reused') else '')
              + f'. Its {study["counts"]["kill_points"]} kills went into one outdir in a '
              'row, each rerun resuming the last.']
  found = [(name, d) for name, part in results['parts'].items()
           for t in part['trials'] for d in t['divergences']]
  if found:
    lines += ['', 'Divergences this run found (each since fixed, with a regression test in '
              'tests/test_crash_campaign.py):', '']
    lines += [f'- {name}: {d}' for name, d in found]
  return '\n'.join(lines)


PARTS = ('train', 'evaluate', 'study')


def main(argv=None, prog='python -m vae_jax.bench.crash_campaign'):
  from vae_jax.bench import publish as publish_benchmark
  parser = flags.Parser(prog, __doc__.split('\n\n')[0],
                        f'{prog} --seed=0 --json=results/crash_campaign.json')
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--json', default=None,
                      help='write the counts and every trial here; the parts of an existing '
                           'file of the same seed that this call does not run are kept')
  parser.add_argument('--quick', action='store_true',
                      help='4 training kills, 2 evaluation kills, no study: the slow test')
  parser.add_argument('--parts', default=','.join(PARTS),
                      help='which of train,evaluate,study to run (evaluate needs train)')
  parser.add_argument('--train_kills', type=int, default=None)
  parser.add_argument('--eval_kills', type=int, default=None)
  parser.add_argument('--study_kills', type=int, default=None)
  parser.add_argument('--study_reference', default=None, metavar='DIR',
                      help='a finished uninterrupted `vae_jax.study.run --quick --seeds=0` '
                           'outdir to compare with, instead of running one')
  parser.add_argument('--workdir', default=None, help='keep the runs here (default: a temp dir)')
  parser.add_argument('--data_dir', default=os.environ.get('VAE_JAX_DATA_DIR', ''))
  publish_benchmark.add_publish_flag(parser, 'crash_campaign.json')
  args = parser.parse_args(argv)
  if publish_benchmark.publish_if_asked(args.publish, 'crash_campaign.json', 'crash_campaign'):
    return None
  if not args.data_dir:
    parser.error('--data_dir (or $VAE_JAX_DATA_DIR) must name the directory of IDX files')
  parts = args.parts.split(',')
  if set(parts) - set(PARTS) or ('evaluate' in parts and 'train' not in parts):
    parser.error(f'--parts={args.parts}: use some of {",".join(PARTS)}; evaluate needs train')
  os.environ['VAE_JAX_DATA_DIR'] = os.path.abspath(args.data_dir)
  default = (4, 2, 0) if args.quick else (30, 10, 10)
  kills = dict(zip(PARTS, (d if k is None else k for k, d in zip(
      (args.train_kills, args.eval_kills, args.study_kills), default))))
  rng = random.Random(args.seed)
  base = args.workdir or tempfile.mkdtemp(prefix='vae_jax_crash_')
  os.makedirs(base, exist_ok=True)
  cache = os.path.join(base, 'xla_cache')
  log = lambda m: print(m, flush=True)  # noqa: E731
  from vae_jax.infra import run_clock
  results = {'seed': args.seed, 'quick': args.quick, 'machine': run_clock.machine_description(),
             'parts': {}}
  if args.json and os.path.exists(args.json):
    kept = _read_json(args.json)
    if (kept['seed'], kept['quick']) == (args.seed, args.quick):
      results['parts'] = {k: v for k, v in kept['parts'].items() if k not in parts}
  try:
    if 'train' in parts and kills['train']:
      started = time.perf_counter()
      results['parts']['train'], trained = training_campaign(rng, kills['train'], base, cache, log)
      results['parts']['train']['seconds'] = round(time.perf_counter() - started, 1)
      if 'evaluate' in parts and kills['evaluate']:
        started = time.perf_counter()
        results['parts']['evaluate'] = eval_campaign(rng, kills['evaluate'], base, cache,
                                                     trained, log)
        results['parts']['evaluate']['seconds'] = round(time.perf_counter() - started, 1)
    if 'study' in parts and kills['study']:
      started = time.perf_counter()
      results['parts']['study'] = study_campaign(
          rng, kills['study'], base, cache, os.path.abspath(args.data_dir), log,
          args.study_reference)
      results['parts']['study']['seconds'] = round(time.perf_counter() - started, 1)
  finally:
    if not args.workdir:
      shutil.rmtree(base, ignore_errors=True)
  for name, part in results['parts'].items():
    c = part['counts'] = counts(part)
    print(f'{name}: {c["kill_points"]} kill points {c["by_kind"]}, {c["reruns"]} reruns, '
          f'{c["refused_reruns"]} refused, {c["divergences"]} divergences in '
          f'{part["seconds"] / 60:.1f} min')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=1, sort_keys=True)
      f.write('\n')
  print(markdown(results))
  return results


if __name__ == '__main__':
  main()
