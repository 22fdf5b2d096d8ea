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
// wavesurfer draws in a shadow root: the page's stylesheet does not reach the marks' labels
const LABEL_STYLE = {
  tool: "font-size:10px;padding:1px 3px;white-space:nowrap;color:#fff;border-radius:2px;background:",
  cut: "display:block;margin-top:62px;font-size:10px;padding:1px 3px;white-space:nowrap;color:#d9480f;background:rgba(255,255,255,.85)",
  // at the recording's last sample: the label reads leftwards, inside the lanes
  end: "position:absolute;right:100%;margin-right:4px;top:4px;font-size:10px;padding:1px 3px;white-space:nowrap;color:#fff;background:#d9480f;border-radius:2px",
};

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
  const tools = call.tool_calls === null || call.tool_calls === undefined ? "—"
    : `${call.tool_calls}${call.tool_errors ? ` (${call.tool_errors} failed)` : ""}`;
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
  let page;
  try {
    page = await getJSON(base);
  } catch (err) {
    app.replaceChildren(el("p", { class: "error" }, `No such call: ${key}`), el("a", { href: "/" }, "All calls"));
    markReady();
    return;
  }
  // only a call with a recording has peaks (asking for others' would only log a 404)
  const peaks = page.audio ? await fetch(page.audio.peaks).then((r) => (r.ok ? r.arrayBuffer() : null)) : null;
  const call = page.call;
  const player = el("div", { class: "panel", id: "recording" });
  const transcript = el("div", { class: "panel transcript", id: "transcript" });
  app.replaceChildren(...[
    el("p", {}, el("a", { href: "/" }, "← all calls")),
    el("h1", {}, page.agent_name || call.agent_id || "call", " ", el("span", { class: "muted" }, call.id)),
    el("div", { class: "toolbar" },
      wholeBadge(call), call.is_test ? el("span", { class: "badge test" }, "test") : null,
      el("span", { id: "reason" }, `ended: ${call.reason || "—"}`),
      el("span", { id: "duration" }, callLength(call)),
      el("span", { class: "muted" }, when(call.started_at))),
    page.agents.length > 1 ? el("p", { id: "agents" }, "Agents: ", agentPath(page.transcript).join(" → ")) : null,
    call.whole ? null : el("p", { class: "error", id: "not-whole" }, "Not whole: " + call.problems.join("; ")),
    player,
    el("h2", {}, "Transcript"), transcript,
  ].filter(Boolean));
  const viewer = page.audio && peaks ? drawRecording(player, page, peaks) : noRecording(player, page);
  renderTranscript(transcript, page, viewer);
  app.append(latencySection(page, viewer), toolsSection(page), detailsSection(page));
  window.roarkViewer = { page, ws: viewer.ws };
  if (viewer.ws) viewer.ws.once("ready", markReady);
  else markReady();
  if (!call.ended) reloadWhenEnded(call.id, page.version);
}

function callLength(call) {
  const lasted = duration(call.duration_s);
  const recorded = call.recording_s;
  if (recorded === null || recorded === undefined || call.duration_s === null) return lasted;
  return Math.abs(recorded - call.duration_s) > 0.5 ? `${lasted} (${duration(recorded)} recorded)` : lasted;
}

// the call has not ended (yet): show it whole as soon as its call-ended arrives
async function reloadWhenEnded(id, version) {
  for (;;) {
    try {
      const data = await getJSON(`/api/calls?${new URLSearchParams({ call: id, after: version })}`);
      version = data.version;
      if (data.calls.some((c) => c.id === id && c.ended)) { location.reload(); return; }
    } catch (err) {
      await new Promise((r) => setTimeout(r, 2000)); // the server restarts: try again
    }
  }
}

function agentPath(transcript) {
  const path = [];
  for (const turn of transcript) {
    const agent = turn.livekitAgentId;
    if (agent && path[path.length - 1] !== agent) path.push(agent);
  }
  return path;
}

function noRecording(player, page) {
  player.append(el("p", { class: "muted", id: "no-recording" }, page.no_recording || "No recording."));
  return { ws: null, seek: () => false, recorded: 0 };
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
  player.append(lanes,
    el("div", { class: "player" }, playButton, time, el("label", {}, "zoom ", zoom),
      el("span", { class: "muted" }, "click a turn, a mark or the waveform to play from there")));

  const regions = WaveSurfer.Regions.create();
  const recorded = page.analysis.duration_s;
  const unheard = page.transcript.filter((t) => t.audioOffsetMs / 1000 >= recorded).length;
  if (unheard) {
    // the recording stops before the transcript does: its later chunks never arrived
    player.append(el("p", { class: "error", id: "recording-ends" },
      `The recording ends at ${clock(recorded)}: ${unheard} turn(s) after it have no audio (the call's later chunks never arrived: refused or lost).`));
  }
  const ws = WaveSurfer.create({
    container: "#waveform",
    height: LANE_HEIGHT,
    url: page.audio.url,
    peaks: splitPeaks(peaksBuffer),
    duration: recorded,
    splitChannels: [
      { waveColor: COLORS.caller, progressColor: COLORS.callerDone },
      { waveColor: COLORS.agent, progressColor: COLORS.agentDone },
    ],
    cursorColor: "#d9480f",
    cursorWidth: 2,
    dragToSeek: true,
    plugins: [regions],
  });
  // a place past the recording's end has no audio to play
  const seek = (seconds, play = true) => {
    if (seconds >= recorded) return false;
    ws.setTime(Math.max(0, seconds));
    if (play) ws.play();
    return true;
  };
  const labels = [];
  ws.on("decode", () => {
    labels.push(...addMarks(regions, page, recorded, unheard));
    layoutLabels(ws, labels);
  });
  regions.on("region-clicked", (region, event) => {
    event.stopPropagation();
    seek(region.start);
  });
  playButton.addEventListener("click", () => ws.playPause());
  ws.on("play", () => { playButton.textContent = "Pause"; });
  ws.on("pause", () => { playButton.textContent = "Play"; });
  ws.on("timeupdate", (t) => { time.textContent = `${clock(t)} / ${clock(recorded)}`; });
  zoom.addEventListener("input", () => ws.zoom(Number(zoom.value)));
  const timeline = adaptiveTimeline(ws);
  // zoomed, or the window resized: the ticks and the marks' labels fit the new width
  ws.on("redraw", () => { timeline(); layoutLabels(ws, labels); });
  return { ws, seek, recorded };
}

// the timeline's steps follow the width a second takes (zoom, window size): a label every
// ~80 px whatever the call's length
function adaptiveTimeline(ws) {
  const nice = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  let plugin = null;
  let step = null;
  return () => {
    const total = ws.getDuration();
    if (!total) return;
    const pxPerSecond = ws.getWrapper().scrollWidth / total;
    const want = nice.find((s) => s * pxPerSecond >= 80) || 7200;
    if (want === step) return;
    step = want;
    plugin?.destroy();
    plugin = ws.registerPlugin(WaveSurfer.Timeline.create({
      timeInterval: step / 5, primaryLabelInterval: step, secondaryLabelInterval: step,
      formatTimeCallback: (t) => clock(t).replace(/\.0$/, ""),
    }));
  };
}

function addMarks(regions, page, recorded, unheard) {
  page.transcript.forEach((turn) => {
    const channel = { user: 0, assistant: 1 }[turn.role];
    if (channel === undefined) return;
    regions.addRegion({
      start: turn.audioOffsetMs / 1000,
      end: Math.max(turn.endAudioOffsetMs, turn.audioOffsetMs + 50) / 1000,
      color: channel ? COLORS.agentSoft : COLORS.callerSoft,
      channelIdx: channel, drag: false, resize: false,
    });
  });
  if (unheard) {
    regions.addRegion({
      start: Math.max(0, recorded - 0.01), drag: false, color: COLORS.interrupt,
      content: el("span", { class: "region-label end", style: LABEL_STYLE.end,
        title: "the recording ends here: its later chunks never arrived (refused or lost)" },
      `recording ends: ${unheard} turn(s) after it`),
    });
  }
  const labels = [];
  const stops = new Map((page.analysis.interruptions || []).map((i) => [i.turn, i.stopped_s]));
  page.transcript.forEach((turn, i) => {
    if (!turn.interrupted) return;
    const at = stops.get(i) ?? turn.endAudioOffsetMs / 1000;
    const label = el("span", {
      class: "region-label cut", style: LABEL_STYLE.cut, title: `the caller cut this turn off at ${clock(at)}`,
    }, "interrupted");
    regions.addRegion({ start: at, channelIdx: 1, drag: false, color: COLORS.interrupt, content: label });
    labels.push({ at, label, text: "interrupted", kind: "cut", title: label.title });
  });
  page.tools.forEach((tool) => {
    const text = `${tool.is_error ? "failed " : ""}${tool.name}()`;
    const label = el("span", {
      class: `region-label tool${tool.is_error ? " failed" : ""}`,
      style: LABEL_STYLE.tool + (tool.is_error ? COLORS.toolError : COLORS.tool),
      title: `${tool.name}(${tool.arguments}) → ${tool.is_error ? "error: " : ""}${tool.result ?? "(no result)"}`,
    }, text);
    regions.addRegion({
      start: tool.at_s, channelIdx: 1, drag: false, color: tool.is_error ? COLORS.toolError : COLORS.tool, content: label,
    });
    labels.push({ at: tool.at_s, label, text, kind: "tool", title: label.title, failed: tool.is_error });
  });
  return labels;
}

