"""Each page a person uses shows what it is for, in a real browser; screenshots for the README."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from monitoring import dashboard
from tests.integration.browser.conftest import Screenshot
from tidemark.config import Settings

pytestmark = pytest.mark.integration


def test_the_api_docs_list_predict_and_run_its_example(
    page: Page, api: str, screenshot: Screenshot
) -> None:
    page.goto(f"{api}/docs")
    operation = page.locator("#operations-predict-predict_predict_post")
    expect(operation).to_contain_text("/predict")
    expect(operation.locator(".opblock-summary-method")).to_have_text("POST")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Execute").click()
    status = operation.locator(".live-responses-table tbody td.response-col_status").first
    expect(status).to_have_text("200")
    expect(operation.locator(".live-responses-table")).to_contain_text("predicted_weight_kg")
    status.scroll_into_view_if_needed()
    screenshot(page, "api-docs")


def _local_only(page: Page) -> list[str]:
    """Block every request of ``page`` that would leave 127.0.0.1 (a CDN's script, a font, an
    image); return the list they are recorded in."""
    left: list[str] = []

    def route(route: Route) -> None:
        url = urlsplit(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname != "127.0.0.1":
            left.append(route.request.url)
            route.abort("blockedbyclient")
        else:
            route.continue_()

    page.route("**/*", route)
    return left


def test_the_api_docs_render_offline(page: Page, api: str) -> None:
    left = _local_only(page)
    page.goto(f"{api}/docs")
    expect(page.locator("#operations-predict-predict_predict_post")).to_contain_text("/predict")
    assert left == []


def test_the_redoc_page_renders_offline(page: Page, api: str) -> None:
    # ReDoc 2 always draws its footer logo from cdn.redoc.ly: the page's policy must stop it.
    left = _local_only(page)
    page.goto(f"{api}/redoc")
    # Two operations share the summary: /predict and the default project's own path.
    expect(page.locator("h2", has_text="Predict weight_kg of one item").first).to_be_visible()
    assert left == []


def test_the_mlflow_model_page_shows_the_production_version_and_its_decision(
    page: Page, settings: Settings, production: str, screenshot: Screenshot
) -> None:
    page.goto(f"{settings.registry.tracking_uri}/#/models/{settings.registry.model_name}")
    expect(page.get_by_text(f"Version {production}").first).to_be_visible()
    expect(page.get_by_text(f"@ {settings.registry.production_alias}").first).to_be_visible()
    # The production history: the model's description ends with its table (issue 24).
    expect(page.get_by_text("Production history").first).to_be_attached()
    expect(page.get_by_role("cell", name="bootstrap", exact=True).first).to_be_attached()
    screenshot(page, "mlflow-model")
    page.goto(
        f"{settings.registry.tracking_uri}/#/models/{settings.registry.model_name}/versions/{production}"
    )
    expect(page.get_by_text("decision", exact=True).first).to_be_attached()
    expect(page.get_by_text("promoted", exact=True).first).to_be_attached()
    screenshot(page, "mlflow-version")


def test_the_prefect_deployments_page_lists_the_four_deployments(
    page: Page, settings: Settings, flows_served: None, screenshot: Screenshot
) -> None:
    page.goto(f"{settings.orchestration.ui_url}/deployments")
    for name in ("train", "retrain", "promote", "rollback"):
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()
    # The tags are in the page (the list truncates them at this width; the unit test reads them).
    expect(page.get_by_text("started by the monitor").first).to_be_attached()
    screenshot(page, "prefect-deployments")


def test_the_evidently_dashboard_shows_its_panels_with_data(
    page: Page, evidently_ui: str, screenshot: Screenshot
) -> None:
    page.goto(evidently_ui)
    page.get_by_text("fish-weight", exact=True).first.click()
    for title in (
        dashboard.BY_VERSION,
        dashboard.BY_SEGMENT,
        dashboard.DRIFT_SHARE,
        dashboard.COVERAGE,
    ):
        expect(page.get_by_text(title).first).to_be_visible()
    # Legends are drawn only for series that have points.
    expect(page.get_by_text(re.compile(r"^threshold 0\.\d\d$")).first).to_be_attached()
    expect(page.get_by_text("walleye", exact=True).first).to_be_attached()
    # The truth coverage panel has points: the last two windows lost a quarter of their truth.
    expect(page.get_by_text("coverage all", exact=True).first).to_be_attached()
    expect(page.get_by_text("coverage walleye", exact=True).first).to_be_attached()
    screenshot(page, "evidently-dashboard", full_page=True)
