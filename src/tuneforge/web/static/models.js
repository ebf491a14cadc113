/* The model pages' actions, all through the JSON API: register a base model and publish a task (list page); deploy,
   export, evaluate (model page) and delete (both). The live panels refresh themselves through htmx. */
"use strict";

(function () {
  const t = TF.t;
  const detail = document.getElementById("model-detail");

  /* -- register (list page) ------------------------------------------------------------------------------------ */
  const registerPanel = document.getElementById("register-panel");
  const registerForm = document.getElementById("register-form");

  function showRegister(visible) {
    if (!registerPanel) return;
    registerPanel.hidden = !visible;
    if (visible) registerForm.querySelector("input[name=name]").focus();
  }

  if (registerForm) {
    registerForm.addEventListener("submit", async function (event) {
      event.preventDefault();
      const errorLine = registerForm.querySelector(".form-error");
      const submit = registerForm.querySelector("button[type=submit]");
      submit.disabled = true;
      const result = await TF.api("POST", "/models/registerModel", TFForms.values(registerForm));
      submit.disabled = false;
      if (!result.ok) {
        errorLine.textContent = TFForms.formError(registerForm, result);
        errorLine.hidden = false;
        return;
      }
      TFForms.clearErrors(registerForm);
      errorLine.hidden = true;
      registerForm.reset();
      showRegister(false);
      TF.toast(t(result.data.status === "importing" ? "js.models_importing" : "js.models_registered",
                 {name: result.data.name}));
      TFForms.refresh("model-rows");
    });
  }

  /* -- publish a task (list page) ------------------------------------------------------------------------------ */
  async function loadCheckpoints(body) {
    const taskSelect = body.querySelector("select[name=taskId]");
    const stepSelect = body.querySelector("select[name=checkpointStep]");
    const option = taskSelect.selectedOptions[0];
    body.querySelector("input[name=name]").value = option.dataset.name;
    stepSelect.replaceChildren();
    if (option.dataset.status === "completed") stepSelect.add(new Option(t("js.models_final"), ""));
    const result = await TF.api("GET", "/finetuning/getTaskCheckpoints?id=" + encodeURIComponent(taskSelect.value));
    for (const checkpoint of (result.ok ? result.data : [])) {
      stepSelect.add(new Option(t("js.models_step", {step: checkpoint.step}), String(checkpoint.step)));
    }
  }

  async function publishTask() {
    const body = TFForms.fromTemplate("publish-template");
    const empty = body.querySelector("[data-empty]") !== null;
    if (!empty) {
      body.querySelector("select[name=taskId]").addEventListener("change", function () { loadCheckpoints(body); });
      await loadCheckpoints(body);
    }
    await TF.confirm({
      title: t("js.models_publish_title"), body: body, confirmLabel: t("js.models_publish"),
      action: async function () {
        if (empty) return t("js.models_publish_none");
        const values = TFForms.values(body);
        const payload = {taskId: Number(values.taskId), name: values.name || "", description: values.description};
        if (values.checkpointStep !== undefined) payload.checkpointStep = Number(values.checkpointStep);
        const result = await TF.api("POST", "/models/publishModel", payload);
        if (!result.ok) return TFForms.showErrors(body, result);
        TF.toast(t("js.models_published", {name: result.data.name}));
        window.location.assign("/console/models/" + result.data.id);
        return null;
      },
    });
  }

  /* -- delete (both pages) ------------------------------------------------------------------------------------- */
  async function deleteModel(id, name) {
    await TF.confirm({
      title: t("js.models_delete_title", {name: name}), message: t("js.models_delete_message"),
      confirmLabel: t("js.models_delete"), danger: true,
      action: async function () {
        const result = await TF.api("DELETE", "/models/deleteModel?id=" + encodeURIComponent(id));
        if (!result.ok) return TF.errorMessage(result);
        TF.toast(t("js.models_deleted", {name: name}));
        if (detail) window.location.assign("/console/models");
        else TFForms.refresh("model-rows");
        return null;
      },
    });
  }

  /* -- model page: deploy, export, evaluate ------------------------------------------------------------------- */
  function modelId() { return Number(detail.dataset.modelId); }

  async function deploy() {
    const body = TFForms.fromTemplate("deploy-template");
    const engine = body.querySelector("select[name=engine]");
    const batch = body.querySelector("input[name=max_batch]");
    // max_batch is the built-in server's option; vLLM and llama.cpp take theirs in the options box.
    engine.addEventListener("change", function () { batch.disabled = engine.value !== "transformers"; });
    await TF.confirm({
      title: t("js.models_deploy_title", {name: detail.dataset.modelName}), body: body,
      confirmLabel: t("js.models_deploy"),
      action: async function () {
        const values = TFForms.values(body);
        const options = TFForms.parseObject(values.options, t("js.models_options"));
        if (options.error) return options.error;
        if (values.max_batch !== undefined) options.value.max_batch = values.max_batch;
        const result = await TF.api("POST", "/deployments/createDeployment", {
          name: values.name || "", modelId: modelId(), engine: values.engine, options: options.value});
        if (!result.ok) return TFForms.showErrors(body, result);
        TF.toast(t("js.models_deploying", {name: result.data.name}));
        window.location.assign("/console/deployments/" + result.data.id);
        return null;
      },
    });
  }

  async function exportModel() {
    const body = TFForms.fromTemplate("export-template");
    await TF.confirm({
      title: t("js.models_export_title", {name: detail.dataset.modelName}), body: body,
      confirmLabel: t("js.models_export"),
      action: async function () {
        const result = await TF.api("POST", "/models/exportModel", Object.assign({id: modelId()},
                                                                                  TFForms.values(body)));
        if (!result.ok) return TFForms.showErrors(body, result);
        TF.toast(t("js.models_export_started", {id: result.data.id}));
        TFForms.refresh("model-jobs");
        return null;
      },
    });
  }

  async function evaluate() {
    const body = TFForms.fromTemplate("evaluate-template");
    await TF.confirm({
      title: t("js.models_evaluate_title", {name: detail.dataset.modelName}), body: body,
      confirmLabel: t("js.models_evaluate"),
      action: async function () {
        const result = await TF.api("POST", "/evaluations/createEvaluation", Object.assign({modelId: modelId()},
                                                                                          TFForms.values(body)));
        if (!result.ok) return TFForms.showErrors(body, result);
        TF.toast(t("js.models_evaluation_started", {id: result.data.id}));
        TFForms.refresh("model-jobs");
        return null;
      },
    });
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    if (action === "show-register") showRegister(registerPanel.hidden);
    else if (action === "hide-register") showRegister(false);
    else if (action === "publish-task") publishTask();
    else if (action === "delete-model") deleteModel(button.dataset.modelId, button.dataset.modelName);
    else if (action === "deploy") deploy();
    else if (action === "export") exportModel();
    else if (action === "evaluate") evaluate();
  });

  // The list's "Deploy" link lands on #deploy: open the dialog straight away.
  if (detail && window.location.hash === "#deploy") {
    const button = detail.querySelector("button[data-action=deploy]");
    if (button && !button.disabled) {
      history.replaceState(null, "", window.location.pathname);
      deploy();
    }
  }
})();
