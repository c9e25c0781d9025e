"""Run infrastructure: everything a run needs that is not maths.

Owns the run directory (``workdir``), atomic checkpoints (``checkpointing``),
signals (``interrupts``), wall-time accounting (``run_clock``), progress
output, TensorBoard files, the device mesh (``parallel``), multi-process
start-up (``distributed``), chunked batched application (``chunks``), the
kill points the crash campaign aims at (``crash_points``), the
command-line parser every command uses (``flags``), the repository's folders
(``paths``) and generated blocks in the docs (``blocks``).

May import: nothing else of vae_jax (it is the ground floor).
"""
