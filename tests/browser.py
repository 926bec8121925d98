"""Headless Chromium for the page tests: Debian's /usr/bin/chromium driven by Playwright (no browser download)."""
from __future__ import annotations

import threading
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# As the machine's own check starts it: without the background-networking flags a closed network refuses
# Chromium's calls home, many at a time.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def serve_in_thread(server) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread
