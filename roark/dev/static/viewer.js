// roark dev viewer: the calls list and one call's page. No build step: plain browser JS
// over the viewer's JSON API, with wavesurfer.js (vendored) drawing the two lanes from
// peaks computed on the server, and an <audio> element streaming the WAV by range requests.
"use strict";

const app = document.getElementById("app");
const COLORS = {
  caller: "#2f6fdf", callerDone: "#1d4ea6", callerSoft: "rgba(47,111,223,0.16)",
  agent: "#1f9d6b", agentDone: "#136b48", agentSoft: "rgba(31,157,107,0.16)",
  tool: "#b45ad6", toolError: "#d9480f", interrupt: "#d9480f",
};
const LANE_HEIGHT = 80;

// ------------------------------------------------------------------ helpers

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clock(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const m = Math.floor(seconds / 60);
  const s = seconds - m * 60;
  return `${m}:${s.toFixed(1).padStart(4, "0")}`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const m = Math.floor(seconds / 60);
  return `${m} min ${Math.round(seconds - m * 60)} s`;
}

function secs(value) {
  return value === null || value === undefined ? "—" : `${value.toFixed(3)} s`;
}

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

async function getJSON(url, signal) {
  const response = await fetch(url, { signal });
  if (!response.ok) throw new Error(`${url}: ${response.status} ${await response.text()}`);
  return response.json();
}

function wholeBadge(call) {
  return call.whole
    ? el("span", { class: "badge ok", title: "call-started, every chunk and call-ended" }, "whole")
    : el("span", { class: "badge bad", title: call.problems.join("\n") }, call.problems[0] || "incomplete");
}

// The page is interactive: its content is drawn and the player can seek (tests and the
// page-load benchmark wait for this).
function markReady() {
  if (document.body.dataset.ready) return;
  window.roarkReadyAt = performance.now();
  document.body.dataset.ready = "1";
}

// ------------------------------------------------------------------ the calls list

function showList() {
  const params = new URLSearchParams(location.search);
  let agent = params.get("agent") || "";
  const select = el("select", { id: "agent-filter", "aria-label": "agent" });
  const body = el("tbody");
  const count = el("span", { class: "muted" });
  app.replaceChildren(
    el("h1", {}, "Calls"),
    el("div", { class: "toolbar" }, el("label", {}, "Agent ", select), count),
    el("table", { id: "calls" },
      el("thead", {}, el("tr", {},
        el("th", {}, "Started"), el("th", {}, "Agent"), el("th", { class: "num" }, "Duration"),
        el("th", {}, "End reason"), el("th", { class: "num" }, "Turns"),
        el("th", { class: "num" }, "Tool calls"), el("th", {}, "Test"), el("th", {}, "Arrived"))),
      body),
  );
  let controller = null;

  function render(data) {
    const agents = ["", ...data.agents];
    select.replaceChildren(...agents.map((a) =>
      el("option", { value: a, selected: a === agent }, a || "all agents")));
    count.textContent = `${data.calls.length} call(s)`;
    body.replaceChildren(...data.calls.map(listRow));
    if (!data.calls.length) {
      body.append(el("tr", {}, el("td", { colspan: 8, class: "muted" },
        "No calls yet. Point your agent at this server (ROARK_BASE_URL, ROARK_API_KEY) and make a call.")));
    }
    markReady();
  }

  async function poll() {
    controller?.abort();
    const mine = (controller = new AbortController());
    let version = null;
    while (!mine.signal.aborted) {
      const query = new URLSearchParams();
      if (agent) query.set("agent", agent);
      if (version !== null) query.set("after", version);
      try {
        const data = await getJSON(`/api/calls?${query}`, mine.signal);
        version = data.version;
        render(data);
      } catch (err) {
        if (mine.signal.aborted) return;
        await new Promise((r) => setTimeout(r, 2000)); // the server restarts: try again
      }
    }
  }

  select.addEventListener("change", () => {
    agent = select.value;
    history.replaceState(null, "", agent ? `/?agent=${encodeURIComponent(agent)}` : "/");
    poll();
  });
  poll();
}

function listRow(call) {
  const tools = call.tool_calls
    ? `${call.tool_calls}${call.tool_errors ? ` (${call.tool_errors} failed)` : ""}` : "0";
  return el("tr", { class: "call-row", dataset: { id: call.id }, onclick: () => { location.href = call.url; } },
    el("td", {}, el("a", { href: call.url }, when(call.started_at))),
    el("td", {}, call.agent_name || call.agent_id || "—",
      call.agent_name ? el("div", { class: "muted" }, call.agent_id) : null),
    el("td", { class: "num" }, duration(call.duration_s)),
    el("td", {}, call.reason || (call.ended ? "—" : el("span", { class: "muted" }, "in progress"))),
    el("td", { class: "num" }, call.turns ?? "—"),
    el("td", { class: "num" }, tools),
    el("td", {}, call.is_test ? el("span", { class: "badge test" }, "test") : "no"),
    el("td", {}, wholeBadge(call)),
  );
}

// ------------------------------------------------------------------ one call

async function showCall(key) {
  const base = `/api/calls/${encodeURIComponent(key)}`;
  const peaksPromise = fetch(`${base}/peaks`).then((r) => (r.ok ? r.arrayBuffer() : null));
  let page;
  try {
    page = await getJSON(base);
  } catch (err) {
    app.replaceChildren(el("p", { class: "error" }, `No such call: ${key}`), el("a", { href: "/" }, "All calls"));
    return;
  }
  const call = page.call;
  const player = el("div", { class: "panel", id: "recording" });
  const transcript = el("div", { class: "panel transcript", id: "transcript" });
  app.replaceChildren(...[
    el("p", {}, el("a", { href: "/" }, "← all calls")),
    el("h1", {}, page.agent_name || call.agent_id || "call", " ", el("span", { class: "muted" }, call.id)),
    el("div", { class: "toolbar" },
      wholeBadge(call), call.is_test ? el("span", { class: "badge test" }, "test") : null,
      el("span", {}, `ended: ${call.reason || "—"}`), el("span", {}, duration(call.duration_s)),
      el("span", { class: "muted" }, when(call.started_at))),
    call.whole ? null : el("p", { class: "error" }, "Not whole: " + call.problems.join("; ")),
    player,
    el("h2", {}, "Transcript"), transcript,
  ].filter(Boolean));
  const latency = latencySection(page);
  app.append(latency, toolsSection(page), detailsSection(page));
  const peaks = await peaksPromise;
  const viewer = page.audio && peaks ? drawRecording(player, page, peaks) : noRecording(player);
  renderTranscript(transcript, page, viewer);
  window.roarkViewer = { page, ws: viewer.ws };
  if (viewer.ws) viewer.ws.once("ready", markReady);
  else markReady();
}

function noRecording(player) {
  player.append(el("p", { class: "muted" }, "No recording: no chunk of this call was stored."));
  return { ws: null, seek: () => {} };
}

function splitPeaks(buffer) {
  const bytes = new Uint8Array(buffer);
  const n = bytes.length / 2;
  const left = new Float32Array(n);
  const right = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    left[i] = bytes[2 * i] / 255;
    right[i] = bytes[2 * i + 1] / 255;
  }
  return [left, right];
}

function drawRecording(player, page, peaksBuffer) {
  const lanes = el("div", { id: "lanes" },
    el("span", { class: "lane-label caller" }, "Caller (left)"),
    el("span", { class: "lane-label agent" }, "Agent (right)"),
    el("div", { id: "waveform" }));
  const playButton = el("button", { id: "play", type: "button" }, "Play");
  const time = el("span", { class: "clock", id: "clock" }, "0:00.0");
  const zoom = el("input", { type: "range", id: "zoom", min: 0, max: 200, value: 0, "aria-label": "zoom" });
  player.append(lanes, el("div", { id: "timeline" }),
    el("div", { class: "player" }, playButton, time, el("label", {}, "zoom ", zoom),
      el("span", { class: "muted" }, "click a turn, a mark or the waveform to play from there")));

  const regions = WaveSurfer.Regions.create();
  const total = page.analysis.duration_s;
  const ws = WaveSurfer.create({
    container: "#waveform",
    height: LANE_HEIGHT,
    url: page.audio.url,
    peaks: splitPeaks(peaksBuffer),
    duration: total,
    splitChannels: [
      { waveColor: COLORS.caller, progressColor: COLORS.callerDone },
      { waveColor: COLORS.agent, progressColor: COLORS.agentDone },
    ],
    cursorColor: "#d9480f",
    cursorWidth: 2,
    dragToSeek: true,
    plugins: [regions, timeline(total)],
  });
  const seek = (seconds, play = true) => {
    ws.setTime(seconds);
    if (play) ws.play();
  };
  ws.on("decode", () => addMarks(regions, page));
  regions.on("region-clicked", (region, event) => {
    event.stopPropagation();
    seek(region.start);
  });
  playButton.addEventListener("click", () => ws.playPause());
  ws.on("play", () => { playButton.textContent = "Pause"; });
  ws.on("pause", () => { playButton.textContent = "Play"; });
  ws.on("timeupdate", (t) => { time.textContent = `${clock(t)} / ${clock(total)}`; });
  zoom.addEventListener("input", () => ws.zoom(Number(zoom.value)));
  // the marks' labels only where there is room for them (a long call zoomed out has none)
  const marks = page.tools.length + page.transcript.filter((t) => t.interrupted).length;
  const crowded = () => {
    const width = Math.max(lanes.clientWidth, Number(zoom.value) * total);
    lanes.classList.toggle("crowded", marks > 0 && width / marks < 90);
  };
  ws.on("zoom", crowded);
  crowded();
  return { ws, seek };
}

