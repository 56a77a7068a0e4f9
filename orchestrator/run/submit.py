"""`golf submit SPEC --address http://HEAD:8265` and `golf status|logs|cancel JOB_ID`.

A sweep goes to a remote cluster as a Ray job: the spec file is uploaded in the job's
runtime_env working_dir and the entrypoint is `golf run <spec>` (the node image has golf
installed, docker/). Every request carries the cluster's auth token (orchestrator.run.raycluster).
"""
from __future__ import annotations

from golf_core.errors import UserError
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.run.raycluster import call, job_client

__all__ = ["build_entrypoint", "check_remote_tracking_uri", "default_address", "job_env", "register_job_commands"]

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
# MLflow's own credential variables (basic auth / bearer token): forwarded to the job's driver
CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")


def check_remote_tracking_uri(uri: str | None) -> None:
    """A job's working dir is Ray's temporary copy: a sqlite file or a file store there (and
    the artifacts in it) vanish with the job. Refuse them; None means the cluster's own
    $MLFLOW_TRACKING_URI."""
    if uri is None:
        return
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in ("sqlite", "file", "") or uri.startswith(("sqlite:", "file:")):
        from orchestrator.tracking import redact

        raise UserError(f"--tracking-uri {redact(uri)}: a local store would live in the Ray job's temporary "
                         "working dir and vanish with it; pass the cluster's MLflow server (http://...)")


def build_entrypoint(spec_name: str, tracking_uri: str | None = None) -> str:
    """`golf run SPEC --no-progress [--tracking-uri URI]`, every argument shell-quoted: the Jobs
    API runs the entrypoint through a shell, so a name with a space or a `;` must stay one word."""
    spec = spec_name if not spec_name.startswith("-") else f"./{spec_name}"  # never read as an option
    args = ["golf", "run", spec, "--no-progress"]
    if tracking_uri:
        args += ["--tracking-uri", tracking_uri]
    return " ".join(shlex.quote(a) for a in args)


def job_env(environ: dict | None = None) -> dict[str, str]:
    """The job's env_vars: no usage stats, a longer stop grace, and MLflow credentials if set."""
    environ = os.environ if environ is None else environ
    # `golf cancel` sends SIGTERM; give the driver time to close its runs before SIGKILL (default 3 s)
    env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_JOB_STOP_WAIT_TIME_S": "30"}
    env.update({k: environ[k] for k in CREDENTIAL_VARS if environ.get(k)})
    return env


def default_address() -> str:
    addr = os.environ.get("RAY_ADDRESS", "")
    return addr if addr.startswith(("http://", "https://")) else "http://127.0.0.1:8265"


def _common(p) -> None:
    p.add_argument("--address", default=None, help="Ray dashboard URL (default: $RAY_ADDRESS if http, else "
                                                    "http://127.0.0.1:8265, e.g. through an SSH tunnel)")
    p.add_argument("--token-file", default=None,
                   help="file holding the cluster's auth token (default: $GOLF_RAY_TOKEN, $RAY_AUTH_TOKEN, "
                        "~/.ray/auth_token)")


def register_job_commands(sub) -> None:
    p = sub.add_parser("submit", help="send a sweep to a Ray cluster as a Ray job")
    p.add_argument("spec")
    _common(p)
    p.add_argument("--tracking-uri", default=None, help="MLflow URI the job logs to (default: the cluster's "
                                                        "$MLFLOW_TRACKING_URI)")
    p.add_argument("--wait", action="store_true", help="follow the job's log until it ends")
    p.set_defaults(func=cmd_submit)
    for name, fn, helptext in (("status", cmd_status, "state of a submitted sweep"),
                               ("logs", cmd_logs, "log of a submitted sweep"),
                               ("cancel", cmd_cancel, "stop a submitted sweep (its runs end KILLED)")):
        q = sub.add_parser(name, help=helptext)
        q.add_argument("job_id")
        _common(q)
        if name == "logs":
            q.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
        q.set_defaults(func=fn)


def _client(args):
    address = args.address or default_address()
    if not address.startswith(("http://", "https://")):  # Ray's client would fail with a traceback
        shown = address.rsplit("@", 1)[-1]  # never echo credentials written into it
        raise UserError(f"--address {shown}: the Ray dashboard URL needs a scheme, e.g. http://{shown}")
    return job_client(address, args.token_file), address


def cmd_submit(args) -> int:
    from orchestrator.spec.sweep import load_sweep

    sweep = load_sweep(args.spec)  # a bad spec fails here, not on the cluster
    check_remote_tracking_uri(args.tracking_uri)
    client, address = _client(args)
    stage = Path(tempfile.mkdtemp(prefix="golf-submit-"))
    try:
        spec_name = Path(args.spec).name
        shutil.copy2(args.spec, stage / spec_name)
        from orchestrator.plan.script import stage_script  # a script spec: its script travels with it

        stage_script(sweep, Path.cwd(), stage)
        entry = build_entrypoint(spec_name, args.tracking_uri)
        runtime_env = {"working_dir": str(stage), "env_vars": job_env()}
        job_id = call(client, address, args.token_file,
                      lambda c: c.submit_job(entrypoint=entry, runtime_env=runtime_env,
                                             metadata={"golf.sweep": sweep.name}))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print(job_id)
    print(f"follow with: golf logs {job_id} --follow --address {address}", file=sys.stderr)
    if args.wait:
        return _follow(client, address, args.token_file, job_id)
    return 0


def cmd_status(args) -> int:
    client, address = _client(args)
    info = call(client, address, args.token_file, lambda c: c.get_job_info(args.job_id))
    status = str(getattr(info.status, "value", info.status))
    line = f"{args.job_id}: {status}"
    if info.message:
        line += f" ({info.message.splitlines()[0]})"
    print(line)
    return 0


def _follow(client, address, token_file, job_id: str) -> int:
    shown = 0
    while True:
        logs = call(client, address, token_file, lambda c: c.get_job_logs(job_id))
        sys.stdout.write(logs[shown:])
        sys.stdout.flush()
        shown = len(logs)
        status = str(getattr(s := call(client, address, token_file, lambda c: c.get_job_status(job_id)),
                             "value", s))
        if status in TERMINAL:
            print(f"golf: job {job_id}: {status}", file=sys.stderr)
            return 0 if status == "SUCCEEDED" else 1
        time.sleep(1.0)


def cmd_logs(args) -> int:
    client, address = _client(args)
    if args.follow:
        return _follow(client, address, args.token_file, args.job_id)
    sys.stdout.write(call(client, address, args.token_file, lambda c: c.get_job_logs(args.job_id)))
    return 0


def cmd_cancel(args) -> int:
    client, address = _client(args)
    stopped = call(client, address, args.token_file, lambda c: c.stop_job(args.job_id))
    print(f"{args.job_id}: {'stop requested' if stopped else 'already finished'}")
    return 0
