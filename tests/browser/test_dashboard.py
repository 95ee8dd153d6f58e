"""The dashboard in headless Chromium: sign in, submit an image-to-video task with two local
images, watch it reach SUCCESS without a reload, play and seek its video, cancel a second task,
manage keys as an admin; at phone width too, with labels, keyboard use and contrast checked.

The pages run under a Content-Security-Policy without ``unsafe-eval``, so the tests wait with
locators and ``evaluate`` (never ``wait_for_function``, which evaluates a string in the page).
"""

from __future__ import annotations

import re
import time
from typing import Any

from playwright.sync_api import Locator, Page, Response, expect

from tests.browser.conftest import DESKTOP, PHONE, OpenPage, Site, screenshot

I2V = "kling-video-o3-pro/image-to-video"
BODY = {"prompt": "a lantern street at dusk", "firstImageUrl": "", "duration": 3}


def wait_until(page: Page, script: str, timeout: float = 30) -> Any:
    """Poll ``script`` (an expression) in the page until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(script)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{script} stayed {value!r} for {timeout} s")
        time.sleep(0.05)


def sign_in(page: Page, site: Site, key: str, path: str = "/dashboard") -> None:
    """With the keyboard only: the key field has the focus, Enter submits."""
    page.goto(site.url + path)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page.locator("#who")).to_be_visible()
    expect(page.get_by_label("API key")).to_have_value("")


def nav(page: Page, name: str) -> Locator:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def uploaded(site: Site, key: str) -> str:
    with site.api(key) as api:
        answer = api.post(
            "/openapi/v2/media/upload/binary",
            files={"file": ("first.png", site.first_image.read_bytes())},
        ).json()
    return str(answer["data"]["download_url"])


def submit_by_api(site: Site, key: str, **body: Any) -> str:
    with site.api(key) as api:
        task = api.post(
            f"/openapi/v2/{I2V}", json={**BODY, "firstImageUrl": uploaded(site, key), **body}
        ).json()
    assert task["errorCode"] == "", task
    return str(task["taskId"])


def status_of(site: Site, key: str, task_id: str) -> dict[str, Any]:
    with site.api(key) as api:
        task: dict[str, Any] = api.post("/openapi/v2/query", json={"taskId": task_id}).json()
    return task


def test_submit_watch_play_and_cancel(site: Site, open_page: OpenPage) -> None:
    page = open_page()
    files_served: list[Response] = []
    page.on("response", lambda r: files_served.append(r) if "/files/" in r.url else None)
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))

    sign_in(page, site, site.user_key)
    expect(page.locator("#who-name")).to_have_text(f"studio · {site.user_key[:6]}…")
    expect(page.get_by_text("No tasks here yet.")).to_be_visible()
    # The key is kept in this tab's session storage only: no cookie, nowhere on the page.
    assert page.evaluate("sessionStorage.getItem('reelgate.apiKey')") == site.user_key
    assert page.context.cookies() == []
    assert site.user_key not in page.content()

    # The form: two local images, the price as it changes.
    nav(page, "Image to video").click()
    expect(page.get_by_role("heading", name="New image-to-video task")).to_be_visible()
    page.get_by_label("Prompt", exact=True).fill("the camera pushes in on the lantern street")
    page.locator("#first-image-file").set_input_files(str(site.first_image))
    page.locator("#last-image-file").set_input_files(str(site.last_image))
    page.get_by_label("Duration (seconds)").fill("3")
    expect(page.locator("#price")).to_have_text("261 coins (¥2.61)")  # 3 s × 87, with sound
    page.get_by_label("Generate sound").uncheck()
    expect(page.locator("#price")).to_have_text("207 coins (¥2.07)")  # 3 s × 69, silent
    page.get_by_label("Generate sound").check()
    page.get_by_label("Duration (seconds)").fill("16")
    expect(page.locator("#price-note")).to_contain_text("less than or equal to 15")
    page.get_by_label("Duration (seconds)").fill("3")
    page.get_by_label("Size (optional)").fill("641x360")
    expect(page.locator("#price-note")).to_contain_text("even numbers of pixels from 64 to 3840")
    page.get_by_label("Size (optional)").fill("")
    page.get_by_label("Seed (optional)").fill("42")
    expect(page.locator("#price")).to_have_text("261 coins (¥2.61)")
    page.get_by_role("button", name="Submit").click()

    # The task page, while no worker runs: QUEUED. Then a worker starts and the page follows
    # the task to SUCCESS by itself: the marker set now survives, so the page never reloaded.
    page.wait_for_url(f"{site.url}/dashboard/tasks/*")
    task_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#task-status")).to_have_text("QUEUED")
    page.evaluate("window.stillTheSamePage = true")
    site.workers.start()
    expect(page.locator("#task-status")).to_have_text("SUCCESS", timeout=60_000)
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.locator("#task-events")).to_contain_text("RUNNING → SUCCESS")
    expect(page.locator("#task-coins")).to_have_text("261 charged")
    expect(page.locator("#task-request")).to_contain_text('"lastImageUrl"')
    expect(page.locator("#task-request")).to_contain_text('"seed": 42')
    assert status_of(site, site.user_key, task_id)["status"] == "SUCCESS"

    # The video: as long as asked, seekable (served by ranges), playable.
    video = page.get_by_label(f"Output 1 of task {task_id}")
    expect(video).to_be_visible()
    wait_until(page, "document.querySelector('video').readyState >= 1")
    duration = page.evaluate("document.querySelector('video').duration")
    assert abs(duration - 3) < 0.05, duration
    seeked = page.evaluate(
        """async () => {
            const video = document.querySelector('video');
            const done = new Promise((resolve) => video.addEventListener('seeked', resolve, { once: true }));
            video.currentTime = 2.0;
            await done;
            return video.currentTime;
        }"""
    )
    assert abs(seeked - 2.0) < 0.1, seeked
    page.evaluate(
        """async () => {
            const video = document.querySelector('video');
            video.muted = true;
            video.currentTime = 0;
            await video.play();
        }"""
    )
    wait_until(page, "document.querySelector('video').currentTime > 0.3")
    assert any(r.status == 206 for r in files_served if ".mp4" in r.url)
    screenshot(page, "dashboard-task.png")

    # A second task, run again from this page while the worker is stopped, then cancelled.
    site.workers.stop()
    before = site.coins(site.user_key)
    page.get_by_role("button", name="Run again").click()
    page.wait_for_url(lambda url: "/dashboard/tasks/" in url and not url.endswith(task_id))
    second = page.url.rsplit("/", 1)[1]
    assert second != task_id
    expect(page.locator("#task-status")).to_have_text("QUEUED")
    assert site.coins(site.user_key) == before - 261
    page.get_by_role("button", name="Cancel task").click()
    expect(page.locator("#task-status")).to_have_text("CANCEL")
    expect(page.get_by_role("button", name="Cancel task")).to_be_hidden()
    expect(page.locator("#task-events")).to_contain_text("QUEUED → CANCEL")
    assert status_of(site, site.user_key, second)["status"] == "CANCEL"
    assert site.coins(site.user_key) == before

    # Both in the list, newest first.
    nav(page, "Tasks").click()
    rows = page.locator("#task-rows tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("CANCEL")
    expect(rows.nth(1)).to_contain_text("SUCCESS")
    # The key never travelled in a URL.
    assert requested and not any(site.user_key in url for url in requested)


def test_the_task_list_follows_tasks_live(site: Site, open_page: OpenPage) -> None:
    page = open_page()
    sign_in(page, site, site.admin_key)
    expect(page.locator("#live-text")).to_have_text("live")
    page.evaluate("window.stillTheSamePage = true")
    # Tasks of another key arrive on an admin's list as they are submitted, then run.
    first = submit_by_api(site, site.user_key)
    row = page.locator(f"tr[data-task-id='{first}']")
    expect(row).to_contain_text("QUEUED")
    expect(row).to_contain_text("studio")
    second = submit_by_api(site, site.user_key, prompt="a second street")
    expect(page.locator("#task-rows tr").first).to_have_attribute("data-task-id", second)
    site.workers.start()
    expect(row).to_contain_text("SUCCESS", timeout=60_000)
    expect(page.locator(f"tr[data-task-id='{second}']")).to_contain_text("SUCCESS", timeout=60_000)
    assert page.evaluate("window.stillTheSamePage") is True

    # Filters: by status, and an admin's by key.
    page.get_by_label("Status").select_option("CANCEL")
    expect(page.get_by_text("No tasks here yet.")).to_be_visible()
    page.get_by_label("Status").select_option("")
    page.get_by_label("Key", exact=True).select_option(label=f"ops ({site.admin_key[:6]}…)")
    expect(page.get_by_text("No tasks here yet.")).to_be_visible()
    page.get_by_label("Key", exact=True).select_option("")
    expect(page.locator("#task-rows tr")).to_have_count(2)

    # A plain key sees its own tasks only, and no key filter.
    other = open_page()
    sign_in(other, site, site.user_key)
    expect(other.locator("#task-rows tr")).to_have_count(2)
    expect(other.get_by_label("Key", exact=True)).to_be_hidden()
    other.set_viewport_size(PHONE)
    screenshot(other, "dashboard-tasks-phone.png", full_page=True)


def test_paging_keeps_up_with_new_tasks(site: Site, open_page: OpenPage) -> None:
    image = uploaded(site, site.admin_key)
    with site.api() as api:

        def submit(n: int) -> str:
            body = {**BODY, "firstImageUrl": image, "prompt": f"street {n}"}
            return str(api.post(f"/openapi/v2/{I2V}", json=body).json()["taskId"])

        ids = [submit(n) for n in range(20)]  # one full page
        page = open_page()
        sign_in(page, site, site.admin_key)
        rows = page.locator("#task-rows tr")
        expect(rows).to_have_count(20)
        expect(page.get_by_role("button", name="Older →")).to_be_disabled()
        newest = submit(20)
    # The new task comes in at the top; the oldest makes room and heads the next page.
    expect(rows.first).to_have_attribute("data-task-id", newest)
    expect(rows).to_have_count(20)
    page.get_by_role("button", name="Older →").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-task-id", ids[0])
    expect(rows.first.get_by_role("link")).to_be_focused()
    page.get_by_role("button", name="← Newer").click()
    expect(rows).to_have_count(20)
    expect(rows.first).to_have_attribute("data-task-id", newest)


def test_admin_keys_and_fleet(site: Site, open_page: OpenPage) -> None:
    site.workers.start()
    page = open_page()
    sign_in(page, site, site.admin_key, "/dashboard/account")
    expect(page.locator("#me-role")).to_contain_text("admin")
    expect(page.locator("#coins")).to_have_text("100000 coins")
    expect(page.locator("#concurrency")).to_have_text("2 at once")
    expect(page.locator("#workers tr")).to_have_count(1)
    expect(page.locator("#fleet-queued")).to_have_text("0")

    # A new key is shown once, then only by its prefix.
    page.get_by_label("Name").fill("partner")
    page.get_by_label("Coins (optional)").fill("900")
    page.get_by_role("button", name="Create key").click()
    created = page.locator("#created-key-value")
    expect(created).to_have_text(re.compile(r"^[0-9a-f]{32}$"))
    new_key = created.inner_text()
    expect(page.locator("#created-key")).to_be_focused()
    row = page.locator("#keys tr", has_text="partner")
    expect(row).to_contain_text(f"{new_key[:6]}…")
    expect(row).not_to_contain_text(new_key)
    page.get_by_role("button", name="Done").click()
    expect(page.locator("#created-key")).to_be_hidden()
    assert new_key not in page.content()

    key_id = row.get_attribute("data-key-id")
    row.get_by_label(f"Coins to add to key {key_id}").fill("100")
    row.get_by_role("button", name="Add").click()
    expect(page.locator("#keys-result")).to_have_text(f"Key {key_id} now has 1000 coins.")
    assert site.coins(new_key) == 1000
    row = page.locator("#keys tr", has_text="partner")
    row.get_by_text(f"Disable key {key_id}…").click()
    row.get_by_role("button", name="Disable this key").click()
    expect(page.locator("#keys-result")).to_contain_text(f"Key {key_id} disabled")
    expect(page.locator("#keys tr", has_text="partner")).to_contain_text("disabled")
    with site.api(new_key) as api:
        assert api.get("/dashboard/api/me").json()["error"] == "1002"

    # A plain key's account page has no admin part; its views refuse it.
    plain = open_page()
    sign_in(plain, site, site.user_key, "/dashboard/account")
    expect(plain.locator("#coins")).to_have_text("5000 coins")
    expect(plain.locator("#admin")).to_be_hidden()


def test_sign_in_refusals_and_sign_out(site: Site, open_page: OpenPage) -> None:
    page = open_page()
    page.goto(site.url + "/dashboard")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_have_text("Enter an API key.")
    page.get_by_label("API key").fill("0" * 32)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_have_text("This key is not accepted.")
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("sessionStorage.getItem('reelgate.apiKey')") is None
    sign_in(page, site, site.user_key)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('reelgate.apiKey')") is None
    # Another tab (another browser context here) does not share the key.
    sign_in(page, site, site.user_key)
    fresh = open_page()
    fresh.goto(site.url + "/dashboard")
    expect(fresh.get_by_role("heading", name="Sign in")).to_be_visible()


# -- accessibility and phone width ----------------------------------------------------------

#: Every form control has a label (or an aria-label); every button a name.
UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea, button'))
    .filter((el) => el.type !== 'hidden' && el.getClientRects().length)
    .filter((el) => el.tagName === 'BUTTON'
        ? !el.textContent.trim() && !el.getAttribute('aria-label')
        : !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
          && !el.getAttribute('aria-labelledby'))
    .map((el) => el.outerHTML.slice(0, 120))"""

