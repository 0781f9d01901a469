// The Anteroom console: live state from /events (server-sent events), actions through /api/actions
// (each one a request to the instance's real API; its answer is shown verbatim). No build step.

const secret = new URLSearchParams(location.search).get("secret") || "";
const state = { instance: {}, rooms: [], identities: [], callbacks: [], requests: [], deadLetters: [],
                eventgrid: { subscriptions: [], deliveries: [] }, phones: { calls: [], rules: {} } };
const openBoxes = new Set();   // collapsible JSON boxes the user opened, kept across re-renders
const ROLES = ["Presenter", "Attendee", "Collaborator", "Consumer"];
const SELF = { muteMic: "unmuteMic", startVideo: "stopVideo", startScreenShare: "stopScreenShare" };

// -- helpers -------------------------------------------------------------------------------------
const $ = (selector, root = document) => root.querySelector(selector);
const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

function highlight(value) {
  const text = esc(JSON.stringify(value, null, 2));
  return text.replace(/(&quot;(?:[^&]|&(?!quot;))*?&quot;)(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g,
    (match, string, colon, literal, number) => {
      if (string) return colon ? `<span class="k">${string}</span>${colon}` : `<span class="s">${string}</span>`;
      if (literal) return `<span class="b">${literal}</span>`;
      return `<span class="n">${number}</span>`;
    });
}

function jsonBox(key, label, value) {
  if (value === null || value === undefined) return "";
  const open = openBoxes.has(key) ? " open" : "";
  return `<details class="json-box" data-box="${esc(key)}"${open}><summary>${esc(label)}</summary>` +
         `<pre class="json">${highlight(value)}</pre></details>`;
}

function time(text) {
  if (!text) return "";
  const moment = new Date(text);
  return isNaN(moment) ? esc(text) : moment.toLocaleTimeString([], { hour12: false });
}

function dateTime(text) {
  if (!text) return "";
  const moment = new Date(text);
  return isNaN(moment) ? esc(text) : moment.toLocaleString([], { hour12: false });
}

// Replace an element's content only when it changed: a re-render must not swap a button away under
// a pointer (or a test) that is about to click it.
function setHtml(element, html) {
  if (element.dataset.html !== html) {
    element.innerHTML = html;
    element.dataset.html = html;
  }
}

// `element.html = text` is `setHtml(element, text)`.
Object.defineProperty(HTMLElement.prototype, "html", { set(value) { setHtml(this, value); } });

function identityIndex(rawId) {
  const index = Array.isArray(state.identities) ? state.identities.findIndex((identity) => identity.id === rawId) : -1;
  return index < 0 ? Number.MAX_SAFE_INTEGER : index;
}

function badge(text, kind = text) { return `<span class="badge ${esc(kind)}">${esc(text)}</span>`; }

function userLabel(rawId) {
  if (!rawId) return "";
  if (rawId.startsWith("4:")) return rawId.slice(2);
  const index = identityIndex(rawId);
  const tail = rawId.slice(-6);
  return index < Number.MAX_SAFE_INTEGER ? `user ${index + 1} …${tail}` : `…${tail}`;
}

function who(rawId) { return `<span class="who" title="${esc(rawId)}">${esc(userLabel(rawId))}</span>`; }

function localToIso(value) { return value ? new Date(value).toISOString() : undefined; }

// -- actions -------------------------------------------------------------------------------------
async function act(name, body = {}) {
  let status, answer;
  try {
    const response = await fetch(`/api/actions/${name}`, {
      method: "POST", headers: { "Content-Type": "application/json", "X-Anteroom-Secret": secret },
      body: JSON.stringify(body),
    });
    answer = await response.json();
    status = answer && typeof answer.status === "number" ? answer.status : response.status;
  } catch (error) {
    status = 0;
    answer = { error: { code: "ConsoleUnreachable", message: String(error) } };
  }
  const shown = answer && "body" in answer ? answer.body : answer;
  showAnswer(`${name} → ${status || "no answer"}`, shown, !status || status >= 400);
  return { status, body: shown };
}

function showAnswer(title, body, failed) {
  const panel = $("#answer");
  panel.hidden = false;
  panel.classList.toggle("error", failed);
  $("#answer-title").textContent = title;
  $("#answer-body").innerHTML = body === null || body === undefined ? "(no body)" : highlight(body);
}

// -- the header ----------------------------------------------------------------------------------
function renderInstance() {
  const info = state.instance || {};
  const numbers = (info.callerNumbers || []).join(", ") || "none";
  const topic = info.eventGrid ? info.eventGrid.topic : "off";
  $("#instance").innerHTML =
    `<span>endpoint <b>${esc(info.endpoint || "…")}</b></span>` +
    `<span>caller numbers <b>${esc(numbers)}</b></span>` +
    `<span>Event Grid <b>${esc(topic)}</b></span>` +
    (info.pstn ? `<span>PSTN <b>${esc(info.pstn.gateway)}</b></span>` : "");
}

// -- rooms ---------------------------------------------------------------------------------------
function roomSkeleton(room) {
  const card = document.createElement("article");
  card.className = "room";
  card.setAttribute("data-testid", "room");
  card.dataset.roomId = room.id;
  card.innerHTML = `
    <div class="room-head">
      <span class="room-id">${esc(room.id)}</span>
      <span class="room-badges"></span>
      <span class="validity"></span>
      <span class="spacer"></span>
      <button class="small" data-room-action="pstn"></button>
      <button class="small" data-room-action="extend" title="validUntil one hour later">+1 h</button>
      <button class="small" data-room-action="reset" title="delete through the API, then purge its data">Reset room</button>
      <button class="small danger" data-room-action="delete">Delete</button>
    </div>
    <div class="sub-title">Roster</div>
    <div class="roster"></div>
    <form class="inline-form add-participant" autocomplete="off">
      <select name="rawId" class="identity-choice"></select>
      <select name="role">${ROLES.map((r) => `<option${r === "Attendee" ? " selected" : ""}>${r}</option>`).join("")}</select>
      <button type="submit" class="small">Add to roster</button>
      <button type="button" class="small" data-room-action="new-user" data-testid="new-user">+ New user</button>
    </form>
    <div class="sub-title">Call</div>
    <div class="call"></div>
    <form class="inline-form dial-out" autocomplete="off">
      <input name="phoneNumber" placeholder="+14255550123" size="13" required>
      <select name="behaviour" title="what the simulated phone does"><option>answer</option><option>decline</option><option>busy</option><option>noAnswer</option></select>
      <label>ring <input name="ringSeconds" type="number" min="0" max="300" value="0" class="narrow"> s</label>
      <select name="callerIdNumber" class="caller-choice" title="caller number"></select>
      <select name="userId" class="dialer-choice" title="who dials (a Presenter in the call)"></select>
      <button type="submit" class="small">Dial phone</button>
    </form>`;
  card.addEventListener("click", (event) => onRoomClick(event, card));
  $(".add-participant", card).addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    if (!form.rawId.value) return;
    act("setParticipants", { roomId: card.dataset.roomId, participants: { [form.rawId.value]: { role: form.role.value } } });
  });
  $(".dial-out", card).addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    act("dialOut", { roomId: card.dataset.roomId, userId: form.userId.value, phoneNumber: form.phoneNumber.value.trim(),
                     behaviour: form.behaviour.value, ringSeconds: Number(form.ringSeconds.value) || 0,
                     callerIdNumber: form.callerIdNumber.value });
  });
  card.addEventListener("change", (event) => {
    const select = event.target.closest("select[data-role-of]");
    if (select) act("setParticipants", { roomId: card.dataset.roomId, participants: { [select.dataset.roleOf]: { role: select.value } } });
  });
  return card;
}

