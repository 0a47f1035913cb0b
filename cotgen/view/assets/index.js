// cotgen view index: sort by any column, search the problem text, filter by outcome.
"use strict";
(function () {
  const table = document.getElementById("trees");
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const search = document.getElementById("search");
  const filter = document.getElementById("filter");
  const shown = document.getElementById("shown");
  const keep = {
    all: () => true,
    correct: (r) => r.dataset.hasCorrect === "yes",
    none: (r) => r.dataset.hasCorrect === "no",
    failed: (r) => r.dataset.failed === "yes",
  };
  function apply() {
    const q = search.value.trim().toLowerCase(), f = keep[filter.value] || keep.all;
    let n = 0;
    for (const r of rows) {
      const on = f(r) && (!q || r.cells[1].dataset.sort.includes(q));
      r.hidden = !on;
      n += on;
    }
    shown.textContent = `showing ${n} of ${rows.length}`;
  }
  function sortBy(th) {
    const col = th.cellIndex, num = th.dataset.type === "num";
    const dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    for (const h of table.tHead.rows[0].cells) h.removeAttribute("aria-sort");
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    const key = (r) => (num ? parseFloat(r.cells[col].dataset.sort) : r.cells[col].dataset.sort);
    rows.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * dir; });
    body.append(...rows);
  }
  for (const th of table.tHead.rows[0].cells) {
    th.tabIndex = 0;
    th.addEventListener("click", () => sortBy(th));
    th.addEventListener("keydown", (ev) => { if (ev.key === "Enter") sortBy(th); });
  }
  search.addEventListener("input", apply);
  filter.addEventListener("change", apply);
  apply();
})();
