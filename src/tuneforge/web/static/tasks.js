/* Task actions (list and detail pages): stop, resume, delete and publish, each confirmed in a dialog and done
   through the JSON API. Buttons carry data-action / data-task-id / data-task-name (templates/tasks/_macros.html). */
"use strict";

(function () {
  const t = TF.t;

  /* After an action the page shows the server's new state: the list re-fetches its rows, the detail its panel. */
  function refreshView() {
    const rows = document.getElementById("task-rows");
    if (rows && window.htmx) { htmx.trigger(rows, "refresh"); return; }
    if (document.getElementById("task-live")) { document.dispatchEvent(new CustomEvent("tf:task-changed")); return; }
    window.location.reload();
  }

  function field(labelText, input) {
    const wrap = document.createElement("div");
    const label = document.createElement("label");
    label.textContent = labelText;
    label.htmlFor = input.id;
    wrap.append(label, input);
    return wrap;
  }

  async function stopTask(id, name) {
    await TF.confirm({
      title: t("js.stop_title", {name: name}), message: t("js.stop_message"), confirmLabel: t("js.stop"),
      danger: true,
      action: async function () {
        const result = await TF.api("POST", "/finetuning/stopTask", {id: Number(id)});
        if (!result.ok) return TF.errorMessage(result);
        TF.toast(t("js.stop_done", {name: name}));
        refreshView();
        return null;
      },
    });
  }

  async function resumeTask(id, name) {
    await TF.confirm({
      title: t("js.resume_title", {name: name}), message: t("js.resume_message"), confirmLabel: t("js.resume"),
      action: async function () {
        const result = await TF.api("POST", "/finetuning/resumeTask", {id: Number(id)});
        if (!result.ok) return TF.errorMessage(result);
        TF.toast(t("js.resume_done", {name: name}));
        refreshView();
        return null;
      },
    });
  }

  async function deleteTask(id, name) {
    await TF.confirm({
      title: t("js.delete_title", {name: name}), message: t("js.delete_message"), confirmLabel: t("js.delete"),
      danger: true,
      action: async function () {
        const result = await TF.api("DELETE", "/finetuning/deleteTask", {id: Number(id)});
        if (!result.ok) return TF.errorMessage(result);
        TF.toast(t("js.delete_done", {name: name}));
        if (document.getElementById("task-detail")) {
          window.location.assign("/console/tasks");
        } else {
          refreshView();
        }
        return null;
      },
    });
  }

  /* Publish: choose the final model or a checkpoint step, and the model's name. */
  async function publishTask(id, name, status, step) {
    const checkpoints = await TF.api("GET", "/finetuning/getTaskCheckpoints?id=" + encodeURIComponent(id));
    const body = document.createElement("div");
    const nameInput = document.createElement("input");
    nameInput.id = "publish-name";
    nameInput.name = "name";
    nameInput.value = name;
    const stepSelect = document.createElement("select");
    stepSelect.id = "publish-step";
    stepSelect.name = "checkpointStep";
    if (status === "completed") stepSelect.add(new Option(t("js.publish_final"), ""));
    for (const checkpoint of (checkpoints.ok ? checkpoints.data : [])) {
      stepSelect.add(new Option(t("js.publish_step", {step: checkpoint.step}), String(checkpoint.step)));
    }
    if (step) stepSelect.value = String(step);
    body.append(field(t("js.publish_name"), nameInput), field(t("js.publish_checkpoint"), stepSelect));
    await TF.confirm({
      title: t("js.publish_title", {name: name}), message: t("js.publish_message"), confirmLabel: t("js.publish"),
      body: body,
      action: async function () {
        const payload = {taskId: Number(id), name: nameInput.value.trim()};
        if (stepSelect.value) payload.checkpointStep = Number(stepSelect.value);
        const result = await TF.api("POST", "/models/publishModel", payload);
        if (!result.ok) return TF.errorMessage(result);
        TF.toast(t("js.publish_done", {name: payload.name}));
        return null;
      },
    });
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const {action, taskId, taskName, taskStatus, step} = button.dataset;
    if (action === "stop") stopTask(taskId, taskName);
    else if (action === "resume") resumeTask(taskId, taskName);
    else if (action === "delete") deleteTask(taskId, taskName);
    else if (action === "publish") publishTask(taskId, taskName, taskStatus, step);
  });
})();
