// The page of `centernet serve`: send one image to /v1/detect, draw its boxes, filter them.
// Plain browser JavaScript, no build step and nothing loaded from elsewhere.
//
// The server is asked once per image at a low threshold; the score slider, the class
// filter and a lower max-detections only re-filter that answer, in the order the server
// applies them (the best `max_dets` boxes at or above the threshold), so what is drawn is
// what the server would answer for those settings. Each drawn box is an SVG <rect
// class="box"> whose data-* attributes hold the server's numbers (class, score, box).
// A detection's class is `class_index` (the model's 0-based class), `class_name` and
// `category_id` (docs/output-formats.md); `class_id` is its deprecated name, not used here.
"use strict";

(() => {
  const REQUEST_THRESHOLD = 0.05; // the lowest score the slider reaches
  const KEY_STORAGE = "centernet-api-key"; // sessionStorage: gone when the tab is closed
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const ui = {
    model: $("model"), key: $("api-key"), drop: $("drop"), file: $("file"),
    threshold: $("threshold"), thresholdValue: $("threshold-value"), maxDets: $("max-dets"),
    classes: $("classes"), saveJson: $("save-json"), savePng: $("save-png"),
    message: $("message"), stage: $("stage"), image: $("image"), overlay: $("overlay"),
    empty: $("empty"), statImage: $("stat-image"), statFile: $("stat-file"),
    statBoxes: $("stat-boxes"),
    statServer: $("stat-server"), statRoundTrip: $("stat-round-trip"),
  };
  const state = {
    classNames: [], hidden: new Set(), answer: null, askedMaxDets: 0, file: null,
    imageUrl: null, serial: 0, timing: null,
  };

  // -- colours: those of `centernet detect --save-images` (draw.class_colour) ------------

  function classColour(id) {
    const h = (id * 0.618033988749895) % 1, s = 0.85, v = 0.95;
    const i = Math.floor(h * 6), f = h * 6 - i;
    const p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    const rgb = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][i % 6];
    const [r, g, b] = rgb.map((c) => Math.floor(c * 255));
    return `rgb(${r}, ${g}, ${b})`;
  }

  // -- talking to the server -----------------------------------------------------------

  class Problem extends Error {
    constructor(status, detail, retryAfter) {
      super(detail);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  function authHeaders() {
    const key = ui.key.value.trim();
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  // Relative URLs: the page works behind a proxy that serves it under a sub-path.
  async function call(path, options = {}) {
    let response;
    try {
      response = await fetch(path, {
        ...options, cache: "no-store", headers: { ...authHeaders(), ...(options.headers || {}) },
      });
    } catch (err) {
      throw new Problem(0, err.message || String(err));
    }
    const text = await response.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const detail = body && typeof body.error === "string" ? body.error
        : text.trim().slice(0, 300) || response.statusText;
      throw new Problem(response.status, detail, response.headers.get("Retry-After"));
    }
    return { body, response };
  }

  const TITLES = {
    0: "Cannot reach the server", 400: "The server cannot use this file",
    401: "Not authorized", 404: "Not found", 408: "The upload took too long",
    413: "Too large", 500: "The server failed", 503: "The server is busy",
    504: "The server took too long",
  };

  function describe(problem) {
    if (!(problem instanceof Problem)) return `Unexpected error in the page: ${problem}`;
    const title = TITLES[problem.status] || "Error";
    let text = `${title} (${problem.status || "no answer"}): ${problem.message}`;
    if (problem.status === 401) text += ". Enter the right API key at the top right.";
    if (problem.status === 503) text += `. Try again in ${problem.retryAfter || 1} s.`;
    return text;
  }

  function showMessage(text, kind, status) {
    ui.message.textContent = text;
    ui.message.className = `message ${kind}`;
    ui.message.dataset.status = status === undefined ? "" : String(status);
    ui.message.hidden = false;
  }

  function clearMessage() {
    ui.message.hidden = true;
    ui.message.textContent = "";
  }

  // -- the model -----------------------------------------------------------------------

  async function loadModel() {
    ui.model.textContent = "Reading the model…";
    ui.model.classList.remove("error");
    try {
      const { body: index } = await call("v2/repository/index", { method: "POST" });
      const name = index[0].name;
      const { body: meta } = await call(`v2/models/${encodeURIComponent(name)}`);
      showModel(meta);
    } catch (problem) {
      ui.model.classList.add("error");
      if (problem.status !== 401) ui.model.textContent = `Cannot read the model: ${describe(problem)}`;
      else if (!ui.key.value.trim()) ui.model.textContent = "This server needs an API key: enter it on the right.";
      else ui.model.textContent = `Not authorized: ${problem.message}. Enter the right key on the right.`;
    }
  }

  function showModel(meta) {
    const spec = meta.centernet || {};
    const [height, width] = spec.input_size || [0, 0];
    const engine = String(meta.platform || "").replace(/^centernet_/, "");
    const parts = [
      meta.name, spec.arch, spec.precision, `input ${width}×${height}`, engine,
      `${(spec.class_names || []).length} classes`,
    ];
    ui.model.textContent = parts.filter(Boolean).join(" · ");
    ui.model.title = `classes: ${(spec.class_names || []).join(", ")}`;
    ui.maxDets.max = spec.output_mode === "topk" ? spec.max_objects : 1000;
    setClasses(spec.class_names || []);
  }

  function setClasses(names) {
    if (names.join("\n") === state.classNames.join("\n")) return;
    state.classNames = names;
    state.hidden.clear();
    ui.classes.querySelectorAll("label").forEach((node) => node.remove());
    names.forEach((name, id) => {
      const label = document.createElement("label");
      label.className = "class-option";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = true;
      box.value = String(id);
      box.addEventListener("change", () => {
        if (box.checked) state.hidden.delete(id);
        else state.hidden.add(id);
        render();
      });
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.backgroundColor = classColour(id);
      label.append(box, swatch, document.createTextNode(name));
      ui.classes.append(label);
    });
  }

  // -- sending an image ----------------------------------------------------------------

  function maxDets() {
    const limit = Number(ui.maxDets.max) || 1000;
    const value = Math.round(Number(ui.maxDets.value));
    return Number.isFinite(value) && value >= 1 ? Math.min(value, limit) : 100;
  }

  async function send(file) {
    const serial = ++state.serial;
    state.file = file;
    const name = fileName();
    showMessage(`Detecting in ${name}…`, "info");
    const asked = maxDets();
    // image/* as it is; anything else as plain bytes, so that the server judges the content
    const type = file.type && file.type.startsWith("image/") ? file.type
      : "application/octet-stream";
    const started = performance.now();
    try {
      const { body, response } = await call(
        `v1/detect?threshold=${REQUEST_THRESHOLD}&max_dets=${asked}`,
        { method: "POST", body: file, headers: { "Content-Type": type } },
      );
      const roundTrip = performance.now() - started;
      if (serial !== state.serial) return; // a newer image was sent meanwhile
      state.answer = body;
      state.askedMaxDets = asked;
      state.timing = { server: serverTime(response), roundTrip };
      const shown = await showImage(file);
      if (serial !== state.serial) return;
      clearMessage();
      if (!shown) {
        showMessage(
          `The server read ${name}, but this browser cannot display it; the download still works.`,
          "info",
        );
      }
      render();
    } catch (problem) {
      if (serial !== state.serial) return;
      forgetAnswer();
      showMessage(describe(problem), "error", problem.status);
    }
  }

  function serverTime(response) {
    const header = response.headers.get("Server-Timing") || "";
    const match = /(?:^|,)\s*app;[^,]*dur=([0-9.]+)/.exec(header);
    return match ? Number(match[1]) : null;
  }

  function showImage(file) {
    if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
    state.imageUrl = URL.createObjectURL(file);
    return new Promise((resolve) => {
      ui.image.onload = () => resolve(true);
      ui.image.onerror = () => resolve(false);
      ui.image.src = state.imageUrl;
      ui.stage.hidden = false;
      ui.empty.hidden = true;
    });
  }

  function forgetAnswer() {
    state.answer = null;
    state.timing = null;
    ui.stage.hidden = true;
    ui.empty.hidden = false;
    render();
  }

  // -- drawing -------------------------------------------------------------------------

  // The boxes to show: the server's order (score, descending), as it filters them.
  function visible() {
    if (!state.answer) return [];
    const threshold = Number(ui.threshold.value);
    const count = Math.min(maxDets(), state.askedMaxDets);
    return state.answer.detections
      .filter((d) => d.score >= threshold)
      .slice(0, count)
      .filter((d) => !state.hidden.has(d.class_index));
  }

  function label(d) {
    return `${d.class_name} ${d.score.toFixed(2)}`;
  }

  function svgNode(tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
    return node;
  }

  function render() {
    ui.thresholdValue.textContent = Number(ui.threshold.value).toFixed(2);
    ui.overlay.replaceChildren();
    const shown = visible();
    const answer = state.answer;
    ui.saveJson.disabled = ui.savePng.disabled = !answer;
    if (!answer) {
      ui.statImage.textContent = ui.statBoxes.textContent = ui.statFile.textContent = "–";
      ui.statServer.textContent = ui.statRoundTrip.textContent = "–";
      return;
    }
    const scale = ui.image.clientWidth / answer.width || 1;
    ui.overlay.setAttribute("width", ui.image.clientWidth);
    ui.overlay.setAttribute("height", ui.image.clientHeight);
    const labels = svgNode("g", { class: "labels" }); // above every box
    ui.overlay.append(labels);
    for (const d of [...shown].reverse()) { // lowest score first: the best on top
      const [x0, y0, x1, y1] = d.box;
      const colour = classColour(d.class_index);
      ui.overlay.insertBefore(svgNode("rect", {
        class: "box", x: x0 * scale, y: y0 * scale,
        width: Math.max(0, (x1 - x0) * scale), height: Math.max(0, (y1 - y0) * scale),
        stroke: colour, "data-class": d.class_name, "data-class-index": d.class_index,
        "data-category-id": d.category_id, "data-score": d.score, "data-box": d.box.join(","),
      }), labels);
      const group = svgNode("g", { class: "label" });
      const background = svgNode("rect", { fill: colour });
      const text = svgNode("text", { x: 0, y: 0 });
      text.textContent = label(d);
      group.append(background, text);
      labels.append(group);
      const size = text.getBBox();
      const width = size.width || text.textContent.length * 7;
      const height = size.height || 14;
      const top = y0 * scale - height - 2 >= 0 ? y0 * scale - height - 2 : y0 * scale;
      const left = Math.max(0, Math.min(x0 * scale, ui.image.clientWidth - width - 6));
      text.setAttribute("x", left + 3);
      text.setAttribute("y", top + height - 3);
      background.setAttribute("x", left);
      background.setAttribute("y", top);
      background.setAttribute("width", width + 6);
      background.setAttribute("height", height + 2);
    }
    ui.statImage.textContent = `${answer.width}×${answer.height}`;
    ui.statFile.textContent = ui.statFile.title = fileName();
    ui.statBoxes.textContent = `${shown.length} of ${answer.detections.length}`;
    ui.statBoxes.title = `drawn of received (score ≥ ${REQUEST_THRESHOLD})`;
    const { server, roundTrip } = state.timing || {};
    ui.statServer.textContent = server == null ? "–" : `${server.toFixed(1)} ms`;
    ui.statRoundTrip.textContent = roundTrip == null ? "–" : `${roundTrip.toFixed(1)} ms`;
  }

  // -- downloads -----------------------------------------------------------------------

  function fileName() {
    return (state.file && state.file.name) || "pasted image";
  }

  function stem() {
    return fileName().replace(/\.[^.]*$/, "").replace(/\s+/g, "-") || "image";
  }

  function download(blob, name) {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  // A detection without the fields kept only for older clients (`class_id`).
  function current(d) {
    const { class_id: _deprecated, ...rest } = d;
    return rest;
  }

  function saveJson() {
    const answer = state.answer;
    if (!answer) return;
    const kept = state.classNames.filter((_, id) => !state.hidden.has(id));
    const document_ = {
      model: answer.model, file: (state.file && state.file.name) || null,
      width: answer.width, height: answer.height,
      threshold: Number(ui.threshold.value), max_dets: Math.min(maxDets(), state.askedMaxDets),
      classes: kept, detections: visible().map(current),
    };
    const blob = new Blob([JSON.stringify(document_, null, 2)], { type: "application/json" });
    download(blob, `${stem()}.detections.json`);
  }

  function savePng() {
    const answer = state.answer;
    if (!answer) return;
    const canvas = document.createElement("canvas");
    canvas.width = answer.width;
    canvas.height = answer.height;
    const context = canvas.getContext("2d");
    context.drawImage(ui.image, 0, 0, answer.width, answer.height);
    const side = Math.min(answer.width, answer.height);
    const line = Math.max(2, Math.round(side / 400));
    const font = Math.max(12, Math.round(side / 45));
    context.lineWidth = line;
    context.font = `${font}px sans-serif`;
    context.textBaseline = "top";
    for (const d of [...visible()].reverse()) {
      const [x0, y0, x1, y1] = d.box;
      const colour = classColour(d.class_index);
      context.strokeStyle = colour;
      context.strokeRect(x0, y0, x1 - x0, y1 - y0);
      const text = label(d);
      const width = context.measureText(text).width + 6;
      const height = font + 4;
      const top = y0 - height >= 0 ? y0 - height : y0;
      context.fillStyle = colour;
      context.fillRect(x0 - line / 2, top, width, height);
      context.fillStyle = "#000";
      context.fillText(text, x0 + 3 - line / 2, top + 2);
    }
    canvas.toBlob((blob) => download(blob, `${stem()}.detections.png`), "image/png");
  }

  // -- input ---------------------------------------------------------------------------

  function firstFile(list) {
    const files = [...(list || [])];
    return files.find((f) => f.type.startsWith("image/")) || files[0] || null;
  }

  ui.file.addEventListener("change", () => {
    const file = firstFile(ui.file.files);
    if (file) send(file);
    ui.file.value = ""; // the same file again is a new choice
  });
  ui.drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      ui.file.click();
    }
  });
  document.addEventListener("dragover", (event) => {
    event.preventDefault();
    ui.drop.classList.add("dragging");
  });
  document.addEventListener("dragleave", (event) => {
    if (!event.relatedTarget) ui.drop.classList.remove("dragging");
  });
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    ui.drop.classList.remove("dragging");
    const file = firstFile(event.dataTransfer && event.dataTransfer.files);
    if (file) send(file);
  });
  document.addEventListener("paste", (event) => {
    const file = firstFile(event.clipboardData && event.clipboardData.files);
    if (file) {
      event.preventDefault();
      send(file);
    }
  });
  ui.threshold.addEventListener("input", render);
  ui.maxDets.addEventListener("change", () => {
    if (state.answer && maxDets() > state.askedMaxDets && state.file) send(state.file);
    else render();
  });
  ui.saveJson.addEventListener("click", saveJson);
  ui.savePng.addEventListener("click", savePng);
  ui.key.value = sessionStorage.getItem(KEY_STORAGE) || "";
  ui.key.addEventListener("input", () => sessionStorage.setItem(KEY_STORAGE, ui.key.value.trim()));
  ui.key.addEventListener("change", loadModel);
  new ResizeObserver(() => render()).observe(ui.image);

  render();
  loadModel();
})();
