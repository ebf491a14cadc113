/* The compare page: each chosen task's loss, eval loss and learning rate from getTaskMetrics, overlaid in one
   colour per task; refreshed every few seconds while any of them is still active. */
"use strict";

(function () {
  const root = document.getElementById("compare");
  const toggle = document.getElementById("only-differences");
  if (toggle) {
    toggle.addEventListener("change", function () {
      document.getElementById("config-diff").classList.toggle("only-differences", toggle.checked);
    });
  }
  if (!root) return;
  const t = TF.t;
  const ids = root.dataset.taskIds.split(",").filter(Boolean);
  const names = JSON.parse(document.getElementById("compare-tasks").textContent);
  const ACTIVE = new Set(["pending", "running", "stopping"]);
  const axis = {xLabel: t("js.chart_step")};
  const charts = {
    loss: TFCharts.lines(document.getElementById("compare-loss"), Object.assign({yLabel: t("js.chart_loss")}, axis)),
    evalLoss: TFCharts.lines(document.getElementById("compare-eval-loss"), Object.assign({yLabel: t("js.chart_loss")}, axis)),
    learningRate: TFCharts.lines(document.getElementById("compare-lr"), Object.assign({yLabel: t("js.chart_lr")}, axis)),
  };

  async function load() {
    const results = await Promise.all(ids.map(function (id) {
      return TF.api("GET", "/finetuning/getTaskMetrics?id=" + encodeURIComponent(id));
    }));
    let anyActive = false;
    for (const key of Object.keys(charts)) {
      charts[key].update(results.map(function (result, i) {
        return {label: names[i] + " #" + ids[i], points: result.ok ? result.data[key] : [],
          color: TFCharts.palette[i % TFCharts.palette.length], markers: key === "evalLoss"};
      }));
    }
    for (const result of results) if (result.ok && ACTIVE.has(result.data.status)) anyActive = true;
    if (anyActive) setTimeout(load, 2000);
  }

  load();
})();
