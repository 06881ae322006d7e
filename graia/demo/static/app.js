// The Graia demo page: a drawing pad classified as you draw, the network's insides, a Train tab.
"use strict";

const $ = (id) => document.getElementById(id);
const INK_SIDE = 112; // the drawing is sent at this resolution; the server preprocesses it

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}
const postJSON = (path, obj) =>
  api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(obj) });

// ---------------------------------------------------------------- tabs and header
document.querySelectorAll(".tab").forEach((tab) =>
  tab.addEventListener("click", () => {
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === tab));
    document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === tab.dataset.tab));
  })
);

let state = null;
function showModel(model) {
  $("model-label").textContent = model.label;
  $("model-sizes").textContent = `(${model.sizes.join("-")}, ${model.rule || "no rule"}, input ${model.input.join("x")})`;
  const select = $("model-select");
  const options = state.pretrained.map((n) => [n, `pretrained: ${n}`]);
  options.push(...state.trained.map((label) => [label, label]));
  const current = options.find(([, label]) => label === model.label);
  if (!current) options.push(["", model.label]);
  select.replaceChildren(...options.map(([value, label]) => new Option(label, value, false, label === model.label)));
}
async function refreshState() {
  state = await api("/api/state");
  $("backend").textContent = state.backend;
  $("train-backend").textContent = state.backend;
  $("train-dataset").replaceChildren(...state.datasets.map((d) => new Option(d, d)));
  $("train-rule").replaceChildren(...state.rules.map((r) => new Option(r, r, false, r === state.default_rule)));
  $("train-width").max = state.limits.width;
  $("train-epochs").max = state.limits.epochs;
  showModel(state.model);
}

// ---------------------------------------------------------------- drawing pad
const pad = $("pad");
const ctx = pad.getContext("2d", { willReadFrequently: true });
function clearPad() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
}
clearPad();
let drawing = false;
let last = null;
function point(event) {
  const r = pad.getBoundingClientRect();
  return [((event.clientX - r.left) * pad.width) / r.width, ((event.clientY - r.top) * pad.height) / r.height];
}
pad.addEventListener("pointerdown", (e) => {
  drawing = true;
  last = point(e);
  pad.setPointerCapture(e.pointerId);
  stroke(last);
});
pad.addEventListener("pointermove", (e) => {
  if (drawing) stroke(point(e));
});
["pointerup", "pointercancel"].forEach((type) =>
  pad.addEventListener(type, () => {
    drawing = false;
    predictSoon();
  })
);
function stroke(p) {
  ctx.strokeStyle = "#000";
  ctx.lineWidth = 40; // thick, like the strokes of the 8x8 digits once scaled down
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(last[0], last[1]);
  ctx.lineTo(p[0], p[1]);
  ctx.stroke();
  last = p;
  predictSoon();
}
$("clear").addEventListener("click", () => {
  clearPad();
  predictSoon();
});
$("image-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  const img = await createImageBitmap(file);
  clearPad();
  const s = Math.min(pad.width / img.width, pad.height / img.height);
  ctx.drawImage(img, (pad.width - img.width * s) / 2, (pad.height - img.height * s) / 2, img.width * s, img.height * s);
  // Show light-on-dark images (like MNIST) as dark ink on white, the pad's convention.
  const data = ctx.getImageData(0, 0, pad.width, pad.height);
  let sum = 0;
  for (let i = 0; i < data.data.length; i += 4) sum += data.data[i];
  if (sum / (data.data.length / 4) < 128) {
    for (let i = 0; i < data.data.length; i += 4) for (let c = 0; c < 3; c++) data.data[i + c] = 255 - data.data[i + c];
    ctx.putImageData(data, 0, 0);
  }
  predictSoon();
});

