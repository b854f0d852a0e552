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
// Keys correct the drawing only while the drawing is what the user last touched
let inPhotos = false;
for (const type of ["pointerdown", "focusin"]) {
  document.addEventListener(type, (event) => {
    inPhotos = Boolean(event.target.closest && event.target.closest("#photo-section"));
  });
}
document.addEventListener("keydown", (event) => {
  if (feedback.hidden || !lastAnswer || inPhotos) return;
  if (event.key >= "0" && event.key <= "9") correct(Number(event.key));
  else if (event.key === "Enter" && lastAnswer.digit !== null) correct(lastAnswer.digit);
});

async function correct(label) {
  const answer = lastAnswer;
  if (!answer) return;
  const [ok, said] = await store(answer.input, label, answer.digit);
  thanks.textContent = said;
  if (ok) lastAnswer = null;  // one correction per drawing
}

// A server that listens beyond its own machine wants a token with each correction: the page
// takes it from its address (?token=..., as `mnist-cnn serve` prints it) and keeps it for the
// tab, out of the address bar, so a copied link does not pass it on; else it asks once.
const params = new URLSearchParams(location.search);
let token = params.get("token") || sessionStorage.getItem("feedback-token") || "";
if (params.has("token")) {
  sessionStorage.setItem("feedback-token", token);
  params.delete("token");
  history.replaceState(null, "", location.pathname + (params.size ? `?${params}` : ""));
}

// A correction (the 28x28 the model saw, the digit it really is) to the feedback store.
async function store(pixels, label, predicted, asked = false) {
  try {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const response = await fetch("/api/feedback", {
      method: "POST",
      headers,
      body: JSON.stringify({ pixels, label, predicted }),
    });
    const reply = await response.json();
    if (response.ok) return [true, `thanks: ${reply.total} corrections stored`];
    if (response.status === 401 && !asked) {
      const given = prompt("This server needs its token to store corrections:");
      if (given) {
        token = given.trim();
        sessionStorage.setItem("feedback-token", token);
        return store(pixels, label, predicted, true);
      }
    }
    return [false, reply.detail || `error ${response.status}`];
  } catch (err) {
    return [false, `not stored (${err})`];
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

// Read a photo: shrunk in the browser to what the server reads (a phone photo is larger than a
// request may be), sent to /api/read-numbers, shown with each digit boxed and correctable.
const MAX_SIDE = 1024;
const photoInput = document.getElementById("photo");
const photoView = document.getElementById("photo-view");
const photoStatus = document.getElementById("photo-status");
const number = document.getElementById("number");
const photoDigits = document.getElementById("photo-digits");
const photoThanks = document.getElementById("photo-thanks");
const numbersView = document.getElementById("numbers");
const numbersTools = document.getElementById("numbers-tools");

// `capture` opens the camera straight away on a phone, with no way to pick a saved photo:
// so one input for each
for (const input of [photoInput, document.getElementById("camera")]) {
  input.addEventListener("change", () => {
    if (input.files.length) readPhoto(input.files[0]);
  });
}

async function readPhoto(file) {
  number.setAttribute("aria-busy", "true");
  photoStatus.textContent = "reading…";
  photoThanks.textContent = "";
  try {
    const picture = await shrunk(file);
    const body = new FormData();
    body.append("file", await new Promise((r) => picture.toBlob(r, "image/jpeg", 0.92)), "photo.jpg");
    const response = await fetch("/api/read-numbers", { method: "POST", body });
    const answer = await response.json();
    if (!response.ok) {
      showPhoto(picture, null);
      photoStatus.textContent = answer.detail || `error ${response.status}`;
      return;
    }
    photoStatus.textContent = "";
    showPhoto(picture, answer);
  } catch (err) {
    photoStatus.textContent = `could not read this photo (${err.message || err})`;
  } finally {
    number.setAttribute("aria-busy", "false");
  }
}

async function shrunk(file) {
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    throw new Error("not an image the browser can open");
  }
  const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  return canvas;
}

// The page as read: the photo with every digit and mark boxed, each number in a field of its
// own (a line of fields a line of writing) to be corrected before it is copied or saved as CSV,
// and each digit's card below to send a correction to the feedback store.
function showPhoto(picture, page) {
  photoView.width = picture.width;
  photoView.height = picture.height;
  const view = photoView.getContext("2d");
  view.drawImage(picture, 0, 0);
  photoDigits.replaceChildren();
  numbersView.replaceChildren();
  const numbers = page ? page.lines.flat() : [];
  photoView.dataset.boxes = numbers.reduce((n, one) => n + one.digits.length, 0);
  numbersTools.hidden = !numbers.length;
  if (!page) return showNumber();
  const k = picture.width / page.size[0];
  view.lineWidth = Math.max(2, picture.width / 300);
  if (page.sheet) {
    view.strokeStyle = "#3b6fd8";
    view.beginPath();
    page.sheet.forEach(([x, y], i) => (i ? view.lineTo(x * k, y * k) : view.moveTo(x * k, y * k)));
    view.closePath();
    view.stroke();
  }
  page.lines.forEach((line) => {
    const row = document.createElement("div");
    row.className = "line";
    line.forEach((one) => row.appendChild(numberField(one)));
    numbersView.appendChild(row);
  });
  numbers.forEach((one) => {
    one.digits.forEach((d, i) => {
      const [x0, y0, x1, y1] = d.box.map((v) => v * k);
      view.strokeStyle = view.fillStyle = d.digit === null ? "#d26a00" : "#1b9e4b";
      view.strokeRect(x0, y0, x1 - x0, y1 - y0);
      view.font = `bold ${Math.max(14, (y1 - y0) * 0.4)}px system-ui, sans-serif`;
      const text = d.digit === null ? "?" : String(d.digit);  // its confidence is on its card
      view.fillText(text, x0, y0 > 24 ? y0 - view.lineWidth * 2 : y1 + 20);
      photoDigits.appendChild(digitCard(d, i, one));
    });
    one.marks.forEach((m) => {  // a decimal point, a comma, a minus sign, as the reader found them
      const [x0, y0, x1, y1] = m.box.map((v) => v * k);
      view.strokeStyle = view.fillStyle = "#8a2be2";
      view.strokeRect(x0, y0, x1 - x0, y1 - y0);
      // how sure the reader is that the mark is that kind
      const sure = m.confidence === null ? "" : ` ${Math.round(m.confidence * 100)}%`;
      view.fillText(m.kind + sure, x0, y1 + 20);
    });
  });
  showNumber();
}

// A number's text, to be corrected by hand; the field is the number's from then on.
function numberField(one) {
  const field = document.createElement("input");
  field.className = "number";
  field.value = one.text;
  field.setAttribute("aria-label", "a number read");
  field.size = Math.max(3, one.text.length + 1);
  field.addEventListener("input", () => showNumber());
  one.field = field;
  return field;
}

// The numbers as the fields now hold them: a row a line of writing.
function numbersRead() {
  return [...numbersView.children].map((line) => [...line.children].map((f) => f.value.trim()));
}

function showNumber() {
  const found = numbersRead();
  number.textContent = found.length ? found.map((r) => r.join("  ")).join(" / ") : "–";
}

function csv() {
  const cell = (v) => (/[",\n]/.test(v) ? `"${v.replaceAll('"', '""')}"` : v);
  return numbersRead().map((r) => r.map(cell).join(",")).join("\n") + "\n";
}

document.getElementById("copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(csv());
    photoThanks.textContent = "copied";
  } catch (err) {
    photoThanks.textContent = `not copied (${err.message || err})`;
  }
});

document.getElementById("download").addEventListener("click", () => {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([csv()], { type: "text/csv" }));
  link.download = "numbers.csv";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
});

