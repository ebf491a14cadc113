/* Shared helpers of every console page: translations, JSON API calls, the confirmation dialog, toasts.
   Pages act through the JSON API (the same endpoints as any client); everything shown comes from the server. */
"use strict";

window.TF = (function () {
  let catalog = null;

  /* t(key, values): the text in the page's language (the catalog the layout embeds), {name} filled in. */
  function t(key, values) {
    if (catalog === null) {
      const node = document.getElementById("i18n-catalog");
      catalog = node ? JSON.parse(node.textContent) : {};
    }
    let text = catalog[key] || key;
    for (const [name, value] of Object.entries(values || {})) {
      text = text.split("{" + name + "}").join(String(value));
    }
    return text;
  }

  /* fetch with a JSON body; resolves to {ok, status, data} and never throws for HTTP errors. */
  async function api(method, path, body) {
    const options = {method: method, headers: {"Accept": "application/json"}};
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, options);
    } catch (error) {
      return {ok: false, status: 0, data: {error: {code: "network", message: t("js.network_error"), details: []}}};
    }
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    return {ok: response.ok, status: response.status, data: data};
  }

  /* The server's error message (every API error is {"error": {"code", "message", "details"}}). */
  function errorMessage(result) {
    const error = result && result.data && result.data.error;
    return error && error.message ? error.message : t("js.request_failed", {status: result ? result.status : "?"});
  }

  function toast(message, kind) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const item = document.createElement("div");
    item.className = "toast" + (kind === "error" ? " error" : "");
    item.setAttribute("role", kind === "error" ? "alert" : "status");
    item.textContent = message;
    box.appendChild(item);
    setTimeout(function () { item.remove(); }, kind === "error" ? 9000 : 4000);
  }

  /* A modal confirmation. `body` is an optional element (e.g. inputs); `action` runs on confirm and returns
     null on success or an error text, which keeps the dialog open with the error shown. */
  function confirmDialog(options) {
    const dialog = document.getElementById("confirm-dialog");
    const bodyBox = dialog.querySelector(".dialog-body");
    const errorBox = dialog.querySelector(".dialog-error");
    const confirmButton = dialog.querySelector(".dialog-confirm");
    dialog.querySelector(".dialog-title").textContent = options.title;
    bodyBox.replaceChildren();
    if (options.message) {
      const p = document.createElement("p");
      p.textContent = options.message;
      bodyBox.appendChild(p);
    }
    if (options.body) bodyBox.appendChild(options.body);
    errorBox.hidden = true;
    confirmButton.textContent = options.confirmLabel || t("js.confirm");
    confirmButton.classList.toggle("danger", Boolean(options.danger));
    confirmButton.disabled = false;
    return new Promise(function (resolve) {
      async function onClick(event) {
        if (event.target.value !== "confirm") return;
        event.preventDefault();
        confirmButton.disabled = true;
        const problem = options.action ? await options.action() : null;
        confirmButton.disabled = false;
        if (problem) {
          errorBox.textContent = problem;
          errorBox.hidden = false;
          return;
        }
        dialog.close("confirm");
      }
      dialog.querySelector("form").addEventListener("click", onClick);
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        dialog.querySelector("form").removeEventListener("click", onClick);
        resolve(dialog.returnValue === "confirm");
      });
      dialog.returnValue = "";
      dialog.showModal();
    });
  }

  return {t: t, api: api, errorMessage: errorMessage, toast: toast, confirm: confirmDialog};
})();
