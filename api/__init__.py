"""Entry points: the HTTP app, the CLI, settings, logging and the database (URL or embedded)."""
