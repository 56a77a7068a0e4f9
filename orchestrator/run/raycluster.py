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

import contextlib
import json
import os
import re
import sys
from pathlib import Path
from golf_core.errors import UserError

__all__ = ["AuthError", "connect", "job_client", "reap_dead", "record_processes", "resolve_token", "scrub",
           "TOKEN_HELP"]

TOKEN_HELP = ("get it on the head node with `ray get-auth-token` (or copy ~/.ray/auth_token) and pass "
              "--token-file PATH or set GOLF_RAY_TOKEN")


class AuthError(UserError):
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


def _deadline_client():
    """JobSubmissionClient whose every request has a connect and read timeout (Ray's has none:
    a dashboard that accepts TCP and never answers held `golf status` forever; issue 20)."""
    from ray.job_submission import JobSubmissionClient

    from orchestrator.tracking.client import net_timeout_s

    class DeadlineJobClient(JobSubmissionClient):
        def _do_request(self, method, endpoint, **kwargs):
            t = net_timeout_s()
            kwargs.setdefault("timeout", (t, t))
            return super()._do_request(method, endpoint, **kwargs)

    return DeadlineJobClient


def _no_answer(address: str, e: BaseException) -> ValueError | None:
    import requests

    from orchestrator.tracking.client import net_timeout_s

    if isinstance(e, requests.exceptions.Timeout) or "timed out" in str(e).lower():
        return ValueError(f"{address}: no answer within {net_timeout_s():g} s (GOLF_NET_TIMEOUT_S sets the deadline)")
    return None


def job_client(address: str, token_file: str | None = None):
    """A JobSubmissionClient for `address` (http://HEAD:8265) carrying our token; every request
    times out after net_timeout_s (connect and read)."""
    import requests
    from ray.exceptions import AuthenticationError

    token, source = resolve_token(token_file)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return _deadline_client()(address, headers=headers)
    except AuthenticationError as e:
        raise _auth_error(address, token, source, e) from None
    except requests.exceptions.RequestException as e:
        raise (_no_answer(address, e) or ValueError(f"cannot reach the Ray dashboard at {address}: "
                                                    f"{_one_line(e, token)}")) from None
    except (ConnectionError, ValueError, RuntimeError) as e:  # a bad header value names it: scrub
        raise UserError(f"cannot reach the Ray dashboard at {address}: {_one_line(e, token)}") from None


def _auth_error(address: str, token: str | None, source: str, err: Exception) -> AuthError:
    if token is None:
        return AuthError(f"{address} requires a Ray auth token and none was found; {TOKEN_HELP}")
    return AuthError(f"{address} rejected the Ray auth token from {source}; {TOKEN_HELP}")


def call(client, address: str, token_file: str | None, fn):
    """Run `fn(client)`, turning auth refusals into one-line AuthErrors and a request past its
    deadline into one line naming the address."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        return fn(client)
    except AuthenticationError as e:
        token, source = resolve_token(token_file)
        raise _auth_error(address, token, source, e) from None
    except requests.exceptions.RequestException as e:
        token, _ = resolve_token(token_file)
        raise (_no_answer(address, e) or ValueError(f"{address}: {_one_line(e, token)}")) from None
    except (RuntimeError, ConnectionError, ValueError) as e:  # 404 unknown job, dashboard gone: one line
        token, _ = resolve_token(token_file)
        raise UserError(f"{address}: {_one_line(e, token)}") from None


# -- the in-process cluster: loopback only, and nothing left behind ---------------------------
RECORD_GLOB = "ray-procs-*.json"


@contextlib.contextmanager
def _loopback_only():
    """Ray resolves a node IP of 127.0.0.1 to the machine's external address (so its gRPC
    servers bind that, or *) unless it believes clusters are off, which it reads from
    ray_constants.ENABLE_RAY_CLUSTER / $RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER. For the in-process
    cluster we want exactly that: every server on 127.0.0.1. Metrics export (two Prometheus
    endpoints without a token) is turned off too. The child processes inherit the variables
    from the environment at their start; ours is restored afterwards."""
    import ray._private.ray_constants as rc

    saved_env = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_enable_metrics_collection")}
    saved = rc.ENABLE_RAY_CLUSTER
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_enable_metrics_collection", "0")
    rc.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        rc.ENABLE_RAY_CLUSTER = saved
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _psutil():
    import ray  # noqa: F401 - Ray ships psutil in ray/thirdparty_files, put on sys.path on import
    import psutil

    return psutil


def _started(p) -> float:
    return round(p.create_time(), 2)


def record_processes(state_dir: str | os.PathLike) -> Path:
    """Write the pids (and start times) of the Ray processes this golf started, so a later golf
    can stop them should this one die without ray.shutdown() (SIGKILL, OOM)."""
    psutil = _psutil()

    me = psutil.Process()
    procs = []
    for p in me.children(recursive=True):
        try:
            procs.append({"pid": p.pid, "started": _started(p), "name": p.name()})
        except psutil.Error:
            continue
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    path = state / f"ray-procs-{me.pid}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"golf_pid": me.pid, "golf_started": _started(me), "procs": procs}))
    os.replace(tmp, path)
    return path


def reap_dead(state_dir: str | os.PathLike, grace_s: float = 5.0) -> list[int]:
    """Stop what a dead golf left: for each record whose golf process is gone, the recorded
    processes still alive with the same start time (so never a recycled pid, never anything
    golf did not start itself). Returns the pids stopped."""
    psutil = _psutil()

    stopped = []
    for path in sorted(Path(state_dir).glob(RECORD_GLOB)):
        try:
            rec = json.loads(path.read_text())
            golf_pid, golf_started = int(rec["golf_pid"]), float(rec["golf_started"])
            procs = [(int(p["pid"]), float(p["started"])) for p in rec["procs"]]
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # not ours to act on
            continue
        try:
            if _started(psutil.Process(golf_pid)) == round(golf_started, 2):
                continue  # that golf is alive: its Ray is in use
        except psutil.Error:
            pass
        alive = []
        for pid, started in procs:
            try:
                p = psutil.Process(pid)
                if _started(p) == round(started, 2) and p.status() != psutil.STATUS_ZOMBIE:
                    p.terminate()
                    alive.append(p)
            except psutil.Error:
                continue
        _, left = psutil.wait_procs(alive, timeout=grace_s)
        for p in left:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(left, timeout=grace_s)
        stopped += [p.pid for p in alive]
        path.unlink(missing_ok=True)
    return stopped


def connect(address: str | None = None, *, num_cpus: int | None = None, num_gpus: int | None = None,
            log_to_driver: bool = True, state_dir: str | os.PathLike | None = None) -> str:
    """ray.init: join `address` / $RAY_ADDRESS, else start Ray in this process.

    The in-process cluster has no dashboard (nothing listens for the Jobs API), no usage stats,
    no metrics export, and listens on 127.0.0.1 only. Its processes are recorded under
    `state_dir` (default ./.golf), where the next golf stops them if this one died. A token
    file Ray creates for it (~/.ray/auth_token) is made 0600. Returns "joined <address>" or "local"."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return "already connected"
    target = address or os.environ.get("RAY_ADDRESS")
    if target:
        ray.init(address=target, log_to_driver=log_to_driver)
        return f"joined {target}"
    state = Path(state_dir) if state_dir is not None else Path.cwd() / ".golf"
    stopped = reap_dead(state)
    if stopped:
        print(f"golf: stopped {len(stopped)} Ray processes a dead golf left behind", file=sys.stderr)
    token = Path(os.environ["RAY_AUTH_TOKEN_PATH"]).expanduser() if os.environ.get("RAY_AUTH_TOKEN_PATH") \
        else Path.home() / ".ray" / "auth_token"
    had_token = token.exists()
    with _loopback_only():
        # address="local": a new Ray in this process, always. Without it ray.init joins any
        # `ray start` cluster on this machine (its /tmp/ray/ray_current_cluster), another user's
        # or another sweep's included, and then refuses num_cpus.
        ray.init(address="local", include_dashboard=False, num_cpus=num_cpus, num_gpus=num_gpus,
                 log_to_driver=log_to_driver, configure_logging=False, _node_ip_address="127.0.0.1")
    if not had_token and token.is_file():
        os.chmod(token, 0o600)  # Ray writes it 0644: it is the key to every Ray on this machine
    record_processes(state)
    return "local"