// one label where marks are too close to read apart: the first shows how many it stands for
function layoutLabels(ws, labels) {
  const total = ws.getDuration();
  if (!total || !labels.length) return;
  const pxPerSecond = ws.getWrapper().scrollWidth / total;
  for (const kind of ["tool", "cut"]) {
    let shown = null;
    let group = [];
    const close = () => {
      if (!shown) return;
      shown.label.textContent = shown.text + (group.length > 1 ? ` +${group.length - 1}` : "");
      shown.label.title = group.map((m) => m.title).join("\n");
      if (kind === "tool") {
        const failed = group.some((m) => m.failed);
        shown.label.style.background = failed ? COLORS.toolError : COLORS.tool;
      }
    };
    for (const mark of labels.filter((m) => m.kind === kind).sort((a, b) => a.at - b.at)) {
      // the label's width from its text (10 px type): reading offsetWidth here would lay the
      // page out again for every mark of a long call
      const room = shown ? (shown.text.length + 4) * 6 + 16 : 0;
      if (shown && (mark.at - shown.at) * pxPerSecond < room) {
        mark.label.style.display = "none";
        group.push(mark);
        continue;
      }
      close();
      mark.label.style.removeProperty("display");
      mark.label.textContent = mark.text;
      shown = mark;
      group = [mark];
    }
    close();
  }
}

function renderTranscript(container, page, viewer) {
  const checks = new Map((page.analysis?.alignment || []).map((a) => [a.turn, a]));
  const named = page.agents.length > 1;
  const rows = [];
  let agent = null;
  const items = [];
  page.transcript.forEach((turn, i) => {
    const start = turn.audioOffsetMs / 1000;
    const check = checks.get(i);
    if (named && turn.livekitAgentId && agent && turn.livekitAgentId !== agent) {
      items.push(el("div", { class: "handoff" }, `handed over: ${agent} → ${turn.livekitAgentId}`));
    }
    agent = turn.livekitAgentId || agent;
    const role = turn.role === "user" ? "caller" : turn.role === "assistant" ? "agent" : turn.role;
    const heard = !viewer.ws || start < viewer.recorded;
    const row = el("div", {
      class: `turn ${turn.role}${heard ? "" : " unheard"}`, dataset: { turn: i, start },
      title: heard ? "play from here" : "no audio here: the recording ends before this turn",
      onclick: () => viewer.seek(start),
    },
      el("span", { class: "time" }, clock(start)),
      el("span", { class: "role" }, role,
        named && turn.role === "assistant" && turn.livekitAgentId ? el("span", { class: "agent-id" }, turn.livekitAgentId) : null),
      el("span", {}, el("span", { class: "text" }, turn.content),
        turn.interrupted ? el("span", { class: "flag" }, " (interrupted)") : null,
        alignmentNote(check)),
    );
    rows[i] = row;
    items.push(row);
  });
  container.replaceChildren(...(items.length ? items : [el("p", { class: "muted" }, "No transcript.")]));
  if (!viewer.ws) return;
  const spans = page.transcript.map((t) => [t.audioOffsetMs / 1000, t.endAudioOffsetMs / 1000]);
  let current = null;
  viewer.ws.on("timeupdate", (t) => {
    const found = spans.findIndex(([a, b]) => a <= t && t < b);
    if (found === current) return;
    rows[current]?.classList.remove("playing");
    rows[found]?.classList.add("playing");
    current = found;
  });
}