// The ink (255 - luminance) at INK_SIDE x INK_SIDE, base64.
const small = document.createElement("canvas");
small.width = small.height = INK_SIDE;
const smallCtx = small.getContext("2d", { willReadFrequently: true });
function inkBase64() {
  smallCtx.drawImage(pad, 0, 0, INK_SIDE, INK_SIDE);
  const rgba = smallCtx.getImageData(0, 0, INK_SIDE, INK_SIDE).data;
  let text = "";
  for (let i = 0; i < rgba.length; i += 4) {
    const lum = (rgba[i] * 299 + rgba[i + 1] * 587 + rgba[i + 2] * 114) / 1000;
    text += String.fromCharCode(255 - Math.round(lum));
  }
  return btoa(text);
}

// As you draw: one request in flight at a time, the latest drawing sent next.
let inFlight = false;
let pending = false;
function predictSoon() {
  if (inFlight) {
    pending = true;
    return;
  }
  inFlight = true;
  pending = false;
  postJSON("/api/predict", { width: INK_SIDE, height: INK_SIDE, ink: inkBase64() })
    .then((result) => {
      $("sample-info").textContent = "";
      show(result);
    })
    .catch((err) => showError(err))
    .finally(() => {
      inFlight = false;
      if (pending) predictSoon();
    });
}

// ---------------------------------------------------------------- showing an answer
function paint(canvas, height, width, values, color, scale) {
  canvas.width = width;
  canvas.height = height;
  canvas.style.width = `${width * scale}px`;
  canvas.style.height = `${height * scale}px`;
  const c = canvas.getContext("2d");
  const img = c.createImageData(width, height);
  values.forEach((v, i) => img.data.set([...color(v), 255], i * 4));
  c.putImageData(img, 0, 0);
}
const gray = (v) => [255 - v, 255 - v, 255 - v];
function figure(caption, height, width, values, color, maxPixels) {
  const fig = document.createElement("figure");
  const canvas = document.createElement("canvas");
  paint(canvas, height, width, values, color, Math.max(1, Math.floor(maxPixels / Math.max(height, width))));
  const cap = document.createElement("figcaption");
  cap.textContent = caption;
  fig.append(canvas, cap);
  return fig;
}

function show(result) {
  const names = result.class_names;
  $("chosen").textContent = names[result.chosen];
  $("chosen").dataset.class = result.chosen;
  $("timing").textContent = `server time ${result.ms} ms`;
  $("bars").replaceChildren(
    ...result.outputs.map((v, i) => {
      const bar = document.createElement("div");
      bar.className = "bar" + (i === result.chosen ? " chosen" : "");
      bar.innerHTML = `<span class="name"></span><span class="track"><div class="fill" style="width:${(v / 255) * 100}%"></div></span><span class="value">${v}</span>`;
      bar.querySelector(".name").textContent = names[i];
      return bar;
    })
  );
  $("layers").replaceChildren(
    ...result.layers.map((l) => {
      const units = l.name === "input" ? `${l.height}x${l.width}` : `${l.values.length} cells`;
      const fig = figure(`${l.name} (${units})`, l.height, l.width, l.values, gray, 140);
      fig.querySelector("canvas").className = "layer";
      return fig;
    })
  );
  const [fh, fw] = result.field_shape;
  const m = result.field_max;
  const diverging = (v) => (v >= 0 ? [255, 255 - (255 * v) / m, 255 - (255 * v) / m] : [255 + (255 * v) / m, 255 + (255 * v) / m, 255]);
  $("fields").replaceChildren(
    ...result.fields.map((f) => figure(`unit ${f.unit}: ${f.activation}`, fh, fw, f.values, diverging, 84))
  );
  if (result.model) showModel(result.model);
  $("model-error").hidden = true;
}
function showError(err) {
  $("model-error").textContent = err.message;
  $("model-error").hidden = false;
}

