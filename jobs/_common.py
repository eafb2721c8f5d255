"""Argument parsing shared by every job."""

from __future__ import annotations

import argparse
import json
import sys

from ecr_ray.config import Config, add_config_args, config_from_args


def parse(description: str, argv: list[str] | None, extra_args=None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=description,
                                     epilog="Any config field can be overridden: --section.field value")
    add_config_args(parser)
    if extra_args:
        extra_args(parser)
    args, rest = parser.parse_known_args(argv)
    return config_from_args(args, rest), args


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
