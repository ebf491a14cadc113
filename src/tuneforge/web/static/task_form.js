/* The guided create form (model → data → parameters → output → confirm). The server rendered every input
   from the schema; this script moves between the steps, builds the createTask body (only parameters that differ
   from their defaults), asks POST /finetuning/estimateTask before confirm, submits to POST /finetuning/createTask and
   shows each error at its field (details[].field is the input's name). */
"use strict";

(function () {
  const form = document.getElementById("task-form");
  if (!form) return;
  const t = TF.t;
  const sections = Array.from(form.querySelectorAll("section.step"));
  const steps = sections.map(function (s) { return s.dataset.step; });
  const errorsBox = document.getElementById("form-errors");
  const estimateBox = document.getElementById("estimate-box");
  const NUMBER = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
  let current = 0;

  function show(index) {
    current = Math.max(0, Math.min(steps.length - 1, index));
    sections.forEach(function (section, i) { section.hidden = i !== current; });
    form.querySelectorAll("[data-step-tab]").forEach(function (tab, i) {
      tab.classList.toggle("current", i === current);
      tab.classList.toggle("done", i < current);
    });
    form.querySelector("[data-nav=back]").disabled = current === 0;
    const last = current === steps.length - 1;
    form.querySelector("[data-nav=next]").hidden = last;
    form.querySelector("[data-nav=create]").hidden = !last;
    form.dataset.step = steps[current];
    if (steps[current] === "confirm") { renderSummary(); estimate(); }
  }

  /* The LoRA options show for finetuning_type lora, the freeze options for freeze. */
  function showMethodSections() {
    const method = form.querySelector("[name='trainingArgs.finetuning_type']");
    const chosen = method ? JSON.parse(method.value) : "lora";
    form.querySelectorAll("fieldset[data-method]").forEach(function (fieldset) {
      fieldset.hidden = fieldset.dataset.method !== chosen;
    });
  }

  /* [include?, value] of one training-argument input; unchanged inputs are left out so the schema's defaults
     (and 'auto' rules) apply on the server exactly as for an API client. */
  function argument(input) {
    const kind = input.dataset.kind;
    if (kind === "bool") return [String(input.checked) !== input.dataset.default, input.checked];
    const raw = input.value.trim();
    if (raw === (input.dataset.default || "").trim()) return [false, null];
    const nullable = input.dataset.nullable === "true";
    if (kind === "choice") return [true, JSON.parse(input.value)];
    if (raw === "") return [true, nullable ? null : (kind === "list" ? [] : (kind === "dict" ? {} : ""))];
    if (kind === "number") return [true, NUMBER.test(raw) ? Number(raw) : raw];
    if (kind === "dict") { try { return [true, JSON.parse(raw)]; } catch (error) { return [true, raw]; } }
    return [true, raw];  // str, and list as "a, b" (the schema splits commas as LLaMA-Factory does)
  }

  function text(name) {
    const input = form.elements.namedItem(name);
    return input ? input.value.trim() : "";
  }

  // "pool=a100, zone=b" → {pool: "a100", zone: "b"}; anything else goes as typed, for the server to name
  function labels(given) {
    const pairs = given.split(",").map(function (part) { return part.trim(); }).filter(Boolean);
    if (!pairs.every(function (pair) { return /^[^=\s]+=[^=]*$/.test(pair); })) return given;
    return Object.fromEntries(pairs.map(function (pair) { return pair.split("=").map(function (s) { return s.trim(); }); }));
  }

  function body() {
    const extra = JSON.parse(document.getElementById("extra-args").textContent || "{}");
    const trainingArgs = Object.assign({}, extra);
    form.querySelectorAll("[name^='trainingArgs.']").forEach(function (input) {
      const [include, value] = argument(input);
      if (include) trainingArgs[input.name.slice("trainingArgs.".length)] = value;
    });
    const gpuConfig = {};
    const count = text("gpuConfig.gpu_count");
    if (count) gpuConfig.gpu_count = NUMBER.test(count) ? Number(count) : count;
    const visible = text("gpuConfig.cuda_visible_devices");
    if (visible) gpuConfig.cuda_visible_devices = visible;
    if (form.elements.namedItem("gpuConfig.memory_optimization").checked) gpuConfig.memory_optimization = true;
    const executor = text("gpuConfig.executor");
    if (executor && executor !== "local") gpuConfig.executor = executor;
    const nodes = text("gpuConfig.nodes");
    if (nodes) gpuConfig.nodes = NUMBER.test(nodes) ? Number(nodes) : nodes;
    const selector = text("gpuConfig.node_selector");
    if (selector) gpuConfig.node_selector = labels(selector);
    const payload = {name: text("name"), description: text("description"), baseModel: text("baseModel") || null,
      datasetPath: text("datasetPath") || null, trainingArgs: trainingArgs, gpuConfig: gpuConfig};
    const experiment = text("experimentId");
    if (experiment) payload.experimentId = Number(experiment);
    const output = text("outputPath");
    if (output) payload.outputPath = output;
    return payload;
  }

  // -- errors at their fields --------------------------------------------------------------------------------
  function clearErrors() {
    errorsBox.hidden = true;
    errorsBox.querySelector("ul").replaceChildren();
    form.querySelectorAll(".field.invalid").forEach(function (field) {
      field.classList.remove("invalid");
      const message = field.querySelector(".field-error");
      message.hidden = true;
      message.textContent = "";
    });
    form.querySelectorAll("[data-step-tab].has-error").forEach(function (tab) { tab.classList.remove("has-error"); });
  }

  /* "trainingArgs.bf16, fp16" names two inputs: trainingArgs.bf16 and trainingArgs.fp16. */
  function fieldPaths(path) {
    const parts = String(path || "").split(",").map(function (p) { return p.trim(); }).filter(Boolean);
    const prefix = parts.length && parts[0].includes(".") ? parts[0].slice(0, parts[0].lastIndexOf(".") + 1) : "";
    return parts.map(function (p, i) { return i === 0 || p.includes(".") ? p : prefix + p; });
  }

  function showErrors(result) {
    clearErrors();
    const error = (result.data && result.data.error) || {message: TF.errorMessage(result), details: []};
    const details = error.details && error.details.length ? error.details : [{field: "", message: error.message}];
    const list = errorsBox.querySelector("ul");
    let firstStep = null;
    for (const detail of details) {
      const item = document.createElement("li");
      item.textContent = detail.field ? detail.field + ": " + detail.message : detail.message;
      item.dataset.errorField = detail.field || "";
      list.appendChild(item);
      for (const path of fieldPaths(detail.field)) {
        const field = form.querySelector("[data-field='" + CSS.escape(path) + "']");
        if (!field) continue;
        field.classList.add("invalid");
        const message = field.querySelector(".field-error");
        message.textContent = message.textContent ? message.textContent + " " + detail.message : detail.message;
        message.hidden = false;
        const folded = field.closest("details");
        if (folded) folded.open = true;
        const fieldset = field.closest("fieldset[data-method]");
        if (fieldset) fieldset.hidden = false;
        const step = field.closest("section.step").dataset.step;
        form.querySelector("[data-step-tab='" + step + "']").classList.add("has-error");
        if (firstStep === null) firstStep = step;
      }
    }
    errorsBox.hidden = false;
    if (firstStep !== null) {
      show(steps.indexOf(firstStep));
      const invalid = form.querySelector("section.step:not([hidden]) .field.invalid input, section.step:not([hidden]) .field.invalid select");
      if (invalid) invalid.focus();
    }
    errorsBox.scrollIntoView({block: "nearest"});
  }

  // -- confirm: summary and estimate -------------------------------------------------------------------------
  function row(table, key, value) {
    const tr = table.insertRow();
    const th = document.createElement("td");
    th.textContent = key;
    const td = document.createElement("td");
    td.className = "mono";
    td.textContent = typeof value === "string" ? value : JSON.stringify(value);
    tr.append(th, td);
  }

  function renderSummary() {
    const table = document.getElementById("form-summary").tBodies[0];
    table.replaceChildren();
    const payload = body();
    for (const key of ["name", "baseModel", "datasetPath", "outputPath", "experimentId", "description"]) {
      if (payload[key] !== undefined && payload[key] !== null && payload[key] !== "") row(table, key, payload[key]);
    }
    if (Object.keys(payload.gpuConfig).length) row(table, "gpuConfig", payload.gpuConfig);
    for (const [key, value] of Object.entries(payload.trainingArgs)) row(table, "trainingArgs." + key, value);
  }

  function gib(bytes) { return (bytes / 1024 ** 3).toFixed(2) + " GiB"; }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    const s = Math.round(seconds);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? h + " h " + String(m).padStart(2, "0") + " m" : (m ? m + " m " + String(r).padStart(2, "0") + " s" : r + " s");
  }

  function paragraph(className, content) {
    const p = document.createElement("p");
    p.className = className;
    p.textContent = content;
    return p;
  }

  function renderEstimate(data, problem) {
    estimateBox.replaceChildren();
    const e = data.estimate;
    const dataset = (e && e.dataset) || data.dataset;
    if (problem) estimateBox.appendChild(paragraph("error-text", problem));
    if (e) {
      estimateBox.appendChild(estimateTable(e, dataset, data.autoValues || []));
      estimateBox.appendChild(paragraph("muted", [e.basis].concat(e.notes || []).join(" · ")));
    } else if (!problem) {
      estimateBox.appendChild(paragraph("muted", t("js.estimate_none")));
    }
    if (dataset && dataset.truncation) estimateBox.appendChild(truncationReport(dataset, cutoffLen(data)));
  }

  function estimateTable(e, dataset, autoValues) {
    const table = document.createElement("table");
    table.className = "table estimate-table";
    table.id = "estimate-table";
    const body = table.createTBody();
    const add = function (key, value) { row(body, t(key), value); };
    add("js.estimate_memory", gib(e.memory.total) + (e.device_memory ? " / " + gib(e.device_memory) : ""));
    add("js.estimate_fits", e.fits ? t("js.yes") : t("js.no"));
    add("js.estimate_devices", (e.devices || []).join(", "));
    add("js.estimate_parameters", e.trainable_parameters.toLocaleString() + " / " + e.total_parameters.toLocaleString());
    add("js.estimate_steps", e.steps_per_epoch + " / " + e.total_steps);
    add("js.estimate_epoch_time", duration(e.seconds_per_epoch));
    add("js.estimate_total_time", duration(e.total_seconds));
    add("js.estimate_tokens_per_second", String(e.tokens_per_second));
    if (dataset) add("js.estimate_samples", dataset.num_train_samples + " / " + dataset.num_eval_samples);
    for (const auto of autoValues) add("js.estimate_auto", auto.field + " = " + auto.value + " (" + auto.reason + ")");
    return table;
  }

  /* The cutoff_len the plan resolved; without it (a refused estimate), the form's value or the schema's default. */
  function cutoffLen(data) {
    if (data.trainingArgs && data.trainingArgs.cutoff_len !== undefined) return data.trainingArgs.cutoff_len;
    const input = form.elements.namedItem("trainingArgs.cutoff_len");
    return input ? (input.value.trim() || input.dataset.default || "") : "";
  }

  /* Per training dataset: how many samples are longer than cutoff_len and how many tokens training cuts off. */
  function truncationReport(dataset, cutoff) {
    const box = document.createElement("div");
    box.id = "truncation";
    const title = document.createElement("h3");
    title.textContent = t("js.truncation_title");
    const list = document.createElement("ul");
    list.className = "truncation";
    let cut = false;
    for (const [name, report] of Object.entries(dataset.truncation)) {
      const item = document.createElement("li");
      item.dataset.dataset = name;
      item.dataset.overCutoff = report.over_cutoff;
      const values = {name: name, over: number(report.over_cutoff), samples: number(report.samples),
        cutoff: cutoff, tokens: number(report.tokens_cut)};
      if (report.over_cutoff > 0) {
        cut = true;
        item.className = "warn";
        item.textContent = t("js.truncation_cut", values);
      } else {
        item.textContent = t("js.truncation_none", values);
      }
      list.appendChild(item);
    }
    box.dataset.cut = String(cut);
    const measured = dataset.tokens_measured_with === "tokenizer" ? "js.truncation_by_tokenizer" : "js.truncation_by_characters";
    box.append(title, list, paragraph("muted", t(measured)));
    return box;
  }

  function number(value) { return Number(value).toLocaleString(document.documentElement.lang || undefined); }

  async function estimate() {
    estimateBox.textContent = t("js.estimating");
    const result = await TF.api("POST", "/finetuning/estimateTask", body());
    if (result.ok) { clearErrors(); renderEstimate(result.data, null); return; }
    const error = result.data && result.data.error;
    if (error && error.code === "does_not_fit") {
      // Too big for the devices: the numbers say by how much; the user changes batch, cutoff or quantization.
      renderEstimate({estimate: (error.details || [])[0]}, error.message);
      return;
    }
    estimateBox.textContent = t("js.estimate_failed");
    showErrors(result);
  }

  async function create(event) {
    event.preventDefault();
    if (steps[current] !== "confirm") { show(current + 1); return; }  // Enter in a field moves on, never creates
    const button = form.querySelector("[data-nav=create]");
    button.disabled = true;
    const result = await TF.api("POST", "/finetuning/createTask", body());
    button.disabled = false;
    if (result.ok) {
      TF.toast(t("js.created", {name: result.data.name}));
      window.location.assign("/console/tasks/" + result.data.id);
      return;
    }
    showErrors(result);
  }

  form.addEventListener("click", function (event) {
    const target = event.target.closest("[data-nav], [data-goto]");
    if (!target) return;
    if (target.dataset.goto) show(steps.indexOf(target.dataset.goto));
    else if (target.dataset.nav === "next") show(current + 1);
    else if (target.dataset.nav === "back") show(current - 1);
  });
  form.addEventListener("submit", create);
  // A line of the error summary takes the user to its field.
  errorsBox.addEventListener("click", function (event) {
    const item = event.target.closest("li[data-error-field]");
    const field = item && item.dataset.errorField ? form.querySelector("[data-field='" + CSS.escape(fieldPaths(item.dataset.errorField)[0]) + "']") : null;
    if (!field) return;
    show(steps.indexOf(field.closest("section.step").dataset.step));
    const input = field.querySelector("input, select, textarea");
    if (input) input.focus();
  });
  form.addEventListener("change", function (event) {
    if (event.target.name === "trainingArgs.finetuning_type") showMethodSections();
  });
  showMethodSections();
  show(0);
})();
