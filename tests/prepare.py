"""What the tests need beyond .venv, fetched once the way a user's machine can (`make test`
runs this first): a browser for the page tests, Fashion-MNIST for the "unsure" tests. What
cannot be had is said in one line here, and the tests that need it fail with the same advice.
"""

import os
import shutil
import subprocess
import sys

from fashion import fashion_dir
from helpers import find_browser

from mnist_cnn.errors import MnistCnnError


def apt_get(package: str) -> bool:
    """Debian's or Ubuntu's package, where this runs as root (a container, CI)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"prepare: apt-get install {package}", flush=True)
    for args in (["update", "-qq"], ["install", "-y", "-qq", package]):
        if subprocess.run(["apt-get", *args], env=env, stdout=subprocess.DEVNULL).returncode:
            return False
    return True


def browser() -> None:
    if find_browser() or (apt_get("chromium") and find_browser()):
        return
    print("prepare: no Chromium or Chrome on PATH; asking Playwright for its own", flush=True)
    subprocess.run([sys.executable, "-m", "playwright", "install", "chromium"], check=False)
    if not find_browser():
        print("prepare: no browser for the page tests: install chromium or Google Chrome")


def fashion() -> None:
    try:
        fashion_dir()
    except MnistCnnError as err:
        if not apt_get("dataset-fashion-mnist"):
            print(f"prepare: {err}")


if __name__ == "__main__":
    browser()
    fashion()
