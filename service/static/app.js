// STS browser client: microphone -> AudioWorklet (16 kHz PCM s16le) -> WebSocket protocol v1 -> live turns;
// or a file -> POST /v1/transcriptions. No build step, no dependencies. See DESIGN.md sections 4-6.
"use strict";

const TARGET_RATE = 16000; // Hz sent to the server
const FRAME_SAMPLES = 1600; // 100 ms per binary frame
const $ = (id) => document.getElementById(id);

/** Everything the page shows: the turns of one session (mic stream or file), keyed by turn_id. */
const session = {
  turns: new Map(), // turn_id -> {turn_id, channel, speaker, start, end?, text, final, ...}
  model: "",
  duration: 0, // seconds of audio (the end message, the REST transcript, or what was sent)
  name: "transcript", // base name of downloads
  ended: false,
};

/** The live microphone stream, while one runs. */
let live = null;

// -- transcript model -------------------------------------------------------------------------------
function idNumber(id) {
  const n = parseInt(String(id).replace(/^t/, ""), 10);
  return Number.isFinite(n) ? n : 0;
}

function labelKey(label) {
  const n = parseInt(String(label).replace(/^S/, ""), 10);
  return Number.isFinite(n) && /^S?\d+$/.test(label) ? n : 1 << 30;
}

function byStart(a, b) {
  return a.start - b.start || a.channel - b.channel || idNumber(a.turn_id) - idNumber(b.turn_id);
}

/** The transcript JSON of DESIGN section 4, from the final turns (as service/formats.build_transcript). */
function transcript() {
  const turns = [...session.turns.values()].filter((t) => t.final).sort(byStart);
  const speakers = [...new Set(turns.map((t) => t.speaker))].sort((a, b) => labelKey(a) - labelKey(b) || (a < b ? -1 : a > b ? 1 : 0));
  const clean = turns.map(({ final, ...t }) => t); // eslint-disable-line no-unused-vars
  return { duration: Math.round(session.duration * 1000) / 1000, model: session.model, speakers, turns: clean };
}

function clock(seconds, sep) {
  let ms = Math.max(0, Math.round(seconds * 1000));
  const h = Math.floor(ms / 3600000);
  ms -= h * 3600000;
  const m = Math.floor(ms / 60000);
  ms -= m * 60000;
  const s = Math.floor(ms / 1000);
  ms -= s * 1000;
  const p = (v, n) => String(v).padStart(n, "0");
  return `${p(h, 2)}:${p(m, 2)}:${p(s, 2)}${sep}${p(ms, 3)}`;
}

/** SubRip, one cue per turn (as service/formats.to_srt). */
function toSrt(t) {
  return t.turns
    .map((u, i) => `${i + 1}\n${clock(u.start, ",")} --> ${clock(Math.max(u.end, u.start), ",")}\n${u.speaker}: ${u.text}\n`)
    .join("\n");
}

// -- rendering --------------------------------------------------------------------------------------
function speakerClass(label) {
  const n = labelKey(label);
  return n < 1 << 30 ? `spk-${((n - 1) % 6) + 1}` : "spk-1";
}

function fmtTime(s) {
  const m = Math.floor(s / 60);
  return `${String(m).padStart(2, "0")}:${(s - 60 * m).toFixed(2).padStart(5, "0")}`;
}

function renderTurn(t) {
  let li = document.querySelector(`#turns li[data-turn-id="${CSS.escape(t.turn_id)}"]`);
  if (!li) {
    li = document.createElement("li");
    li.dataset.turnId = t.turn_id;
    li.innerHTML = '<span class="time"></span><span class="who"></span><span class="text"></span>';
    // keep the list in transcript order (start, channel, turn number)
    const after = [...$("turns").children].find(
      (o) => byStart({ start: Number(o.dataset.start), channel: Number(o.dataset.channel), turn_id: o.dataset.turnId }, t) > 0,
    );
    $("turns").insertBefore(li, after || null);
  }
  li.className = `turn ${t.final ? "final" : "partial"}`;
  li.dataset.final = String(t.final);
  li.dataset.speaker = t.speaker;
  li.dataset.channel = String(t.channel);
  li.dataset.start = String(t.start);
  li.dataset.end = t.final ? String(t.end) : "";
  li.querySelector(".time").textContent = t.final ? `${fmtTime(t.start)}–${fmtTime(t.end)}` : `${fmtTime(t.start)}–`;
  const who = li.querySelector(".who");
  who.textContent = t.speaker;
  who.className = `who ${speakerClass(t.speaker)}`;
  li.querySelector(".text").textContent = t.text;
}

function renderSpeakers() {
  const labels = [...new Set([...session.turns.values()].map((t) => t.speaker))].sort((a, b) => labelKey(a) - labelKey(b));
  $("speakers").replaceChildren(
    ...labels.map((s) => {
      const li = document.createElement("li");
      li.className = speakerClass(s);
      const n = [...session.turns.values()].filter((t) => t.final && t.speaker === s).length;
      li.textContent = `${s} (${n})`;
      return li;
    }),
  );
  const any = [...session.turns.values()].some((t) => t.final);
  $("download-json").disabled = $("download-srt").disabled = !any;
}

function resetSession(name) {
  session.turns.clear();
  session.model = "";
  session.duration = 0;
  session.name = name || "transcript";
  session.ended = false;
  $("turns").replaceChildren();
  renderSpeakers();
  showError("");
  $("model").textContent = "";
}

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text || state;
}

function showError(message) {
  $("error").hidden = !message;
  $("error").textContent = message;
  if (message) setStatus("error", "error");
}

// -- server events ----------------------------------------------------------------------------------
function onServerMessage(m) {
  if (m.type === "ready") {
    session.model = m.model;
    $("model").textContent = `model ${m.model} · session ${m.session_id}`;
  } else if (m.type === "partial") {
    const old = session.turns.get(m.turn_id);
    if (old && old.final) return; // a final turn is never replaced by a partial
    const t = { turn_id: m.turn_id, channel: m.channel, speaker: m.speaker, start: m.start, text: m.text, final: false };
    session.turns.set(m.turn_id, t);
    renderTurn(t);
  } else if (m.type === "turn") {
    const { type, ...turn } = m; // eslint-disable-line no-unused-vars
    const t = { ...turn, final: true };
    session.turns.set(t.turn_id, t);
    session.duration = Math.max(session.duration, t.end);
    renderTurn(t);
    renderSpeakers();
  } else if (m.type === "relabel") {
    // a revision of speaker labels (during the stream or at its end): the listed final turns change speaker
    for (const r of m.turns) {
      const t = session.turns.get(r.turn_id);
      if (!t) continue;
      t.speaker = r.speaker;
      renderTurn(t);
    }
    renderSpeakers();
  } else if (m.type === "end") {
    session.duration = m.duration;
    session.ended = true;
  } else if (m.type === "error") {
    showError(`${m.code}: ${m.message}`);
  }
}

// -- microphone streaming ---------------------------------------------------------------------------
/** The "max speakers" hint (1-64), or null. */
function maxSpeakers() {
  const n = parseInt($("max-speakers").value, 10);
  return Number.isFinite(n) && n >= 1 && n <= 64 ? n : null;
}

function streamUrl(token) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const q = token ? `?token=${encodeURIComponent(token)}` : "";
  return `${proto}//${location.host}/v1/stream${q}`;
}

