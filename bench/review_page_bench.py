"""Keypress to next patch painted on the review page, in Debian's Chromium (not a test).

Start a server with data first (``bin/demo`` serves the demo on 127.0.0.1:8000), then:

    .venv/bin/python bench/review_page_bench.py --reviews 100

Each review presses Enter (confirm) on the shown patch and measures, inside the page, the
time from the keydown event to two animation frames after the next patch's 25 tiles were
swapped in (``window.reviewPaintedAt``). It really records the decisions: use a demo or
scratch project. Prints the median, p95 and max in milliseconds.
"""

from __future__ import annotations

import argparse
import statistics

from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--project", default="demo")
    parser.add_argument("--user", default="demo")
    parser.add_argument("--password", default="demo-password")
    parser.add_argument("--queue", default="unreviewed")
    parser.add_argument("--reviews", type=int, default=100)
    parser.add_argument("--viewport", default="1400x1000",
                        help="window size, WIDTHxHEIGHT (issue 10: 1280x720 and 1920x1080)")
    parser.add_argument("--think-ms", type=int, default=800,
                        help="time the reviewer looks at each patch before the key press")
    args = parser.parse_args()
    width, height = (int(v) for v in args.viewport.lower().split("x"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(f"{args.url}/accounts/login/")
        if page.locator("input[name=username]").count():
            page.fill("input[name=username]", args.user)
            page.fill("input[name=password]", args.password)
            page.click("button[type=submit]")
        page.goto(f"{args.url}/p/{args.project}/review/?queue={args.queue}")
        page.wait_for_function("document.body.dataset.patch", timeout=30000)
        page.evaluate("""() => document.addEventListener('keydown',
                           () => { window.keyAt = performance.now(); }, {capture: true})""")
        page.wait_for_timeout(1500)  # let the first prefetch finish, as a reviewer would
        latencies = []
        for i in range(args.reviews):
            page.wait_for_timeout(args.think_ms)
            before = page.evaluate("document.body.dataset.patch")
            page.keyboard.press("Enter")
            try:
                page.wait_for_function(
                    f"document.body.dataset.patch && document.body.dataset.patch !== '{before}'",
                    timeout=30000)
            except Exception:
                raise SystemExit(f"review {i}: no next patch after 30 s; page says "
                                 f"{page.inner_text('#banner')!r}") from None
            latencies.append(page.evaluate("window.reviewPaintedAt - window.keyAt"))
        browser.close()
    print(f"{width}x{height}: keypress -> next patch painted over {len(latencies)} reviews "
          f"({args.think_ms} ms looking at each): "
          f"median {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 0.95):.1f} "
          f"ms, max {max(latencies):.1f} ms")


if __name__ == "__main__":
    main()