function timeline(total) {
  const nice = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900];
  const step = nice.find((s) => total / s <= 12) || 1800;
  return WaveSurfer.Timeline.create({
    container: "#timeline", timeInterval: step / 5, primaryLabelInterval: step,
    secondaryLabelInterval: step, formatTimeCallback: (t) => clock(t).replace(/\.0$/, ""),
  });
}

function addMarks(regions, page) {
  page.transcript.forEach((turn) => {
    const channel = { user: 0, assistant: 1 }[turn.role];
    if (channel === undefined) return;
    regions.addRegion({
      start: turn.audioOffsetMs / 1000,
      end: Math.max(turn.endAudioOffsetMs, turn.audioOffsetMs + 50) / 1000,
      color: channel ? COLORS.agentSoft : COLORS.callerSoft,
      channelIdx: channel, drag: false, resize: false,
    });
    if (turn.interrupted) {
      regions.addRegion({
        start: turn.endAudioOffsetMs / 1000, channelIdx: 1, drag: false, color: COLORS.interrupt,
        content: el("span", { class: "region-label", title: "the caller cut this turn off" }, "interrupted"),
      });
    }
  });
  page.tools.forEach((tool) => {
    regions.addRegion({
      start: tool.at_s, channelIdx: 1, drag: false, color: tool.is_error ? COLORS.toolError : COLORS.tool,
      content: el("span", { class: "region-label tool", title: `${tool.name}(${tool.arguments}) → ${tool.result}` },
        `${tool.is_error ? "failed " : ""}${tool.name}()`),
    });
  });
}

function renderTranscript(container, page, viewer) {
  const checks = new Map((page.analysis?.alignment || []).map((a) => [a.turn, a]));
  const rows = page.transcript.map((turn, i) => {
    const start = turn.audioOffsetMs / 1000;
    const check = checks.get(i);
    return el("div", {
      class: `turn ${turn.role}`, dataset: { turn: i, start },
      title: "play from here", onclick: () => viewer.seek(start),
    },
      el("span", { class: "time" }, clock(start)),
      el("span", { class: "role" }, turn.role === "user" ? "caller" : turn.role === "assistant" ? "agent" : turn.role),
      el("span", {}, turn.content,
        turn.interrupted ? el("span", { class: "flag" }, " (interrupted)") : null,
        check && !check.ok ? el("div", { class: "flag alignment" }, `⚠ audio not where the transcript says: ${check.problem}`) : null),
    );
  });
  container.replaceChildren(...(rows.length ? rows : [el("p", { class: "muted" }, "No transcript.")]));
  if (!viewer.ws) return;
  const starts = page.transcript.map((t) => [t.audioOffsetMs / 1000, t.endAudioOffsetMs / 1000]);
  let current = null;
  viewer.ws.on("timeupdate", (t) => {
    const found = starts.findIndex(([a, b]) => a <= t && t < b);
    if (found === current) return;
    rows[current]?.classList.remove("playing");
    rows[found]?.classList.add("playing");
    current = found;
  });
}

