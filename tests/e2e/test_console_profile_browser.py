"""Editing a profile in Chromium: the manager picker (htmx search, choose, Enter searches rather than
saves), a phone number row with its type and primary flag, a custom attribute, and the user page
that shows them in their sections."""

import re
import shutil

import pytest

from apps.directory.models import User
from tests.e2e.demo_directory import seed_demo_directory
from tests.e2e.test_console_walkthrough_browser import _sign_in, walkthrough_env  # noqa: F401 (a fixture)
from tests.portal.browser import chromium

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (.ci/run does)"),
]


def test_an_admin_edits_a_profile_with_the_manager_picker(walkthrough_env):  # noqa: F811
    demo = seed_demo_directory()
    base = walkthrough_env.url
    grace = demo.people["grace.hopper"]
    margaret = demo.people["margaret.hamilton"]
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.set_default_timeout(20000)
        _sign_in(page, base, demo)
        edit_url = f"{base}/console/users/{grace.pk}/edit/"
        page.goto(edit_url)

        page.get_by_label("Job title").fill("Rear Admiral")
        search = page.get_by_label("Manager", exact=True)
        search.fill("margaret.ham")
        page.get_by_role("button", name="Choose margaret.hamilton as manager").click()
        page.locator("#manager-choice").get_by_text("Margaret Hamilton").wait_for()
        # Enter in the search box searches again; it never saves the form.
        search.fill("ada.love")
        search.press("Enter")
        page.get_by_role("button", name="Choose ada.lovelace as manager").wait_for()
        assert page.url == edit_url
        assert User.objects.get(pk=grace.pk).manager_id is None

        page.get_by_label("Phone numbers row 1: Phone number").fill("+1 555 0100")
        page.get_by_label("Phone numbers row 1: Type").fill("work")
        page.get_by_label("Phone numbers row 1: Primary").check()
        page.get_by_label("Building and floor of the desk").select_option("Bletchley Park, Hut 8")
        page.get_by_role("button", name="Save changes").click()
        page.wait_for_url(re.compile(rf"/console/users/{grace.pk}/$"))

        work = page.get_by_role("region", name="Work")
        work.get_by_role("link", name="Margaret Hamilton").wait_for()
        assert "Rear Admiral" in work.inner_text()
        assert "+1 555 0100" in page.get_by_role("region", name="Contact").inner_text()
        assert "Bletchley Park, Hut 8" in page.get_by_role("region", name="Custom attributes").inner_text()
        context.close()

    grace.refresh_from_db()
    assert (grace.title, grace.manager_id) == ("Rear Admiral", margaret.pk)
    assert grace.phone_numbers == [{"value": "+1 555 0100", "type": "work", "primary": True}]
    assert grace.custom_attributes == {"building": "Bletchley Park, Hut 8"}
