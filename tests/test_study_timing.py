"""The study's cost over passes split across sessions (vae_jax/study/run.py timing)."""

import pytest

from vae_jax.study import run


def _pass(started, wall, train=0.0, metrics=0.0, figures=0.0, found_models=True, quick=False):
  return {'started': started, 'wall_seconds': wall, 'train_seconds': train,
          'metrics_seconds': metrics, 'figures_seconds': figures,
          'found_models': found_models, 'quick': quick, 'machine': 'cpu'}


def test_a_study_split_over_two_sessions_sums_its_passes_not_the_gap():
  passes = [_pass(0, 100, train=95, found_models=False),
            _pass(10_000, 50, train=5, metrics=30, figures=10)]
  per_seed = {'m': {'0': {'train_seconds': 60.0}, '1': {'train_seconds': 35.0}}}
  t = run.timing(passes, per_seed)
  assert t['from_empty'] is True and t['passes'] == 2
  assert t['wall_seconds_busy'] == 150.0
  assert (t['train_phase_seconds'], t['metrics_seconds'], t['figures_seconds']) == (100, 30, 10)
  assert t['train_seconds_total'] == 95.0


def test_not_from_empty_when_the_first_pass_found_models():
  t = run.timing([_pass(5, 10, found_models=False), _pass(0, 10, found_models=True)], {})
  assert t['from_empty'] is False   # the earliest pass decides, whatever the file order


@pytest.mark.parametrize('quick_first', [True, False])
def test_quick_passes_do_not_count_beside_full_ones(quick_first):
  passes = [_pass(0, 7, quick=True, found_models=False), _pass(100, 20, found_models=True)]
  t = run.timing(passes if quick_first else passes[::-1], {})
  assert t['passes'] == 1 and t['wall_seconds_busy'] == 20 and t['from_empty'] is False


def test_the_study_trains_at_the_compute_dtype_it_is_given(tmp_path):
  """``--compute_dtype`` reaches every model's config and each pass's record; float32 by default."""
  import json

  from vae_jax.study import catalog, run
  spec = catalog.specs()[0]
  assert catalog.make_config(spec, 0, '', quick=True).compute_dtype == 'float32'
  assert catalog.make_config(spec, 0, '', True, 'bfloat16').compute_dtype == 'bfloat16'
  assert run.parser().parse_args(['--outdir=x']).compute_dtype == 'float32'
  assert run.parser().parse_args(['--outdir=x', '--compute_dtype=bfloat16']).compute_dtype == \
      'bfloat16'
  with pytest.raises(SystemExit):
    run.parser().parse_args(['--outdir=x', '--compute_dtype=float16'])
  clock = run._PassClock(str(tmp_path), False, True, None, 'bfloat16')
  clock.record()
  assert [p['compute_dtype'] for p in run.read_passes(str(tmp_path))] == ['bfloat16']
  assert json.loads((tmp_path / run.PASSES_FILE).read_text())['compute_dtype'] == 'bfloat16'
