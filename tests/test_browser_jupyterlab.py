"""JupyterLab end-to-end: notebook 03 runs in a real (headless) Chromium and its token-merge widget
renders and reacts to its slider.

Needs Debian's ``chromium`` and the ``playwright`` Python package (no browser download: playwright
drives the system Chromium). ``scripts/run_tests.sh`` installs Chromium when it can and then sets
``FASTHMR_REQUIRE_BROWSER=1``, which turns a missing browser into a failure instead of a skip.
Screenshots ``03_browser_widget_{before,after}.png`` go to the test's tmp folder, or to
``$FASTHMR_SCREENSHOTS`` when set (the shipped ones: ``FASTHMR_SCREENSHOTS=results/figures``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fasthmr_lib import paths
from fasthmr_lib.workbook import load_profile, notebook_parameters

pytestmark = pytest.mark.browser

NOTEBOOK = "03_mask_tome.ipynb"


def _need(what: str, reason: str) -> None:
    if os.environ.get("FASTHMR_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{what} is required (FASTHMR_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(f"{what}: {reason}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer {url} within {timeout} s")


# activate the notebook panel (a command acts on the tracker's current widget, which a first load may
# not have set yet), wait for its kernel session, then send 'run all'
_RUN_ALL_JS = """async () => {
  const app = window.jupyterapp;
  const panel = [...app.shell.widgets('main')].find(w => w.sessionContext !== undefined);
  if (!panel) return false;
  app.shell.activateById(panel.id);
  await Promise.race([panel.sessionContext.ready, new Promise(r => setTimeout(r, 20000))]);
  await app.commands.execute('notebook:run-all-cells');
  return true;
}"""
# a cell has started: its prompt shows [*] (running) or [n] (done)
_STARTED_JS = """() => [...document.querySelectorAll('.jp-InputPrompt')]
  .some(e => /\\[(\\*|\\d+)\\]/.test(e.innerText))"""


def _run_all(page, shots: Path, attempts: int = 4, wait_ms: int = 30_000) -> None:
    """Send 'run all' to the open notebook and check that the kernel started executing; a first load on
    a fresh machine was seen to drop the command, so it is re-sent (a no-op once cells are queued)."""
    for _ in range(attempts):
        if page.evaluate(_RUN_ALL_JS):
            try:
                page.wait_for_function(_STARTED_JS, timeout=wait_ms)
                return
            except Exception:  # noqa: BLE001 (playwright TimeoutError: try again)
                pass
        page.wait_for_timeout(2000)
    page.screenshot(path=str(shots / "03_browser_run_all_failed.png"))
    raise AssertionError(f"JupyterLab did not start running the notebook after {attempts} 'run all' commands")


@pytest.fixture()
def lab(tmp_path, embedded_body_dir):
    """A JupyterLab server rooted in tmp_path holding notebook 03 with the tiny profile's parameters."""
    import papermill as pm

    from data_prep.build_world import build_world

    build_world("tiny", progress=False)  # notebook 00's job (idempotent); the body model: fixture
    nb_dir = paths.notebooks_dir()
    src = nb_dir / NOTEBOOK
    assert src.exists(), f"{src} is missing"
    prof_path = nb_dir / "profiles" / "tiny.yaml"
    params = notebook_parameters(src, load_profile("tiny", prof_path.parent), str(prof_path))
    work = tmp_path / "lab"
    work.mkdir()
    pm.execute_notebook(str(src), str(work / NOTEBOOK), parameters=params, prepare_only=True)
    port, token = _free_port(), "fasthmr-test"
    env = dict(os.environ, FASTHMR_RESULTS=str(tmp_path / "results"))
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "jcfg")  # no user settings leak into the test
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
        "--LabApp.expose_app_in_browser=True", "--ServerApp.open_browser=False",
    ]  # fmt: skip
    log = open(tmp_path / "jupyterlab.log", "w")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=90)
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}?token={token}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.timeout(900)
def test_notebook03_widget_renders_and_reacts_in_jupyterlab(lab, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        _need("chromium", "no chromium executable on PATH (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        _need("playwright", f"it cannot be imported ({e})")

    shots = Path(os.environ.get("FASTHMR_SCREENSHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(lab)
        page.wait_for_function("() => window.jupyterapp !== undefined", timeout=120_000)
        page.wait_for_selector(".jp-Notebook", timeout=120_000)
        # the kernel must be up before 'run all' is sent
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=120_000)
        _run_all(page, shots)
        # the explorer: an ipywidgets slider next to a plotly figure. JupyterLab renders off-screen
        # cells lazily, so wait for the elements to exist, then scroll them into view.
        err = "[data-mime-type='application/vnd.jupyter.error']"
        page.wait_for_selector(f".widget-slider .noUi-handle, {err}", state="attached", timeout=600_000)
        page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=600_000)
        errors = page.locator(err)
        assert errors.count() == 0, "a notebook cell raised:\n" + "\n".join(errors.all_inner_texts())[:3000]
        page.wait_for_selector(".js-plotly-plot", state="attached", timeout=120_000)
        stderr_els = page.locator("[data-mime-type='application/vnd.jupyter.stderr']")
        stderr = "\n".join(stderr_els.all_inner_texts())
        assert "serialization failed" not in stderr, f"a widget message was dropped:\n{stderr[:3000]}"
        no_news = page.get_by_role("button", name="No", exact=True)
        if no_news.count():  # JupyterLab's "get notified about news?" toast would cover the widget
            no_news.first.click()

        slider = page.locator(".widget-slider").first
        slider.scroll_into_view_if_needed()
        handle = slider.locator(".noUi-handle").first
        handle.wait_for(state="visible", timeout=60_000)
        readout = slider.locator(".widget-readout")
        plot = page.locator(".js-plotly-plot").last
        before_val = readout.inner_text()
        before_plot = plot.inner_html()
        plot.scroll_into_view_if_needed()
        page.screenshot(path=str(shots / "03_browser_widget_before.png"), full_page=False)
        handle.click()
        for _ in range(2):
            page.keyboard.press("ArrowRight")
        page.wait_for_function(
            "([el, v]) => el.innerText !== v", arg=[readout.element_handle(), before_val], timeout=30_000
        )
        page.wait_for_timeout(3000)  # let the kernel answer and plotly redraw
        after_val = readout.inner_text()
        after_plot = plot.inner_html()
        page.screenshot(path=str(shots / "03_browser_widget_after.png"), full_page=False)
        browser.close()
    assert after_val != before_val, "the slider's value did not change"
    moved = f"{before_val} -> {after_val}"
    assert after_plot != before_plot, f"the figure did not change when the slider moved {moved}"
