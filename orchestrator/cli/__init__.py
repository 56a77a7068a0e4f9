"""The `golf` command: golf_core's commands plus the orchestrator's (main), one module per command group."""
