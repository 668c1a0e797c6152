"""`flask logto setup` / `flask logto doctor`: connect the site to a real Logto tenant, then check the connection.

- `logto_cli` (here): the click group, added to the Flask CLI by `create_app()`.
- `logto_cli/api.py`: what both commands share: their settings (`AdminEnv`, built from the site's own reader
  `settings.site_config`), Logto's Management API client, `LogtoApiError` and the one-line error handling.
- `logto_cli/setup.py`: the setup plan (app, Hugging Face connector, sign-in experience), applying it, the
  `.env` editing behind `--write-env`, and the `setup` command.
- `logto_cli/doctor.py`: the checks and the `doctor` command.
"""

from __future__ import annotations

import click

from tools.logto_cli.doctor import doctor_command
from tools.logto_cli.setup import setup_command

logto_cli = click.Group(
    "logto",
    help="Connect this site to a Logto tenant (setup) and check the connection (doctor), via Logto's Management API.",
    commands=[setup_command, doctor_command],
)

__all__ = ["logto_cli"]