async function startMic() {
  if (live) return;
  $("start").disabled = true;
  resetSession(`live-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  setStatus("starting", "starting…");
  const l = { ws: null, ctx: null, media: null, node: null, ready: false, backlog: [], sent: 0, stopping: false, flushed: false, stopPending: false };
  live = l;
  try {
    l.media = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    l.ctx = new AudioContext();
    await l.ctx.audioWorklet.addModule("pcm-worklet.js");
    l.node = new AudioWorkletNode(l.ctx, "pcm-capture", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      outputChannelCount: [1],
      processorOptions: { targetRate: TARGET_RATE, frameSamples: FRAME_SAMPLES },
    });
    l.node.port.onmessage = (e) => onPcm(l, e.data);
    const mute = l.ctx.createGain();
    mute.gain.value = 0; // keeps the graph pulled without playing anything
    l.ctx.createMediaStreamSource(l.media).connect(l.node);
    l.node.connect(mute).connect(l.ctx.destination);
    await l.ctx.resume();
    openSocket(l);
    $("stop").disabled = false;
  } catch (err) {
    showError(`cannot start the microphone: ${err && err.message ? err.message : err}`);
    teardown(l);
  }
}

function openSocket(l) {
  const ws = new WebSocket(streamUrl($("token").value.trim()));
  ws.binaryType = "arraybuffer";
  l.ws = ws;
  ws.onopen = () => {
    const start = {
      type: "start", sample_rate: TARGET_RATE, encoding: "pcm_s16le", interim_results: $("interim").checked, relabel: true,
    };
    if (maxSpeakers()) start.max_speakers = maxSpeakers();
    ws.send(JSON.stringify(start));
  };
  ws.onmessage = (e) => {
    let m;
    try {
      m = JSON.parse(e.data);
    } catch {
      return;
    }
    if (m.type === "ready") {
      l.ready = true;
      setStatus("live", "live");
      for (const b of l.backlog) ws.send(b);
      l.backlog = [];
      if (l.stopPending) sendStop(l);
    }
    onServerMessage(m);
  };
  ws.onclose = (e) => {
    const clean = e.code === 1000 && session.ended;
    if (!clean && !$("error").textContent) showError(`connection closed (${e.code}${e.reason ? ": " + e.reason : ""})`);
    if (clean) setStatus("done", `done · ${session.duration.toFixed(1)} s`);
    teardown(l);
  };
}

function onPcm(l, data) {
  if (data === "flushed") {
    l.flushed = true;
    if (l.ready && l.ws.readyState === WebSocket.OPEN) sendStop(l);
    else l.stopPending = true; // stopped before the server was ready: stop once it is
    return;
  }
  if (l.flushed) return; // after stop
  l.sent += data.pcm.byteLength / 2;
  $("clock").textContent = `${(l.sent / TARGET_RATE).toFixed(1)} s`;
  $("level").style.width = `${Math.min(100, Math.round(data.peak * 140))}%`;
  if (l.ready && l.ws.readyState === WebSocket.OPEN) l.ws.send(data.pcm);
  else if (l.ws === null || l.ws.readyState <= WebSocket.OPEN) l.backlog.push(data.pcm); // until ready
}

function sendStop(l) {
  for (const b of l.backlog) l.ws.send(b);
  l.backlog = [];
  l.ws.send(JSON.stringify({ type: "stop" }));
}

function stopMic() {
  const l = live;
  if (!l || l.stopping) return;
  l.stopping = true;
  $("stop").disabled = true;
  setStatus("finishing", "finishing…");
  if (l.media) l.media.getTracks().forEach((t) => t.stop());
  if (l.node) l.node.port.postMessage("flush"); // the worklet posts its last samples, then "flushed" -> stop
  if (!session.duration) session.duration = l.sent / TARGET_RATE;
}

function teardown(l) {
  if (l.media) l.media.getTracks().forEach((t) => t.stop());
  if (l.ctx && l.ctx.state !== "closed") l.ctx.close().catch(() => {});
  if (l.ws && l.ws.readyState <= WebSocket.OPEN) l.ws.close();
  if (live === l) live = null;
  $("start").disabled = false;
  $("stop").disabled = true;
  $("level").style.width = "0";
}

// -- batch (REST) -----------------------------------------------------------------------------------
async function transcribeFile(file) {
  if (!file) return;
  if (live) stopMic();
  resetSession(file.name.split(".")[0] || "audio");
  setStatus("uploading", `transcribing ${file.name}…`);
  const form = new FormData();
  form.append("file", file, file.name);
  const token = $("token").value.trim();
  try {
    const query = new URLSearchParams({ format: "json" });
    if (maxSpeakers()) query.set("max_speakers", String(maxSpeakers()));
    const r = await fetch(`/v1/transcriptions?${query}`, {
      method: "POST",
      body: form,
      headers: token ? { Authorization: `Bearer ${token}` } : {},
    });
    const body = await r.json().catch(() => null);
    if (!r.ok) {
      const e = body && body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${r.status}`;
      showError(`${file.name}: ${e}`);
      return;
    }
    session.model = body.model;
    session.duration = body.duration;
    session.ended = true;
    $("model").textContent = `model ${body.model} · ${file.name}`;
    for (const t of body.turns) {
      const turn = { ...t, final: true };
      session.turns.set(t.turn_id, turn);
      renderTurn(turn);
    }
    renderSpeakers();
    setStatus("done", `done · ${body.duration.toFixed(1)} s`);
  } catch (err) {
    showError(`${file.name}: ${err && err.message ? err.message : err}`);
  }
}

// -- downloads --------------------------------------------------------------------------------------
function download(text, filename, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// -- wiring -----------------------------------------------------------------------------------------
function init() {
  const params = new URLSearchParams(location.search);
  if (params.get("token")) $("token").value = params.get("token");
  $("start").addEventListener("click", startMic);
  $("stop").addEventListener("click", stopMic);
  $("clear").addEventListener("click", () => !live && resetSession());
  $("download-json").addEventListener("click", () => download(JSON.stringify(transcript(), null, 2) + "\n", `${session.name}.json`, "application/json"));
  $("download-srt").addEventListener("click", () => download(toSrt(transcript()), `${session.name}.srt`, "application/x-subrip"));
  $("file").addEventListener("change", (e) => {
    const file = e.target.files[0];
    e.target.value = ""; // choosing the same file again is a new request
    transcribeFile(file);
  });
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    transcribeFile(e.dataTransfer.files[0]);
  });
  if (!window.AudioWorkletNode || !navigator.mediaDevices) {
    $("start").disabled = true;
    $("start").title = "this browser (or an insecure http:// origin other than localhost) has no microphone API";
  }
}

// for tests and the console: the transcript and the seconds of audio sent
window.sts = { transcript, toSrt, secondsSent: () => (live ? live.sent / TARGET_RATE : null), session };
document.addEventListener("DOMContentLoaded", init);
