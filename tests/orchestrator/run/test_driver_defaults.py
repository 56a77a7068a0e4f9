"""Defaults are decided once, before the driver: it takes the plan's retries (the Sweep's, default
1) and prepare_sweep's data dir and tokenizer as they are (issue 16: its own fallback for retries
was 2, where Plan and Sweep say 1)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("ray")

from orchestrator.plan.build import load_plan  # noqa: E402
from orchestrator.run.driver import _Driver  # noqa: E402
from orchestrator.run.types import DriverOptions  # noqa: E402
from orchestrator.spec.sweep import load_sweep  # noqa: E402
from tests.workers.fakes import FakeRunner  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
SMOKE = ROOT / "experiments" / "smoke.yaml"


def test_a_spec_without_retries_runs_with_one_retry_everywhere(tmp_path):
    text = SMOKE.read_text()
    assert "\nretries: 1\n" in text
    spec = tmp_path / "no_retries.yaml"
    spec.write_text(text.replace("\nretries: 1\n", "\n"))
    assert load_sweep(spec).retries == 1
    plan = load_plan(spec, ROOT)
    assert plan.retries == 1
    driver = _Driver(plan, None, DriverOptions(runner=FakeRunner(str(tmp_path))))
    assert driver.sched.retries == 1  # the Scheduler reruns a job whose worker died once, not twice
    # what the driver hands to workers is what the caller decided (prepare_sweep), nothing of its own
    assert (driver.data_dir, driver.tokenizer) == (None, None)
    given = _Driver(plan, None, DriverOptions(runner=FakeRunner(str(tmp_path)), retries=0, data_dir="/d",
                                              tokenizer_path="/d/t.model"))
    assert (given.sched.retries, given.data_dir, given.tokenizer) == (0, "/d", "/d/t.model")


def test_decisions_read_the_typed_sweep_not_a_dump_of_it(tmp_path):
    plan = load_plan(SMOKE, ROOT)
    assert plan.sweep is not None and plan.sweep.name == plan.sweep_name == "smoke"
    assert plan.description == load_sweep(SMOKE).description != "" and plan.external is False and not plan.sweep.stages
    assert plan.spec_dump == plan.sweep.model_dump(mode="json")  # what a record's spec.yaml writes
