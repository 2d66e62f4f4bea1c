// A Plotly chart that stays mounted while its figure changes (lab_ui.live_chart, an st.components.v2 component).
//
// st.plotly_chart builds a new chart for every new figure; once a second on the live view, in a browser on the
// cores the run trains on, that cost the run its speed. Here each figure is applied to the same chart with
// Plotly.react: it redraws in place and keeps the user's zoom (layout.uirevision). Plotly.js is loaded once per
// browser tab, from the installed plotly package, and stays loaded across page changes.

function loadPlotly(src) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!window.__cartpoleLabPlotly) {
    window.__cartpoleLabPlotly = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.async = true;
      script.onload = () => resolve(window.Plotly);
      script.onerror = () => {
        window.__cartpoleLabPlotly = null;
        reject(new Error("could not load " + src));
      };
      document.head.appendChild(script);
    });
  }
  return window.__cartpoleLabPlotly;
}

// The app's theme over the figure's layout: font, text, background and grid follow Streamlit's.
function themed(layout, element) {
  const style = getComputedStyle(element);
  const read = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  const background = read("--st-background-color", "#ffffff");
  const text = read("--st-text-color", "#31333f");
  const grid = read("--st-border-color-light", "#ebf0f8");
  const axis = (a) => ({gridcolor: grid, zerolinecolor: grid, automargin: true, ...a,
                        title: {standoff: 8, ...(typeof a.title === "string" ? {text: a.title} : a.title || {})}});
  const out = {...layout, autosize: true, paper_bgcolor: background, plot_bgcolor: background,
               font: {family: read("--st-font", "sans-serif"), color: text, ...(layout.font || {})}};
  delete out.width;
  for (const key of Object.keys(out)) {
    if (/^[xy]axis\d*$/.test(key)) out[key] = axis(out[key]);
  }
  out.xaxis = out.xaxis || axis({});
  out.yaxis = out.yaxis || axis({});
  return out;
}

async function draw(chart, data) {
  const Plotly = await loadPlotly(data.plotly_src);
  const figure = JSON.parse(data.spec);
  const layout = themed(figure.layout || {}, chart.div);
  chart.div.style.height = layout.height + "px";
  const config = {displaylogo: false, responsive: true};
  if (!chart.drawn) {
    await Plotly.newPlot(chart.div, figure.data || [], layout, config);
    chart.drawn = true;
  } else {
    await Plotly.react(chart.div, figure.data || [], layout, config);
  }
}

// Figures can arrive faster than they are drawn: draw the newest, skip those in between.
async function drain(chart) {
  if (chart.busy) return;
  chart.busy = true;
  try {
    while (chart.pending) {
      const data = chart.pending;
      chart.pending = null;
      try {
        await draw(chart, data);
        chart.message.textContent = "";
      } catch (err) {
        chart.message.textContent = "The chart could not be drawn: " + err.message;
      }
    }
  } finally {
    chart.busy = false;
  }
}

export default function (component) {
  const {data, parentElement} = component;
  let chart = parentElement.__liveChart;
  if (!chart) {
    const div = document.createElement("div");
    div.className = "live-plotly";
    const message = document.createElement("div");
    message.style.color = "#b91c1c";
    parentElement.append(div, message);
    chart = {div, message, drawn: false, pending: null, busy: false};
    parentElement.__liveChart = chart;
  }
  chart.pending = data;
  drain(chart);
}