function alignmentNote(check) {
  if (!check || check.ok) return null;
  if (check.ok === null) return el("div", { class: "muted note" }, `no audio to check: ${check.problem}`);
  return el("div", { class: "flag alignment" }, `⚠ audio not where the transcript says: ${check.problem}`);
}

function latencySection(page, viewer) {
  const analysis = page.analysis;
  const section = el("section", { id: "latency" }, el("h2", {}, "Latency per agent turn"));
  if (!analysis) {
    section.append(el("p", { class: "muted" }, "No recording to measure on."));
    return section;
  }
  const rows = analysis.latency || [];
  const skipped = analysis.latency_skipped || [];
  const summary = analysis.latency_summary || {};
  if (rows.length) {
    section.append(
      el("p", { id: "latency-call" }, "Call: median ", el("strong", { id: "latency-median" }, secs(summary.median_s)),
        ", worst ", el("strong", { id: "latency-worst" }, secs(summary.worst_s)), ` over ${rows.length} turn(s)`),
      el("p", { class: "muted" },
        "Heard: the silence the caller heard, measured on the recording from the end of the caller's speech (left) ",
        "to the start of the agent's audio (right). It adds up: heard = EOU + LLM TTFT + TTS TTFB + remainder. ",
        "STT (transcription delay) runs inside the EOU delay. Stages are LiveKit's metrics for the turn (— where it sent none); ",
        "a negative remainder means they count more than the caller heard (they overlap, or LiveKit saw the speech end earlier). ",
        "Click a row to hear it."),
      el("div", { class: "scroll" }, latencyTable(page, rows, summary, viewer)));
  } else {
    section.append(el("p", { class: "muted" }, "No agent turn answered a caller turn on the recording."));
  }
  if (skipped.length) {
    section.append(el("p", { class: "muted", id: "latency-skipped" },
      `Not measured: ${skipped.map((s) => `#${s.turn} (${s.why})`).join(", ")}.`));
  }
  return section;
}

function latencyTable(page, rows, summary, viewer) {
  return el("table", {},
    el("thead", {}, el("tr", {},
      ...["Agent turn", "Caller stopped", "Agent started", "Heard", "EOU", "(STT)", "LLM TTFT", "TTS TTFB", "Remainder"]
        .map((h, i) => el("th", { class: i ? "num" : "" }, h)))),
    el("tbody", {}, rows.map((row) => el("tr", {
      dataset: { turn: row.turn }, title: "play from just before the caller stopped",
      onclick: () => viewer.seek(Math.max(0, row.caller_end_s - 1)),
    },
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
      el("td", { colspan: 5 }))));
}

function toolsSection(page) {
  const section = el("section", { id: "tools" }, el("h2", {}, "Tool calls"));
  if (!page.tools.length) {
    section.append(el("p", { class: "muted" }, "No tool calls."));
    return section;
  }
  const named = page.agents.length > 1;
  const ids = new Set(page.tools.map((t) => t.id));
  const heads = ["At", "Tool", ...(named ? ["Agent"] : []), "Arguments", "Result"];
  section.append(el("table", {},
    el("thead", {}, el("tr", {}, ...heads.map((h) => el("th", {}, h)))),
    el("tbody", {}, page.tools.map((tool) => el("tr", { class: tool.is_error ? "failed" : "", dataset: { id: tool.id } },
      el("td", {}, clock(tool.at_s)),
      el("td", {}, tool.name, el("div", { class: "muted" }, tool.id), asyncNote(tool, ids)),
      named ? el("td", { class: "agent-id" }, tool.agent || "—") : null,
      el("td", {}, el("pre", {}, tool.arguments)),
      el("td", {},
        tool.is_error ? el("div", { class: "flag" }, "error") : null,
        tool.result_at_s !== null && tool.result_at_s - tool.at_s >= 0.5
          ? el("div", { class: "muted" }, `result at ${clock(tool.result_at_s)}`) : null,
        el("pre", {}, tool.result_at_s === null && tool.result === null ? "(no result)" : tool.result || "(empty)")))))));
  return section;
}

// an async tool's real result comes later, as LiveKit's "<call id>_final" call and output
function asyncNote(tool, ids) {
  const first = typeof tool.id === "string" && tool.id.endsWith("_final") ? tool.id.slice(0, -6) : null;
  return first && ids.has(first) ? el("div", { class: "muted async" }, `the final result of ${first}`) : null;
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
