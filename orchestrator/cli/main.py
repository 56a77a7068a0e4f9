"""The `golf` command: golf_core's commands plus the orchestrator's."""
from __future__ import annotations

import sys

from golf_core.cli import CORE_COMMAND_MODULES, run_cli

# validate / schema / plan  |  run / submit / status / logs / cancel / reproduce  |  parse-log / import / check
ORCHESTRATOR_COMMAND_MODULES = ("orchestrator.cli.spec", "orchestrator.cli.run", "orchestrator.cli.reproduce",
                                "orchestrator.cli.imports", "orchestrator.cli.check")


# notices of libraries golf drives that say nothing a golf user acts on (issue 19): MLflow's
# "Creating initial MLflow database tables..." / "Updating database tables" on a new SQLite store,
# alembic's migration chatter (WARNING and up still show); Ray's "Token authentication is
# enabled for this Ray cluster..." (a warning: golf's `ray:` line says it instead).
QUIET_LOGGERS = {"mlflow.store.db.utils": "WARNING", "mlflow.store.db_migrations": "WARNING", "alembic": "WARNING",
                 "ray._private.authentication.authentication_token_setup": "ERROR"}


def quiet_libraries() -> None:
    import logging

    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    return run_cli("golf", CORE_COMMAND_MODULES + ORCHESTRATOR_COMMAND_MODULES, argv)


if __name__ == "__main__":
    sys.exit(main())
