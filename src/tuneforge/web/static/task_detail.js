/* The task detail page's live parts: loss / eval-loss and learning-rate charts and one per figure of the task's stage
   (rewards/margins, kl, reward, …) from getTaskMetrics, and the log
   from getTaskLog (whole file from offset 0, then followed with nextOffset). Polled every data-refresh-ms while the
   task is active, once more when it ends; the status panel refreshes itself through htmx (tasks/_live.html). */
"use strict";

(function () {
  const root = document.getElementById("task-detail");
  if (!root) return;
  const t = TF.t;
  const taskId = root.dataset.taskId;
  const refreshMs = Number(root.dataset.refreshMs) || 1000;
  const ACTIVE = new Set(["pending", "running", "stopping"]);
  const MAX_LOG_LINES = 20000;

  const lossChart = TFCharts.lines(document.getElementById("loss-chart"), {xLabel: t("js.chart_step"), yLabel: t("js.chart_loss")});
  const lrChart = TFCharts.lines(document.getElementById("lr-chart"), {xLabel: t("js.chart_step"), yLabel: t("js.chart_lr")});
  // The stage's own figures (getTaskMetrics' `stage`): each panel is rendered hidden and shown once it has points.
  const stageCharts = Array.from(root.querySelectorAll("[data-stage-metric]")).map(function (panel) {
    return {panel: panel, name: panel.dataset.stageMetric, chart: null};
  });
  const logBox = document.getElementById("task-log");
  const followButton = document.getElementById("log-follow");
  const logCount = document.getElementById("log-count");
  let logOffset = 0;
  let logLines = 0;
  let following = true;
  let lastSeq = -1;
  let timer = null;

  async function loadMetrics() {
    const result = await TF.api("GET", "/finetuning/getTaskMetrics?id=" + taskId);
    if (!result.ok) return null;
    const m = result.data;
    if (m.lastSeq !== lastSeq) {
      lastSeq = m.lastSeq;
      lossChart.update([{label: t("js.series_train_loss"), points: m.loss},
                        {label: t("js.series_eval_loss"), points: m.evalLoss, markers: true, dash: [6, 4]}]);
      lrChart.update([{label: t("js.series_lr"), points: m.learningRate}]);
      updateStageCharts(m.stage || {});
    }
    return m.status;
  }

  /* A figure's training series and, unless its name is an evaluation's already, its eval_ twin. */
  function updateStageCharts(stage) {
    for (const item of stageCharts) {
      const series = [{label: t("js.series_stage_train"), points: stage[item.name] || []}];
      if (!item.name.startsWith("eval_")) {
        series.push({label: t("js.series_stage_eval"), points: stage["eval_" + item.name] || [], markers: true,
                     dash: [6, 4]});
      }
      if (!series.some(function (s) { return s.points.length > 0; })) continue;
      item.panel.hidden = false;
      if (!item.chart) {
        item.chart = TFCharts.lines(item.panel.querySelector(".chart"),
                                    {xLabel: t("js.chart_step"), yLabel: item.name, height: 200});
      }
      item.chart.update(series);
    }
  }

  function appendLines(lines) {
    if (lines.length === 0) return;
    logBox.append(document.createTextNode(lines.join("\n") + "\n"));
    logLines += lines.length;
    // A very long log keeps its last MAX_LOG_LINES lines in the page (the file itself is untouched).
    while (logLines > MAX_LOG_LINES && logBox.firstChild) {
      logLines -= logBox.firstChild.textContent.split("\n").length - 1;
      logBox.firstChild.remove();
    }
    logCount.textContent = t("js.log_lines", {count: logLines});
    if (following) logBox.scrollTop = logBox.scrollHeight;
  }

  /* Reads until caught up: the first call brings the whole file (in 256 KB chunks), later ones what was added. */
  async function loadLog() {
    for (let round = 0; round < 64; round++) {
      const result = await TF.api("GET", "/finetuning/getTaskLog?id=" + taskId + "&offset=" + logOffset);
      if (!result.ok) return;
      appendLines(result.data.lines);
      const advanced = result.data.nextOffset > logOffset;
      logOffset = result.data.nextOffset;
      if (!advanced || result.data.lines.length === 0) return;
    }
  }

  function setFollowing(value) {
    following = value;
    followButton.setAttribute("aria-pressed", String(value));
    followButton.textContent = value ? t("js.log_pause") : t("js.log_follow");
    if (value) logBox.scrollTop = logBox.scrollHeight;
  }

  followButton.addEventListener("click", function () { setFollowing(!following); });
  // Scrolling up to read pauses following; scrolling back to the end resumes it.
  logBox.addEventListener("scroll", function () {
    const atEnd = logBox.scrollHeight - logBox.scrollTop - logBox.clientHeight < 8;
    if (following && !atEnd) setFollowing(false);
    else if (!following && atEnd) setFollowing(true);
  });

  async function tick() {
    timer = null;
    const [status] = await Promise.all([loadMetrics(), loadLog()]);
    root.dataset.lastUpdate = String(Date.now());
    if (ACTIVE.has(status)) {
      timer = setTimeout(tick, refreshMs);
    } else if (root.dataset.ended !== "true") {
      // The run has just ended: one more round picks up the final points and lines written with the end event.
      root.dataset.ended = "true";
      timer = setTimeout(tick, refreshMs);
    }
  }

  /* After stop / resume on this page: refresh the status panel now and poll again. */
  document.addEventListener("tf:task-changed", function () {
    if (window.htmx) htmx.ajax("GET", "/console/tasks/" + taskId + "/live", {target: "#task-live", swap: "outerHTML"});
    root.dataset.ended = "false";
    if (timer) clearTimeout(timer);
    tick();
  });

  setFollowing(true);
  tick();
})();
