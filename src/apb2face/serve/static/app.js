// apb2face page: live sessions over /v1/live (see docs/serve.md for the protocol) and offline jobs over /v1/videos.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { ws: null, audio: null, mic: null, talking: false, latencies: [], frames: 0, clock: null, segments: [] };
window.apb2face = state; // for tests and the curious

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

async function loadIdentities() {
  const { identities } = await api("/v1/identities");
  for (const { name } of identities) $("identity").add(new Option(name, name));
  showIdentity();
}

function showIdentity() {
  $("identity-image").src = `/v1/identities/${encodeURIComponent($("identity").value)}.png`;
}

// ---------------------------------------------------------------------------------------------------- live

function unpack(buffer) {
  const size = new DataView(buffer).getUint32(0);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, size)));
  return [header, buffer.slice(4 + size)];
}

function audioContext() {
  if (!state.audio) state.audio = new AudioContext();
  return state.audio;
}

function setStatus(text, error = false) {
  $("live-status").textContent = text;
  $("live-status").className = error ? "error" : "";
}

function connect() {
  if (state.ws) return disconnect();
  const ctx = audioContext();
  ctx.resume();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/v1/live`);
  ws.binaryType = "arraybuffer";
  state.ws = ws;
  setStatus("connecting...");
  ws.onopen = () =>
    ws.send(JSON.stringify({ identity: $("identity").value, sample_rate: ctx.sampleRate, format: "jpeg", idle: true }));
  ws.onmessage = (event) => (typeof event.data === "string" ? onJson(JSON.parse(event.data)) : onBinary(event.data));
  ws.onclose = (event) => {
    if (state.ws === ws) {
      state.ws = null;
      stopTalking();
      enableLive(false);
      if (event.code === 1006 && state.frames === 0) setStatus("refused (server busy? see /healthz)", true);
      else if (!$("live-status").classList.contains("error")) setStatus("not connected");
    }
  };
}

function disconnect() {
  if (state.ws) state.ws.close();
}

function enableLive(on) {
  $("connect").textContent = on ? "Stop live session" : "Start live session";
  for (const id of ["talk", "say-text", "say-button"]) $(id).disabled = !on;
}

function onJson(message) {
  if (message.type === "ready") {
    enableLive(true);
    setStatus(`live: ${message.identity}, look-ahead ${message.lookahead_ms} ms`);
  } else if (message.type === "error") {
    setStatus(message.error, true);
  }
}

function onBinary(buffer) {
  const [header, payload] = unpack(buffer);
  if (header.type === "audio") return playSpeech(header, payload);
  if (header.type !== "frame") return;
  state.frames += 1;
  state.latencies.push(header.latency_ms);
  if (state.latencies.length > 100) state.latencies.shift();
  $("frames").textContent = state.frames;
  $("latency").textContent = Math.round(header.latency_ms);
  const sorted = [...state.latencies].sort((a, b) => a - b);
  $("latency-p50").textContent = Math.round(sorted[Math.floor(sorted.length / 2)]);
  const blob = new Blob([payload], { type: `image/${header.format}` });
  const due = frameDue(header.t);
  createImageBitmap(blob).then((bitmap) => {
    const wait = due === null ? 0 : Math.max(0, (due - audioContext().currentTime) * 1000);
    setTimeout(() => draw(bitmap), wait);
  });
}

function draw(bitmap) {
  const canvas = $("face");
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
}

// Spoken text comes back as audio with its place in stream time; frames inside it are shown when the audio plays
// their instant (the audio starts a little later than it arrived, so that frames have time to be rendered).
function playSpeech(header, payload) {
  const ctx = audioContext();
  const pcm = new Int16Array(payload);
  const buffer = ctx.createBuffer(1, pcm.length, header.sample_rate);
  const data = buffer.getChannelData(0);
  for (let i = 0; i < pcm.length; i++) data[i] = pcm[i] / 32768;
  const recent = state.latencies.length ? Math.max(...state.latencies.slice(-25)) : 300;
  const start = ctx.currentTime + Math.min(2, Math.max(0.3, recent / 1000 + 0.1));
  const t0 = header.sample / header.sample_rate;
  state.clock = start - t0; // audio-context time of stream time 0
  state.segments.push([t0, t0 + pcm.length / header.sample_rate]);
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(ctx.destination);
  source.start(start);
}

function frameDue(t) {
  if (state.clock === null) return null;
  return state.segments.some(([a, b]) => t >= a && t <= b) ? state.clock + t : null;
}

async function startTalking() {
  const ctx = audioContext();
  if (!state.mic) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true } });
    await ctx.audioWorklet.addModule("/static/pcm-worklet.js");
    const node = new AudioWorkletNode(ctx, "pcm-capture");
    node.port.onmessage = (event) => sendPcm(event.data);
    ctx.createMediaStreamSource(stream).connect(node);
    state.mic = { stream, node, pending: [] };
  }
  state.talking = true;
  $("talk").classList.add("on");
  $("talk").textContent = "Stop talking";
}

function stopTalking() {
  state.talking = false;
  $("talk").classList.remove("on");
  $("talk").textContent = "Talk";
}

function sendPcm(samples) {
  if (!state.talking || !state.ws || state.ws.readyState !== WebSocket.OPEN) return;
  const mic = state.mic;
  mic.pending.push(samples);
  const total = mic.pending.reduce((n, s) => n + s.length, 0);
  if (total < audioContext().sampleRate / 50) return; // send 20 ms at a time
  const pcm = new Int16Array(total);
  let offset = 0;
  for (const block of mic.pending) {
    for (let i = 0; i < block.length; i++) pcm[offset + i] = Math.max(-32768, Math.min(32767, block[i] * 32768));
    offset += block.length;
  }
  mic.pending = [];
  state.ws.send(pcm.buffer);
}

// ---------------------------------------------------------------------------------------------------- jobs

async function submitJob(event) {
  event.preventDefault();
  const form = new FormData();
  const ref = document.querySelector("input[name=ref]:checked").value;
  const speech = document.querySelector("input[name=speech]:checked").value;
  if (ref === "photo") {
    if (!$("photo").files[0]) return jobStatus("choose a photo", true);
    form.append("photo", $("photo").files[0]);
  } else {
    form.append("identity", $("identity").value);
  }
  if (speech === "audio") {
    if (!$("audio").files[0]) return jobStatus("choose an audio file", true);
    form.append("audio", $("audio").files[0]);
  } else {
    form.append("text", $("job-text").value);
  }
  $("submit").disabled = true;
  $("progress").value = 0;
  $("player").removeAttribute("src");
  try {
    let job = await api("/v1/videos", { method: "POST", body: form });
    while (job.state === "queued" || job.state === "running") {
      jobStatus(`${job.state} ${Math.round(100 * job.progress)}%`);
      $("progress").value = job.progress;
      await new Promise((resolve) => setTimeout(resolve, 500));
      job = await api(`/v1/videos/${job.id}`);
    }
    $("progress").value = job.state === "done" ? 1 : job.progress;
    if (job.state === "done") {
      jobStatus(`done: ${job.frames} frames`);
      $("player").src = job.video;
      $("player").play().catch(() => {});
    } else {
      jobStatus(`${job.state}${job.error ? ": " + job.error : ""}`, job.state === "failed");
    }
  } catch (error) {
    jobStatus(error.message, true);
  } finally {
    $("submit").disabled = false;
  }
}

function jobStatus(text, error = false) {
  $("job-status").textContent = text;
  $("job-status").className = error ? "error" : "";
}

// ---------------------------------------------------------------------------------------------------- wiring

$("identity").addEventListener("change", showIdentity);
$("connect").addEventListener("click", connect);
$("talk").addEventListener("click", () =>
  state.talking ? stopTalking() : startTalking().catch((e) => setStatus(`microphone: ${e.message}`, true)),
);
$("say").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("say-text").value.trim();
  if (text && state.ws) state.ws.send(JSON.stringify({ text }));
  $("say-text").value = "";
});
$("job").addEventListener("submit", submitJob);
loadIdentities().catch((error) => setStatus(error.message, true));
