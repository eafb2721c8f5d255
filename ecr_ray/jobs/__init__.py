"""Thin `ray job submit` entrypoints: `python -m ecr_ray.jobs.<name> --recipe <recipe> [--section.field value ...]`
(each also `ecr-ray <name>`). Each parses its arguments into a Config and calls one function of the library."""
