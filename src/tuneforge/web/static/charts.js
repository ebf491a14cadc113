/* Line charts on uPlot: TFCharts.lines(element, options) draws several [x, y] series on one x axis (the step) and
   returns {update(series)} for live data. Each chart element gets data-points = the number of points drawn, so a
   test (or a curious user in the inspector) can see what is on it. */
"use strict";

window.TFCharts = (function () {
  const PALETTE = ["#2f6fed", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a", "#1098ad", "#5c7cfa", "#f08c00"];

  /* uPlot wants one shared x array and, per series, a y value (or null) for each x. */
  function align(series) {
    const xs = new Set();
    for (const s of series) for (const point of s.points) xs.add(point[0]);
    const x = Array.from(xs).sort(function (a, b) { return a - b; });
    const index = new Map(x.map(function (value, i) { return [value, i]; }));
    const ys = series.map(function (s) {
      const column = new Array(x.length).fill(null);
      for (const point of s.points) column[index.get(point[0])] = point[1];
      return column;
    });
    return [x].concat(ys);
  }

  function pointCount(series) {
    return series.reduce(function (total, s) { return total + s.points.length; }, 0);
  }

  function options(element, series, settings) {
    return {
      width: Math.max(280, element.clientWidth), height: settings.height || 260,
      scales: {x: {time: false}, y: {distr: settings.logY ? 3 : 1}},
      axes: [{label: settings.xLabel || ""}, {label: settings.yLabel || "", size: 64,
        values: function (u, values) { return values.map(settings.format || formatNumber); }}],
      legend: {show: true},
      series: [{label: settings.xLabel || "x"}].concat(series.map(function (s, i) {
        return {label: s.label, stroke: s.color || PALETTE[i % PALETTE.length], width: s.width || 2,
          dash: s.dash, spanGaps: true, points: {show: s.points.length < 60 || Boolean(s.markers), size: 5}};
      })),
    };
  }

  function formatNumber(value) {
    if (value === null || value === undefined) return "";
    const size = Math.abs(value);
    return size !== 0 && (size < 1e-3 || size >= 1e5) ? value.toExponential(1) : String(Number(value.toPrecision(4)));
  }

  function lines(element, settings) {
    let plot = null;
    let labels = "";

    function update(series) {
      const drawable = series.filter(function (s) { return s.points.length > 0; });
      element.dataset.points = String(pointCount(drawable));
      if (drawable.length === 0) return;
      const signature = drawable.map(function (s) { return s.label; }).join("|");
      if (plot && signature === labels) {
        plot.setData(align(drawable));
        return;
      }
      if (plot) plot.destroy();
      element.replaceChildren();
      labels = signature;
      plot = new uPlot(options(element, drawable, settings), align(drawable), element);
    }

    new ResizeObserver(function () {
      if (plot) plot.setSize({width: Math.max(280, element.clientWidth), height: settings.height || 260});
    }).observe(element);
    update(settings.series || []);
    return {update: update};
  }

  return {lines: lines, palette: PALETTE, formatNumber: formatNumber};
})();
