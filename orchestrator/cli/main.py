"""The `golf` command: golf_core's commands plus the orchestrator's."""
from __future__ import annotations

import sys

from golf_core.cli import CORE_COMMAND_MODULES, run_cli

# validate / schema / plan  |  run / submit / status / logs / cancel / reproduce  |  parse-log / import / check
ORCHESTRATOR_COMMAND_MODULES = ("orchestrator.cli.spec", "orchestrator.cli.run", "orchestrator.cli.reproduce",
                                "orchestrator.cli.imports", "orchestrator.cli.check")


def main(argv: list[str] | None = None) -> int:
    return run_cli("golf", CORE_COMMAND_MODULES + ORCHESTRATOR_COMMAND_MODULES, argv)


if __name__ == "__main__":
    sys.exit(main())
