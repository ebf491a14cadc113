/* Datasets pages: create by upload (with field mapping and an upload progress bar), a new version, delete.
   Every action goes to the JSON API (/datasets/...) like any client; the server decides and the page shows its
   answer, each error at the field it names. Reports, statistics and previews are rendered by the server (htmx). */
"use strict";

(function () {
  const API = "/datasets";

  /* POST a multipart form with upload progress; resolves to {ok, status, data} like TF.api. */
  function upload(path, formData, onProgress) {
    return new Promise(function (resolve) {
      const request = new XMLHttpRequest();
      request.open("POST", path);
      request.setRequestHeader("Accept", "application/json");
      request.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable && onProgress) onProgress(100 * event.loaded / event.total);
      });
      request.addEventListener("load", function () {
        let data = null;
        try { data = JSON.parse(request.responseText); } catch (error) { data = null; }
        resolve({ok: request.status >= 200 && request.status < 300, status: request.status, data: data});
      });
      request.addEventListener("error", function () {
        resolve({ok: false, status: 0, data: {error: {code: "network", message: TF.t("js.network_error"), details: []}}});
      });
      request.send(formData);
    });
  }

  function setProgress(bar, percent) {
    if (!bar) return;
    bar.hidden = percent === null;
    const value = Math.max(0, Math.min(100, percent || 0));
    bar.setAttribute("aria-valuenow", value.toFixed(0));
    bar.querySelector("span").style.width = value.toFixed(1) + "%";
  }

  /* Puts each error detail at its field ([data-field] = the detail's first path segment); the rest, and the
     message when no field matched, go to the summary box. Returns the number of details placed at a field. */
  function showErrors(form, summary, result) {
    const error = (result.data && result.data.error) || {};
    const unplaced = [];
    let placed = 0;
    for (const detail of error.details || []) {
      const name = String(detail.field || "").split(/[.[]/)[0];
      const box = name ? form.querySelector('[data-field="' + CSS.escape(name) + '"]:not([hidden])') : null;
      const slot = box && box.querySelector(".field-error");
      if (slot) {
        slot.textContent = (slot.hidden ? "" : slot.textContent + " ") + detail.message;
        slot.hidden = false;
        box.classList.add("invalid");
        placed += 1;
      } else {
        unplaced.push((detail.field ? detail.field + ": " : "") + detail.message);
      }
    }
    if (summary) {
      const lines = unplaced.length ? unplaced : (placed ? [] : [TF.errorMessage(result)]);
      summary.replaceChildren();
      if (lines.length) {
        const list = document.createElement("ul");
        for (const line of lines) {
          const item = document.createElement("li");
          item.textContent = line;
          list.appendChild(item);
        }
        summary.append(TF.t("js.datasets.not_created"), list);
      }
      summary.hidden = lines.length === 0;
    } else if (!placed) {
      TF.toast(TF.errorMessage(result), "error");
    }
    const first = form.querySelector(".invalid input, .invalid select");
    if (first) first.focus();
    return placed;
  }

  function clearErrors(form) {
    for (const slot of form.querySelectorAll(".field-error")) { slot.hidden = true; slot.textContent = ""; }
    for (const box of form.querySelectorAll(".invalid")) box.classList.remove("invalid");
  }

  /* ---- the create form -------------------------------------------------------------------------------- */

  /* The first record of a chosen file (JSON Lines: the first line; JSON: the first element of a small array). */
  async function firstRecord(file) {
    const head = await file.slice(0, 256 * 1024).text();
    try {
      if (/\.jsonl$/i.test(file.name)) {
        const line = head.split("\n").find(function (text) { return text.trim(); });
        return line ? JSON.parse(line) : null;
      }
      if (file.size <= 4 * 1024 * 1024) {
        const value = JSON.parse(await file.text());
        return Array.isArray(value) ? value[0] : value;
      }
    } catch (error) {
      return null;  // a broken first record: validation will name its line
    }
    return null;
  }

  /* LLaMA-Factory's formatting a record looks like: a list of {from, value} → sharegpt, of {role, content} →
     openai, only a text field → text, otherwise alpaca. */
  function guessFormatting(record) {
    for (const value of Object.values(record)) {
      if (Array.isArray(value) && value.length && value[0] && typeof value[0] === "object") {
        return "role" in value[0] ? "openai" : "sharegpt";
      }
    }
    const keys = Object.keys(record);
    return keys.length === 1 && keys[0] === "text" ? "text" : "alpaca";
  }

  function initCreateForm(form) {
    const console_ = form.dataset.console;
    const formatting = form.querySelector("#ds-formatting");
    const purpose = form.querySelector("#ds-purpose");
    const filesInput = form.querySelector("#ds-files");
    const summary = form.querySelector("#dataset-form-errors");
    let guessed = "alpaca";

    function currentSource() { return form.querySelector('input[name="source"]:checked').value; }
    function shownFormatting() { return formatting.value || guessed; }

    function showMapping() {
      const shown = shownFormatting();
      for (const group of form.querySelectorAll(".mapping-group")) {
        const byFormat = group.dataset.formatting;
        const byPurpose = group.dataset.purpose;
        group.hidden = byFormat ? byFormat !== shown : byPurpose !== purpose.value;
      }
    }

    function showSource() {
      for (const box of form.querySelectorAll("[data-source]")) box.hidden = box.dataset.source !== currentSource();
    }

    async function onFiles() {
      const list = form.querySelector("#ds-chosen-files");
      list.replaceChildren();
      for (const file of filesInput.files) {
        const item = document.createElement("li");
        item.textContent = file.name + " (" + (file.size / 1024).toFixed(1) + " KB)";
        list.appendChild(item);
      }
      const record = filesInput.files.length ? await firstRecord(filesInput.files[0]) : null;
      const hint = form.querySelector("#ds-record-fields");
      const keys = record && typeof record === "object" ? Object.keys(record) : [];
      hint.hidden = keys.length === 0;
      hint.querySelector("code").textContent = keys.join(", ");
      form.querySelector("#ds-record-keys").replaceChildren(...keys.map(function (key) {
        const option = document.createElement("option");
        option.value = key;
        return option;
      }));
      if (keys.length) guessed = guessFormatting(record);
      showMapping();
    }

    /* Only the mapping fields a user filled in, of the groups on screen: the rest stay the format's defaults. */
    function mapping(attribute) {
      const result = {};
      for (const input of form.querySelectorAll(".mapping-group:not([hidden]) input[data-" + attribute + "]")) {
        if (input.value.trim()) result[input.dataset[attribute]] = input.value.trim();
      }
      return result;
    }

    async function submit(event) {
      event.preventDefault();
      clearErrors(form);
      summary.hidden = true;
      const data = new FormData();
      data.append("name", form.elements.namedItem("name").value.trim());
      data.append("description", form.elements.namedItem("description").value.trim());
      data.append("purpose", purpose.value);
      const columns = mapping("column");
      const tags = mapping("tag");
      // A mapping is read in one formatting: with columns given, send the one they were typed for.
      const chosen = formatting.value || (Object.keys(columns).length || Object.keys(tags).length ? guessed : "");
      data.append("formatting", chosen);
      if (Object.keys(columns).length) data.append("columns", JSON.stringify(columns));
      if (Object.keys(tags).length) data.append("tags", JSON.stringify(tags));
      const source = currentSource();
      if (source === "upload") {
        for (const file of filesInput.files) data.append("files", file, file.name);
      } else {
        data.append(source, form.elements.namedItem(source).value.trim());
      }
      const button = form.querySelector("#ds-submit");
      const bar = form.querySelector("#ds-upload-progress");
      button.disabled = true;
      setProgress(bar, source === "upload" && filesInput.files.length ? 0 : null);
      const result = await upload(API + "/createDataset", data, function (percent) { setProgress(bar, percent); });
      button.disabled = false;
      setProgress(bar, null);
      if (result.ok) {
        window.location.assign(console_ + "/datasets/" + result.data.id);
        return;
      }
      showErrors(form, summary, result);
    }

    formatting.addEventListener("change", showMapping);
    purpose.addEventListener("change", showMapping);
    filesInput.addEventListener("change", onFiles);
    for (const radio of form.querySelectorAll('input[name="source"]')) radio.addEventListener("change", showSource);
    form.addEventListener("submit", submit);
    showSource();
    showMapping();
  }

  /* ---- a new version ---------------------------------------------------------------------------------- */

  function initVersionForm(form) {
    async function submit(event) {
      event.preventDefault();
      clearErrors(form);
      const data = new FormData();
      data.append("id", form.dataset.datasetId);
      for (const file of form.elements.namedItem("files").files) data.append("files", file, file.name);
      const bar = form.querySelector(".upload-progress");
      const button = form.querySelector('button[type="submit"]');
      button.disabled = true;
      setProgress(bar, 0);
      const result = await upload(API + "/createDatasetVersion", data, function (percent) { setProgress(bar, percent); });
      button.disabled = false;
      setProgress(bar, null);
      if (!result.ok) {
        showErrors(form, null, result);
        return;
      }
      if (result.data.unchanged) {  // nothing new to open: say which version already holds these files
        TF.toast(TF.t("js.datasets.version_unchanged", {reference: result.data.reference}));
        return;
      }
      window.location.assign(form.dataset.console + "/datasets/" + result.data.datasetId + "?version=" + result.data.version);
    }
    form.addEventListener("submit", submit);
  }

  /* ---- delete ----------------------------------------------------------------------------------------- */

  async function deleteDataset(button) {
    const name = button.dataset.datasetName;
    const done = await TF.confirm({
      title: TF.t("js.datasets.delete_title", {name: name}),
      message: TF.t("js.datasets.delete_message", {name: name}),
      confirmLabel: TF.t("js.datasets.delete_confirm"),
      danger: true,
      action: async function () {
        const result = await TF.api("DELETE", API + "/deleteDataset?id=" + encodeURIComponent(button.dataset.datasetId));
        return result.ok ? null : TF.errorMessage(result);
      },
    });
    if (!done) return;
    TF.toast(TF.t("js.datasets.deleted", {name: name}));
    const rows = document.getElementById("dataset-rows");
    if (button.dataset.after) window.location.assign(button.dataset.after);
    else if (rows && window.htmx) window.htmx.trigger(rows, "refresh");
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-action]");
    if (!button) return;
    if (button.dataset.action === "delete-dataset") {
      event.preventDefault();
      deleteDataset(button);
    } else if (button.dataset.action === "toggle-version-form") {
      const form = document.getElementById("version-form");
      form.hidden = !form.hidden;
      if (!form.hidden) form.querySelector('input[type="file"]').focus();
    }
  });

  const createForm = document.getElementById("dataset-form");
  if (createForm) initCreateForm(createForm);
  const versionForm = document.getElementById("version-form");
  if (versionForm) initVersionForm(versionForm);
})();
