// The analysts' queue from the keyboard: j/k (or the arrows) move, Enter opens the item,
// 1/i illegal, 2/n not illegal, 3/x ignore, 4/p first police. A grade clicks the row's own
// button, so the same form is sent as with the mouse (by htmx when it runs, else plainly).
(function () {
  "use strict";
  var GRADES = { "1": "illegal", i: "illegal", "2": "not_illegal", n: "not_illegal",
                 "3": "ignore", x: "ignore", "4": "police", p: "police" };

  function rows() {
    return Array.prototype.slice.call(document.querySelectorAll("#queue tr.queue-row"));
  }

  function current() {
    return document.querySelector("#queue tr.queue-row.current");
  }

  function choose(row) {
    rows().forEach(function (r) { r.classList.remove("current"); });
    if (row) {
      row.classList.add("current");
      row.focus({ preventScroll: true });
      row.scrollIntoView({ block: "nearest" });
    }
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var tag = event.target && event.target.tagName;
    if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") { return; }
    var all = rows();
    if (!all.length) { return; }
    var row = current() || all[0];
    var at = all.indexOf(row);
    var key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === "j" || key === "ArrowDown") {
      choose(all[Math.min(at + 1, all.length - 1)]);
    } else if (key === "k" || key === "ArrowUp") {
      choose(all[Math.max(at - 1, 0)]);
    } else if (key === "Enter" && row.dataset.href) {
      window.location.assign(row.dataset.href);
    } else if (GRADES[key]) {
      var button = row.querySelector('button[name="grade"][value="' + GRADES[key] + '"]');
      if (!button) { return; }
      choose(all[at + 1] || all[at - 1] || null);  // the next row, once this one is graded
      button.click();
    } else {
      return;
    }
    event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () { choose(rows()[0]); });
})();
