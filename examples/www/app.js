// Starts /{command}?arg=... on the listener that served this page and shows each line.
// No framework: one WebSocket, a list, a status line. `?command=C&arg=A&autostart=1`
// in the page's URL fills the form and starts at once (the browser test uses it).
"use strict";

const $ = (id) => document.getElementById(id);
let socket = null;

function setStatus(text) {
  $("status").textContent = text;
}

function start(command, args, token) {
  if (socket) socket.close();
  $("lines").replaceChildren();
  const query = new URLSearchParams();
  for (const a of args) query.append("arg", a);
  if (token) query.append("token", token);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const qs = query.toString();
  const url = `${scheme}//${location.host}/${encodeURIComponent(command)}${qs ? "?" + qs : ""}`;
  setStatus("connecting");
  socket = new WebSocket(url);
  socket.onopen = () => {
    setStatus("running");
    $("stop").disabled = false;
    $("input").hidden = false;
  };
  socket.onmessage = (event) => {
    const li = document.createElement("li");
    li.textContent = event.data;
    $("lines").append(li);
  };
  socket.onclose = (event) => {
    // 1000: the program exited; 1006: refused (see the agent's log) or the link broke.
    setStatus(`closed ${event.code}${event.reason ? " " + event.reason : ""}`);
    $("stop").disabled = true;
    $("input").hidden = true;
    socket = null;
  };
}

$("start").addEventListener("submit", (e) => {
  e.preventDefault();
  const args = $("args").value.split(/\s+/).filter((a) => a.length > 0);
  start($("command").value.trim(), args, $("token").value);
});

$("stop").addEventListener("click", () => socket && socket.close());

$("input").addEventListener("submit", (e) => {
  e.preventDefault();
  if (socket) socket.send($("line").value);
  $("line").value = "";
});

const params = new URLSearchParams(location.search);
if (params.has("command")) $("command").value = params.get("command");
if (params.has("arg")) $("args").value = params.getAll("arg").join(" ");
if (params.get("autostart") === "1") {
  start($("command").value, params.getAll("arg"), params.get("token") || "");
}
