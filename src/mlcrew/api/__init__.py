"""REST API and web pages over the core library."""
