"""Experiment tracking: runs of any training code (and of the pipeline's search) with their
params, metric curves, tags and artifacts, in the metadata store."""

from mlcrew.experiments.read import compare_runs, list_runs, show_run
from mlcrew.experiments.tracking import ActiveRun, start_run

__all__ = ["ActiveRun", "compare_runs", "list_runs", "show_run", "start_run"]
