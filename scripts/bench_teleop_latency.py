#!/usr/bin/env python3
"""Input-to-action latency of ``device=browser`` in a real headless Chromium (issue 14).

The page (served by the device) holds the intervene button and a motion key, so it sends an
input message every 50 ms stamped with the browser's clock; the control side polls
``device.read()`` at ``--poll-hz`` and records, for every new input, the time from the browser's
timestamp to the ``read()`` that first returns it (same machine, same clock). Camera frames of
``lift`` (pixels, 64x64) are pushed to the page at 10 Hz meanwhile, as during teleop. A
control loop reading once per tick adds up to one period (1/fps) to these numbers.

Usage::

    MUJOCO_GL=osmesa .venv/bin/python scripts/bench_teleop_latency.py --inputs 200 \
        --screenshot docs/teleop_browser.png

Needs chromium + chromium-driver (Debian packages) and selenium (``.[dev]``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardware.teleop.base import TeleopContext, make_device  # noqa: E402
from robot_learning.envs import make_env  # noqa: E402


def chrome_driver():
    """A headless Chromium driven through the system chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        sys.exit("needs chromium + chromedriver: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1100,900")
    return webdriver.Chrome(options=options, service=Service(driver))


def main() -> int:
    """Run the benchmark; prints (and with ``--json``, writes) p50/p99 latency in ms."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=200, help="inputs to measure")
    parser.add_argument("--poll-hz", type=float, default=1000.0, help="read() polling rate")
    parser.add_argument("--screenshot", help="save a screenshot of the page here (PNG)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    import hardware.teleop.browser  # noqa: F401  (registers device=browser)

    env = make_env("lift", obs="pixels", image_size=64)
    obs, _ = env.reset(seed=0)
    device = make_device("browser", TeleopContext(env.features, env.fps, env, {"port": 0}))
    device.connect()
    device.reset(seed=0)
    chrome = chrome_driver()
    try:
        chrome.get(device.url)
        deadline = time.monotonic() + 10
        while not chrome.execute_script(
            "const i = document.getElementById('cam-front'); return !!i && i.naturalWidth > 0;"
        ):
            if time.monotonic() > deadline:
                sys.exit("the page showed no camera frame within 10 s")
            device.show(obs, {"step": 0, "success": False})
            time.sleep(0.05)
        button = chrome.find_element(By.ID, "intervene")
        ActionChains(chrome).click_and_hold(button).key_down("w").perform()
        warmup = 5
        period, next_show, step = 1.0 / args.poll_hz, 0.0, 0
        while len(device.latencies_ms) < args.inputs + warmup:
            inp = device.read(obs, None)
            now = time.monotonic()
            if now >= next_show:  # a 10 Hz control loop: step the sim and push its frames
                obs, *_ = env.step(np.asarray(inp.action, np.float32))
                step += 1
                device.show(obs, {"step": step, "success": False})
                next_show = now + 0.1
            time.sleep(period)
        time.sleep(1.2)  # one more ping round trip for the screenshot's readout
        device.show(obs, {"step": step, "success": False})
        time.sleep(0.1)
        if args.screenshot:
            Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
            chrome.save_screenshot(args.screenshot)
        rtt = chrome.find_element(By.ID, "r-rtt").text
        ActionChains(chrome).key_up("w").release(button).perform()
    finally:
        chrome.quit()
        device.disconnect()
        env.close()
    lat = np.asarray(device.latencies_ms[warmup:], np.float64)
    result = {
        "inputs": int(lat.size),
        "poll_hz": args.poll_hz,
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "max_ms": round(float(lat.max()), 2),
        "mean_ms": round(float(lat.mean()), 2),
        "ping_round_trip": rtt,
        "dropped": device.counters()["dropped"],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