function onRoomClick(event, card) {
  const button = event.target.closest("button");
  if (!button || (button.type === "submit" && button.closest("form"))) return;  // forms have their own handlers
  const roomId = card.dataset.roomId;
  const room = state.rooms.find((r) => r.id === roomId) || {};
  const action = button.dataset.roomAction;
  if (action === "pstn") return act("updateRoom", { roomId, pstnDialOutEnabled: !room.pstnDialOutEnabled });
  if (action === "extend") return act("updateRoom", { roomId, validUntil: new Date(new Date(room.validUntil).getTime() + 3600e3).toISOString() });
  if (action === "reset") return act("reset", { roomId });
  if (action === "delete") return act("deleteRoom", { roomId });
  if (action === "new-user") return act("addNewUser", { roomId, role: $(".add-participant", card).role.value });
  const userId = button.dataset.user;
  if (button.dataset.act === "join") return act("join", { roomId, userId });
  if (button.dataset.act === "remove") return act("setParticipants", { roomId, participants: { [userId]: null } });
  if (button.dataset.self) return act("me", { roomId, userId, action: button.dataset.self });
  if (button.dataset.phone) return act("phone", { phoneNumber: button.dataset.number, action: button.dataset.phone });
  if (button.dataset.on) return act("actOn", { roomId, userId: button.dataset.by, participantId: button.dataset.participant, action: button.dataset.on });
}