function latencySection(page) {
  const analysis = page.analysis;
  const section = el("section", { id: "latency" }, el("h2", {}, "Latency per agent turn"));
  if (!analysis || !analysis.latency.length) {
    section.append(el("p", { class: "muted" }, analysis
      ? "No agent turn answered a caller turn on the recording."
      : "No recording to measure on."));
    return section;
  }
  const summary = analysis.latency_summary;
  section.append(
    el("p", { class: "muted" },
      "Heard: the silence the caller heard, measured on the recording from the end of the caller's speech (left) ",
      "to the start of the agent's audio (right). It adds up: heard = EOU + LLM TTFT + TTS TTFB + remainder. ",
      "STT (transcription delay) runs inside the EOU delay. Stages are LiveKit's metrics for the turn; ",
      "a negative remainder means they count more than the caller heard (they overlap, or LiveKit saw the speech end earlier)."),
    el("table", {},
      el("thead", {}, el("tr", {},
        ...["Agent turn", "Caller stopped", "Agent started", "Heard", "EOU", "(STT)", "LLM TTFT", "TTS TTFB", "Remainder"]
          .map((h, i) => el("th", { class: i ? "num" : "" }, h)))),
      el("tbody", {}, analysis.latency.map((row) => el("tr", { dataset: { turn: row.turn } },
        el("td", {}, `#${row.turn} ${(page.transcript[row.turn]?.content || "").slice(0, 40)}`),
        el("td", { class: "num" }, clock(row.caller_end_s)),
        el("td", { class: "num" }, clock(row.agent_start_s)),
        el("td", { class: "num heard" }, secs(row.heard_s)),
        el("td", { class: "num" }, secs(row.eou_s)),
        el("td", { class: "num muted" }, secs(row.stt_s)),
        el("td", { class: "num" }, secs(row.llm_ttft_s)),
        el("td", { class: "num" }, secs(row.tts_ttfb_s)),
        el("td", { class: "num" }, secs(row.remainder_s))))),
      el("tfoot", {}, el("tr", {},
        el("td", { colspan: 3 }, "Call: median / worst heard"),
        el("td", { class: "num", id: "latency-summary" }, `${secs(summary.median_s)} / ${secs(summary.worst_s)}`),
        el("td", { colspan: 5 })))),
  );
  return section;
}

function toolsSection(page) {
  const section = el("section", { id: "tools" }, el("h2", {}, "Tool calls"));
  if (!page.tools.length) {
    section.append(el("p", { class: "muted" }, "No tool calls."));
    return section;
  }
  section.append(el("table", {},
    el("thead", {}, el("tr", {}, ...["At", "Tool", "Arguments", "Result"].map((h) => el("th", {}, h)))),
    el("tbody", {}, page.tools.map((tool) => el("tr", {},
      el("td", {}, clock(tool.at_s)),
      el("td", {}, tool.name, el("div", { class: "muted" }, tool.id)),
      el("td", {}, el("pre", {}, tool.arguments)),
      el("td", {}, tool.is_error ? el("div", { class: "flag" }, "error") : null,
        el("pre", {}, tool.result ?? "(no result)")))))));
  return section;
}

function detailsSection(page) {
  const ids = el("dl", { class: "ids" }, Object.entries(page.ids).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  const downloads = el("p", { class: "downloads" },
    page.downloads.recording ? el("a", { href: page.downloads.recording, id: "download-wav" }, "Recording (WAV)") : null,
    page.downloads.call_started ? el("a", { href: page.downloads.call_started }, "call-started JSON, as received") : null,
    page.downloads.call_ended ? el("a", { href: page.downloads.call_ended, id: "download-json" }, "call-ended JSON, as received") : null);
  const kinds = Object.entries(page.metric_kinds).map(([k, n]) => `${k} ×${n}`).join(", ") || "none";
  return el("section", { id: "details" },
    el("h2", {}, "Call"),
    el("div", { class: "grid2" },
      el("div", { class: "panel" }, ids, el("p", { class: "muted" }, `metrics: ${kinds}`), downloads),
      el("div", { class: "panel" },
        el("strong", {}, "Metadata"), el("pre", {}, JSON.stringify(page.metadata, null, 2)),
        el("strong", {}, "Prompt"), el("pre", {}, page.prompt || "(none)"))),
    page.violations.length
      ? el("div", {}, el("h2", {}, "Contract violations"),
        el("ul", { class: "error" }, page.violations.map((v) => el("li", {}, v))))
      : null,
  );
}

// ------------------------------------------------------------------ routing

const match = location.pathname.match(/^\/calls\/([^/]+)$/);
if (match) showCall(decodeURIComponent(match[1]));
else showList();
