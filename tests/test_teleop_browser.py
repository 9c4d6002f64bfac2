"""device=browser: a real headless Chromium drives the simulated arm through the page.

Needs the Debian packages chromium + chromium-driver (``make system-deps``); the browser tests
are skipped (with that reason) only when they are not installed. The protocol and security tests
use a plain WebSocket client and always run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

import hardware.teleop.browser  # noqa: F401  (registers device=browser)
from hardware.teleop.base import TeleopContext, make_device
from robot_learning.datasets import LeRobotDataset, LeRobotDatasetWriter
from robot_learning.envs import make_env

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="chromium + chromedriver not installed (apt-get install chromium chromium-driver)",
)
TOKEN = "test-token-123"
EE = slice(0, 3)  # ee_x, ee_y, ee_z in lift's observation.state


@pytest.fixture(scope="module")
def env():
    env = make_env("lift", obs="pixels", image_size=64)
    yield env
    env.close()


@pytest.fixture
def device(env):
    context = TeleopContext(env.features, env.fps, env, {"port": 0, "token": TOKEN})
    dev = make_device("browser", context)
    dev.connect()
    dev.reset(seed=0)
    yield dev
    dev.disconnect()


@pytest.fixture(scope="module")
def chrome():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "chromium + chromedriver not installed (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1100,800")
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def origin(dev) -> str:
    return dev.url.split("/?")[0]


def ws_url(dev, token: str | None = TOKEN) -> str:
    url = origin(dev).replace("http", "ws", 1) + "/ws"
    return url if token is None else f"{url}?token={token}"


def send_input(ws, seq, motion=(1.0, 0.0, 0.0), intervene=True, gripper=-1.0) -> None:
    msg = {"type": "input", "seq": seq, "t": time.time() * 1000, "motion": list(motion)}
    ws.send(json.dumps({**msg, "gripper": gripper, "intervene": intervene}))


def wait_for(predicate, timeout=5.0, every=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s")


def motion_of(inp) -> np.ndarray:
    return np.asarray(inp.action)[:3]


# --------------------------------------------------------------------------- security
def test_token_required_for_page_and_websocket(device):
    base = origin(device)
    for query in ("", "?token=", "?token=wrong"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/{query}", timeout=5)
        assert err.value.code == 403
    with urllib.request.urlopen(f"{base}/?token={TOKEN}", timeout=5) as page:
        assert page.status == 200
        assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        assert page.headers["Referrer-Policy"] == "no-referrer"
    for url in (ws_url(device, None), ws_url(device, "wrong")):
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(url, origin=base, open_timeout=5)
        assert refused.value.response.status_code == 403
    assert device.counters()["accepted"] == 0


def test_wrong_origin_refused(device):
    for bad in ("http://evil.example", "http://127.0.0.1:1", "null"):
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(ws_url(device), origin=bad, open_timeout=5)
        assert refused.value.response.status_code == 403
    with ws_connect(ws_url(device), origin=origin(device), open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"


def test_tls(env, tmp_path):
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed (needed to make a test certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
         "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    options = {"port": 0, "token": TOKEN, "cert_file": str(cert), "key_file": str(key)}
    dev = make_device("browser", TeleopContext(env.features, env.fps, env, options))
    dev.connect()
    try:
        assert dev.url.startswith("https://")
        import ssl

        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.check_hostname = False
        with urllib.request.urlopen(dev.url, timeout=5, context=ctx) as page:
            assert page.status == 200
    finally:
        dev.disconnect()


# --------------------------------------------------------------------------- protocol
def test_dead_man_release_and_heartbeat_gap_stop_motion(env, device):
    obs, _ = env.reset(seed=0)
    assert not motion_of(device.read(obs, None)).any()  # nobody connected: hold still
    with ws_connect(ws_url(device), origin=origin(device), open_timeout=5) as ws:
        send_input(ws, 1)
        inp = wait_for(lambda: (i := device.read(obs, None)).intervene and i)
        assert motion_of(inp)[0] > 0 and not motion_of(inp)[1:].any()
        for _ in range(3):  # heartbeats keep a held input alive
            time.sleep(0.15)
            ws.send(json.dumps({"type": "heartbeat", "t": time.time() * 1000}))
            time.sleep(0.02)
            assert device.read(obs, None).intervene
        time.sleep(0.4)  # heartbeat gap > 300 ms
        inp = device.read(obs, None)
        assert not inp.intervene and not motion_of(inp).any()
        send_input(ws, 2)
        wait_for(lambda: device.read(obs, None).intervene)
        send_input(ws, 3, intervene=False)  # dead-man released: motion stops at once
        inp = wait_for(lambda: not (i := device.read(obs, None)).intervene and i)
        assert not motion_of(inp).any()
        send_input(ws, 4)
        wait_for(lambda: device.read(obs, None).intervene)
    inp = wait_for(lambda: not (i := device.read(obs, None)).intervene and i)
    assert not motion_of(inp).any()  # the page closed


def test_malformed_messages_are_dropped_and_counted(env, device):
    obs, _ = env.reset(seed=0)
    good = {"type": "input", "seq": 1, "t": 1.0, "motion": [0, 0, 0], "gripper": 0.0}
    good["intervene"] = False
    bad = {
        "bad_json": ["{not json", "NaN]"],
        "wrong_type": [
            "[1, 2]",
            json.dumps({**good, "motion": "up"}),
            json.dumps({**good, "intervene": "yes"}),
            json.dumps({**good, "seq": True}),
            json.dumps({**good, "gripper": "1"}),
        ],
        "out_of_range": [
            json.dumps({**good, "motion": [1.5, 0, 0]}),
            json.dumps({**good, "seq": -1}),
            '{"type": "heartbeat", "t": NaN}',
        ],
        "unknown_type": [json.dumps({"type": "teleport"}), json.dumps({"kind": "input"})],
        "unknown_field": [json.dumps({**good, "x": 1})],
        "missing_field": [json.dumps({"type": "input", "seq": 2})],
        "unknown_event": [json.dumps({"type": "event", "name": "explode"})],
        "too_large": [json.dumps({"type": "heartbeat", "pad": "x" * 100_000})],
        "binary": [b"\x00\x01"],
    }
    with ws_connect(ws_url(device), origin=origin(device), open_timeout=5) as ws:
        ws.recv(timeout=5)  # hello
        ws.send("{not json")
        reply = json.loads(ws.recv(timeout=5))
        assert reply["type"] == "error" and reply["code"] == "bad_json" and reply["message"]
        for messages in bad.values():
            for message in messages:
                ws.send(message)
        send_input(ws, 7, motion=(0.0, -1.0, 0.0))  # the connection still works
        inp = wait_for(lambda: (i := device.read(obs, None)).intervene and i)
        assert motion_of(inp)[1] < 0
    dropped = device.counters()["dropped"]
    expected = {code: len(m) for code, m in bad.items()}
    expected["bad_json"] += 1
    assert dropped == expected
    assert device.counters()["accepted"] == 1


def test_flood_is_rate_limited_without_blocking_read(env, device):
    obs, _ = env.reset(seed=0)
    read_times: list[float] = []
    done = threading.Event()
    with ws_connect(ws_url(device), origin=origin(device), open_timeout=5) as ws:

        def flood():
            for seq in range(1, 5001):
                send_input(ws, seq, motion=(0.0, 0.0, 1.0))
            done.set()

        thread = threading.Thread(target=flood)
        thread.start()
        while not done.is_set():
            t0 = time.perf_counter()
            device.read(obs, None)
            read_times.append(time.perf_counter() - t0)
            time.sleep(0.001)
        thread.join()
        wait_for(
            lambda: (
                sum(device.counters()["dropped"].values()) + device.counters()["accepted"] >= 5000
            )
        )
        counters = device.counters()
        assert counters["dropped"]["rate_limited"] > 4000
        assert counters["accepted"] + counters["dropped"]["rate_limited"] == 5000
        time.sleep(0.4)  # the budget refills; the device still takes input
        send_input(ws, 6000, motion=(-1.0, 0.0, 0.0))
        inp = wait_for(lambda: (i := device.read(obs, None)).intervene and i)
        assert motion_of(inp)[0] < 0
    assert read_times and max(read_times) < 0.1, f"read() took {max(read_times) * 1000:.1f} ms"


# --------------------------------------------------------------------------- the real page
def show_until_frame(chrome, device, obs) -> None:
    def frame_shown(_):
        device.show(obs, {"step": 0, "success": False})
        return chrome.execute_script(
            "const i = document.getElementById('cam-front'); return !!i && i.naturalWidth > 0;"
        )

    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(chrome, 10, poll_frequency=0.05).until(frame_shown)


def drive(env, device, writer, obs, ticks: int):
    """``ticks`` control ticks at 10 Hz with the device's actions; frames go to ``writer``."""
    actions = []
    for step in range(ticks):
        t0 = time.perf_counter()
        inp = device.read(obs, None)
        action = np.asarray(inp.action, np.float32)
        writer.add_frame({**obs, "action": action}, task=env.task_description)
        obs, *_ = env.step(action)
        device.show(obs, {"step": step + 1, "success": False})
        actions.append((action, inp.intervene))
        time.sleep(max(0.0, 0.1 - (time.perf_counter() - t0)))
    return obs, actions