function endpointOf(room, rawId) {
  const call = room.call;
  if (!call || call.state !== "active") return null;
  return call.participants.find((p) => p.rawId === rawId && p.state === "connected") || null;
}

function selfButtons(endpoint, rawId) {
  if (!endpoint) return `<button class="small" data-act="join" data-user="${esc(rawId)}">Join</button>`;
  // Each button does what it says; the media column shows what is on now.
  const toggle = (on, action, label) =>
    `<button class="small" data-self="${on ? SELF[action] : action}" data-user="${esc(rawId)}">${label}</button>`;
  return `<button class="small" data-self="leave" data-user="${esc(rawId)}">Leave</button>` +
    toggle(!endpoint.isMuted, "muteMic", endpoint.isMuted ? "Unmute" : "Mute") +
    toggle(endpoint.isVideoOn, "startVideo", endpoint.isVideoOn ? "Stop video" : "Video") +
    toggle(endpoint.isScreenSharing, "startScreenShare", endpoint.isScreenSharing ? "Stop share" : "Share");
}

function renderRoster(room) {
  if (!room.roster.length) return `<p class="empty">Nobody is on the roster.</p>`;
  const roster = room.roster.slice().sort((a, b) => identityIndex(a.rawId) - identityIndex(b.rawId) || a.rawId.localeCompare(b.rawId));
  const rows = roster.map((entry) => {
    const endpoint = endpointOf(room, entry.rawId);
    const roles = ROLES.map((r) => `<option${r === entry.role ? " selected" : ""}>${r}</option>`).join("");
    return `<tr data-testid="roster-entry" data-raw-id="${esc(entry.rawId)}" data-in-call="${endpoint ? "yes" : "no"}">
      <td>${who(entry.rawId)}</td>
      <td><select data-role-of="${esc(entry.rawId)}">${roles}</select></td>
      <td>${endpoint ? badge("in call", "connected") : ""}</td>
      <td class="actions">${selfButtons(endpoint, entry.rawId)}
        <button class="small danger" data-act="remove" data-user="${esc(entry.rawId)}" title="remove from the roster">Remove</button></td>
    </tr>`;
  }).join("");
  return `<table><thead><tr><th>user</th><th>role</th><th></th><th>acting as this user</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function media(p) {
  const flag = (on, label, title) => `<span class="${on ? "live" : "off"}" title="${title} ${on ? "on" : "off"}">${label}</span>`;
  return `<span class="media">${flag(!p.isMuted, "mic", "microphone")} ${flag(p.isVideoOn, "cam", "video")} ${flag(p.isScreenSharing, "share", "screen sharing")}</span>`;
}

function renderCall(room) {
  const call = room.call;
  if (!call) return `<p class="empty">No call yet: a roster user joining starts one.</p>`;
  const presenters = call.participants.filter((p) => p.kind === "user" && p.state === "connected" && p.role === "Presenter");
  const order = { connected: 0, ringing: 1, disconnected: 2 };
  const endpoints = call.participants.slice().sort((a, b) =>
    (order[a.state] ?? 3) - (order[b.state] ?? 3) || String(a.joinedAt || "").localeCompare(String(b.joinedAt || "")));
  const rows = endpoints.map((p) => {
    let actions = "";
    if (p.kind === "phone" && p.state === "connected") {
      // The phone's own side, through the PSTN simulator.
      const toggle = p.isMuted ? ["unmuteMic", "Phone unmutes"] : ["muteMic", "Phone mutes"];
      actions = `<button class="small" data-phone="leave" data-number="${esc(p.phoneNumber)}">Hang up</button>` +
        `<button class="small" data-phone="${toggle[0]}" data-number="${esc(p.phoneNumber)}">${toggle[1]}</button>`;
    }
    if (p.state === "connected" && presenters.length) {
      // Another endpoint's: a Presenter in the call acts on it (muteOthers, removeParticipant).
      const by = presenters.find((q) => q.participantId !== p.participantId) || presenters[0];
      if (by.participantId !== p.participantId) {
        const as = `title="as ${esc(userLabel(by.rawId))}" data-by="${esc(by.rawId)}" data-participant="${esc(p.participantId)}"`;
        actions += (p.isMuted ? "" : `<button class="small" data-on="mute" ${as}>Mute</button>`) +
                   `<button class="small danger" data-on="remove" ${as}>Remove</button>`;
      }
    }
    const role = p.kind === "phone" ? `phone${p.callerNumber ? " from " + esc(p.callerNumber) : ""}` : esc(p.role || "(off roster)");
    return `<tr data-testid="call-participant" data-raw-id="${esc(p.rawId)}" data-state="${esc(p.state)}">
      <td>${who(p.rawId)}</td><td>${role}</td><td>${badge(p.state)}</td><td>${media(p)}</td>
      <td class="small muted">${time(p.joinedAt)}${p.leftAt ? " – " + time(p.leftAt) + " " + esc(p.leaveReason || "") : ""}${p.automation ? " · via Call Automation" : ""}</td>
      <td class="actions">${actions}</td></tr>`;
  }).join("");
  const connections = call.connections.length ? ` · ${call.connections.length} Call Automation connection(s)` : "";
  return `<div class="small">${badge(call.state, call.state === "active" ? "active" : "idle")}
      <span class="mono call-id" title="serverCallId ${esc(call.serverCallId)}">${esc(call.serverCallId)}</span>
      <span class="muted">started ${time(call.startedAt)}${call.endedAt ? ", ended " + time(call.endedAt) + " (" + esc(call.endReason) + ")" : ""}${connections}</span></div>
    <table><thead><tr><th>endpoint</th><th>role</th><th>state</th><th>media</th><th>when</th><th></th></tr></thead><tbody>${rows}</tbody></table>`;
}

function fillSelect(select, options, keep = true) {
  const previous = select.value;
  select.innerHTML = options.map(([value, label]) => `<option value="${esc(value)}">${esc(label)}</option>`).join("");
  if (keep && options.some(([value]) => value === previous)) select.value = previous;
}

function renderRooms() {
  const container = $("#rooms");
  if (!Array.isArray(state.rooms)) {
    container.innerHTML = `<pre class="json">${highlight(state.rooms)}</pre>`;
    return;
  }
  if (!state.rooms.length) {
    container.innerHTML = `<p class="empty">No rooms yet: create one above.</p>`;
    return;
  }
  $(".empty", container)?.remove();
  const seen = new Set();
  state.rooms.forEach((room, index) => {
    seen.add(room.id);
    let card = container.querySelector(`[data-room-id="${CSS.escape(room.id)}"]`);
    if (!card) card = roomSkeleton(room);
    if (container.children[index] !== card) container.insertBefore(card, container.children[index] || null);
    $(".room-badges", card).innerHTML = badge(room.state) + " " + badge(room.pstnDialOutEnabled ? "PSTN on" : "PSTN off", room.pstnDialOutEnabled ? "ok" : "idle");
    $(".validity", card).textContent = `${dateTime(room.validFrom)} → ${dateTime(room.validUntil)}`;
    $('[data-room-action="pstn"]', card).textContent = room.pstnDialOutEnabled ? "Disable PSTN" : "Enable PSTN";
    setHtml($(".roster", card), renderRoster(room));
    setHtml($(".call", card), renderCall(room));
    const onRoster = new Set(room.roster.map((e) => e.rawId));
    const identities = Array.isArray(state.identities) ? state.identities : [];
    fillSelect($(".identity-choice", card), [["", "existing user…"], ...identities.filter((i) => !onRoster.has(i.id)).map((i) => [i.id, userLabel(i.id)])]);
    fillSelect($(".caller-choice", card), (state.instance.callerNumbers || []).map((n) => [n, n]));
    const dialers = (room.call && room.call.state === "active" ? room.call.participants : [])
      .filter((p) => p.kind === "user" && p.state === "connected").map((p) => [p.rawId, `${userLabel(p.rawId)} (${p.role})`]);
    fillSelect($(".dialer-choice", card), dialers.length ? dialers : [["", "nobody in the call"]]);
  });
  [...container.children].forEach((card) => { if (!seen.has(card.dataset.roomId)) card.remove(); });
}

// -- Event Grid ----------------------------------------------------------------------------------
function renderEventGrid() {
  const grid = state.eventgrid || {};
  if (!grid.running) {
    $("#subscriptions").html = `<p class="empty">This instance runs without its Event Grid topic.</p>`;
    $("#deliveries").html = "";
    return;
  }
  const subscriptions = grid.subscriptions || [];
  $("#subscriptions").html = subscriptions.length ? `<table><thead><tr><th>name</th><th>destination</th><th>schema</th><th>state</th><th>pending</th><th></th></tr></thead><tbody>` +
    subscriptions.map((s) => `<tr data-testid="subscription" data-name="${esc(s.name)}">
      <td>${esc(s.name)}</td><td class="mono">${esc(s.destination)}</td><td class="small">${esc(s.eventDeliverySchema)}${s.includedEventTypes ? "<br><span class='muted'>" + esc(s.includedEventTypes.join(", ")) + "</span>" : ""}</td>
      <td class="state">${badge(s.state && s.state.startsWith("failed") ? "failed" : s.state || "?", s.state && s.state.startsWith("failed") ? "failed" : s.state)}${s.state && s.state.startsWith("failed") ? `<div class="small muted">${esc(s.state)}</div>` : ""}</td>
      <td>${s.pendingDeliveries}</td>
      <td><button class="small danger" data-remove-subscription="${esc(s.name)}">Remove</button></td></tr>`).join("") + `</tbody></table>`
    : `<p class="empty">No subscriptions: add a webhook to receive call events.</p>`;
  const deliveries = grid.deliveries || [];
  $("#count-eventgrid").textContent = deliveries.length ? `(${deliveries.length})` : "";
  $("#deliveries").html = deliveries.length ? `<table><thead><tr><th>time</th><th>event</th><th>to</th><th>state</th><th>tries</th><th>subscriber's answer</th></tr></thead><tbody>` +
    deliveries.map((d) => {
      const next = d.state === "retrying" || d.state === "pending" ? `<div class="small muted">next ${time(d.nextAttemptAt)}</div>` : "";
      const answer = d.lastStatusCode ? `HTTP ${d.lastStatusCode}` : (d.lastError || "");
      return `<tr data-testid="delivery" data-event-type="${esc(d.eventType)}" data-state="${esc(d.state)}">
        <td class="small">${time(d.time)}</td>
        <td>${esc((d.eventType || "").replace("Microsoft.Communication.", ""))}${jsonBox("d:" + d.deliveryId, "payload", d.payload)}</td>
        <td class="small">${esc(d.subscription)}</td>
        <td>${badge(d.state)}${d.reason ? `<div class="small muted">${esc(d.reason)}</div>` : ""}${next}</td>
        <td>${d.attempts}</td>
        <td><span class="small">${esc(answer)}</span>${d.lastAnswer ? `<div class="answer-text">${esc(d.lastAnswer.slice(0, 300))}</div>` : ""}</td></tr>`;
    }).join("") + `</tbody></table>` : `<p class="empty">Nothing delivered yet.</p>`;
}