// The number's text with its i-th digit (not counting marks and spaces) made `digit`.
function withDigit(text, i, digit) {
  let seen = -1;
  return [...text].map((c) => (/[0-9?]/.test(c) && ++seen === i ? String(digit) : c)).join("");
}

// One digit: its 28x28, its reading (or "?" and the likeliest digits), and 0-9 to correct it.
function digitCard(d, i, answer) {
  const card = document.createElement("div");
  card.className = d.digit === null ? "digit unsure" : "digit";
  const seen28 = document.createElement("canvas");
  seen28.width = seen28.height = 28;
  const image = seen28.getContext("2d").createImageData(28, 28);
  d.input.flat().forEach((v, j) => {
    image.data.set([v, v, v, 255], 4 * j);
  });
  seen28.getContext("2d").putImageData(image, 0, 0);
  const read = document.createElement("div");
  read.className = "read";
  read.textContent = d.digit === null ? "?" : String(d.digit);
  const alt = document.createElement("div");
  alt.className = "alt";
  alt.textContent = d.digit === null
    ? "maybe " + d.top3.map(([g, p]) => `${g} (${Math.round(100 * p)}%)`).join(", ")
    : `${(100 * d.confidence).toFixed(1)}%`;
  card.append(seen28, read, alt);
  if (feedback.dataset.enabled === "yes") card.appendChild(fixButtons(d, i, answer, read));
  return card;
}

function fixButtons(d, i, answer, read) {
  const fix = document.createElement("div");
  fix.className = "fix";
  fix.setAttribute("aria-label", `digit ${i + 1} is really`);
  for (let g = 0; g < 10; g++) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = g;
    button.dataset.digit = g;
    button.addEventListener("click", async () => {
      const [ok, said] = await store(d.input, g, d.digit);
      photoThanks.textContent = said;
      if (!ok) return;
      fix.querySelectorAll("button").forEach((b) => {  // one correction per digit
        b.classList.toggle("chosen", b === button);
        b.disabled = true;
      });
      read.textContent = String(g);
      answer.digits[i] = { ...d, digit: g, fixed: true };
      answer.field.value = withDigit(answer.field.value, i, g);
      showNumber();
    });
    fix.appendChild(button);
  }
  return fix;
}
