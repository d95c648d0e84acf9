"""The inspector in a real headless Chromium, against ``voicehooks dev`` on a free port.

Debian's ``chromium`` and ``chromium-driver`` drive it through Selenium (never a downloaded
browser). The tests skip when no browser is installed, except under ``CI``, where they fail:
``.ci/run`` installs both. The list test also takes the README's screenshot; set
``VOICEHOOKS_UPDATE_SCREENSHOT=1`` to write it to ``docs/inspector.png``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT
from tests.helpers.servers import Server, running_server
from voicehooks.cli.posting import Poster
from voicehooks.testing import assistant_request, status_update, tool_call, tool_calls

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SECRET = "whsec_inspector_browser"
QUICKSTART = str(ROOT / "examples" / "quickstart.py")
CALLER = "+31655018342"

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    if os.environ.get("CI"):
        pytest.fail("CI must have chromium and chromium-driver (.ci/run installs them)")
    pytest.skip("no chromium/chromedriver on this machine", allow_module_level=True)

from selenium import webdriver  # noqa: E402  (only once a browser is known to be there)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("inspector")
    env = {"VOICEHOOKS_SECRET": SECRET}
    with running_server(QUICKSTART, directory, env=env, command="dev", args=["--no-reload"]) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def send(server: Server, payload: dict[str, object], secret: str = SECRET) -> int:
    poster = Poster(server.url + "/", secret)
    try:
        body = json.dumps(payload).encode()
        message = payload["message"]
        assert isinstance(message, dict)
        status, _ = poster.post(body, poster.headers(body, str(message["type"])))
        return status
    finally:
        poster.close()


def rows(browser: WebDriver) -> list[str]:
    """The delivery ids listed, newest first (read in one go: the list is swapped live)."""
    script = "return [...document.querySelectorAll('tr.delivery')].map(row => row.dataset.id)"
    ids: list[str] = browser.execute_script(script)
    return ids


def text(browser: WebDriver, selector: str) -> str:
    found: str = browser.execute_script(
        "return document.querySelector(arguments[0]).innerText", selector
    )
    return found


def wait(browser: WebDriver, condition: object, seconds: float = 10.0) -> None:
    WebDriverWait(browser, seconds, poll_frequency=0.05).until(condition)  # type: ignore[arg-type]


def test_the_list_fills_as_deliveries_arrive(
    server: Server, browser: WebDriver, tmp_path: Path
) -> None:
    browser.get(server.url + "/_voicehooks/")
    before = len(rows(browser))
    # Wait until the page listens, or the first delivery could come before the stream opens.
    wait(browser, lambda b: b.execute_script("return document.body.dataset.live") == "on")
    call = "call-browser-1"
    assert send(server, assistant_request(call_id=call, customer_number=CALLER)) == 200
    lookup = tool_call("check_repair_status", {"order_number": "WO-2291"})
    assert send(server, tool_calls(lookup, call_id=call, customer_number=CALLER)) == 200
    missing = tool_call("check_repair_status", {"order_number": "WO-0000"})
    assert send(server, tool_calls(missing, call_id=call, customer_number=CALLER)) == 200
    assert send(server, status_update("ended", call_id=call, customer_number=CALLER)) == 200
    assert send(server, status_update("ended", call_id=call), secret="whsec_wrong") == 401
    wait(browser, lambda b: len(rows(b)) >= before + 5)  # no reload: the page updated itself
    assert "call-browser-1" in text(browser, "#calls")
    assert "check_repair_status ok" in text(browser, "#calls")
    assert "check_repair_status error" in text(browser, "#calls")  # a ToolError: an answer
    assert "401 rejected_401" in text(browser, "#calls")
    shot = tmp_path / "inspector.png"
    assert browser.save_screenshot(str(shot))
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">I", header[16:20]) == (1280,)  # the PNG's width
    if os.environ.get("VOICEHOOKS_UPDATE_SCREENSHOT"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, ROOT / "docs" / "inspector.png")


def test_the_keyboard_opens_a_delivery_whose_personal_data_is_masked_until_asked(
    server: Server, browser: WebDriver
) -> None:
    payload = tool_calls(
        tool_call("check_repair_status", {"order_number": "WO-2317"}),
        call_id="call-browser-2",
        customer_number=CALLER,
    )
    assert send(server, payload) == 200
    browser.get(server.url + "/_voicehooks/")
    link = browser.find_element(By.CSS_SELECTOR, "tr.delivery a")  # the newest delivery
    for _ in range(20):  # Tab through the page to it, as a keyboard user would
        browser.switch_to.active_element.send_keys(Keys.TAB)
        if browser.switch_to.active_element == link:
            break
    assert browser.switch_to.active_element == link
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    wait(browser, lambda b: "/_voicehooks/deliveries/" in b.current_url)
    page = browser.find_element(By.TAG_NAME, "main").text
    assert "Delivery #" in page
    assert "call-browser-2" in page
    assert CALLER not in page
    assert "+31•••••••42" in page
    assert '"order_number": "[hidden: 7 characters]"' in page
    assert '"status": "waiting for parts"' in page  # the answer is the app's own output
    browser.find_element(By.LINK_TEXT, "Show personal data").click()
    wait(browser, lambda b: CALLER in b.find_element(By.TAG_NAME, "main").text)
    assert '"order_number": "WO-2317"' in browser.find_element(By.TAG_NAME, "main").text


def test_replay_produces_a_new_row(server: Server, browser: WebDriver) -> None:
    payload = tool_calls(
        tool_call("check_repair_status", {"order_number": "WO-2291"}), call_id="call-browser-3"
    )
    assert send(server, payload) == 200
    browser.get(server.url + "/_voicehooks/")
    original = rows(browser)[0]
    browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{original}"] a').click()
    wait(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "form.replay button"))
    browser.find_element(By.NAME, "bypass_dedupe").click()
    browser.find_element(By.CSS_SELECTOR, "form.replay button").click()
    wait(browser, lambda b: "Replayed as #" in b.find_element(By.CSS_SELECTOR, "form output").text)
    output = browser.find_element(By.CSS_SELECTOR, "form output").text
    assert output.endswith(": 200")
    new = output.split("#")[1].split(":")[0]
    assert int(new) > int(original)
    browser.find_element(By.CSS_SELECTOR, "form output a").click()
    wait(browser, lambda b: f"Delivery #{new}" in b.find_element(By.TAG_NAME, "h1").text)
    assert f"yes, of #{original}" in browser.find_element(By.TAG_NAME, "main").text
    browser.get(server.url + "/_voicehooks/")
    assert rows(browser)[0] == new
    assert "replay" in browser.find_element(By.CSS_SELECTOR, f'tr[data-id="{new}"]').text
    assert f"replaying delivery #{original} (bypassing duplicates)" in server.log()
