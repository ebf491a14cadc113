/* Forms of the model, deployment and evaluation pages: a dialog body copied from a <template> the server rendered
   (so its labels come translated), the values of its inputs as a JSON body, and the API's field errors shown at
   their fields. */
"use strict";

window.TFForms = (function () {
  /* A fresh copy of <template id=...>'s content, wrapped in a div the dialog can hold. */
  function fromTemplate(id) {
    const box = document.createElement("div");
    const template = document.getElementById(id);
    if (template) box.append(template.content.cloneNode(true));
    return box;
  }

  /* {name: value} of the named inputs: numbers as numbers, checkboxes as booleans, empty fields left out. */
  function values(root) {
    const result = {};
    for (const input of root.querySelectorAll("input[name], select[name], textarea[name]")) {
      if (input.disabled) continue;
      if (input.type === "checkbox") { result[input.name] = input.checked; continue; }
      const text = input.value.trim();
      if (text === "") continue;
      result[input.name] = input.type === "number" ? Number(text) : text;
    }
    return result;
  }

  /* The API names fields in camelCase (maxShardSizeGb) or as a spec path (options.max_shard_size_gb): compare the
     last part without case or underscores. */
  function sameField(a, b) {
    const norm = function (name) { return String(name).split(".").pop().replace(/_/g, "").toLowerCase(); };
    return norm(a) === norm(b);
  }

  function clearErrors(root) {
    for (const node of root.querySelectorAll(".field-error")) node.remove();
    for (const node of root.querySelectorAll(".invalid")) node.classList.remove("invalid");
  }

  /* Each error detail next to its input (a message under it, the input outlined); returns the overall message,
     for the dialog or the form's error line. */
  function showErrors(root, result) {
    clearErrors(root);
    const error = result && result.data && result.data.error;
    for (const detail of (error && error.details) || []) {
      const input = Array.from(root.querySelectorAll("[name]")).find(function (node) {
        return sameField(node.name, detail.field);
      });
      if (!input) continue;
      input.classList.add("invalid");
      const message = document.createElement("p");
      message.className = "field-error";
      message.dataset.field = input.name;
      message.textContent = detail.message;
      (input.closest(".field") || input).insertAdjacentElement(input.closest(".field") ? "beforeend" : "afterend",
                                                               message);
    }
    return TF.errorMessage(result);
  }

  /* The line under a form: with each error at its field it only points at them; else the server's message. */
  function formError(root, result) {
    const message = showErrors(root, result);
    return root.querySelector(".field-error") ? TF.t("js.forms_fix_marked") : message;
  }

  /* A JSON object typed into a textarea, or an error text naming it. */
  function parseObject(text, label) {
    if (!text) return {value: {}};
    try {
      const value = JSON.parse(text);
      if (value && typeof value === "object" && !Array.isArray(value)) return {value: value};
    } catch (error) { /* reported below */ }
    return {error: TF.t("js.forms_bad_json", {field: label})};
  }

  /* Re-fetch an htmx-refreshed fragment (its trigger includes "refresh"); reload the page without htmx. */
  function refresh(id) {
    const node = document.getElementById(id);
    if (node && window.htmx) htmx.trigger(node, "refresh");
    else window.location.reload();
  }

  return {fromTemplate: fromTemplate, values: values, showErrors: showErrors, formError: formError,
    clearErrors: clearErrors, parseObject: parseObject, refresh: refresh};
})();