function renderDeadLetters() {
  const letters = Array.isArray(state.deadLetters) ? state.deadLetters : [];
  $("#deadletters").html = letters.length ? `<table><thead><tr><th>event</th><th>reason</th><th>last outcome</th></tr></thead><tbody>` +
    letters.map((l, i) => `<tr data-testid="dead-letter"><td>${esc(l.eventType || l.type)}${jsonBox("dl:" + (l.id || i) + ":" + i, "payload", l)}</td>
      <td>${badge(l.deadLetterReason, "deadLettered")}</td><td class="small">${esc(l.lastDeliveryOutcome)} ${l.lastHttpStatusCode ? "(HTTP " + esc(l.lastHttpStatusCode) + ")" : ""}</td></tr>`).join("") +
    `</tbody></table>` : `<p class="empty">No dead letters.</p>`;
}

// -- Call Automation, requests, phones, identities -----------------------------------------------
function renderAutomation() {
  const rooms = Array.isArray(state.rooms) ? state.rooms : [];
  const connections = rooms.flatMap((room) => (room.call ? room.call.connections : []).map((c) => ({ ...c, roomId: room.id })));
  $("#connections").html = connections.length ? `<table><thead><tr><th>connection</th><th>room</th><th>callback URI</th><th>state</th><th>since</th></tr></thead><tbody>` +
    connections.map((c) => `<tr data-testid="connection"><td class="mono" title="${esc(c.callConnectionId)}">…${esc(c.callConnectionId.slice(-10))}</td><td class="mono">${esc(c.roomId)}</td>
      <td class="mono">${esc(c.callbackUri)}</td><td>${badge(c.state)}</td><td class="small">${time(c.connectedAt)}</td></tr>`).join("") + `</tbody></table>`
    : `<p class="empty">No Call Automation connections.</p>`;
  const callbacks = Array.isArray(state.callbacks) ? state.callbacks : [];
  $("#count-automation").textContent = callbacks.length ? `(${callbacks.length})` : "";
  $("#callbacks").html = callbacks.length ? `<table><thead><tr><th>time</th><th>events</th><th>to</th><th>state</th><th>tries</th></tr></thead><tbody>` +
    callbacks.map((c) => `<tr data-testid="callback" data-state="${esc(c.state)}"><td class="small">${time(c.time)}</td>
      <td>${esc(c.types.join(", "))}${jsonBox("cb:" + c.roomId + c.id, "payload", c.payload)}</td><td class="mono small">${esc(c.destination)}</td>
      <td>${badge(c.state)}${c.state === "pending" ? `<div class="small muted">next ${time(c.nextAttemptAt)}</div>` : `<div class="small muted">${time(c.deliveredAt)}</div>`}</td>
      <td>${c.attempts}</td></tr>`).join("") + `</tbody></table>` : `<p class="empty">No callbacks yet.</p>`;
}

