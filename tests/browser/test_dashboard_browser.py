"""The dashboard in a real browser (chromium through Playwright) against the real stack: sign-in, live
updates, charts, cancel, per-user scoping and escaping of user-supplied column names.

The module's deployment starts with no worker (so a job can be cancelled while queued); the `worker`
fixture starts one for the tests that need jobs to run.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshot
from tests.stack import DATA, Client, Stack

pytestmark = [pytest.mark.service, pytest.mark.browser]

IRIS = "iris_dataset2.csv"
HOSTILE_NAMES = ["<script>window.injected=1</script>", "<img src=x onerror=window.injected=2>"]


class Deployment:
    def __init__(self, tmp: Path) -> None:
        self.stack = Stack(tmp).setup()
        self.stack.start_api()
        self.root_token = self.stack.token("root", admin=True)
        self.alice_token = self.stack.token("alice")
        self.bob_token = self.stack.token("bob")
        self.alice = Client(self.stack.url, self.alice_token)
        self.bob = Client(self.stack.url, self.bob_token)
        self.worker_started = False

    def start_worker(self) -> None:
        if not self.worker_started:
            self.stack.start_worker(concurrency=2)
            self.worker_started = True


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    made = Deployment(tmp_path_factory.mktemp("browser"))
    try:
        yield made
    finally:
        made.stack.stop()


@pytest.fixture(scope="module")
def worker(deployment: Deployment) -> Deployment:
    deployment.start_worker()
    return deployment


def sign_in(page: Page, deployment: Deployment, token: str) -> None:
    page.goto(f"{deployment.stack.url}/dashboard")
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in$"))
    page.get_by_test_id("token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))


def submitted(client: Client, endpoint: str, csv: str | bytes, **params: object) -> str:
    response = client.submit(endpoint, csv, **params)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_sign_in_keeps_the_token_out_of_reach_of_scripts(page: Page, deployment: Deployment) -> None:
    page.goto(f"{deployment.stack.url}/dashboard/sign-in")
    page.get_by_test_id("token").fill("fx_not_a_real_token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown, revoked or expired")

    sign_in(page, deployment, deployment.root_token)
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/dashboard"
    seen_by_scripts = page.evaluate(
        "() => document.cookie + JSON.stringify(sessionStorage) + JSON.stringify(localStorage)"
    )
    assert deployment.root_token not in seen_by_scripts
    expect(page.get_by_test_id("workers-alive")).to_be_visible()
    screenshot(page, "overview-empty")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in$"))
    assert page.context.cookies() == []


def test_cancel_a_queued_job(page: Page, deployment: Deployment) -> None:
    assert not deployment.worker_started, "this test needs a job that stays queued"
    job_id = submitted(deployment.alice, "gbdtclassification", IRIS)
    sign_in(page, deployment, deployment.alice_token)
    page.goto(f"{deployment.stack.url}/dashboard/jobs/{job_id}")
    expect(page.get_by_test_id("job-status")).to_have_text("queued")
    page.get_by_test_id("cancel").click()  # the confirmation dialog is accepted by the fixture
    expect(page.get_by_test_id("job-status")).to_have_text("cancelled")
    expect(page.locator('[data-event="cancel"]')).to_contain_text("by alice")
    screenshot(page, "job-cancelled")
    assert deployment.alice.http.get(f"/jobs/{job_id}").json()["status"] == "cancelled"


def test_a_job_appears_and_finishes_without_a_reload(page: Page, worker: Deployment) -> None:
    sign_in(page, worker, worker.root_token)
    page.goto(f"{worker.stack.url}/dashboard/jobs")
    page.evaluate("() => { window.sameDocument = true; }")
    job_id = submitted(worker.alice, "gbdtclassification", IRIS, interpretability="permutation")
    row = page.locator(f'[data-testid="job-row"][data-job-id="{job_id}"]')
    expect(row).to_be_visible(timeout=30_000)
    expect(row).to_have_attribute("data-status", "succeeded", timeout=120_000)
    assert page.evaluate("() => window.sameDocument") is True  # refreshed in place, never reloaded
    screenshot(page, "jobs")
    page.goto(f"{worker.stack.url}/dashboard")
    expect(page.locator('[data-testid="status-count"][data-status="succeeded"] .count')).not_to_have_text("0")
    expect(page.get_by_test_id("chart")).to_be_visible()
    screenshot(page, "overview")
    page.get_by_role("link", name="Workers").click()
    expect(page.get_by_test_id("worker-row")).to_have_count(2)  # the worker's two pool processes
    expect(page.get_by_test_id("worker-row").first).to_contain_text("alive")
    screenshot(page, "workers")


def charts_on(page: Page, url: str, name: str) -> dict[str, int]:
    """Open a job page; every chart must have a non-zero size. Returns how many charts of each kind."""
    page.goto(url)
    expect(page.get_by_test_id("job-status")).to_have_text("succeeded")
    charts = page.get_by_test_id("chart")
    expect(charts.first).to_be_visible()
    kinds: dict[str, int] = {}
    for index in range(charts.count()):
        chart = charts.nth(index)
        box = chart.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0, chart.get_attribute("data-kind")
        kind = chart.get_attribute("data-kind") or ""
        kinds[kind] = kinds.get(kind, 0) + 1
    screenshot(page, name)
    return kinds


def test_charts_of_shap_permutation_and_intervals_render(page: Page, worker: Deployment) -> None:
    shap_job = submitted(worker.alice, "gbdtclassification", IRIS, interpretability="shap")
    permutation_job = submitted(worker.alice, "mlclassification", IRIS, interpretability="permutation")
    interval_job = submitted(worker.alice, "mlregression", "boston_dataset2.csv", return_pi="True")
    for job_id in (shap_job, permutation_job, interval_job):
        assert worker.alice.wait(job_id)["status"] == "succeeded"
    sign_in(page, worker, worker.alice_token)
    base = f"{worker.stack.url}/dashboard/jobs"
    # iris has three classes: a mean |SHAP| chart and a beeswarm for each
    assert charts_on(page, f"{base}/{shap_job}", "job-shap-classification") == {
        "shap-mean": 3,
        "shap-beeswarm": 3,
    }
    expect(page.locator("table.confusion")).to_be_visible()
    assert charts_on(page, f"{base}/{permutation_job}", "job-permutation") == {"permutation": 1}
    assert charts_on(page, f"{base}/{interval_job}", "job-regression-intervals") == {"predicted-vs-actual": 1}
    assert page.locator("svg line.interval").count() > 0


def test_an_ordinary_user_sees_only_their_jobs(page: Page, worker: Deployment) -> None:
    bobs = submitted(worker.bob, "gbdtclassification", IRIS)
    alices = submitted(worker.alice, "gbdtclassification", IRIS)
    sign_in(page, worker, worker.bob_token)
    page.goto(f"{worker.stack.url}/dashboard/jobs")
    rows = page.get_by_test_id("job-row")
    expect(rows).to_have_count(1)
    assert rows.first.get_attribute("data-job-id") == bobs
    assert page.goto(f"{worker.stack.url}/dashboard/workers").status == 403  # type: ignore[union-attr]
    assert page.goto(f"{worker.stack.url}/dashboard/jobs/{alices}").status == 404  # type: ignore[union-attr]
    assert page.get_by_role("link", name="Workers").count() == 0
    screenshot(page, "forbidden-for-ordinary-user")


def hostile_csv() -> bytes:
    lines = (DATA / IRIS).read_text().splitlines()
    header = lines[0].split(",")
    header[0], header[1] = HOSTILE_NAMES
    return "\n".join([",".join(header), *lines[1:]]).encode()


def test_markup_in_column_names_is_shown_as_text(page: Page, worker: Deployment) -> None:
    job_id = submitted(worker.alice, "gbdtclassification", hostile_csv(), interpretability="permutation,shap")
    assert worker.alice.wait(job_id)["status"] == "succeeded"
    sign_in(page, worker, worker.alice_token)
    page.goto(f"{worker.stack.url}/dashboard/jobs/{job_id}")
    expect(page.get_by_test_id("chart").first).to_be_visible()
    labels = page.locator("svg text.label").all_text_contents()
    assert any("<script>" in label for label in labels) and any("onerror=" in label for label in labels)
    assert page.evaluate("() => window.injected") is None
    assert page.locator("img").count() == 0 and page.locator("main script").count() == 0
    assert page.alerts == [] and page.errors == []  # type: ignore[attr-defined]
    screenshot(page, "job-hostile-column-names")
