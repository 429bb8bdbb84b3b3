"""A program's settings as command-line flags over its `SESERAGI_*` variables.

pydantic-settings' CLI source adds one flag per field to our argparse subcommand, with its
description, default and env name in the help; a flag given wins over the variable.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, CliSettingsSource

S = TypeVar("S", bound=BaseSettings)


@dataclass(frozen=True, slots=True)
class Flags(Generic[S]):
    """The flags of one settings class on one subcommand."""

    settings_class: type[S]
    parser: argparse.ArgumentParser
    source: CliSettingsSource[argparse.ArgumentParser]

    def read(self, args: argparse.Namespace) -> S:
        """The settings from the flags in `args`, then the environment, then the defaults.

        A value out of range exits 2 naming the setting, as argparse does, not with a traceback.
        """
        try:
            return self.settings_class(_cli_settings_source=self.source(parsed_args=args))
        except ValidationError as error:
            self.parser.error(
                "; ".join(
                    f"{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e['input']!r})"
                    for e in error.errors()
                )
            )


def add_flags(parser: argparse.ArgumentParser, settings_class: type[S]) -> Flags[S]:
    """Add a flag per field of `settings_class` (`--max-new-tokens`, `--no-prefix-caching`)."""
    source = CliSettingsSource[argparse.ArgumentParser](
        settings_class,
        root_parser=parser,
        cli_prog_name=parser.prog,
        cli_show_env_vars=True,
        cli_kebab_case=True,
        cli_implicit_flags=True,
    )
    return Flags(settings_class, parser, source)
