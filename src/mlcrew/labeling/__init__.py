"""The labeling workspace: label specs, tasks, each labeler's queue, and their labels."""
