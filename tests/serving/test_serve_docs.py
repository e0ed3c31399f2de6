"""/docs works without internet: headless Chromium, with every host but loopback unresolvable,
renders the Swagger UI the real service serves from the pinned swagger-ui-bundle package and
finds the /predict operation in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ports import free_port
from serving_bundle import build_model_dir

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[str]:
    root = tmp_path_factory.mktemp("docs")
    model_dir = build_model_dir(root, repo_root)
    port = free_port()
    # None of the caller's settings, but the session's scorer cache (never the user's ~/.cache)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLIGHTDELAY_") or k == "FLIGHTDELAY_SCORER_CACHE"
    }
    log = (root / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "flightdelay", "serve", "--model-dir", str(model_dir)),
            *("--port", str(port), "--log-level", "warning"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (root / "serve.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "server not ready"
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def rendered_dom(page: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, in headless Chromium that can reach loopback only."""
    if CHROMIUM is None:
        pytest.skip("chromium not installed: apt-get install chromium (Makefile SYSTEM_PACKAGES)")
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
            page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_docs_page_loads_no_asset_from_another_host(url: str) -> None:
    with urllib.request.urlopen(url + "/docs", timeout=10) as response:
        html = response.read().decode()
    assert "/docs/assets/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    assert "https://" not in html


def test_docs_render_the_predict_operation_offline_in_chromium(url: str, tmp_path: Path) -> None:
    dom = rendered_dom(url + "/docs", tmp_path / "profile")
    assert 'class="swagger-ui"' in dom, dom[:2000]
    assert 'data-path="/predict"' in dom, dom[:2000]
    assert "opblock-post" in dom
