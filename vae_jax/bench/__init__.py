"""Measurements: the benchmark, its roofline, its peers and profiles; precision; crashes.

Owns the benchmark (``benchmark``, ``roofline``, ``report``, ``keras_peers``,
``profile_ops``), one-off speed studies (``conv_lowerings``,
``seeds_vmapped``, ``likelihood_cost``), bfloat16 against float32 quality
(``precision_quality``), the random-kill campaign and the input fuzzers
(``crash_campaign``, ``fuzz_inputs``) and their publication (``publish``,
``publish_device``, ``device_check.sh``).

May import: ``vae_jax.analysis``, ``vae_jax.core``, ``vae_jax.infra``
(never ``vae_jax.study``: a measurement does not depend on a verdict).
"""
