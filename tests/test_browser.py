"""A person's whole visit in headless Chromium: sign in with Hugging Face, see the profile, sign out."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from conftest import ARTIFACTS, Stack, chromium_path

pytestmark = pytest.mark.browser
CHROMIUM_ARGS = [
    "--no-sandbox",  # tests run as root in CI
    "--disable-gpu",
    "--no-first-run",
    "--disable-quic",
    # Keep Chromium from reaching for the (closed) network on its own.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    executable = chromium_path()
    if executable is None:
        message = "Chromium not found: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def test_sign_in_profile_sign_out(stack: Stack, browser) -> None:
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1000, "height": 720})
    page.goto(stack.base_url + "/")
    expect(page.get_by_role("note")).to_contain_text("Local development")
    page.screenshot(path=ARTIFACTS / "1-home-signed-out.png")

    page.get_by_role("link", name="Continue with Hugging Face").click()
    expect(page.get_by_label("Hugging Face username")).to_be_visible()
    page.get_by_label("Hugging Face username").fill("octocat-hf")
    page.get_by_label("Full name").fill("Octo Cat")
    page.screenshot(path=ARTIFACTS / "2-provider-hugging-face.png")
    page.get_by_role("button", name="Authorize").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Hello, Octo Cat")
    expect(page.get_by_text("@octocat-hf")).to_be_visible()
    page.screenshot(path=ARTIFACTS / "3-home-signed-in.png")

    page.get_by_role("link", name="Your profile").click()
    expect(page.get_by_role("link", name="huggingface.co/octocat-hf")).to_have_attribute(
        "href", "https://huggingface.co/octocat-hf"
    )
    expect(page.locator("dd").first).to_have_text("octocat-hf")
    page.screenshot(path=ARTIFACTS / "4-profile.png", full_page=True)
    assert not [cookie for cookie in page.context.cookies() if "eyJ" in cookie["value"]], "a JWT reached the browser"

    page.get_by_role("button", name="Sign out").first.click()
    expect(page.get_by_role("link", name="Continue with Hugging Face")).to_be_visible()
    assert page.url == stack.base_url + "/"
    page.screenshot(path=ARTIFACTS / "5-signed-out.png")

    page.goto(stack.base_url + "/profile")  # signed out for real: back to the provider's sign-in
    expect(page.get_by_label("Hugging Face username")).to_be_visible()
    page.close()
