"""Which verdicts a new study run changed, and why (report.verdict_changes)."""

from vae_jax.study import report


def _row(cid, verdict, metric='m', n=5, measured=True, group='primary'):
  return {'id': cid, 'verdict': verdict, 'metric': metric, 'n': n, 'measured': measured,
          'group': group}


def test_each_change_is_listed_once_with_the_reason_the_rows_show():
  before = [_row('same', 'supported'), _row('seeds', 'inconclusive', n=5),
            _row('metric', 'contradicted', metric='old'), _row('new_metric', 'inconclusive',
                                                               measured=False),
            _row('values', 'supported'), _row('gone', 'supported')]
  after = [_row('same', 'supported'), _row('seeds', 'supported', n=10),
           _row('metric', 'supported', metric='new'), _row('new_metric', 'equivalent'),
           _row('values', 'inconclusive'), _row('added', 'supported', group='replication')]
  changes = {c['id']: c for c in report.verdict_changes(before, after)}
  assert set(changes) == {'seeds', 'metric', 'new_metric', 'values', 'gone', 'added'}
  assert changes['seeds']['why'].startswith('5 → 10 seeds')
  assert changes['metric']['why'] == 'metric `old` replaced by `new`'
  assert changes['new_metric']['why'].startswith('measured for the first time')
  assert changes['values']['why'].startswith('values re-measured')
  assert changes['gone']['after'] is None and 'no longer declared' in changes['gone']['why']
  assert changes['added']['before'] is None and changes['added']['group'] == 'replication'
  lines = report.changes_markdown(list(changes.values()), unchanged=1)
  assert lines[0] == '6 verdicts changed, 1 kept theirs.'
  assert len(lines) == 4 + 6


def test_nothing_changed_says_so():
  rows = [_row('a', 'supported')]
  assert report.verdict_changes(rows, rows) == []
  assert report.changes_markdown([], 1) == ['No verdict changed (1 claims kept theirs).']
