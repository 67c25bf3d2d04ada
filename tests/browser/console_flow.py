"""The admin console in headless Chromium (Debian's chromium and
chromium-driver, driven with selenium): an operator signs in, creates a
namespace, a model and an instance pointing at the mock upstream, issues a
key, uses it through the gateway with the official OpenAI SDK, finds the
request in the usage explorer and the overview, revokes the key and the
gateway refuses it. Along the way: escaping, no CSP violation, every
control labelled, 390 px without sideways scrolling, keyboard sign-out.

Started by tests/tests/console_browser.rs with the stack's URLs in the
environment; prints one JSON line of what it saw. Screenshots of every page
go to $SCREENSHOT_DIR (and, with $DOCS_IMG_DIR set, the ones docs/console.md
shows go there too).
"""

import json
import os
import pathlib
import shutil
import sys
import time
import urllib.request

import openai
from openai import OpenAI
from selenium import webdriver
from selenium.common.exceptions import (
    NoAlertPresentException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

CC = os.environ["CC_URL"]
GW = os.environ["GW_URL"]
MOCK = os.environ["MOCK_BASE"]
TOKEN = os.environ["ADMIN_TOKEN"]
SHOTS = pathlib.Path(os.environ["SCREENSHOT_DIR"])
DOCS = os.environ.get("DOCS_IMG_DIR")
LEDGER = os.environ.get("CONSOLE_LEDGER", "1") == "1"
EVIL = "<script>alert(\"x\")</script>' \"q\""
NS = "team-web"
MODEL = "gpt-4o-mini"

SHOTS.mkdir(parents=True, exist_ok=True)


def deadline_loop(what, seconds=20.0, every=0.25):
    """Yields until the caller breaks; fails after `seconds`."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        yield
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def driver():
    o = Options()
    o.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--disable-gpu", "--window-size=1280,900", "--force-device-scale-factor=1"]:
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    svc = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    d = webdriver.Chrome(options=o, service=svc)
    d.set_page_load_timeout(30)
    viewport(d, 1280, 900)
    return d


def viewport(d, width, height):
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1,
                       "mobile": width < 600})


def shot(d, name, docs=False):
    path = SHOTS / f"{name}.png"
    d.save_screenshot(str(path))
    if docs and DOCS:
        pathlib.Path(DOCS).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, pathlib.Path(DOCS) / f"{name}.png")


def h1(d):
    return d.find_element(By.TAG_NAME, "h1").text


def fill(d, name, value):
    el = d.find_element(By.NAME, name)
    el.clear()
    el.send_keys(value)


def replaced(old):
    """A wait condition: `old` belongs to a document that was replaced.
    Mid-navigation, chromedriver may report such an element as a node that
    "does not belong to the document" rather than as stale."""
    def check(_d):
        try:
            old.is_enabled()
            return False
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise
    return check


def click_and_load(d, element):
    """Clicks a control that posts a form, and waits until the answer's
    page replaced this one (a click returns before the navigation ends)."""
    old = d.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(d, 20).until(replaced(old))


def submit(d, label):
    click_and_load(d, d.find_element(By.XPATH, f"//main//button[normalize-space()='{label}']"))


def check_page(d, seen):
    """What every page must hold: no alert (escaping), no CSP violation,
    every visible control labelled visibly and reachable with Tab."""
    try:
        a = d.switch_to.alert
        raise AssertionError(f"an alert opened: {a.text}")
    except NoAlertPresentException:
        pass
    for entry in d.get_log("browser"):
        msg = entry.get("message", "")
        assert "Content Security Policy" not in msg, msg
        # Refused forms answer 4xx on purpose; anything else severe is a
        # script error.
        assert entry.get("level") != "SEVERE" or "Failed to load resource" in msg, msg
    # A label the eye sees: a shown <label> with text, or a button's own text.
    unlabelled = d.execute_script("""
        const shown = e => e.offsetParent !== null && e.textContent.trim();
        return [...document.querySelectorAll('input, select, button, textarea')]
          .filter(e => e.type !== 'hidden' && !e.hidden)
          .filter(e => !(e.labels && [...e.labels].some(shown))
                       && !(e.tagName === 'BUTTON' && shown(e)))
          .map(e => e.outerHTML);
    """)
    assert not unlabelled, unlabelled
    # Every control, link and disclosure is in the Tab order.
    untabbable = d.execute_script("""
        return [...document.querySelectorAll('input, select, button, textarea, a[href], summary')]
          .filter(e => e.type !== 'hidden' && !e.hidden && e.offsetParent !== null)
          .filter(e => e.disabled || e.tabIndex < 0)
          .map(e => e.outerHTML);
    """)
    assert not untabbable, untabbable
    seen.append(d.current_url)


def no_sideways_scroll(d):
    over = d.execute_script(
        "return document.documentElement.scrollWidth - document.documentElement.clientWidth;")
    assert over <= 0, f"{d.current_url} scrolls sideways by {over}px at 390px"


def chat(key):
    c = OpenAI(base_url=f"{GW}/v1", api_key=key, max_retries=0, timeout=20)
    return c.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello from the console test"}])


def main():
    d = driver()
    seen = []
    out = {}
    try:
        # Sign in.
        d.get(f"{CC}/ui")
        assert d.current_url.endswith("/ui/sign-in"), d.current_url
        assert h1(d) == "Sign in"
        check_page(d, seen)
        shot(d, "sign-in", docs=True)
        fill(d, "token", "wrong-token")
        submit(d, "Sign in")
        assert "not the admin token" in d.find_element(By.ID, "f-token-error").text
        fill(d, "token", TOKEN)
        submit(d, "Sign in")
        assert h1(d) == "Overview", h1(d)
        cookie = d.get_cookie("aigw_console")
        assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict", cookie

        # A namespace, with a validation error first.
        d.get(f"{CC}/ui/namespaces")
        fill(d, "code", NS)
        fill(d, "name", "Team Web")
        fill(d, "monthly_budget_usd", "five")
        submit(d, "Create namespace")
        err = d.find_element(By.ID, "f-monthly-budget-usd-error").text
        assert "monthly_budget_usd" in err, err
        fill(d, "monthly_budget_usd", "5.00")
        fill(d, "limits.rpm", "600")
        submit(d, "Create namespace")
        assert h1(d) == f"Namespace {NS}", h1(d)
        check_page(d, seen)

        # A namespace whose name is markup: shown as text, never run.
        d.get(f"{CC}/ui/namespaces")
        fill(d, "code", "evil")
        fill(d, "name", EVIL)
        submit(d, "Create namespace")
        d.get(f"{CC}/ui/namespaces")
        cells = [td.text for td in d.find_elements(By.CSS_SELECTOR, "tbody td")]
        assert EVIL in cells, cells
        check_page(d, seen)

        # A model with prices, and an instance at the mock upstream.
        d.get(f"{CC}/ui/models")
        fill(d, "name", MODEL)
        Select(d.find_element(By.NAME, "encoding")).select_by_value("o200k_base")
        fill(d, "input_price_per_1m", "0.15")
        fill(d, "output_price_per_1m", "0.60")
        fill(d, "context_window", "128000")
        submit(d, "Create model")
        assert MODEL in d.find_element(By.TAG_NAME, "tbody").text
        check_page(d, seen)
        shot(d, "models", docs=True)

        d.get(f"{CC}/ui/instances")
        fill(d, "id", "mock-1")
        Select(d.find_element(By.NAME, "namespace_code")).select_by_value(NS)
        Select(d.find_element(By.NAME, "model")).select_by_value(MODEL)
        fill(d, "base_url", MOCK)
        fill(d, "api_key", "sk-upstream-secret-for-the-mock")
        submit(d, "Create instance")
        assert "mock-1" in d.find_element(By.ID, "instances").text
        check_page(d, seen)

        # A key, shown once with a copy button.
        d.get(f"{CC}/ui/namespaces/{NS}/keys")
        fill(d, "name", "web-flow")
        fill(d, "allowed_models", MODEL)
        submit(d, "Create key")
        key = d.find_element(By.ID, "new-key").get_attribute("value")
        assert key.startswith("sk-aigw-") and len(key) == 51, key
        copy = d.find_element(By.CSS_SELECTOR, "button[data-copy='new-key']")
        assert copy.is_displayed() and copy.text == "Copy key"
        copy.click()
        # The label changes once the clipboard write (a promise) settled.
        WebDriverWait(d, 10).until(lambda _: copy.text == "Copied")
        check_page(d, seen)
        shot(d, "key-created", docs=True)
        d.get(f"{CC}/ui/namespaces/{NS}/keys")
        assert key not in d.page_source, "the key is shown a second time"
        out["key_prefix"] = key[:12]

        # The key works through the gateway with the official SDK.
        r = chat(key)
        assert r.choices[0].message.content, r
        out["usage"] = {"prompt": r.usage.prompt_tokens, "completion": r.usage.completion_tokens}

        # The overview counts it (the gateways flush their counters).
        for _ in deadline_loop("the overview to count the request"):
            d.get(f"{CC}/ui")
            row = d.find_element(By.XPATH, f"//tbody/tr[td/a[text()='{NS}']]")
            if row.find_elements(By.TAG_NAME, "td")[1].text == "1":
                break
        out["overview_row"] = row.text
        check_page(d, seen)
        shot(d, "overview", docs=True)

        d.get(f"{CC}/ui/instances")
        check_page(d, seen)
        shot(d, "instances", docs=True)

        # The usage explorer shows the request with its tokens and cost.
        if LEDGER:
            for _ in deadline_loop("the request in the usage explorer", seconds=30):
                d.get(f"{CC}/ui/usage?namespace={NS}")
                rows = d.find_elements(By.CSS_SELECTOR, "#usage-rows tbody tr")
                if rows:
                    break
            cells = [c.text for c in rows[0].find_elements(By.TAG_NAME, "td")]
            out["usage_row"] = cells
            assert NS in cells and MODEL in cells, cells
            assert str(r.usage.prompt_tokens) in cells, cells
            assert str(r.usage.completion_tokens) in cells, cells
            cost = (r.usage.prompt_tokens * 0.15 + r.usage.completion_tokens * 0.60) / 1e6
            assert any(c.startswith("$") and abs(float(c[1:]) - cost) < 1e-9 for c in cells), (cells, cost)
            csv_url = d.find_element(By.LINK_TEXT, "Download CSV").get_attribute("href")
            req = urllib.request.Request(
                csv_url, headers={"Cookie": f"aigw_console={d.get_cookie('aigw_console')['value']}"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.headers["Content-Type"].startswith("text/csv"), resp.headers
                csv_lines = resp.read().decode().strip().splitlines()
            assert len(csv_lines) == 2 and NS in csv_lines[1], csv_lines
            out["csv"] = csv_lines
            check_page(d, seen)
            shot(d, "usage", docs=True)
            # The overview's spend today (from the ledger) is that cost.
            d.get(f"{CC}/ui")
            row = d.find_element(By.XPATH, f"//tbody/tr[td/a[text()='{NS}']]")
            today = row.find_elements(By.TAG_NAME, "td")[4].text
            assert today.startswith("$") and abs(float(today[1:]) - cost) < 1e-6, (today, cost)
            out["overview_today"] = today

        # Revoke, and the gateway refuses the key.
        d.get(f"{CC}/ui/namespaces/{NS}/keys")
        click_and_load(d, d.find_element(By.XPATH, "//button[@aria-label='Revoke key web-flow']"))
        assert "revoked" in d.find_element(By.TAG_NAME, "tbody").text
        check_page(d, seen)
        shot(d, "keys", docs=True)
        for _ in deadline_loop("the gateway to refuse the revoked key"):
            try:
                chat(key)
            except openai.AuthenticationError as e:
                out["after_revoke"] = e.status_code
                break

        # The namespace page with its budget bar.
        d.get(f"{CC}/ui/namespaces/{NS}")
        assert d.find_element(By.TAG_NAME, "meter")
        check_page(d, seen)
        shot(d, "namespace", docs=True)
        d.get(f"{CC}/ui/namespaces")
        shot(d, "namespaces", docs=True)

        # 390 px: every page fits without sideways scrolling.
        viewport(d, 390, 844)
        for path in ["/ui", "/ui/namespaces", f"/ui/namespaces/{NS}", f"/ui/namespaces/{NS}/keys",
                     "/ui/models", "/ui/instances", "/ui/usage"]:
            d.get(f"{CC}{path}")
            no_sideways_scroll(d)
            check_page(d, seen)
            shot(d, "mobile-" + (path.strip("/").replace("/", "-") or "ui"))
        shutil.copy(SHOTS / "mobile-ui-namespaces.png", SHOTS / "mobile.png")
        if DOCS:
            shutil.copy(SHOTS / "mobile-ui-namespaces.png", pathlib.Path(DOCS) / "mobile.png")
        viewport(d, 1280, 900)

        # Sign out with the keyboard alone: Tab to the button, Enter.
        d.get(f"{CC}/ui")
        body = d.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        for _ in range(30):
            active = d.switch_to.active_element
            if active.tag_name == "button" and active.text == "Sign out":
                break
            active.send_keys(Keys.TAB)
        else:
            raise AssertionError("Sign out is not reachable with Tab")
        active.send_keys(Keys.ENTER)
        for _ in deadline_loop("the sign-in page after signing out", seconds=10):
            if d.current_url.endswith("/ui/sign-in"):
                break
        d.get(f"{CC}/ui/namespaces")
        assert d.current_url.endswith("/ui/sign-in"), d.current_url
        out["pages_checked"] = len(seen)
    except Exception:
        shot(d, "failure")
        print(d.page_source[:4000], file=sys.stderr)
        raise
    finally:
        d.quit()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
