// cotgen view: one search tree, drawn as SVG. No library: the layout below is a leaf-order
// ("dendrogram") layout, depth left to right and leaves one row each, which never overlaps
// and is O(n) per redraw. d3-hierarchy's tidy tree was the vendorable alternative; it packs
// tighter but needs d3's selection/zoom modules too for the rest of the page, and this site
// must stay a few small files that open from disk with no network.
"use strict";
(function () {
  const startMs = performance.now();
  const DX = 230, DY = 22, LABEL = 26;  // column width, row height, label characters
  const data = JSON.parse(document.getElementById("tree-data").textContent);
  const nodes = data.nodes.map((row) => {
    const n = {};
    data.fields.forEach((f, i) => { n[f] = row[i]; });
    n.kids = []; n.collapsed = false;
    return n;
  });
  const byId = new Map(nodes.map((n) => [n.id, n]));
  for (const n of nodes) {
    const p = byId.get(n.parent);
    n.up = p || null;
    n.depth = p ? p.depth + 1 : 0;  // parents precede children (checked when the site was built)
    if (p) p.kids.push(n);
  }
  for (let i = nodes.length - 1; i >= 0; i--) {  // subtree sizes, children before parents
    nodes[i].size = 1 + nodes[i].kids.reduce((a, k) => a + k.size, 0);
  }
  const root = nodes[0];
  const best = new Set(data.best);
  const bestLeaf = data.best.length ? byId.get(data.best[data.best.length - 1]) : null;

  const svg = document.getElementById("tree-svg");
  const viewport = document.getElementById("viewport");
  const canvas = document.getElementById("canvas");
  const details = document.getElementById("details");
  const tooltip = document.getElementById("tooltip");
  const colourBy = document.getElementById("colour-by");

  // Every element is built with DOM calls and every field of the tree goes in as text or as
  // an attribute value, never as markup; kind and rating become class names only when they
  // are one of the known values (a hostile shard's kind could otherwise carry markup).
  const SVG_NS = document.getElementById("tree-svg").namespaceURI;  // SVG's, from the page
  const make = (tag, attrs, ...kids) => {
    const e = document.createElementNS(SVG_NS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    e.append(...kids);
    return e;
  };
  const SHAPES = {
    problem: () => [make("rect", { class: "shape", x: -7, y: -7, width: 14, height: 14 })],
    step: () => [make("circle", { class: "shape", r: 6 })],
    critic: () => [make("path", { class: "shape", d: "M0,-7L7,0L0,7L-7,0Z" })],
    refine: () => [make("path", { class: "shape", d: "M0,-7L6.5,5.5L-6.5,5.5Z" })],
    conclusion: () => [make("circle", { class: "shape", r: 7 }), make("circle", { class: "dot", r: 2.5 })],
  };
  const RATINGS = ["positive", "negative", "unknown"];
  const kindClass = (n) => "k-" + (Object.hasOwn(SHAPES, n.kind) ? n.kind : "other");
  const ratingClass = (n) => "r-" + (RATINGS.includes(n.rating) ? n.rating : "other");
  const short = (s, w) => { s = String(s).replace(/\s+/g, " ").trim(); return s.length > w ? s.slice(0, w - 1) + "…" : s; };
  const colour = (v) => `hsl(${Math.round(Math.max(0, Math.min(1, v)) * 120)},65%,42%)`;
  const fmt = (v, d) => (v === null || v === undefined ? "—" : typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(d || 3)) : String(v));
  const verdict = (n) => (n.terminal ? (n.correct === true ? "correct" : n.correct === false ? "wrong" : "ungraded") : "");

  // -- layout ------------------------------------------------------------------------
  let visible = [];
  function layout() {
    visible = [];
    const stack = [root];
    while (stack.length) {  // preorder over what is not inside a collapsed subtree
      const n = stack.pop();
      visible.push(n);
      if (!n.collapsed) for (let i = n.kids.length - 1; i >= 0; i--) stack.push(n.kids[i]);
    }
    let rows = 0;
    for (const n of visible) if (n.collapsed || !n.kids.length) rows++;
    // Few rows spread out to use the height (up to 2x); many keep the compact row height.
    const dy = Math.max(DY, Math.min(2 * DY, (canvas.clientHeight - 60) / Math.max(rows, 1)));
    let row = 0;
    for (const n of visible) if (n.collapsed || !n.kids.length) n.y = row++ * dy;
    for (let i = visible.length - 1; i >= 0; i--) {
      const n = visible[i];
      if (!n.collapsed && n.kids.length) n.y = (n.kids[0].y + n.kids[n.kids.length - 1].y) / 2;
      n.x = n.depth * DX;
    }
  }
  // Edges leave a parent where its label ends (estimated from its length: measuring every
  // label would force a layout per node), so they never run through the text.
  const edgePath = (n) => {
    const p = n.up, x0 = p.x + Math.min(p.tail || 12, DX - 30), mx = (x0 + n.x) / 2;
    return `M${x0},${p.y}C${mx},${p.y} ${mx},${n.y} ${n.x - 8},${n.y}H${n.x}`;
  };
  function label(n) {  // the label's parts: a verdict mark, the text, "(+N)" when collapsed
    const v = verdict(n);
    const mark = v === "correct" ? make("tspan", { class: "verdict ok" }, "✓ ") : v === "wrong" ? make("tspan", { class: "verdict bad" }, "✗ ") : null;
    const more = n.collapsed ? make("tspan", { class: "more" }, `(+${n.size - 1})`) : null;
    const text = short(n.text, LABEL);
    n.tail = (n.kids.length ? 22 : 11) + 7.3 * (text.length + (mark ? 2 : 0) + (more ? String(n.size).length + 4 : 0)) + 6;
    return [mark, text, more && " ", more].filter((x) => x);
  }

  // -- drawing: every node gets its element (with data-node-id) at once; what a node
  // draws (shape, label, edge) is made when it is first shown, so a big tree opened with
  // most subtrees collapsed costs what its visible part costs.
  const elements = new Map(), edges = new Map();
  let edgeLayer = null;
  const inner = (n) => [
    ...(SHAPES[n.kind] || SHAPES.step)(),
    ...(n.kids.length ? [make("g", { class: "knob" }, make("circle", { cx: 13, r: 5 }), make("path", { d: "M10,0H16M13,-3V3" }))] : []),
    make("text", { class: "label", x: n.kids.length ? 22 : 11, dy: 4 }, ...label(n)),
  ];
  const edgeElement = (n) => make("path", {
    class: "edge" + (best.has(n.id) && best.has(n.up.id) ? " best" : ""), "data-edge-to": n.id, d: edgePath(n),
  });
  function draw() {
    layout();
    const shown = new Set(visible);
    const edgeGroup = make("g", { class: "edges" }), nodeGroup = make("g", { class: "nodes" });
    for (const n of nodes) {
      const cls = ["node", kindClass(n), ratingClass(n)];
      const v = verdict(n);
      if (v) cls.push(v);
      if (best.has(n.id)) cls.push("best");
      if (n.collapsed) cls.push("collapsed");
      const on = shown.has(n);
      if (!on) cls.push("gone");
      const el = make("g", { class: cls.join(" "), "data-node-id": n.id, fill: colour(n.value) });
      if (on) {
        el.setAttribute("transform", `translate(${n.x},${n.y})`);
        el.append(...inner(n));
      }
      nodeGroup.append(el);
      elements.set(n.id, el);
      if (n.up && on) {
        const edge = edgeElement(n);
        edgeGroup.append(edge);
        edges.set(n.id, edge);
      }
    }
    viewport.replaceChildren(edgeGroup, nodeGroup);
    edgeLayer = edgeGroup;
  }
  function redraw() {
    layout();
    const shown = new Set(visible);
    for (const n of nodes) {
      const el = elements.get(n.id), on = shown.has(n);
      let edge = edges.get(n.id);
      el.classList.toggle("gone", !on);
      if (edge) edge.classList.toggle("gone", !on);
      if (!on) continue;
      if (!el.firstChild) el.append(...inner(n));
      if (n.up && !edge) {
        edge = edgeElement(n);
        edgeLayer.append(edge);
        edges.set(n.id, edge);
      }
      el.setAttribute("transform", `translate(${n.x},${n.y})`);
      el.classList.toggle("collapsed", n.collapsed);
      el.querySelector(".label").replaceChildren(...label(n));
      if (edge) edge.setAttribute("d", edgePath(n));
    }
  }

  // -- zoom and pan --------------------------------------------------------------------
  const view = { k: 1, tx: 20, ty: 20 };
  function apply() {
    viewport.setAttribute("transform", `translate(${view.tx},${view.ty}) scale(${view.k})`);
    svg.classList.toggle("far", view.k < 0.45);  // labels would be unreadable: drop them
  }
  function zoomAt(factor, cx, cy) {
    const k = Math.max(0.02, Math.min(4, view.k * factor));
    view.tx = cx - ((cx - view.tx) * k) / view.k;
    view.ty = cy - ((cy - view.ty) * k) / view.k;
    view.k = k;
    apply();
  }
  function bounds() {
    let x1 = 0, x2 = 0, y1 = Infinity, y2 = -Infinity;
    for (const n of visible) { x2 = Math.max(x2, n.x); y1 = Math.min(y1, n.y); y2 = Math.max(y2, n.y); }
    return { x1: x1 - 20, x2: x2 + DX, y1: y1 - 20, y2: y2 + 20 };
  }
  function fitScale() {
    const b = bounds(), w = canvas.clientWidth, h = canvas.clientHeight;
    return Math.min(w / (b.x2 - b.x1), h / (b.y2 - b.y1), 1.5);
  }
  function fit() {
    const b = bounds(), w = canvas.clientWidth, h = canvas.clientHeight;
    view.k = fitScale();
    view.tx = (w - (b.x2 - b.x1) * view.k) / 2 - b.x1 * view.k;
    view.ty = (h - (b.y2 - b.y1) * view.k) / 2 - b.y1 * view.k;
    apply();
  }
  function centreOn(n) {
    view.tx = canvas.clientWidth / 3 - n.x * view.k;
    view.ty = canvas.clientHeight / 2 - n.y * view.k;
    apply();
  }
  function reveal(n) {
    if (view.k < 0.45) { view.k = 1; centreOn(n); return; }  // zoomed out too far to read it
    const sx = n.x * view.k + view.tx, sy = n.y * view.k + view.ty;
    if (sx < 10 || sy < 10 || sx > canvas.clientWidth - 60 || sy > canvas.clientHeight - 10) centreOn(n);
  }
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const r = canvas.getBoundingClientRect();
    zoomAt(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
  }, { passive: false });
  let drag = null;
  canvas.addEventListener("pointerdown", (ev) => {
    drag = { x: ev.clientX, y: ev.clientY, tx: view.tx, ty: view.ty, moved: false };
  });
  window.addEventListener("pointermove", (ev) => {
    if (drag) {
      const dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      if (drag.moved) { view.tx = drag.tx + dx; view.ty = drag.ty + dy; apply(); }
    }
    if (!tooltip.hidden) { tooltip.style.left = ev.clientX + 14 + "px"; tooltip.style.top = ev.clientY + 14 + "px"; }
  });
  window.addEventListener("pointerup", () => { setTimeout(() => { drag = null; }, 0); });

  // -- selection, collapse, details ------------------------------------------------------
  let selected = null;
  function toggle(n, collapse) {
    if (!n.kids.length) return;
    n.collapsed = collapse === undefined ? !n.collapsed : collapse;
    redraw();
    let a = selected && selected.up;
    while (a && a !== n) a = a.up;
    if (a === n && n.collapsed) select(n, false);  // the selection was folded away: keep it visible
    else if (selected) showDetails(selected);
  }
  function select(n, move) {
    if (!n) return;
    for (let a = n.up; a; a = a.up) if (a.collapsed) { a.collapsed = false; redraw(); }  // never select a hidden node
    if (selected) elements.get(selected.id).classList.remove("selected");
    selected = n;
    elements.get(n.id).classList.add("selected");
    showDetails(n);
    if (move) reveal(n);
  }
  function row(table, key, value) {
    const tr = table.insertRow();
    tr.insertCell().textContent = key;
    tr.insertCell().textContent = value;
  }
  function showDetails(n) {
    details.replaceChildren();
    const h = document.createElement("h2");
    h.textContent = `node ${n.id} · ${n.kind}`;
    details.append(h);
    const tags = document.createElement("p");
    tags.className = "tags";
    const v = verdict(n);
    if (v) tags.append(Object.assign(document.createElement("span"), { className: "tag " + v, textContent: v }));
    if (best.has(n.id)) tags.append(Object.assign(document.createElement("span"), { className: "tag best", textContent: { correct: "best correct path", vote: "answer by weighted vote" }[data.best_kind] || "highest-value path" }));
    details.append(tags);
    const path = document.createElement("p");  // root to this node; each id selects its node
    path.className = "path";
    const chain = [];
    for (let a = n; a; a = a.up) chain.unshift(a);
    chain.forEach((a, i) => {
      if (i) path.append(" › ");
      const b = Object.assign(document.createElement("button"), { className: "crumb", textContent: String(a.id), title: a.kind });
      b.addEventListener("click", () => select(a, true));
      path.append(b);
    });
    details.append(path);
    if (n.kids.length) {
      const b = document.createElement("button");
      b.id = "toggle-collapse";
      b.textContent = n.collapsed ? `expand (${n.size - 1} nodes)` : `collapse subtree (${n.size - 1} nodes)`;
      b.addEventListener("click", () => toggle(n));
      details.append(b);
    }
    const text = document.createElement("pre");
    text.className = "node-text";
    text.textContent = n.text;  // LaTeX stays as its source text, which reads well enough
    details.append(text);
    const t = document.createElement("table");
    t.className = "fields";
    for (const f of data.fields) if (f !== "text") row(t, f, fmt(f === "parent" && n[f] === -1 ? "— (root)" : n[f], 4));
    row(t, "depth", n.depth);
    row(t, "children", n.kids.length);
    row(t, "subtree nodes", n.size);
    details.append(t);
  }
  svg.addEventListener("click", (ev) => {
    if (drag && drag.moved) return;
    const el = ev.target.closest("[data-node-id]");
    if (!el) return;
    const n = byId.get(+el.dataset.nodeId);
    if (ev.target.closest(".knob")) toggle(n);
    select(n, false);
    canvas.focus({ preventScroll: true });
  });
  svg.addEventListener("pointerover", (ev) => {
    const el = ev.target.closest("[data-node-id]");
    if (!el) return;
    const n = byId.get(+el.dataset.nodeId);
    tooltip.textContent = [
      `#${n.id} ${n.kind} · ${n.rating}${verdict(n) ? " · " + verdict(n) : ""}`,
      `value ${fmt(n.value)} · Q ${fmt(n.q_estimate)} · visits ${n.visits}`,
      `prior ${fmt(n.prior)} · tokens ${n.tokens}`,
    ].join("\n");
    tooltip.hidden = false;
    tooltip.style.left = ev.clientX + 14 + "px";
    tooltip.style.top = ev.clientY + 14 + "px";
  });
  svg.addEventListener("pointerout", (ev) => {
    if (ev.target.closest("[data-node-id]")) tooltip.hidden = true;
  });

  // -- toolbar and keys ------------------------------------------------------------------
  const setColour = (mode) => { colourBy.value = mode; svg.classList.toggle("by-rating", mode === "rating"); };
  colourBy.addEventListener("change", () => setColour(colourBy.value));
  document.getElementById("fit").addEventListener("click", fit);
  document.getElementById("zoom-in").addEventListener("click", () => zoomAt(1.25, canvas.clientWidth / 2, canvas.clientHeight / 2));
  document.getElementById("zoom-out").addEventListener("click", () => zoomAt(0.8, canvas.clientWidth / 2, canvas.clientHeight / 2));
  document.getElementById("expand-all").addEventListener("click", () => { nodes.forEach((n) => { n.collapsed = false; }); redraw(); });
  document.getElementById("best-leaf").addEventListener("click", () => select(bestLeaf, true));
  document.addEventListener("keydown", (ev) => {
    if (ev.target.closest("input, select, textarea") || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    if (ev.target.closest("button") && (ev.key === " " || ev.key === "Enter")) return;  // the button's own
    const n = selected || root;
    const sib = n.up ? n.up.kids : [n], i = sib.indexOf(n);
    const keys = {
      ArrowLeft: () => select(n.up, true),
      ArrowRight: () => { if (n.collapsed) toggle(n, false); select(n.kids[0], true); },
      ArrowUp: () => select(sib[i - 1], true),
      ArrowDown: () => select(sib[i + 1], true),
      " ": () => toggle(n),
      Enter: () => toggle(n),
      Home: () => select(root, true),
      c: () => setColour(colourBy.value === "value" ? "rating" : "value"),
      f: fit,
      b: () => select(bestLeaf, true),
      "+": () => zoomAt(1.25, canvas.clientWidth / 2, canvas.clientHeight / 2),
      "=": () => zoomAt(1.25, canvas.clientWidth / 2, canvas.clientHeight / 2),
      "-": () => zoomAt(0.8, canvas.clientWidth / 2, canvas.clientHeight / 2),
    };
    if (keys[ev.key]) { ev.preventDefault(); keys[ev.key](); }
  });

  const legend = make("svg", { width: 520, height: 18, "aria-hidden": "true" },
    ...Object.keys(SHAPES).map((k, i) => make("g", { class: "k-" + k, transform: `translate(${9 + i * 78},9)` }, ...SHAPES[k](), make("text", { x: 11, dy: 4 }, k))),
    make("text", { x: 400, dy: 13, class: "verdict ok" }, "✓"), make("text", { x: 412, dy: 13 }, "correct"),
    make("text", { x: 460, dy: 13, class: "verdict bad" }, "✗"), make("text", { x: 472, dy: 13 }, "wrong"));
  document.getElementById("legend").replaceChildren(legend);

  // -- first drawing -------------------------------------------------------------------
  // A big tree opens readable: whole levels from the root while they fit in OPEN_ROWS rows,
  // deeper subtrees collapsed (shown as "+N") except along the highlighted path.
  const OPEN_ROWS = 60;
  function openCollapsed() {
    const leavesAt = [], nodesAt = [];
    for (const n of nodes) {
      nodesAt[n.depth] = (nodesAt[n.depth] || 0) + 1;
      if (!n.kids.length) leavesAt[n.depth] = (leavesAt[n.depth] || 0) + 1;
    }
    let rows = 0, depth = 1;  // rows(d) = leaves above depth d + every node at depth d
    for (let d = 1; d < nodesAt.length; d++) {
      if (rows + nodesAt[d] > OPEN_ROWS) break;
      depth = d;
      rows += leavesAt[d] || 0;
    }
    if (depth >= nodesAt.length - 1) return;  // everything fits
    for (const n of nodes) n.collapsed = n.kids.length > 0 && n.depth >= depth && !best.has(n.id);
  }
  openCollapsed();
  draw();
  setColour(colourBy.value);
  // Fit when labels stay readable at that scale; else open at a readable scale, root at left.
  if (fitScale() >= 0.75) fit();
  else {
    const b = bounds();
    view.k = 0.75;
    view.tx = 20;
    view.ty = canvas.clientHeight / 2 - ((b.y1 + b.y2) / 2) * view.k;
    if ((b.y2 - b.y1) * view.k > canvas.clientHeight) view.ty = canvas.clientHeight / 2 - root.y * view.k;
    apply();
  }
  select(root, false);
  // Timings for tests and `make bench`: ms since navigation start, once laid out and painted.
  window.cotgenView = { nodes: nodes.length, startMs, drawnMs: (svg.getBBox(), performance.now()) };
  requestAnimationFrame(() => setTimeout(() => {
    window.cotgenView.paintedMs = performance.now();
    document.body.dataset.drawn = "1";
  }, 0));
})();
