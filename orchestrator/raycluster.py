"""Connecting to Ray: an in-process local cluster, an existing one, or a job-submission client.

Ray 2.60 turns token authentication on by default: `ray start` / `ray.init()` write a token
(default `~/.ray/auth_token`) and every dashboard / Jobs API request without
`Authorization: Bearer <token>` is refused (HTTP 401 missing, 403 wrong). golf reads the token
on purpose, in this order: `--token-file`, `$GOLF_RAY_TOKEN` (the token itself),
`$RAY_AUTH_TOKEN`, `$RAY_AUTH_TOKEN_PATH`, `~/.ray/auth_token`, and sends it as that header.
Only the first line of a token file, stripped, is the token; no message ever shows it or the
header (errors from the HTTP layer are scrubbed before they are printed).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["AuthError", "connect", "job_client", "resolve_token", "scrub", "TOKEN_HELP"]

TOKEN_HELP = ("get it on the head node with `ray get-auth-token` (or copy ~/.ray/auth_token) and pass "
              "--token-file PATH or set GOLF_RAY_TOKEN")


class AuthError(ValueError):
    """The cluster refused us: no token, or the wrong one. One line, says how to get it."""


_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # what an HTTP header value may carry


def _first_line(text: str) -> str:
    lines = text.splitlines()
    return lines[0].strip() if lines else ""


def _checked(tok: str, source: str) -> str:
    if not _TOKEN_CHARS.fullmatch(tok):
        raise AuthError(f"the Ray auth token from {source} has characters a token cannot have "
                        f"(spaces or control characters); {TOKEN_HELP}")
    return tok


def _read_token_file(p: Path) -> str:
    try:
        return _first_line(p.read_text(encoding="utf-8", errors="replace"))
    except OSError as e:
        raise AuthError(f"{p}: unreadable token file ({e.strerror}); {TOKEN_HELP}") from None


def resolve_token(token_file: str | None = None) -> tuple[str | None, str]:
    """(token, where it came from). A named token file that is missing or empty is an error.
    From a file or a variable, the token is its first line, stripped."""
    if token_file:
        p = Path(token_file).expanduser()
        if not p.is_file():
            raise AuthError(f"--token-file {token_file}: no such file; {TOKEN_HELP}")
        tok = _read_token_file(p)
        if not tok:
            raise AuthError(f"--token-file {token_file}: empty; {TOKEN_HELP}")
        return _checked(tok, str(p)), str(p)
    for var in ("GOLF_RAY_TOKEN", "RAY_AUTH_TOKEN"):
        tok = _first_line(os.environ.get(var, ""))
        if tok:
            return _checked(tok, f"${var}"), f"${var}"
    candidates = []
    if os.environ.get("RAY_AUTH_TOKEN_PATH"):
        candidates.append(Path(os.environ["RAY_AUTH_TOKEN_PATH"]).expanduser())
    candidates.append(Path.home() / ".ray" / "auth_token")
    for p in candidates:
        if p.is_file() and (tok := _read_token_file(p)):
            return _checked(tok, str(p)), str(p)
    return None, "none"


def scrub(text: object, token: str | None = None) -> str:
    """`text` without the token and without any Authorization header value."""
    out = str(text)
    if token:
        out = out.replace(token, "***")
    return re.sub(r"(?i)(bearer\s+)\S+", r"\1***", out)


def _one_line(e: BaseException, token: str | None) -> str:
    msg = str(e).strip()
    return scrub(msg.splitlines()[0] if msg else type(e).__name__, token)


def job_client(address: str, token_file: str | None = None):
    """A JobSubmissionClient for `address` (http://HEAD:8265) carrying our token."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    token, source = resolve_token(token_file)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return JobSubmissionClient(address, headers=headers)
    except AuthenticationError as e:
        raise _auth_error(address, token, source, e) from None
    except (ConnectionError, ValueError, RuntimeError) as e:  # a bad header value names it: scrub
        raise ValueError(f"cannot reach the Ray dashboard at {address}: {_one_line(e, token)}") from None


def _auth_error(address: str, token: str | None, source: str, err: Exception) -> AuthError:
    if token is None:
        return AuthError(f"{address} requires a Ray auth token and none was found; {TOKEN_HELP}")
    return AuthError(f"{address} rejected the Ray auth token from {source}; {TOKEN_HELP}")


def call(client, address: str, token_file: str | None, fn):
    """Run `fn(client)`, turning auth refusals into one-line AuthErrors."""
    from ray.exceptions import AuthenticationError

    try:
        return fn(client)
    except AuthenticationError as e:
        token, source = resolve_token(token_file)
        raise _auth_error(address, token, source, e) from None
    except (RuntimeError, ConnectionError, ValueError) as e:  # 404 unknown job, dashboard gone: one line
        token, _ = resolve_token(token_file)
        raise ValueError(f"{address}: {_one_line(e, token)}") from None


def connect(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
            log_to_driver: bool = True) -> str:
    """ray.init: join `address` / $RAY_ADDRESS, else start Ray in this process.

    The in-process cluster has no dashboard (nothing listens for the Jobs API) and no usage
    stats; returns "joined <address>" or "local"."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return "already connected"
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        ray.init(address=target, log_to_driver=log_to_driver)
        return f"joined {target}"
    ray.init(include_dashboard=False, num_cpus=num_cpus, num_gpus=num_gpus, log_to_driver=log_to_driver,
             configure_logging=False)
    return "local"