@needs_chromium
def test_browser_page_drives_the_arm_and_records(env, device, chrome, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    obs, _ = env.reset(seed=0)
    chrome.get(device.url)
    show_until_frame(chrome, device, obs)
    assert chrome.find_element(By.ID, "r-episode").text == "1"
    writer = LeRobotDatasetWriter.create(
        tmp_path / "teleop", env.features, fps=env.fps, robot_type="franka_panda"
    )
    button = chrome.find_element(By.ID, "intervene")

    # keys without the dead-man switch do nothing
    ActionChains(chrome).key_down("w").perform()
    obs, idle = drive(env, device, writer, obs, 4)
    ActionChains(chrome).key_up("w").perform()
    assert not any(i for _, i in idle) and not any(a[:3].any() for a, _ in idle)

    # hold the intervene button and W: +x
    start = obs["observation.state"][EE].copy()
    ActionChains(chrome).click_and_hold(button).key_down("w").perform()
    wait_for(lambda: device.read(obs, None).intervene)
    obs, forward = drive(env, device, writer, obs, 12)
    chrome.save_screenshot(str(tmp_path / "page.png"))
    ActionChains(chrome).key_up("w").release(button).perform()
    delta = obs["observation.state"][EE] - start
    assert delta[0] > 0.03 and delta[0] > 3 * max(abs(delta[1]), abs(delta[2])), delta
    assert sum(i for _, i in forward) >= 10

    # released: the next ticks hold still
    wait_for(lambda: not device.read(obs, None).intervene)
    obs, released = drive(env, device, writer, obs, 3)
    assert not any(i for _, i in released) and not any(a[:3].any() for a, _ in released)

    # Space is the keyboard's dead-man switch; R: +z
    start = obs["observation.state"][EE].copy()
    ActionChains(chrome).key_down(Keys.SPACE).key_down("r").perform()
    wait_for(lambda: device.read(obs, None).intervene)
    obs, up = drive(env, device, writer, obs, 8)
    ActionChains(chrome).key_up("r").key_up(Keys.SPACE).perform()
    delta = obs["observation.state"][EE] - start
    assert delta[2] > 0.02 and delta[2] > 3 * max(abs(delta[0]), abs(delta[1])), delta

    # the recorded dataset holds those actions
    writer.save_episode()
    writer.close()
    episode = LeRobotDataset(tmp_path / "teleop").episode(0)
    recorded = np.asarray(episode["action"])
    expected = np.stack([a for a, _ in idle + forward + released + up])
    np.testing.assert_allclose(recorded, expected, atol=1e-6)
    assert (recorded[:, 0] > 0.4).sum() >= 10 and (recorded[:, 2] > 0.4).sum() >= 6

    # labels and episode buttons arrive as one-shot events
    chrome.find_element(By.ID, "success").click()
    assert wait_for(lambda: device.read(obs, None).success)
    chrome.find_element(By.ID, "rerecord").click()
    assert wait_for(lambda: device.read(obs, None).rerecord)
    assert not device.read(obs, None).rerecord  # one-shot
    assert device.interventions == 2
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_port_in_use_is_a_device_error(env, device):
    from hardware.teleop.base import DeviceError

    port = int(origin(device).rsplit(":", 1)[1])
    options = {"port": port, "token": TOKEN}
    other = make_device("browser", TeleopContext(env.features, env.fps, env, options))
    with pytest.raises(DeviceError, match="could not serve"):
        other.connect()
    with pytest.raises(DeviceError, match="cert_file"):
        make_device(
            "browser", TeleopContext(env.features, env.fps, env, {"cert_file": "/nonexistent"})
        ).connect()


@needs_chromium
def test_teleop_session_with_the_browser_on_a_state_only_task(chrome, tmp_path):
    """``robot-learning teleop device=browser`` end to end: the page shows ``env.render()`` (the
    task has no cameras), the operator drives +y, labels the episode a success, and the dataset
    holds the episode."""
    import socket

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    from robot_learning.envs import TaskConfig
    from robot_learning.teleop import TeleopConfig, teleop

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "session"
    cfg = TeleopConfig(
        task=TaskConfig(name="lift"),
        out=str(out),
        device="browser",
        device_options={"port": port, "token": TOKEN},
        episodes=1,
    )
    results: list = []
    session = threading.Thread(target=lambda: results.append(teleop(cfg, progress=False)))
    session.start()
    url = f"http://127.0.0.1:{port}/?token={TOKEN}"
    try:
        wait_for(lambda: _page_loads(url), timeout=30)
        chrome.get(url)
        wait_for(
            lambda: chrome.execute_script(
                "const i = document.getElementById('cam-render'); return !!i && i.naturalWidth > 0;"
            ),
            timeout=10,
        )
        button = chrome.find_element(By.ID, "intervene")
        ActionChains(chrome).click_and_hold(button).key_down("a").perform()
        time.sleep(1.5)
        ActionChains(chrome).key_up("a").release(button).perform()
        time.sleep(0.3)
        chrome.find_element(By.ID, "success").click()
        session.join(timeout=20)
    finally:
        if session.is_alive():  # end the session whatever failed
            chrome.find_element(By.ID, "stop").click()
            chrome.find_element(By.ID, "failure").click()
            session.join(timeout=20)
    assert results and results[0].episodes == 1 and results[0].successes == 1
    actions = np.asarray(LeRobotDataset(out).episode(0)["action"])
    assert (actions[:, 1] > 0.4).sum() >= 8  # +y while the dead-man switch was held
    assert not actions[-2:, :3].any()  # released before the label


def _page_loads(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as page:
            return page.status == 200
    except OSError:
        return False


@needs_chromium
def test_on_screen_joystick_and_gamepad(env, device, chrome):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    obs, _ = env.reset(seed=0)
    chrome.get(device.url)
    show_until_frame(chrome, device, obs)

    def held_motion(axis: int) -> np.ndarray:
        """The motion once intervene is held and ``axis`` moves positively."""

        def moving():
            inp = device.read(obs, None)
            return inp.intervene and motion_of(inp)[axis] > 0.3 and [motion_of(inp)]

        return wait_for(moving)[0]

    # joystick dragged up (= +x) while Space holds the dead-man switch
    joystick = chrome.find_element(By.ID, "joystick")
    ActionChains(chrome).key_down(Keys.SPACE).move_to_element_with_offset(
        joystick, 0, -70
    ).click_and_hold().perform()
    motion = held_motion(0)
    assert abs(motion[1]) < 0.1 * motion[0]
    ActionChains(chrome).release().key_up(Keys.SPACE).perform()
    wait_for(lambda: not device.read(obs, None).intervene)

    # a gamepad (the Gamepad API stubbed): left stick left = +y, RB held = intervene, A = gripper
    stub = """
        const rb = arguments[0], a = arguments[1];
        const button = (p) => ({pressed: p, value: p ? 1 : 0});
        const buttons = Array.from({length: 16}, (_, i) => button((i === 5 && rb) || (i === 0 && a)));
        navigator.getGamepads = () => [{connected: true, id: "stub pad", axes: [-1, 0, 0, 0], buttons}];
    """
    chrome.execute_script(stub, True, False)
    motion = held_motion(1)
    assert abs(motion[0]) < 0.1 * motion[1]
    assert chrome.find_element(By.ID, "pad").text == "stub pad"
    chrome.execute_script(stub, True, True)  # A: the gripper closes
    wait_for(lambda: device.read(obs, None).action[3] > 0)
    chrome.execute_script(stub, False, False)  # RB released: the dead-man switch stops motion
    inp = wait_for(lambda: not (i := device.read(obs, None)).intervene and i)
    assert not motion_of(inp).any()