#: Visible text below WCAG AA contrast: 4.5:1, or 3:1 for large text (24 px, or 18.66 px bold).
#: Disabled controls are exempt, as WCAG exempts inactive components.
LOW_CONTRAST = """() => {
    const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
    const lum = ([r, g, b]) => {
        const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const background = (el) => {
        for (let node = el; node; node = node.parentElement) {
            const [r, g, b, a = 1] = rgb(getComputedStyle(node).backgroundColor);
            if (a > 0.5) return [r, g, b];
        }
        return [255, 255, 255];
    };
    const found = [];
    for (const el of document.querySelectorAll('body *')) {
        if (!el.getClientRects().length || el.closest('[disabled]')) continue;
        const text = Array.from(el.childNodes).some((n) => n.nodeType === 3 && n.textContent.trim());
        if (!text) continue;
        const style = getComputedStyle(el);
        if (style.visibility === 'hidden' || style.clip === 'rect(0px, 0px, 0px, 0px)') continue;
        const a = lum(rgb(style.color)), b = lum(background(el));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        const size = parseFloat(style.fontSize), bold = Number(style.fontWeight) >= 700;
        const needed = size >= 24 || (bold && size >= 18.66) ? 3 : 4.5;
        if (ratio < needed) found.push(`${el.tagName} "${el.textContent.trim().slice(0, 40)}" ${ratio.toFixed(2)}`);
    }
    return found;
}"""

