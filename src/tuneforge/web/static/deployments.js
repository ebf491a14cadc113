/* Deployment pages: create (list page), stop / start / delete (both pages) through the JSON API; the live parts
   refresh themselves through htmx, and the log stays scrolled to its end after each refresh. */
"use strict";

(function () {
  const t = TF.t;
  const detail = document.getElementById("deployment-detail");
  const panel = document.getElementById("create-panel");
  const form = document.getElementById("create-form");

  function refreshView() {
    TFForms.refresh(detail ? "deployment-live" : "deployment-rows");
  }

  function scrollLog() {
    const log = document.getElementById("deployment-log");
    if (log) log.scrollTop = log.scrollHeight;
  }

  /* -- create -------------------------------------------------------------------------------------------------- */
  function showCreate(visible) {
    if (!panel) return;
    panel.hidden = !visible;
    if (visible && form) form.querySelector("select[name=modelId]").focus();
  }

  if (form) {
    const modelSelect = form.querySelector("select[name=modelId]");
    const nameInput = form.querySelector("input[name=name]");
    const engine = form.querySelector("select[name=engine]");
    const batch = form.querySelector("input[name=max_batch]");
    // The name clients will use defaults to the model's; typing one keeps it.
    function suggestName() {
      if (!nameInput.dataset.touched) nameInput.value = modelSelect.selectedOptions[0].dataset.name;
    }
    nameInput.addEventListener("input", function () { nameInput.dataset.touched = "true"; });
    modelSelect.addEventListener("change", suggestName);
    engine.addEventListener("change", function () { batch.disabled = engine.value !== "transformers"; });
    suggestName();

    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const errorLine = form.querySelector(".form-error");
      const values = TFForms.values(form);
      const options = TFForms.parseObject(values.options, t("js.models_options"));
      if (options.error) {
        errorLine.textContent = options.error;
        errorLine.hidden = false;
        return;
      }
      if (values.max_batch !== undefined) options.value.max_batch = values.max_batch;
      const submit = form.querySelector("button[type=submit]");
      submit.disabled = true;
      const result = await TF.api("POST", "/deployments/createDeployment", {
        name: values.name || "", modelId: Number(values.modelId), engine: values.engine, options: options.value});
      submit.disabled = false;
      if (!result.ok) {
        errorLine.textContent = TFForms.formError(form, result);
        errorLine.hidden = false;
        return;
      }
      TF.toast(t("js.models_deploying", {name: result.data.name}));
      window.location.assign("/console/deployments/" + result.data.id);
    });
  }

  /* -- stop / start / delete ----------------------------------------------------------------------------------- */
  async function stopDeployment(id, name) {
    await TF.confirm({
      title: t("js.deployments_stop_title", {name: name}), message: t("js.deployments_stop_message"),
      confirmLabel: t("js.deployments_stop"), danger: true,
      action: async function () {
        const result = await TF.api("POST", "/deployments/stopDeployment", {id: Number(id)});
        if (!result.ok) return TF.errorMessage(result);
        TF.toast(t("js.deployments_stopped", {name: name}));
        refreshView();
        return null;
      },
    });
  }

  async function startDeployment(id, name) {
    const result = await TF.api("POST", "/deployments/startDeployment", {id: Number(id)});
    if (!result.ok) { TF.toast(TF.errorMessage(result), "error"); return; }
    TF.toast(t("js.deployments_starting", {name: name}));
    refreshView();
  }

  async function deleteDeployment(id, name) {
    await TF.confirm({
      title: t("js.deployments_delete_title", {name: name}), message: t("js.deployments_delete_message"),
      confirmLabel: t("js.deployments_delete"), danger: true,
      action: async function () {
        const result = await TF.api("DELETE", "/deployments/deleteDeployment?id=" + encodeURIComponent(id));
        if (!result.ok) return TF.errorMessage(result);
        TF.toast(t("js.deployments_deleted", {name: name}));
        if (detail) window.location.assign("/console/deployments");
        else refreshView();
        return null;
      },
    });
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const {action, deploymentId, deploymentName} = button.dataset;
    if (action === "show-create") showCreate(panel.hidden);
    else if (action === "hide-create") showCreate(false);
    else if (action === "stop-deployment") stopDeployment(deploymentId, deploymentName);
    else if (action === "start-deployment") startDeployment(deploymentId, deploymentName);
    else if (action === "delete-deployment") deleteDeployment(deploymentId, deploymentName);
  });

  document.body.addEventListener("htmx:afterSwap", scrollLog);
  scrollLog();
})();
