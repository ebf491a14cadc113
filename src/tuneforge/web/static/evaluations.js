/* The evaluation page's actions through the JSON API: stop a running evaluation, delete a finished one. Progress and
   the report refresh themselves through htmx (evaluations/_live.html). */
"use strict";

(function () {
  const t = TF.t;
  const root = document.getElementById("evaluation-detail");
  if (!root) return;

  function refreshLive() {
    if (window.htmx) {
      htmx.ajax("GET", "/console/evaluations/" + root.dataset.evaluationId + "/live",
                {target: "#evaluation-live", swap: "outerHTML"});
    } else {
      window.location.reload();
    }
  }

  async function stopEvaluation(id) {
    await TF.confirm({
      title: t("js.evaluations_stop_title", {id: id}), message: t("js.evaluations_stop_message"),
      confirmLabel: t("js.evaluations_stop"), danger: true,
      action: async function () {
        const result = await TF.api("POST", "/evaluations/stopEvaluation", {id: Number(id)});
        if (!result.ok) return TF.errorMessage(result);
        refreshLive();
        return null;
      },
    });
  }

  async function deleteEvaluation(id) {
    await TF.confirm({
      title: t("js.evaluations_delete_title", {id: id}), message: t("js.evaluations_delete_message"),
      confirmLabel: t("js.evaluations_delete"), danger: true,
      action: async function () {
        const result = await TF.api("DELETE", "/evaluations/deleteEvaluation?id=" + encodeURIComponent(id));
        if (!result.ok) return TF.errorMessage(result);
        TF.toast(t("js.evaluations_deleted", {id: id}));
        window.location.assign("/console/models/" + root.dataset.modelId);
        return null;
      },
    });
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    if (button.dataset.action === "stop-evaluation") stopEvaluation(button.dataset.evaluationId);
    else if (button.dataset.action === "delete-evaluation") deleteEvaluation(button.dataset.evaluationId);
  });
})();
