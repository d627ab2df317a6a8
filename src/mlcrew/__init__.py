"""mlcrew."""
