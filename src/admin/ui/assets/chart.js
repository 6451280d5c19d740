// dnsward dashboard: small SVG charts drawn with DOM calls (no library, no markup strings, so
// no text can become markup). Colours are SVG presentation attributes: the page's
// Content-Security-Policy allows no inline style.
"use strict";
window.DW_CHART = (function () {
  const NS = "http://www.w3.org/2000/svg";
  const COLOURS = ["#c0392b", "#8e44ad", "#d35400", "#16a085", "#2c3e50", "#7f8c8d", "#b7950b", "#1f618d"];

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, String(attrs[k]));
    if (parent) parent.appendChild(e);
    return e;
  }

  function text(parent, x, y, s, anchor) {
    const t = el("text", { x: x, y: y, "font-size": 11, fill: "#444", "text-anchor": anchor || "start" }, parent);
    t.textContent = s;
    return t;
  }

  // series: [{label, values:[...], ci (colour index), fill}] over times ts (Unix seconds); lines with an
  // area under the first. fmtTime formats a time label in the browser's zone.
  function lines(container, ts, series, fmtTime) {
    container.replaceChildren();
    const W = Math.max(container.clientWidth || 600, 300), H = 200, L = 48, B = 22, T = 10, R = 10;
    const svg = el("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", class: "svgchart" }, container);
    let max = 1;
    for (const s of series) for (const v of s.values) if (v > max) max = v;
    const n = Math.max(ts.length, 2);
    const x = (i) => L + (i * (W - L - R)) / (n - 1);
    const y = (v) => T + (H - T - B) * (1 - v / max);
    el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" }, svg);
    el("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" }, svg);
    text(svg, L - 4, T + 8, String(max), "end");
    text(svg, L - 4, H - B, "0", "end");
    if (ts.length) {
      text(svg, L, H - 6, fmtTime(ts[0]), "start");
      text(svg, W - R, H - 6, fmtTime(ts[ts.length - 1]), "end");
    }
    series.forEach((s, si) => {
      const c = COLOURS[(s.ci === undefined ? si : s.ci) % COLOURS.length];
      let d = "";
      s.values.forEach((v, i) => { d += (i ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1) + " "; });
      if (!d) return;
      if (s.fill) {
        const area = d + "L" + x(s.values.length - 1).toFixed(1) + " " + (H - B) + " L" + x(0).toFixed(1) + " " + (H - B) + " Z";
        el("path", { d: area, fill: c, "fill-opacity": 0.15, stroke: "none" }, svg);
      }
      el("path", { d: d, fill: "none", stroke: c, "stroke-width": 2, class: "series", "data-series": s.label }, svg);
    });
    legend(container, series);
    return svg;
  }

  // Horizontal bars: items [{label, value}].
  function bars(container, items) {
    container.replaceChildren();
    const W = Math.max(container.clientWidth || 600, 300), row = 20, H = Math.max(items.length, 1) * row + 4;
    const svg = el("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", class: "svgchart" }, container);
    let max = 1;
    for (const it of items) if (it.value > max) max = it.value;
    const L = 160, R = 60;
    items.forEach((it, i) => {
      const w = ((W - L - R) * it.value) / max;
      text(svg, L - 6, i * row + 14, it.label, "end");
      el("rect", { x: L, y: i * row + 4, width: Math.max(w, 1), height: row - 6, fill: COLOURS[i % COLOURS.length], class: "bar" }, svg);
      text(svg, L + w + 4, i * row + 14, String(it.value), "start");
    });
    return svg;
  }

  function legend(container, series) {
    const p = document.createElement("p");
    p.className = "legend";
    series.forEach((s, si) => {
      const sw = document.createElement("span");
      sw.className = "swatch swatch-" + ((s.ci === undefined ? si : s.ci) % COLOURS.length);
      p.appendChild(sw);
      p.appendChild(document.createTextNode(" " + s.label + "  "));
    });
    container.appendChild(p);
  }

  return { lines: lines, bars: bars, COLOURS: COLOURS };
})();
