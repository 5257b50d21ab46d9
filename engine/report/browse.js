// The audit report's tag browser: sort the per-tag table by any column, filter it by a search box, and page
// through a tag's examples. Everything it shows comes from the page itself (#browse-data); it fetches nothing.
(function () {
  "use strict";
  var PAGE_SIZE = 6;
  var data = JSON.parse(document.getElementById("browse-data").textContent);
  var table = document.getElementById("tag-table");
  var body = table.tBodies[0];
  var filterBox = document.getElementById("tag-filter");
  var countLabel = document.getElementById("tag-count");
  var panel = document.getElementById("tag-examples");
  var sorted = { column: -1, descending: false };

  function cellValue(row, column, type) {
    var text = row.cells[column].textContent.trim();
    if (type !== "number") { return text.toLowerCase(); }
    var value = parseFloat(text);
    return isNaN(value) ? null : value;
  }

  function compare(a, b, descending) {
    if (a === b) { return 0; }
    if (a === null) { return 1; }   // cells without a figure go last either way
    if (b === null) { return -1; }
    var order = a < b ? -1 : 1;
    return descending ? -order : order;
  }

  function sortBy(column) {
    var header = table.tHead.rows[0].cells[column];
    var type = header.getAttribute("data-type");
    sorted.descending = sorted.column === column ? !sorted.descending : type === "number";
    sorted.column = column;
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      return compare(cellValue(a, column, type), cellValue(b, column, type), sorted.descending);
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell, index) {
      cell.setAttribute("aria-sort", index !== column ? "none" : (sorted.descending ? "descending" : "ascending"));
    });
  }

  function applyFilter() {
    var needle = filterBox.value.trim().toLowerCase();
    var shown = 0;
    Array.prototype.forEach.call(body.rows, function (row) {
      var match = row.getAttribute("data-tag").toLowerCase().indexOf(needle) !== -1;
      row.hidden = !match;
      shown += match ? 1 : 0;
    });
    countLabel.textContent = shown + " of " + body.rows.length + " tags";
  }

  function element(name, className, text) {
    var node = document.createElement(name);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function number(value) {
    return value === null || value === undefined ? "-" : Number(value).toFixed(3);
  }

  function decisionText(tag, sample) {
    var drop = sample.dropped[tag];
    if (drop) {
      return "dropped by " + drop.rule + " (" + number(drop.score) + " vs threshold " + number(drop.threshold) + ")";
    }
    return "kept (from " + (sample.sources[tag] || []).join(" and ") + ")";
  }

  function scoresText(tag, sample) {
    var scores = sample.scores[tag] || {};
    var parts = Object.keys(scores).sort().map(function (kind) { return kind + " " + number(scores[kind]); });
    return parts.length ? "scores: " + parts.join(", ") : "no scores";
  }

  function otherDrops(tag, sample) {
    return Object.keys(sample.dropped).filter(function (other) { return other !== tag; }).map(function (other) {
      return other + ": " + sample.dropped[other].rule;
    });
  }

  function card(tag, id) {
    var sample = data.samples[id];
    var node = element("div", "sample");
    if (data.thumbnails[id]) {
      var image = element("img");
      image.alt = id;
      image.src = "data:image/jpeg;base64," + data.thumbnails[id];
      node.appendChild(image);
    }
    node.appendChild(element("div", "sample-id", id));
    if (sample.caption) { node.appendChild(element("div", "caption", "\u201c" + sample.caption + "\u201d")); }
    node.appendChild(element("div", sample.dropped[tag] ? "dropped" : "kept", decisionText(tag, sample)));
    node.appendChild(element("div", "scores", scoresText(tag, sample)));
    node.appendChild(element("div", "kept", "kept: " + (sample.kept.join(", ") || "(none)")));
    var drops = otherDrops(tag, sample);
    if (drops.length) { node.appendChild(element("div", "dropped", "also dropped: " + drops.join("; "))); }
    return node;
  }

  function renderPart(container, tag, part, page) {
    var ids = (data.examples[tag] || {})[part] || [];
    var pages = Math.max(1, Math.ceil(ids.length / PAGE_SIZE));
    page = Math.min(Math.max(page, 0), pages - 1);
    container.textContent = "";
    var count = ids.length + " example" + (ids.length === 1 ? "" : "s");
    container.appendChild(element("h4", "", part + " (" + count + ")"));
    ids.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE).forEach(function (id) {
      container.appendChild(card(tag, id));
    });
    if (pages > 1) {
      var pager = element("div", "pager");
      var back = element("button", "", "\u2039 previous");
      var next = element("button", "", "next \u203a");
      back.type = next.type = "button";
      back.disabled = page === 0;
      next.disabled = page === pages - 1;
      back.addEventListener("click", function () { renderPart(container, tag, part, page - 1); });
      next.addEventListener("click", function () { renderPart(container, tag, part, page + 1); });
      pager.appendChild(back);
      pager.appendChild(element("span", "", " page " + (page + 1) + " of " + pages + " "));
      pager.appendChild(next);
      container.appendChild(pager);
    }
  }

  function showExamples(tag) {
    panel.textContent = "";
    panel.hidden = false;
    var title = element("h3", "", "Examples of \u201c" + tag + "\u201d");
    var close = element("button", "close", "close");
    close.type = "button";
    close.addEventListener("click", function () { panel.hidden = true; });
    title.appendChild(close);
    panel.appendChild(title);
    ["kept", "dropped"].forEach(function (part) {
      var container = element("div", "examples-" + part);
      panel.appendChild(container);
      renderPart(container, tag, part, 0);
    });
    panel.scrollIntoView({ block: "nearest" });
  }

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell, index) {
    cell.addEventListener("click", function () { sortBy(index); });
    cell.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(index); }
    });
  });
  body.addEventListener("click", function (event) {
    var button = event.target.closest("button.tag-link");
    if (button) { showExamples(button.closest("tr").getAttribute("data-tag")); }
  });
  filterBox.addEventListener("input", applyFilter);
  applyFilter();
})();
