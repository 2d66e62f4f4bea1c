// The live view's progress lines and charts (component.live_progress and component.live_chart, an
// st.components.v2 component) that stay mounted and redraw in place.
//
// Each element first draws what the page sent. While runs train, it then refreshes itself from the app's live
// endpoint (endpoint.py, `feed.url`) every `feed.every_ms`; elements showing the same URL share one request. No
// Streamlit rerun is involved: a page rerun a second, in a browser on the cores the run trains on, cost the run
// its speed. The snapshot's shape is snapshot.Snapshot (snapshot.py).
// When the page itself must change, the snapshot says so (`rerun`, decided in Python: snapshot.DrawnPage) and the
// progress element asks Streamlit for one rerun with a trigger value.
//
// Charts apply each figure with Plotly.react, keeping the user's zoom (layout.uirevision). Plotly.js is loaded
// once per browser tab, from the installed plotly package.

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

// ------------------------------------------------------------------------------------------- the shared feed

const feeds = window.__cartpoleLabFeeds || (window.__cartpoleLabFeeds = new Map());

function subscribe(url, everyMs, listener) {
  let feed = feeds.get(url);
  if (!feed) {
    feed = {listeners: new Set(), busy: false, timer: null};
    feed.tick = async () => {
      if (feed.busy || document.hidden) return;  // a tab in the background costs nothing
      feed.busy = true;
      let body = null;
      let error = null;
      try {
        const response = await fetch(url, {cache: "no-store"});
        body = await response.json();
        if (!response.ok) error = new Error(body.error || response.statusText);
      } catch (err) {
        error = err;
      } finally {
        feed.busy = false;
      }
      for (const notify of [...feed.listeners]) notify(error ? null : body, error);
    };
    feed.timer = setInterval(feed.tick, everyMs);
    feeds.set(url, feed);
  }
  feed.listeners.add(listener);
  return () => {
    feed.listeners.delete(listener);
    if (!feed.listeners.size) {
      clearInterval(feed.timer);
      feeds.delete(url);
    }
  };
}

// ------------------------------------------------------------------------------------------------- drawing

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

async function drawChart(view, content) {
  const Plotly = await loadPlotly(view.plotlySrc);
  const figure = content.figure;
  const layout = themed(figure.layout || {}, view.body);
  view.body.style.height = layout.height + "px";
  const config = {displaylogo: false, responsive: true};
  if (!view.drawn) {
    await Plotly.newPlot(view.body, figure.data || [], layout, config);
    view.drawn = true;
  } else {
    await Plotly.react(view.body, figure.data || [], layout, config);
  }
  view.caption.textContent = content.caption || "";
}

function drawProgress(view, content) {
  const lines = content.progress;
  while (view.body.children.length > lines.length) view.body.lastChild.remove();
  while (view.body.children.length < lines.length) {
    const line = document.createElement("div");
    line.className = "live-progress-line";
    line.style.margin = "0 0 0.75rem 0";
    const text = document.createElement("div");
    text.style.cssText = "font-size: 0.875rem; margin-bottom: 0.25rem; overflow-wrap: anywhere;";
    const track = document.createElement("div");
    track.style.cssText = "height: 0.5rem; border-radius: 0.25rem; overflow: hidden; " +
                          "background: var(--st-secondary-background-color, #f0f2f6);";
    const fill = document.createElement("div");
    fill.style.cssText = "height: 100%; background: var(--st-primary-color, #2563eb);";
    track.append(fill);
    line.append(text, track);
    view.body.append(line);
  }
  lines.forEach((entry, i) => {
    const line = view.body.children[i];
    if (line.firstChild.textContent !== entry.text) line.firstChild.textContent = entry.text;
    const width = (100 * Math.max(0, Math.min(1, entry.fraction))).toFixed(2) + "%";
    if (line.lastChild.firstChild.style.width !== width) line.lastChild.firstChild.style.width = width;
  });
}

// Contents can arrive faster than they are drawn: draw the newest, skip those in between.
async function drain(view) {
  if (view.busy) return;
  view.busy = true;
  try {
    while (view.pending) {
      const content = view.pending;
      view.pending = null;
      try {
        if (view.kind === "chart") await drawChart(view, content);
        else drawProgress(view, content);
        view.message.textContent = "";
      } catch (err) {
        view.message.textContent = "Could not draw the live view: " + err.message;
      }
    }
  } finally {
    view.busy = false;
  }
}

function show(view, content) {
  view.pending = content;
  drain(view);
}

// What a snapshot from the endpoint holds for this element.
function contentOf(view, snapshot) {
  if (view.kind === "progress") return {progress: snapshot.progress};
  const figure = snapshot.figures[view.part];
  return figure ? {figure, caption: (snapshot.captions || {})[view.part]} : null;
}

function create(parentElement, kind) {
  const body = document.createElement("div");
  body.className = kind === "chart" ? "live-plotly" : "live-progress";
  const caption = document.createElement("div");
  caption.style.cssText = "font-size: 0.875rem; opacity: 0.7;";
  const message = document.createElement("div");
  message.style.color = "#b91c1c";
  parentElement.append(body, caption, message);
  const view = {kind, body, caption, message, drawn: false, pending: null, busy: false, unsubscribe: null};
  parentElement.__liveView = view;
  return view;
}

export default function (component) {
  const {data, parentElement, setTriggerValue} = component;
  if (data.kind === "preload") {  // after the page has drawn; a failure shows later, on the chart that needs it
    setTimeout(() => loadPlotly(data.plotly_src).catch(() => {}), 1000);
    return;
  }
  const view = parentElement.__liveView || create(parentElement, data.kind);
  view.part = data.part;
  view.plotlySrc = data.plotly_src;
  show(view, data.kind === "chart" ? {figure: JSON.parse(data.spec), caption: data.caption}
                                   : {progress: data.progress});

  const feed = data.feed;
  if (view.unsubscribe && (!feed || feed.url !== view.url)) {
    view.unsubscribe();
    view.unsubscribe = null;
  }
  view.askedRerun = false;  // the page has just drawn: a snapshot's `rerun` is about this drawing
  if (feed && !view.unsubscribe) {
    view.url = feed.url;
    view.unsubscribe = subscribe(feed.url, feed.every_ms, (snapshot, error) => {
      if (!parentElement.isConnected) {  // the page moved on without telling us
        view.unsubscribe && view.unsubscribe();
        view.unsubscribe = null;
        return;
      }
      if (error) {
        view.message.textContent = "Live updates paused: " + error.message;
        return;
      }
      const content = contentOf(view, snapshot);
      if (content) show(view, content);
      if (view.kind === "progress" && snapshot.rerun && !view.askedRerun) {
        view.askedRerun = true;  // one rerun; the page then sends this element its new state
        setTriggerValue("changed", String(Date.now()));
      }
    });
  }
  return () => {
    if (view.unsubscribe) {
      view.unsubscribe();
      view.unsubscribe = null;
    }
  };
}
