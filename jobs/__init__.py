"""Thin `ray job submit` entrypoints: `python -m jobs.<name> --recipe <recipe> [--section.field value ...]`."""