function renderRequests() {
  const rows = state.requests;
  if (!Array.isArray(rows)) { $("#requests").html = `<pre class="json">${highlight(rows)}</pre>`; return; }
  $("#count-requests").textContent = rows.length ? `(${rows.length})` : "";
  $("#requests").html = rows.length ? `<table><thead><tr><th>time</th><th>operation</th><th>status</th><th>ms</th><th>error code</th><th>room</th></tr></thead><tbody>` +
    rows.map((r) => `<tr data-testid="request" data-operation="${esc(r.operation)}" data-status="${esc(r.status)}">
      <td class="small">${time(r.time)}</td><td>${esc(r.operation)}${r.version ? ` <span class="muted small">${esc(r.version)}</span>` : ""}${r.source === "host" ? ` <span class="muted small">${esc(r.path || "")}</span>` : ""}</td>
      <td>${badge(r.status, r.status >= 400 ? "bad" : "ok")}</td><td>${r.durationMs == null ? "" : Number(r.durationMs).toFixed(1)}</td>
      <td>${esc(r.errorCode || "")}</td><td class="mono small">${esc(r.roomId || "")}</td></tr>`).join("") + `</tbody></table>`
    : `<p class="empty">No API requests yet.</p>`;
}

function renderPhones() {
  const phones = state.phones || { calls: [], rules: {} };
  const calls = phones.calls || [];
  $("#count-phones").textContent = calls.length ? `(${calls.length})` : "";
  $("#phone-calls").html = !phones.running ? `<p class="empty">This instance runs without the PSTN simulator.</p>` : calls.length ?
    `<table><thead><tr><th>number</th><th>from</th><th>outcome</th><th>state</th><th></th></tr></thead><tbody>` +
    calls.slice().reverse().map((c) => `<tr data-testid="phone-call" data-number="${esc(c.target)}" data-state="${esc(c.state)}"><td class="mono">${esc(c.target)}</td><td class="mono">${esc(c.source)}</td>
      <td>${badge(c.outcome)}</td><td>${badge(c.state)}</td><td class="actions">${c.state === "connected" ? `<button class="small" data-phone="leave" data-number="${esc(c.target)}">Hang up</button>` : ""}</td></tr>`).join("") + `</tbody></table>`
    : `<p class="empty">No calls placed yet (dial a phone from a room's call).</p>`;
  const rules = Object.entries(phones.rules || {});
  $("#phone-rules").html = rules.length ? `<table><tbody>` + rules.map(([number, rule]) =>
    `<tr><td class="mono">${esc(number)}</td><td>${badge(rule.behaviour)}</td><td class="small">${rule.ringSeconds ? "rings " + esc(rule.ringSeconds) + " s" : ""}</td></tr>`).join("") + `</tbody></table>`
    : `<p class="empty small">Every number answers unless a rule says otherwise.</p>`;
}