#: Each page, and what shows once its data is in (a live stream never lets the network idle).
PAGES = {
    "/dashboard": "#task-rows tr",
    "/dashboard/new/image-to-video": "#price:has-text('coins')",
    "/dashboard/new/video-edit": "#price:has-text('coins')",
    "/dashboard/account": "#keys tr",
}


def check_page(page: Page, width: int) -> None:
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(LOW_CONTRAST) == []
    # Nothing wider than the screen: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_every_page_is_labelled_readable_and_fits_a_phone(site: Site, open_page: OpenPage) -> None:
    task_id = submit_by_api(site, site.admin_key)
    for viewport in (PHONE, DESKTOP):
        page = open_page(viewport)
        page.goto(site.url + "/dashboard")
        check_page(page, viewport["width"])  # the sign-in form
        sign_in(page, site, site.admin_key)
        for path, loaded in {**PAGES, f"/dashboard/tasks/{task_id}": "#task-events tr"}.items():
            page.goto(site.url + path)
            expect(page.locator(loaded).first).to_be_visible()
            check_page(page, viewport["width"])


def test_the_forms_work_from_the_keyboard(site: Site, open_page: OpenPage) -> None:
    page = open_page(PHONE)
    sign_in(page, site, site.user_key, "/dashboard/new/image-to-video")
    expect(page.locator("#main")).to_be_focused()  # not the sign-in form, now hidden
    # On a page opened with a key in the tab: the skip link comes first and shows the focus.
    page.goto(site.url + "/dashboard/new/image-to-video")
    expect(page.locator("#price")).to_contain_text("coins")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")

    # The multi-shot editor: opened, filled, reordered and trimmed with the keyboard.
    page.get_by_label("Prompt", exact=True).fill("a lantern street")
    page.get_by_label("Several shots").focus()
    page.keyboard.press("Space")
    expect(page.locator("#shots li")).to_have_count(2)
    page.get_by_label("Shot 1 prompt").fill("wide shot of the street")
    page.get_by_label("Shot 1 seconds").fill("2")
    page.get_by_label("Shot 2 prompt").fill("close on a lantern")
    expect(page.locator("#shots-summary")).to_contain_text("share the remaining 3 s")
    expect(page.locator("#price")).to_have_text("435 coins (¥4.35)")  # 5 s × 87
    page.get_by_label("Shot 2 seconds").fill("2")
    expect(page.locator("#price-note")).to_contain_text("add up to 4 s but duration is 5 s")
    page.get_by_label("Shot 2 seconds").fill("3")
    expect(page.locator("#price")).to_have_text("435 coins (¥4.35)")
    page.get_by_role("button", name="Add a shot").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#shots li")).to_have_count(3)
    expect(page.get_by_label("Shot 3 prompt")).to_be_focused()
    page.keyboard.type("a third shot")
    page.locator("#shots li").nth(2).get_by_role("button", name="Move up").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Shot 2 prompt")).to_have_value("a third shot")
    page.locator("#shots li").nth(1).get_by_role("button", name="Remove").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#shots li")).to_have_count(2)
    for _ in range(4):
        page.get_by_role("button", name="Add a shot").click()
    expect(page.locator("#shots li")).to_have_count(6)
    expect(page.get_by_role("button", name="Add a shot")).to_be_disabled()

    # std has no elementList; a missing first frame is said before anything is sent.
    page.get_by_label("std").check()
    expect(page.get_by_label("Element references (pro only, optional)")).to_be_hidden()
    page.get_by_role("button", name="Submit").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#submit-error")).to_have_text("Choose the first frame: a file or a link.")
    expect(page.locator("#first-image-file")).to_be_focused()

    # The edit form prices the longest clip until the real one is known.
    nav(page, "Video edit").click()
    expect(page.locator("#price")).to_have_text("at most 1080 coins (¥10.80)")
    page.get_by_label("std").check()
    expect(page.locator("#price")).to_have_text("at most 810 coins (¥8.10)")