// ---------------------------------------------------------------- test images and models
$("sample").addEventListener("click", async () => {
  try {
    const result = await api(`/api/sample?dataset=${$("sample-dataset").value}`);
    const s = result.sample;
    $("sample-info").textContent = `${s.dataset} test image #${s.index}, label: ${s.label}`;
    clearPad();
    const input = result.layers[0];
    // Show the test image on the pad too, as dark ink.
    const tmp = document.createElement("canvas");
    paint(tmp, input.height, input.width, input.values, gray, 1);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(tmp, 0, 0, pad.width, pad.height);
    ctx.imageSmoothingEnabled = true;
    show(result);
  } catch (err) {
    showError(err);
  }
});
$("model-select").addEventListener("change", async (e) => {
  try {
    state = await postJSON("/api/model/select", { name: e.target.value });
    showModel(state.model);
    predictSoon();
  } catch (err) {
    showError(err);
  }
});
$("model-file").addEventListener("change", async (e) => {
  const file = e.target.files[0];
  if (!file) return;
  try {
    state = await api(`/api/model/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
    showModel(state.model);
    $("model-error").hidden = true;
    predictSoon();
  } catch (err) {
    showError(err);
  } finally {
    e.target.value = "";
  }
});

// ---------------------------------------------------------------- training
function drawCurve(history, epochs) {
  const c = $("curve");
  const g = c.getContext("2d");
  const W = c.width, H = c.height, L = 40, B = 30;
  g.clearRect(0, 0, W, H);
  g.strokeStyle = "#999";
  g.fillStyle = "#444";
  g.font = "12px sans-serif";
  g.beginPath();
  g.moveTo(L, 10);
  g.lineTo(L, H - B);
  g.lineTo(W - 10, H - B);
  g.stroke();
  for (let a = 0; a <= 1.0001; a += 0.25) {
    const y = H - B - a * (H - B - 10);
    g.fillText(a.toFixed(2), 4, y + 4);
  }
  g.fillText("epoch", W - 50, H - 8);
  const n = Math.max(epochs, 1);
  const x = (i) => L + ((i + 1) / n) * (W - L - 20);
  const y = (a) => H - B - a * (H - B - 10);
  [["accuracy", "#1f77b4"], ["val_accuracy", "#d62728"]].forEach(([key, color]) => {
    const values = history[key] || [];
    g.strokeStyle = g.fillStyle = color;
    g.lineWidth = 2;
    g.beginPath();
    values.forEach((v, i) => (i ? g.lineTo(x(i), y(v)) : g.moveTo(x(i), y(v))));
    g.stroke();
    values.forEach((v, i) => g.fillRect(x(i) - 3, y(v) - 3, 6, 6));
  });
  c.dataset.points = (history.accuracy || []).length;
}

let polling = null;
async function poll() {
  try {
    const s = await api("/api/train/status");
    if (s.phase === "idle") return;
    $("train-progress").max = s.epochs;
    $("train-progress").value = s.epoch;
    const acc = s.history.val_accuracy ? s.history.val_accuracy.at(-1) : null;
    $("train-status").textContent =
      `${s.phase}: epoch ${s.epoch}/${s.epochs} on ${s.backend || "…"}` + (acc !== null ? `, test accuracy ${(acc * 100).toFixed(2)}%` : "");
    drawCurve(s.history, s.epochs);
    if (s.error) {
      $("train-error").textContent = s.error;
      $("train-error").hidden = false;
    }
    if (!s.running) {
      clearInterval(polling);
      polling = null;
      $("train-start").disabled = false;
      if (s.phase === "done" || s.phase === "cancelled") {
        $("train-download").hidden = false;
        await refreshState();
        predictSoon(); // what is on the pad, through the new network
      }
    }
  } catch (err) {
    $("train-error").textContent = err.message;
    $("train-error").hidden = false;
  }
}
$("train-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("train-error").hidden = true;
  $("train-download").hidden = true;
  try {
    await postJSON("/api/train", {
      dataset: $("train-dataset").value,
      rule: $("train-rule").value,
      width: Number($("train-width").value),
      epochs: Number($("train-epochs").value),
    });
    $("train-start").disabled = true;
    drawCurve({}, Number($("train-epochs").value));
    polling = setInterval(poll, 300);
  } catch (err) {
    $("train-error").textContent = err.message;
    $("train-error").hidden = false;
  }
});

refreshState().then(predictSoon).catch(showError);
