// robot-learning browser teleop page: camera views + keyboard / gamepad / on-screen joystick input.
// Protocol: hardware/teleop/browser/protocol.py. Plain JavaScript, no build step.
"use strict";
(() => {
  const token = new URLSearchParams(location.search).get("token") || "";
  const wsUrl = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws?token=${encodeURIComponent(token)}`;
  const SEND_MS = 50; // input/heartbeat period: well inside the server's 300 ms dead-man timeout
  const PING_MS = 1000;
  const DEADZONE = 0.1;
  const now = () => performance.timeOrigin + performance.now();
  const $ = (id) => document.getElementById(id);
  const clamp = (v) => Math.max(-1, Math.min(1, v));

  // key (KeyboardEvent.key, lower-case) -> [axis, direction] / one-shot event
  const KEY_AXES = {
    w: [0, 1], arrowup: [0, 1], s: [0, -1], arrowdown: [0, -1],
    a: [1, 1], arrowleft: [1, 1], d: [1, -1], arrowright: [1, -1],
    r: [2, 1], f: [2, -1],
  };
  const KEY_EVENTS = { enter: "success", backspace: "failure", z: "rerecord", n: "start", q: "stop" };

  const input = {
    keys: new Set(),
    held: { button: false, space: false, pad: false },
    joy: [0, 0],
    zbtn: 0,
    pad: [0, 0, 0],
    gripper: -1,
    padA: false,
  };
  const debug = { frames: 0, sent: 0, errors: [], lastSeq: 0 };
  window.teleopDebug = debug;
  let ws = null;
  let seq = 0;
  let episode = null;
  let lastSent = 0;
  let pending = null;
  let retryMs = 500;

  function intervening() {
    return input.held.button || input.held.space || input.held.pad;
  }

  function motion() {
    const m = [0, 0, 0];
    for (const k of input.keys) {
      const a = KEY_AXES[k];
      if (a) m[a[0]] += a[1];
    }
    m[0] += input.joy[0] + input.pad[0];
    m[1] += input.joy[1] + input.pad[1];
    m[2] += input.zbtn + input.pad[2];
    return m.map(clamp);
  }

  function send(msg) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify(msg));
    debug.sent += 1;
  }

  function sendInput() {
    pending = null;
    lastSent = now();
    seq += 1;
    debug.lastSeq = seq;
    send({ type: "input", seq, t: now(), motion: motion(), gripper: input.gripper, intervene: intervening() });
    $("intervene").classList.toggle("held", intervening());
  }

  // an input changed: send now (at most one message per 15 ms; the periodic send covers the rest)
  function changed() {
    if (pending) return;
    const wait = Math.max(0, 15 - (now() - lastSent));
    pending = setTimeout(sendInput, wait);
  }

  function tick() {
    pollGamepad();
    if (intervening() || now() - lastSent >= SEND_MS) sendInput();
    else send({ type: "heartbeat", t: now() });
  }

  function sendEvent(name) {
    send({ type: "event", name });
  }

  function setGripper(value) {
    input.gripper = value;
    $("gripper").textContent = `Gripper: ${value > 0 ? "closed" : "open"} (G)`;
    changed();
  }

  function releaseAll() {
    input.keys.clear();
    input.held.button = input.held.space = false;
    input.joy = [0, 0];
    input.zbtn = 0;
    centerKnob();
    changed();
  }

  // ------------------------------------------------------------------ keyboard
  window.addEventListener("keydown", (e) => {
    const k = e.key.toLowerCase();
    if (k === " ") {
      e.preventDefault();
      if (!input.held.space) { input.held.space = true; changed(); }
    } else if (KEY_AXES[k]) {
      e.preventDefault();
      if (!input.keys.has(k)) { input.keys.add(k); changed(); }
    } else if (k === "g") {
      if (!e.repeat) setGripper(-input.gripper);
    } else if (KEY_EVENTS[k]) {
      e.preventDefault();
      if (!e.repeat) sendEvent(KEY_EVENTS[k]);
    }
  });
  window.addEventListener("keyup", (e) => {
    const k = e.key.toLowerCase();
    if (k === " ") { input.held.space = false; changed(); }
    else if (input.keys.delete(k)) changed();
  });
  window.addEventListener("blur", releaseAll);
  document.addEventListener("visibilitychange", () => { if (document.hidden) releaseAll(); });

  // ------------------------------------------------------------------ buttons (pointer events)
  function holdButton(el, onDown, onUp) {
    el.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      try { el.setPointerCapture(e.pointerId); } catch (_) { /* synthetic pointer */ }
      onDown();
      changed();
    });
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      el.addEventListener(type, () => { onUp(); changed(); });
    }
    el.addEventListener("contextmenu", (e) => e.preventDefault());
  }
  holdButton($("intervene"), () => { input.held.button = true; }, () => { input.held.button = false; });
  holdButton($("zup"), () => { input.zbtn = 1; }, () => { input.zbtn = 0; });
  holdButton($("zdown"), () => { input.zbtn = -1; }, () => { input.zbtn = 0; });
  $("gripper").addEventListener("click", () => setGripper(-input.gripper));
  for (const name of ["start", "stop", "rerecord", "success", "failure"]) {
    $(name).addEventListener("click", () => sendEvent(name));
  }

  // ------------------------------------------------------------------ on-screen joystick
  const joystick = $("joystick");
  const knob = $("knob");
  function centerKnob() {
    knob.style.left = "55px";
    knob.style.top = "55px";
  }
  function moveJoystick(e) {
    const r = joystick.getBoundingClientRect();
    const radius = r.width / 2;
    let dx = (e.clientX - r.left - radius) / radius;
    let dy = (e.clientY - r.top - radius) / radius;
    const n = Math.hypot(dx, dy);
    if (n > 1) { dx /= n; dy /= n; }
    input.joy = [clamp(-dy), clamp(-dx)]; // screen up = +x (forward), screen left = +y
    knob.style.left = `${55 + dx * 55}px`;
    knob.style.top = `${55 + dy * 55}px`;
    changed();
  }
  let joyPointer = null;
  joystick.addEventListener("pointerdown", (e) => {
    e.preventDefault();
    joyPointer = e.pointerId;
    try { joystick.setPointerCapture(e.pointerId); } catch (_) { /* synthetic pointer */ }
    moveJoystick(e);
  });
  joystick.addEventListener("pointermove", (e) => { if (e.pointerId === joyPointer) moveJoystick(e); });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
    joystick.addEventListener(type, () => {
      joyPointer = null;
      input.joy = [0, 0];
      centerKnob();
      changed();
    });
  }

  // ------------------------------------------------------------------ gamepad
  function dz(v) {
    const a = Math.abs(v);
    return a <= DEADZONE ? 0 : (Math.sign(v) * (a - DEADZONE)) / (1 - DEADZONE);
  }
  function pollGamepad() {
    const pads = navigator.getGamepads ? navigator.getGamepads() : [];
    const pad = Array.from(pads || []).find((p) => p && p.connected);
    if (!pad) {
      if (input.held.pad) { input.held.pad = false; input.pad = [0, 0, 0]; }
      $("pad").textContent = "none";
      return;
    }
    $("pad").textContent = pad.id.slice(0, 40);
    const ax = (i) => (pad.axes.length > i ? pad.axes[i] : 0);
    const btn = (i) => pad.buttons.length > i && (pad.buttons[i].pressed || pad.buttons[i].value > 0.5);
    input.pad = [-dz(ax(1)), -dz(ax(0)), -dz(ax(3))];
    input.held.pad = btn(5) || btn(7);
    const a = btn(0);
    if (a && !input.padA) setGripper(-input.gripper);
    input.padA = a;
  }

  // ------------------------------------------------------------------ server messages
  function showFrame(msg) {
    const box = $("cameras");
    for (const [name, url] of Object.entries(msg.images || {})) {
      let img = $(`cam-${name}`);
      if (!img) {
        const fig = document.createElement("figure");
        img = document.createElement("img");
        img.id = `cam-${name}`;
        img.alt = name;
        const cap = document.createElement("figcaption");
        cap.textContent = name;
        fig.append(img, cap);
        box.append(fig);
        const none = $("nocam");
        if (none) none.remove();
      }
      img.src = url;
    }
    debug.frames += 1;
    const s = msg.status || {};
    $("role").textContent = msg.role || "-";
    $("r-episode").textContent = s.episode;
    $("r-step").textContent = s.step;
    $("r-success").textContent = s.success ? "yes" : "no";
    $("r-interventions").textContent = s.interventions;
    $("r-intervening").textContent = s.intervening ? "yes" : "no";
    $("r-latency").textContent = s.latency_ms == null ? "-" : `${s.latency_ms} ms`;
    $("r-msgs").textContent = `${s.accepted} / ${s.dropped}`;
    if (s.episode !== episode) {
      episode = s.episode;
      setGripper(s.gripper > 0 ? 1 : -1); // a new episode: follow the robot's gripper
    }
    const table = $("state");
    table.replaceChildren();
    for (const [k, v] of Object.entries(s.state || {})) {
      const tr = document.createElement("tr");
      const a = document.createElement("td");
      const b = document.createElement("td");
      a.textContent = k;
      b.textContent = Number(v).toFixed(3);
      tr.append(a, b);
      table.append(tr);
    }
  }

  function onMessage(ev) {
    let msg;
    try { msg = JSON.parse(ev.data); } catch (_) { return; }
    if (msg.type === "frame") showFrame(msg);
    else if (msg.type === "pong") $("r-rtt").textContent = `${(now() - msg.t).toFixed(1)} ms`;
    else if (msg.type === "error") {
      debug.errors.push(msg.code);
      $("error").textContent = `server: ${msg.message} (${msg.code}; ${msg.dropped} dropped)`;
    }
  }

  function connect() {
    ws = new WebSocket(wsUrl);
    ws.onopen = () => {
      retryMs = 500;
      seq = 0;
      $("conn").textContent = "connected";
      $("conn").className = "ok";
      sendInput();
    };
    ws.onmessage = onMessage;
    ws.onclose = () => {
      $("conn").textContent = "disconnected (retrying)";
      $("conn").className = "bad";
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 5000);
    };
  }

  setInterval(tick, SEND_MS);
  setInterval(() => send({ type: "ping", t: now() }), PING_MS);
  connect();
})();
