// Line charts from data the server renders, no inline script:
//
//   <canvas data-chart="ID"></canvas>
//   {{ chart|json_script:"ID" }}   ->   <script type="application/json" id="ID">
//     {"labels": ["Dec 2025", …, "Today"],
//      "series": [{"label": "…", "data": [1, 2, …], "color": "#hex", "dashed": false}, …]}
//
// Every such canvas is drawn on page load and again after each htmx swap (partials such as a
// line's Details panel use the same contract). Charts whose canvas left the page are destroyed.
(() => {
  const css = (name, fallback) =>
    getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;

  function config(spec) {
    const ink = css("--muted", "#667085");
    const grid = css("--line", "#e4e7ec");
    const reduced = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    return {
      type: "line",
      data: {
        labels: spec.labels || [],
        datasets: (spec.series || []).map((series) => ({
          label: series.label,
          data: series.data,
          borderColor: series.color,
          backgroundColor: series.color,
          borderDash: series.dashed ? [6, 4] : [],
          borderWidth: 2,
          pointRadius: 3,
          pointHoverRadius: 5,
          tension: 0,
          fill: false,
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: reduced ? false : { duration: 300 },
        interaction: { mode: "index", intersect: false },
        plugins: {
          legend: { position: "bottom", labels: { color: ink, usePointStyle: true, boxHeight: 6 } },
          tooltip: { mode: "index", intersect: false },
        },
        scales: {
          x: { grid: { display: false }, ticks: { color: ink, maxRotation: 0, autoSkipPadding: 12 } },
          y: { grid: { color: grid }, ticks: { color: ink, precision: 0 } },
        },
      },
    };
  }

  function draw(root) {
    if (!window.Chart) return;
    Object.values(window.Chart.instances).forEach((chart) => {
      if (!chart.canvas.isConnected) chart.destroy();
    });
    root.querySelectorAll("canvas[data-chart]").forEach((canvas) => {
      if (window.Chart.getChart(canvas)) return;
      const source = document.getElementById(canvas.dataset.chart);
      if (!source) return;
      let spec;
      try {
        spec = JSON.parse(source.textContent);
      } catch (error) {
        console.error(`Chart data #${canvas.dataset.chart} is not JSON`, error);
        return;
      }
      new window.Chart(canvas, config(spec));
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (window.Chart) {
      window.Chart.defaults.font.family = css("font-family", "system-ui, sans-serif");
    }
    draw(document);
  });
  // The swapped element may have replaced the target (outerHTML): look at the whole page.
  document.addEventListener("htmx:afterSwap", () => draw(document));
})();