function renderIdentities() {
  const list = state.identities;
  if (!Array.isArray(list)) { $("#identities").html = `<pre class="json">${highlight(list)}</pre>`; return; }
  $("#count-identities").textContent = list.length ? `(${list.length})` : "";
  $("#identities").html = list.length ? `<table><thead><tr><th>user</th><th>raw id</th><th>created</th><th></th></tr></thead><tbody>` +
    list.map((i) => `<tr data-testid="identity"><td>${esc(userLabel(i.id))}</td><td class="mono small">${esc(i.id)}</td><td class="small">${dateTime(i.createdAt)}</td></tr>`).join("") +
    `</tbody></table>` : `<p class="empty">No identities yet.</p>`;
}

const RENDER = {
  instance: () => { renderInstance(); renderRooms(); },
  rooms: () => { renderRooms(); renderAutomation(); },
  identities: () => { renderIdentities(); renderRooms(); },
  eventgrid: renderEventGrid,
  deadLetters: renderDeadLetters,
  callbacks: renderAutomation,
  requests: renderRequests,
  phones: renderPhones,
};

// -- live feed -----------------------------------------------------------------------------------
function connect() {
  const feed = new EventSource(`/events?secret=${encodeURIComponent(secret)}`);
  const live = $("#live");
  feed.onopen = () => { live.textContent = "live"; live.className = "live up"; };
  feed.onerror = () => { live.textContent = "reconnecting…"; live.className = "live down"; };
  for (const name of Object.keys(RENDER)) {
    feed.addEventListener(name, (event) => {
      state[name] = JSON.parse(event.data);
      RENDER[name]();
    });
  }
}

