"""Before/after checks for sweep-speed work (issue 21): nothing a user sees may change.

    python bench/sweep_check.py identities OUT.json [--experiments DIR]
        every job identity of every spec in experiments/ (code version held fixed)
    python bench/sweep_check.py results TRACKING_URI EXPERIMENT OUT.json
        identity -> val_bpb (float.hex, exact) and golf.compliant of every FINISHED mix/eval run
    python bench/sweep_check.py remix WORKSPACE SPEC TRACKING_URI EXPERIMENT
        rescore every FINISHED mix run of an earlier sweep with this tree's worker path
        (Worker.run_mix_batch on a local Ray) over that sweep's own eval outputs, and
        compare val_bpb exactly (training is not bit-reproducible under a wall clock, so a
        second sweep's evals differ; this holds the eval fixed)
    python bench/sweep_check.py compare A.json B.json [--by-job]
        exit 1 and name the differences unless A and B are equal (--by-job: results of two code
        versions, whose identities differ, matched by job path)
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def identities(exp_dir: Path) -> dict:
    from orchestrator.plan.build import load_plan

    out = {}
    for spec in sorted(exp_dir.rglob("*.yaml")):
        try:
            plan = load_plan(spec, workspace=exp_dir.parent, code_version="held-fixed")
        except Exception as e:  # noqa: BLE001 - a spec that needs files not here: recorded as such
            out[str(spec.relative_to(exp_dir))] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
            continue
        out[str(spec.relative_to(exp_dir))] = {"sweep": plan.sweep_identity,
                                               "jobs": [[j.name, j.identity] for j in plan.jobs]}
    return out


def results(uri: str, experiment: str) -> dict:
    from orchestrator.tracking.client import make_client, search_all

    client = make_client(uri)
    exp = client.get_experiment_by_name(experiment)
    out = {}
    for r in search_all(client, exp.experiment_id, "attributes.status = 'FINISHED'"):
        ident = r.data.tags.get("golf.identity")
        if ident and "val_bpb" in r.data.metrics:
            out[ident] = {"val_bpb": float(r.data.metrics["val_bpb"]).hex(), "kind": r.data.tags.get("golf.kind"),
                          "compliant": r.data.tags.get("golf.compliant"), "job": r.data.tags.get("golf.job")}
    return out


def remix(workspace: Path, spec: Path, uri: str, experiment: str) -> list[str]:
    import tempfile

    import ray

    from orchestrator.plan.build import load_plan
    from orchestrator.tracking.client import download_artifacts, make_client, search_all
    from workers.contract import Attempt
    from workers.worker import Worker
    from workers.files import pack_dir
    from workers.runner import GolfRunner

    plan = load_plan(spec, workspace=workspace)
    by_name = {j.name: j for j in plan.jobs}
    client = make_client(uri)
    exp = client.get_experiment_by_name(experiment)
    runs = search_all(client, exp.experiment_id, "attributes.status = 'FINISHED'")
    evals = {r.data.tags["golf.identity"]: r for r in runs if r.data.tags.get("golf.kind") == "eval"}
    mixes = [r for r in runs if r.data.tags.get("golf.kind") == "mix"]
    ray.init(address="local", num_cpus=1, include_dashboard=False)
    diffs, n = [], 0
    try:
        w = Worker.options(num_cpus=1).remote(GolfRunner(), None)
        for ev_id, ev in evals.items():
            d = Path(tempfile.mkdtemp(prefix="remix-"))
            for f in ("token_stats.npz", "result.json"):
                download_artifacts(uri, ev.info.run_id, f, d)
            files = ray.put(pack_dir(d, ("token_stats.npz", "result.json")))
            mine = [r for r in mixes if r.data.tags.get("golf.deps") == ev_id]
            jobs = [by_name[r.data.tags["golf.job"]] for r in mine]
            ev_job = by_name[ev.data.tags["golf.job"]]
            refs = w.run_mix_batch.options(num_returns=len(jobs)).remote(
                [Attempt(job=j) for j in jobs], ev_id, [files], str(workspace / plan.data.path),
                int(plan.data.vocab_size), int(ev_job.eval.chunk_tokens))
            refs = refs if len(jobs) > 1 else [refs]
            for r, res in zip(mine, ray.get(list(refs))):
                n += 1
                old, new = float(r.data.metrics["val_bpb"]).hex(), float(res.result["val_bpb"]).hex()
                if old != new:
                    diffs.append(f"{r.data.tags['golf.job']}: {old} != {new}")
                comp = "true" if res.result["compliance"]["compliant"] else "false"
                if comp != r.data.tags.get("golf.compliant"):
                    diffs.append(f"{r.data.tags['golf.job']}: compliant {r.data.tags.get('golf.compliant')} != {comp}")
    finally:
        ray.shutdown()
    print(f"{n} mix runs rescored, {len(diffs)} differences")
    return diffs


def compare(a: dict, b: dict) -> list[str]:
    diffs = [f"only in A: {k}" for k in sorted(set(a) - set(b))] + [f"only in B: {k}" for k in sorted(set(b) - set(a))]
    diffs += [f"{k}: {a[k]} != {b[k]}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    return diffs


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("identities")
    p.add_argument("out")
    p.add_argument("--experiments", default=str(Path(__file__).resolve().parents[1] / "experiments"))
    p = sub.add_parser("results")
    p.add_argument("uri")
    p.add_argument("experiment")
    p.add_argument("out")
    p = sub.add_parser("remix")
    p.add_argument("workspace")
    p.add_argument("spec")
    p.add_argument("uri")
    p.add_argument("experiment")
    p = sub.add_parser("compare")
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--by-job", action="store_true", help="match results by job path (golf.job), not identity")
    args = ap.parse_args()
    if args.cmd == "remix":
        diffs = remix(Path(args.workspace).resolve(), Path(args.spec), args.uri, args.experiment)
        for d in diffs[:50]:
            print(d)
        return 1 if diffs else 0
    if args.cmd == "identities":
        doc = identities(Path(args.experiments))
    elif args.cmd == "results":
        doc = results(args.uri, args.experiment)
        bad = [v["job"] for v in doc.values() if v["kind"] == "mix" and "hashed_target" in (v["job"] or "")
               and v["compliant"] != "false"]
        print(f"{len(doc)} runs; hashed_target runs not flagged non-compliant: {bad or 'none'}")
    else:
        a, b = json.loads(Path(args.a).read_text()), json.loads(Path(args.b).read_text())
        if args.by_job:  # results of two code versions: identities differ, job paths do not
            a, b = ({v["job"]: {k: x for k, x in v.items() if k != "job"} for v in d.values()} for d in (a, b))
        diffs = compare(a, b)
        for d in diffs[:50]:
            print(d)
        print(f"{len(diffs)} differences")
        return 1 if diffs else 0
    Path(args.out).write_text(json.dumps(doc, indent=1, sort_keys=True))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
