/* The chat playground: streams answers from the server's OpenAI-compatible /v1/chat/completions (Server-Sent Events:
   `data: {chunk}` lines, then `data: [DONE]`), keeps the multi-turn history of each side, and in compare mode sends
   the same prompt to two models and streams both answers side by side. */
"use strict";

(function () {
  const root = document.getElementById("chat");
  if (!root) return;
  const t = TF.t;
  const form = document.getElementById("chat-form");
  const input = document.getElementById("chat-input");
  const sendButton = document.getElementById("chat-send");
  const stopButton = document.getElementById("chat-stop");
  const compareBox = document.getElementById("chat-compare");
  const columns = document.getElementById("chat-columns");
  const settings = {
    system: document.getElementById("chat-system"),
    temperature: document.getElementById("chat-temperature"),
    topP: document.getElementById("chat-top-p"),
    maxTokens: document.getElementById("chat-max-tokens"),
    seed: document.getElementById("chat-seed"),
  };
  const sides = ["a", "b"].map(function (key) {
    return {key: key, select: document.querySelector("select[data-side='" + key + "']"),
      box: document.getElementById("conversation-" + key), panel: columns.querySelector("section[data-side='" + key + "']"),
      history: []};
  });
  let controller = null;
  const STORE_KEY = "tuneforge.chat";

  function activeSides() { return compareBox.checked ? sides : sides.slice(0, 1); }

  function bubble(side, role, text) {
    const empty = side.box.querySelector(".chat-empty");
    if (empty) empty.remove();
    const node = document.createElement("div");
    node.className = "message " + role;
    node.textContent = text;
    side.box.appendChild(node);
    side.box.scrollTop = side.box.scrollHeight;
    return node;
  }

  function showHeads() {
    for (const side of sides) {
      columns.querySelector(".side-model[data-side='" + side.key + "']").textContent = side.select.value || "—";
      columns.querySelector(".side-turns[data-side='" + side.key + "']").textContent =
        side.history.length ? t("js.chat_turns", {count: side.history.length / 2}) : "";
    }
  }

  function requestBody(side) {
    const messages = [];
    const system = settings.system.value.trim();
    if (system) messages.push({role: "system", content: system});
    const body = {model: side.select.value, messages: messages.concat(side.history), stream: true,
      stream_options: {include_usage: true}};
    const numbers = {temperature: settings.temperature, top_p: settings.topP, max_tokens: settings.maxTokens,
      seed: settings.seed};
    for (const [name, field] of Object.entries(numbers)) {
      if (field.value.trim() !== "") body[name] = Number(field.value);
    }
    return body;
  }

  /* One streamed answer into `node`; resolves to {text, usage, firstTokenS}; throws an Error with the server's
     message (an OpenAI error body before the stream, or an error chunk within it). */
  async function stream(body, node, signal) {
    const started = performance.now();
    const response = await fetch("/v1/chat/completions", {
      method: "POST", headers: {"Content-Type": "application/json", "Accept": "text/event-stream"},
      body: JSON.stringify(body), signal: signal});
    if (!response.ok) {
      let message = t("js.request_failed", {status: response.status});
      try {
        const data = await response.json();
        if (data && data.error && data.error.message) message = data.error.message;
      } catch (error) { /* not JSON: keep the status line */ }
      throw new Error(message);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let text = "";
    let usage = null;
    let firstTokenS = null;
    for (;;) {
      const {done, value} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true}).replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const payload = line.slice(5).trim();
          if (payload === "[DONE]") return {text: text, usage: usage, firstTokenS: firstTokenS};
          const chunk = JSON.parse(payload);
          if (chunk.error) throw new Error(chunk.error.message || t("js.chat_failed"));
          if (chunk.usage) usage = chunk.usage;
          const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
          if (delta && delta.content) {
            if (firstTokenS === null) firstTokenS = (performance.now() - started) / 1000;
            text += delta.content;
            node.textContent = text;
            node.parentElement.scrollTop = node.parentElement.scrollHeight;
          }
        }
      }
    }
    return {text: text, usage: usage, firstTokenS: firstTokenS};
  }

  async function answer(side, signal) {
    const body = requestBody(side);
    const node = bubble(side, "assistant streaming", "");
    node.dataset.model = body.model;
    const started = performance.now();
    try {
      const result = await stream(body, node, signal);
      const seconds = (performance.now() - started) / 1000;
      node.classList.remove("streaming");
      node.dataset.done = "true";
      if (!result.text.trim()) {  // an answer of only spaces or newlines would look like nothing at all
        node.textContent = t("js.chat_empty_answer");
        node.classList.add("blank");
      }
      side.history.push({role: "assistant", content: result.text});
      const tokens = result.usage ? result.usage.completion_tokens : null;
      const stats = document.createElement("div");
      stats.className = "message-stats";
      stats.textContent = t("js.chat_stats", {
        model: body.model, seconds: seconds.toFixed(1),
        first: result.firstTokenS === null ? "—" : result.firstTokenS.toFixed(2),
        tokens: tokens === null ? "?" : tokens,
        rate: tokens && seconds > 0 ? (tokens / seconds).toFixed(1) : "—"});
      node.after(stats);
    } catch (error) {
      node.classList.remove("streaming");
      side.history.pop(); // the user turn got no answer: leave it out of the next request
      const stopped = error.name === "AbortError";
      node.className = stopped ? "message assistant" : "message error";
      node.dataset.done = "true";
      const partial = node.textContent;
      node.textContent = stopped ? (partial ? partial + " " : "") + t("js.chat_stopped")
        : t("js.chat_error", {model: body.model, message: error.message});
    }
  }

  function setBusy(busy) {
    sendButton.disabled = busy;
    stopButton.hidden = !busy;
    root.dataset.busy = String(busy);
  }

  async function send() {
    const text = input.value.trim();
    if (!text || controller) return;
    const targets = activeSides();
    if (targets.some(function (side) { return !side.select.value; })) {
      TF.toast(t("js.chat_pick_model"), "error");
      return;
    }
    input.value = "";
    controller = new AbortController();
    setBusy(true);
    for (const side of targets) {
      bubble(side, "user", text);
      side.history.push({role: "user", content: text});
    }
    showHeads();
    await Promise.all(targets.map(function (side) { return answer(side, controller.signal); }));
    controller = null;
    setBusy(false);
    showHeads();
    save();
    input.focus();
  }

  function clear() {
    if (controller) controller.abort();
    for (const side of sides) {
      side.history = [];
      side.box.replaceChildren();
      const empty = document.createElement("p");
      empty.className = "chat-empty";
      empty.textContent = t("js.chat_cleared");
      side.box.appendChild(empty);
    }
    showHeads();
    save();
  }

  /* The conversations and the settings outlive a reload of the tab (sessionStorage: this tab only, gone with it). */
  function save() {
    const state = {histories: sides.map(function (side) { return side.history; })};
    for (const [name, field] of Object.entries(settings)) state[name] = field.value;
    try { sessionStorage.setItem(STORE_KEY, JSON.stringify(state)); } catch (error) { /* storage off: no memory */ }
  }

  function restore() {
    let state = null;
    try { state = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null"); } catch (error) { state = null; }
    if (!state) return;
    for (const [name, field] of Object.entries(settings)) {
      if (typeof state[name] === "string") field.value = state[name];
    }
    sides.forEach(function (side, index) {
      side.history = Array.isArray(state.histories && state.histories[index]) ? state.histories[index] : [];
      for (const message of side.history) {
        const node = bubble(side, message.role, message.content);
        if (message.role === "assistant" && !message.content.trim()) {
          node.textContent = t("js.chat_empty_answer");
          node.classList.add("blank");
        }
      }
    });
  }

  /* The mode and the models are kept in the address, so a reload (or a shared link) opens the same playground. */
  function rememberChoice() {
    const params = new URLSearchParams();
    if (sides[0].select.value) params.set("model", sides[0].select.value);
    if (compareBox.checked && sides[1].select.value) params.set("compare", sides[1].select.value);
    history.replaceState(null, "", window.location.pathname + (params.toString() ? "?" + params : ""));
  }

  function setCompare(on) {
    document.getElementById("compare-box").hidden = !on;
    sides[1].panel.hidden = !on;
    columns.classList.toggle("compare", on);
    root.dataset.compare = String(on);
    rememberChoice();
    showHeads();
  }

  form.addEventListener("submit", function (event) { event.preventDefault(); send(); });
  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); send(); }
  });
  stopButton.addEventListener("click", function () { if (controller) controller.abort(); });
  document.getElementById("chat-clear").addEventListener("click", clear);
  compareBox.addEventListener("change", function () { setCompare(compareBox.checked); });
  for (const side of sides) side.select.addEventListener("change", function () { rememberChoice(); showHeads(); });
  for (const field of Object.values(settings)) field.addEventListener("input", save);
  restore();
  setBusy(false);
  showHeads();
})();
