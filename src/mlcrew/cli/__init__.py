"""The `mlcrew` command line: thin commands over the library."""
