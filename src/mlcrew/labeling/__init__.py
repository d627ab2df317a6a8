"""Label projects: tasks, queues, agreement, quality control and active learning."""
