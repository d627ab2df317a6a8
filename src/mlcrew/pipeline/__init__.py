"""The pipeline: stage contract, default stages, cache keys, runner, status and reproduce."""
