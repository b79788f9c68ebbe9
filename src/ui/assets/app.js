// refcat's pages work without this script. With it: the theme toggle, and filters,
// sorting and paging that swap the page body in place (the URL still changes, so Back
// and shared links keep working).
(function () {
  "use strict";
  var root = document.documentElement;
  var stored = localStorage.getItem("refcat-theme");
  if (stored === "light" || stored === "dark") root.dataset.theme = stored;

  function setupToggle() {
    var toggle = document.getElementById("theme-toggle");
    if (!toggle) return;
    toggle.hidden = false;
    var dark = function () {
      return root.dataset.theme
        ? root.dataset.theme === "dark"
        : matchMedia("(prefers-color-scheme: dark)").matches;
    };
    var label = function () {
      toggle.setAttribute("aria-pressed", dark() ? "true" : "false");
    };
    label();
    toggle.addEventListener("click", function () {
      root.dataset.theme = dark() ? "light" : "dark";
      localStorage.setItem("refcat-theme", root.dataset.theme);
      label();
    });
  }

  function swap(url, push) {
    return fetch(url, { headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.text();
      })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, "text/html");
        var main = next.querySelector("main");
        if (!main) throw new Error("no main");
        document.querySelector("main").replaceWith(main);
        document.title = next.title;
        if (push) history.pushState({}, "", url);
      })
      .catch(function () {
        location.href = url;
      });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("form[data-live]")) return;
    event.preventDefault();
    var params = new URLSearchParams(new FormData(form));
    for (var [key, value] of Array.from(params.entries())) {
      if (value === "") params.delete(key);
    }
    var query = params.toString();
    swap(form.action.split("?")[0] + (query ? "?" + query : ""), true);
  });

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-live]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    swap(link.href, true);
  });

  addEventListener("popstate", function () {
    swap(location.href, false);
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setupToggle);
  } else {
    setupToggle();
  }
})();