// -- static wiring -------------------------------------------------------------------------------
function wire() {
  $("#tabs").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-tab]");
    if (!button) return;
    document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b === button));
    document.querySelectorAll(".tab").forEach((tab) => { tab.hidden = tab.id !== `tab-${button.dataset.tab}`; });
  });
  document.addEventListener("toggle", (event) => {
    const box = event.target.closest?.("details[data-box]");
    if (box) box.open ? openBoxes.add(box.dataset.box) : openBoxes.delete(box.dataset.box);
  }, true);
  $("#answer-close").addEventListener("click", () => { $("#answer").hidden = true; });
  $("#reset-all").addEventListener("click", () => {
    if (confirm("Delete every identity, room, call, event and subscription of this instance?")) act("reset", {});
  });
  $("#create-room").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    act("createRoom", { validFrom: localToIso(form.validFrom.value), validUntil: localToIso(form.validUntil.value),
                        pstnDialOutEnabled: form.pstnDialOutEnabled.checked });
  });
  $("#add-subscription").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const types = form.types.value.split(",").map((t) => t.trim()).filter(Boolean)
      .map((t) => (t.includes(".") ? t : `Microsoft.Communication.${t}`));
    const subscription = { name: form.name.value.trim(), destination: { endpointType: "WebHook", endpointUrl: form.endpointUrl.value.trim() },
                           eventDeliverySchema: form.schema.value, deadLetter: true };
    if (types.length) subscription.filter = { includedEventTypes: types };
    act("addSubscription", { subscription });
  });
  $("#subscriptions").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-remove-subscription]");
    if (button) act("removeSubscription", { name: button.dataset.removeSubscription });
  });
  $("#replay").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    act("replay", { roomId: form.roomId.value.trim(), serverCallId: form.serverCallId.value.trim(),
                    endpoint: form.endpoint.value.trim(), schema: form.schema.value });
  });
  $("#phone-rule").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    act("phoneRule", { phoneNumber: form.phoneNumber.value.trim(), behaviour: form.behaviour.value, ringSeconds: Number(form.ringSeconds.value) || 0 });
  });
  $("#phone-calls").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-phone]");
    if (button) act("phone", { phoneNumber: button.dataset.number, action: button.dataset.phone });
  });
  $("#new-identity").addEventListener("click", () => act("createUser", {}));
}

wire();
connect();
