// The draw-a-digit page: strokes on a black canvas, sent as PNG to /api/predict while drawing.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const seen = document.getElementById("seen").getContext("2d");
const bars = document.getElementById("bars");
const prediction = document.getElementById("prediction");
const confidence = document.getElementById("confidence");
const status = document.getElementById("status");

const rows = [];
for (let d = 0; d < 10; d++) {
  const label = document.createElement("span");
  label.textContent = d;
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.appendChild(document.createElement("div"));
  const value = document.createElement("span");
  value.className = "p";
  bars.append(label, bar, value);
  rows.push({ label, bar, value });
}

function clearPad() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, pad.width, pad.height);
  seen.clearRect(0, 0, 28, 28);
  prediction.textContent = "–";
  prediction.className = "";
  confidence.textContent = "";
  status.textContent = "";
  rows.forEach((r) => show(r, 0, false));
  inked = false;
  lastAnswer = null;
  feedback.hidden = true;
}

function show(row, p, top) {
  row.bar.firstChild.style.width = `${(100 * p).toFixed(1)}%`;
  row.value.textContent = p ? p.toFixed(2) : "";
  row.bar.classList.toggle("top", top);
}

let drawing = false;
let inked = false;
let last = null;

function point(event) {
  const box = pad.getBoundingClientRect();
  return { x: (event.clientX - box.left) * pad.width / box.width,
           y: (event.clientY - box.top) * pad.height / box.height };
}

function stroke(from, to) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 18;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
  inked = true;
}

pad.addEventListener("pointerdown", (event) => {
  drawing = true;
  pad.setPointerCapture(event.pointerId);
  last = point(event);
  stroke(last, last);
  schedule();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const p = point(event);
  stroke(last, p);
  last = p;
  schedule();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!drawing) return;
    drawing = false;
    schedule();
  });
}
document.getElementById("clear").addEventListener("click", clearPad);

// At most one request in flight; a drawing that changed meanwhile is sent when it returns.
let inFlight = false;
let dirty = false;

// aria-busy is "true" from a change of the drawing until its answer is shown.
function schedule() {
  dirty = true;
  prediction.setAttribute("aria-busy", "true");
  if (!inFlight) send();
}

async function send() {
  if (inFlight) return;  // the answer in flight sends again if the drawing changed meanwhile
  if (!dirty || !inked) {
    prediction.setAttribute("aria-busy", "false");
    return;
  }
  dirty = false;
  inFlight = true;
  try {
    const blob = await new Promise((resolve) => pad.toBlob(resolve, "image/png"));
    const body = new FormData();
    body.append("file", blob, "drawing.png");
    const response = await fetch("/api/predict", { method: "POST", body });
    const answer = await response.json();
    if (!inked) return;  // cleared while the request was out
    if (!response.ok) {
      status.textContent = answer.detail || `error ${response.status}`;
      return;
    }
    status.textContent = "";
    render(answer);
  } catch (err) {
    status.textContent = `no answer from the server (${err})`;
  } finally {
    inFlight = false;
    if (dirty) setTimeout(send, 30);
    else prediction.setAttribute("aria-busy", "false");
  }
}

function render(answer) {
  const best = answer.probabilities.indexOf(Math.max(...answer.probabilities));
  answer.probabilities.forEach((p, d) => show(rows[d], p, d === best));
  if (answer.unsure) {
    prediction.textContent = "unsure";
    prediction.className = "unsure";
  } else {
    prediction.textContent = String(answer.digit);
    prediction.className = "";
  }
  prediction.dataset.digit = answer.digit === null ? "" : String(answer.digit);
  confidence.textContent = `${(100 * answer.confidence).toFixed(1)}%`;
  const image = seen.createImageData(28, 28);
  answer.input.forEach((row, y) => row.forEach((v, x) => {
    const i = 4 * (28 * y + x);
    image.data[i] = image.data[i + 1] = image.data[i + 2] = v;
    image.data[i + 3] = 255;
  }));
  seen.putImageData(image, 0, 0);
  lastAnswer = answer;
  feedback.hidden = feedback.dataset.enabled !== "yes";
  thanks.textContent = "";
}

// Corrections: the 28x28 the model saw and the digit it really is go to /api/feedback.
const feedback = document.getElementById("feedback");
const thanks = document.getElementById("thanks");
let lastAnswer = null;
for (let d = 0; d < 10; d++) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = d;
  button.dataset.digit = d;
  button.addEventListener("click", () => correct(d));
  document.getElementById("digits").appendChild(button);
}
document.getElementById("right").addEventListener("click", () => {
  if (lastAnswer && lastAnswer.digit !== null) correct(lastAnswer.digit);
});
document.addEventListener("keydown", (event) => {
  if (feedback.hidden || !lastAnswer) return;
  if (event.key >= "0" && event.key <= "9") correct(Number(event.key));
  else if (event.key === "Enter" && lastAnswer.digit !== null) correct(lastAnswer.digit);
});

async function correct(label) {
  const answer = lastAnswer;
  if (!answer) return;
  try {
    const response = await fetch("/api/feedback", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ pixels: answer.input, label, predicted: answer.digit }),
    });
    const reply = await response.json();
    thanks.textContent = response.ok
      ? `thanks: ${reply.total} corrections stored`
      : (reply.detail || `error ${response.status}`);
    if (response.ok) lastAnswer = null;  // one correction per drawing
  } catch (err) {
    thanks.textContent = `not stored (${err})`;
  }
}

fetch("/api/feedback/stats").then((r) => {
  if (r.ok) feedback.dataset.enabled = "yes";
}).catch(() => {});

fetch("/api/model").then((r) => r.json()).then((m) => {
  const acc = m.test_accuracy ? `, ${(100 * m.test_accuracy).toFixed(2)}% on MNIST test` : "";
  document.getElementById("model").textContent = `model: ${m.name}${acc} (${m.engine})`;
}).catch(() => {});

clearPad();
