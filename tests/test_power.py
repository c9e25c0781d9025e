"""The seed plan: declared constants that the power analysis on the recorded data reproduces."""

from vae_jax.study import catalog as study_models
from vae_jax.study import claims as study_claims
from vae_jax.study import power, statistics_doc


def test_study_seeds_are_the_plan_on_the_recorded_summary():
  study = power.published('study')
  assert power.STUDY_SEEDS == power.plan_study(study['per_seed'], power.current_seeds(study))


def test_sweep_seeds_are_the_plan_on_the_recorded_summary():
  from vae_jax.study import sweep_catalog
  assert power.SWEEP_SEEDS == power.plan_sweep(power.published('sweep'))
  assert len(sweep_catalog.DEFAULT_SEEDS) == power.SWEEP_SEEDS


def test_no_primary_row_stays_open_for_lack_of_seeds_within_the_cap():
  study = power.published('study')
  specs = {s.name: s for s in study_models.specs()}
  for cid, models, _, need in power.plan_rows(study['per_seed'], study_claims.PRIMARY_CLAIMS):
    for m in models:
      # The catalog trains what the plan asks (rows over the cap: as many as the cap).
      assert len(specs[m].seed_list(study_models.DEFAULT_SEEDS)) >= (need or 0), (cid, m)
  assert len(study_models.DEFAULT_SEEDS) == power.MAX_SEEDS


def test_the_cap_binds_only_where_the_plan_says_so():
  # A row the published values decide at 4 seeds gets 4, not the cap.
  study = power.published('study')
  rows = {cid: need for cid, _, _, need in
          power.plan_rows(study['per_seed'], study_claims.PRIMARY_CLAIMS)}
  assert rows['fashion_mnist_conv_dropout_maxnorm_knn_accuracy'] == \
      power.STUDY_SEEDS['fashion_mnist_conv_vae_2d'] < power.MAX_SEEDS


def test_statistics_doc_is_current():
  from vae_jax import publish
  assert publish.publish(publish.ROOT, ['statistics'], check=True) == [], \
      'run `vae-jax publish statistics`'
