// The leaderboard web page (ssfbench.html): sort a table by a header click (again: reverse; a third time:
// the paper's order, blocks shown), open a row's provenance by a click on the row. Inlined into the page.
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  function key(group, col) {
    var c = group.rows[0].cells[col];
    return c ? c.getAttribute("data-v") : "";
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var state = th.getAttribute("aria-sort");
      var next = state === null ? (th.dataset.type === "text" ? "ascending" : "descending")
        : (state === (th.dataset.type === "text" ? "ascending" : "descending")
           ? (th.dataset.type === "text" ? "descending" : "ascending") : null);
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      var groups = Array.prototype.slice.call(table.tBodies).filter(function (b) {
        return b.classList.contains("entry"); });
      var blocks = Array.prototype.slice.call(table.tBodies).filter(function (b) {
        return b.classList.contains("block"); });
      if (next === null) {
        var all = Array.prototype.slice.call(table.tBodies);
        all.sort(function (a, b) { return a.dataset.order - b.dataset.order; });
        all.forEach(function (b) { table.appendChild(b); });
        blocks.forEach(function (b) { b.hidden = false; });
        return;
      }
      th.setAttribute("aria-sort", next);
      var sign = next === "ascending" ? 1 : -1, text = th.dataset.type === "text";
      groups.sort(function (a, b) {
        var x = key(a, col), y = key(b, col);
        if (x === "" || y === "") { return (x === "") - (y === "") || a.dataset.order - b.dataset.order; }
        var d = text ? x.localeCompare(y) : parseFloat(x) - parseFloat(y);
        return sign * d || a.dataset.order - b.dataset.order;
      });
      blocks.forEach(function (b) { b.hidden = true; });
      groups.forEach(function (g) { table.appendChild(g); });
    });
  });
  Array.prototype.forEach.call(table.querySelectorAll("tr.row"), function (tr) {
    tr.addEventListener("click", function () {
      var prov = tr.nextElementSibling;
      if (prov) { prov.hidden = !prov.hidden; }
    });
  });
});
