"""A real headless browser (Debian's chromium driven by Playwright) uses the real app like a visitor.

It opens the page, picks an example picture, presses Pre-distort and waits for the four images and the
metrics. Screenshots are taken into the test's temporary folder and kept in artifacts/ (git-ignored): a run
never changes a tracked file. The README's docs/screenshot.png is refreshed by hand from a run:
``cp artifacts/app-predistort.png docs/screenshot.png``. The browser is conftest's ``browser`` fixture.
"""
import shutil

from PIL import Image
from playwright import sync_api

from conftest import ARTIFACTS, REPO_ROOT, wait_for_the_page, wait_for_the_status

OUTPUTS = ["#out-initial", "#out-input", "#out-predistorted", "#out-final"]


def test_visitor_picks_an_example_and_sees_four_images_and_metrics(browser, app_server, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app_server.url, wait_until="load")
    wait_for_the_page(page)                                     # a new picture: the page's resolution, 512²

    examples = page.locator("button.gallery-item")             # gr.Examples' thumbnails
    assert examples.count() >= 1, "no example pictures on the page"
    examples.nth(0).click()
    page.wait_for_selector("#texture img", timeout=30_000)    # the example is now the input picture
    page.click("#predistort-button")

    for output in OUTPUTS:
        page.wait_for_selector(f"{output} img", timeout=60_000)
    # The click's own result, not the first view the page may already show (its summary says "An example").
    page.wait_for_function("(() => { const t = document.querySelector('#summary').innerText;"
                           " return t.includes('PSNR') && !t.includes('An example, pre-distorted'); })()",
                           timeout=60_000)
    summary = page.inner_text("#summary")
    assert "L1" in summary and "dB" in summary and "without pre-distortion" in summary
    for output in OUTPUTS:                                      # each image really loaded (not a broken link)
        try:
            page.wait_for_function(f"(() => {{ const i = document.querySelector('{output} img');"
                                   f" return i && i.complete && i.naturalWidth == {app_server.picture_resolution};"
                                   f" }})()", timeout=30_000)
        except sync_api.TimeoutError:
            width = page.eval_on_selector(f"{output} img", "img => img.complete ? img.naturalWidth : 0")
            raise AssertionError((output, width)) from None
    # The before/after slider holds the two renders: without and with pre-distortion.
    page.wait_for_function("document.querySelectorAll('#before-after img').length == 2 && "
                           "[...document.querySelectorAll('#before-after img')].every(i => i.complete && "
                           "i.naturalWidth > 0)", timeout=30_000)
    widths = page.eval_on_selector_all("#before-after img", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [app_server.picture_resolution] * 2, widths
    assert not errors, errors

    shot = tmp_path / "app-predistort.png"
    page.screenshot(path=str(shot), full_page=True)
    with Image.open(shot) as im:
        assert im.width == 1400 and im.height >= 1000                   # the whole page, as the README shows it
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copyfile(shot, ARTIFACTS / shot.name)
    page.close()


def test_training_tab_shows_an_estimate_before_training(browser, app_server):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_server.url, wait_until="load")
    page.wait_for_selector("#predistort-button", timeout=60_000)
    page.get_by_role("tab", name="Several pictures · train").click()
    page.wait_for_function("document.querySelector('#estimate') && "
                           "document.querySelector('#estimate').innerText.includes('per iteration')", timeout=30_000)
    # The default model type (the generalising layer, 30 iterations at 128²) trains in about a minute here;
    # its trade-off is explained next to the menu.
    assert "long training" not in page.inner_text("#estimate")
    assert "never saw" in page.inner_text("#method-info")
    # The tutorial's layer at its defaults (128×128, 100 iterations) is long on a CPU: the page says so before
    # training, and the iterations follow the model type's default.
    page.locator("#method input").click()
    page.get_by_role("option", name="tutorial layer (fully connected)").click()
    page.wait_for_function("document.querySelector('#estimate').innerText.includes('× 100 ')", timeout=30_000)
    assert "long training" in page.inner_text("#estimate")
    assert "R⁴ weights" in page.inner_text("#method-info")
    # Changing the sphere says which ways of pre-distorting still apply to the new scene.
    page.get_by_text("Scene: the glass sphere").click()
    # The page's own first report (a load event, which may queue behind the shared server's work for the test
    # before) must have arrived: arriving after the change below, it would overwrite that change's report.
    page.wait_for_function("(() => { const e = document.querySelector('#scene-info');"
                           " return e && e.innerText.includes('IOR 1.06'); })()", timeout=120_000)
    ior = page.get_by_label("number input for Index of refraction (tutorial: 1.06)")
    ior.fill("1.3")
    ior.press("Enter")
    page.wait_for_function("document.querySelector('#scene-info').innerText.includes('IOR 1.3')", timeout=30_000)
    report = page.inner_text("#scene-info")
    assert "another scene" in report and "Refinement" in report and "always applies" in report
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-train-tab.png"), full_page=True)
    page.close()


def test_visitor_trains_sees_progress_and_loss_curve_and_stops(browser, app_server):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(app_server.url, wait_until="load")
    page.wait_for_selector("#predistort-button", timeout=60_000)
    page.get_by_role("tab", name="Several pictures · train").click()
    page.get_by_role("button", name="Use the example pictures").click()
    page.wait_for_function("document.querySelectorAll('#textures a, #textures tr').length > 0", timeout=30_000)
    for label, value in (("number input for Resolution, pixels (tutorial: 128)", "16"),
                         ("number input for Iterations (generalising layer: 30; tutorial: 100)", "400")):
        box = page.get_by_label(label)
        box.fill(value)
        box.press("Enter")
    page.wait_for_function("document.querySelector('#estimate').innerText.includes('16×16') && "
                           "document.querySelector('#estimate').innerText.includes('× 400')", timeout=30_000)
    page.click("#train-button")
    # The progress line names the iteration, the loss and the time left; the loss curve is drawn.
    page.wait_for_function("(() => { const t = document.querySelector('#train-progress').innerText;"
                           " return /Iteration \\d+\\/400 · loss [0-9.]+ · .* left/.test(t); })()", timeout=60_000)
    page.wait_for_selector("#loss-plot canvas, #loss-plot svg", timeout=30_000)
    page.click("#stop-button")
    page.wait_for_function("document.querySelector('#train-progress').innerText.includes('Done')", timeout=60_000)
    page.wait_for_function("document.querySelector('#status').innerText.includes('trained in this session')",
                           timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-train-stopped.png"), full_page=True)
    page.close()


def test_visitor_asks_where_to_put_the_print_for_a_glass_ball(browser, app_server):
    """The Real object tab: pick crown glass, press Advise, read where to put the print and see the plot; take the
    advised distance, use the setup. A 16×16 model is loaded first so that the advisor searches at 16²."""
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(app_server.url, wait_until="load")
    page.wait_for_selector("#predistort-button", timeout=60_000)
    # The page's own first status line must have arrived: it would overwrite the one of the load below.
    wait_for_the_status(page)
    page.get_by_role("tab", name="Load a model").click()
    page.fill("#repo textarea, #repo input", "test/tiny16")
    page.get_by_role("button", name="Load", exact=True).click()
    try:
        page.wait_for_function("document.querySelector('#status').innerText.includes('16×16')", timeout=60_000)
    except sync_api.TimeoutError:
        raise AssertionError(f"after loading test/tiny16 the status says {page.inner_text('#status')!r}, the load "
                             f"tab {page.inner_text('#load-message')!r}") from None

    page.get_by_role("tab", name="Real object · print").click()
    page.locator("#material input").click()
    page.get_by_role("option", name="crown glass (1.52)").click()
    page.wait_for_function("document.querySelector('#ball-ior input').value == '1.52'", timeout=30_000)
    for field, value in (("#print-distance input", "100"), ("#camera-distance input", "100"), ("#fov input", "60")):
        page.fill(field, value)                                         # near the ball's focus: it must move
        page.press(field, "Enter")
    page.wait_for_function("document.querySelector('#setup').innerText.includes('its centre 100 mm')",
                           timeout=30_000)
    page.click("#step1-next")                                           # the maker's path: step 2, advise
    page.click("#advise-button")
    page.wait_for_function("document.querySelector('#advice').innerText.includes('Move the print')", timeout=120_000)
    page.wait_for_function("(() => { const i = document.querySelector('#advice-plot img');"
                           " return i && i.complete && i.naturalWidth > 0; })()", timeout=30_000)
    page.get_by_role("button", name="Take the advised distance").click()
    page.click("#step2-back")                                           # back to step 1: the setup
    page.wait_for_function("Number(document.querySelector('#print-distance input').value) > 100", timeout=30_000)
    page.click("#use-setup-button")
    page.wait_for_function("document.querySelector('#status').innerText.includes('instant solve for your setup')",
                           timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-real-glass.png"), full_page=True)
    page.close()


def test_visitor_chooses_a_larger_resolution_sees_the_estimate_and_downloads_the_full_texture(browser, app_server):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(app_server.url, wait_until="load")
    wait_for_the_page(page)
    page.locator("button.gallery-item").nth(1).click()
    page.wait_for_selector("#texture img", timeout=30_000)
    page.locator("#resolution-choice input").click()
    page.get_by_role("option", name="256×256").click()
    page.wait_for_function("document.querySelector('#predistort-estimate').innerText.includes('At 256×256')",
                           timeout=30_000)
    assert "on this machine" in page.inner_text("#predistort-estimate")
    page.click("#predistort-button")
    page.wait_for_function("(() => { const i = document.querySelector('#out-predistorted img');"
                           " return i && i.complete && i.naturalWidth == 256; })()", timeout=120_000)
    link = page.wait_for_selector("#download-predistorted a[href]", timeout=30_000)
    assert link.get_attribute("href").endswith(".png")
    page.close()


def test_visitor_walks_a_cylinder_mirror_from_the_picker_to_the_print_pdf(browser, app_server):
    """In one tab: pick a cylinder mirror, see the setup described and in 3D, pre-distort a picture for it, get
    the renders and the print PDF. The page keeps one row of tabs, the calibration and object steps inside."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app_server.url, wait_until="load")
    wait_for_the_page(page)
    tabs = page.get_by_role("tab")
    tops = {round(tabs.nth(i).bounding_box()["y"]) for i in range(tabs.count())}
    assert tabs.count() == 5 and len(tops) == 1, tops                   # one row of tabs
    page.get_by_role("tab", name="Real object · print").click()
    page.click("#world-step")
    page.wait_for_selector("#world-kind", timeout=30_000)
    page.wait_for_function("document.querySelector('#world-described').innerText.includes('mirror cylinder')",
                           timeout=60_000)
    page.locator("#world-height input").fill("90")                      # the maker's own tube
    page.locator("#world-height input").press("Enter")
    page.wait_for_function("document.querySelector('#world-described').innerText.includes('90 mm tall')",
                           timeout=60_000)
    page.locator("#world-resolution input").fill("256")
    page.locator("#world-resolution input").press("Enter")
    page.locator("#world-picture input[type=file]").set_input_files(str(REPO_ROOT / "examples" / "landscape.png"))
    page.wait_for_selector("#world-picture img", timeout=30_000)
    page.click("#world-button")
    page.wait_for_selector("#world-render img", timeout=300_000)
    page.wait_for_function("document.querySelector('#world-summary').innerText.includes('In the mirror')",
                           timeout=60_000)
    assert "mirror cylinder, 60 mm across, 90 mm tall" in page.inner_text("#world-summary")
    with page.expect_download() as download:
        page.locator("#world-pdf a").first.click()
    path = download.value.path()
    assert open(path, "rb").read(5) == b"%PDF-"
    assert not errors, errors
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-world.png"), full_page=True)
    page.close()


def test_the_first_view_shows_an_example_already_pre_distorted(browser, app_server):
    """Before the visitor does anything, the first tab shows an example pre-distorted at the server's warm-up:
    the picture, both renders and the summary, labelled as an example."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_server.url, wait_until="load")
    wait_for_the_page(page)
    for image in ("#out-initial img", "#out-input img", "#out-predistorted img", "#out-final img"):
        page.wait_for_function(f"(() => {{ const i = document.querySelector('{image}');"
                               f" return i && i.complete && i.naturalWidth > 0; }})()", timeout=120_000)
    summary = page.inner_text("#summary")
    assert "An example, pre-distorted" in summary and "PSNR" in summary, summary
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app-first-view.png"), full_page=True)
    page.close()
