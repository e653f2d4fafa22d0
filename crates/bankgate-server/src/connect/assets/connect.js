// bankgate Connect: posts the page's events to the embedding page and performs the redirect.
// The server decides everything else; this file only does what a server cannot.
(function () {
  "use strict";
  var body = document.body;
  var target = window.parent && window.parent !== window ? window.parent : null;
  // See the redirect at the end.
  var TOP_REDIRECT_DELAY_MS = 300;

  function post(event) {
    if (target) {
      // The embedding origin is the fintech's and is not known here, as with Flinks.
      target.postMessage(event, "*");
    }
  }

  var events = [];
  try {
    events = JSON.parse(body.getAttribute("data-events") || "[]");
  } catch (e) {
    events = [];
  }
  events.forEach(post);
  // Warnings for the developer (an unencoded redirectUrl): the console, not the end user.
  events.forEach(function (event) {
    if (event.step === "BANKGATE_WARNING" && window.console) {
      window.console.warn("bankgate Connect: " + event.reason + ": " + event.hint);
    }
  });

  // Events of user actions that leave the page (the terms link).
  Array.prototype.forEach.call(document.querySelectorAll("[data-event]"), function (el) {
    el.addEventListener("click", function () {
      post({ step: el.getAttribute("data-event") });
    });
  });

  // Live filtering of the institution list as the user types (the search button still works
  // without JavaScript).
  var filter = document.querySelector("[data-filter]");
  if (filter) {
    filter.addEventListener("input", function () {
      var q = filter.value.trim().toLowerCase();
      var shown = 0;
      Array.prototype.forEach.call(document.querySelectorAll("#institutions li"), function (li) {
        var match = !q || (li.getAttribute("data-name") || "").indexOf(q) !== -1;
        li.hidden = !match;
        if (match) shown += 1;
      });
      var none = document.getElementById("no-match");
      if (none) none.classList.toggle("hidden", shown !== 0);
    });
  }

  // A submitted form disables its buttons: a double click must not send a step twice.
  Array.prototype.forEach.call(document.forms, function (form) {
    form.addEventListener("submit", function () {
      setTimeout(function () {
        Array.prototype.forEach.call(form.querySelectorAll("button"), function (b) {
          b.disabled = true;
        });
      }, 0);
    });
  });

  // The address the page opened with carries the authorize token, spent by now: keep it out
  // of the history (the forms post to a clean address; the session cookie resumes a reload).
  if (/(^|[?&])authorizeToken=/i.test(window.location.search)) {
    var kept = window.location.search
      .slice(1)
      .split("&")
      .filter(function (pair) {
        return !/^authorizeToken(=|$)/i.test(pair);
      })
      .join("&");
    try {
      window.history.replaceState(
        window.history.state,
        "",
        window.location.pathname + (kept ? "?" + kept : "") + window.location.hash
      );
    } catch (e) {
      // A sandboxed frame may refuse; the page works the same.
    }
  }

  // The field to start with (the one in error, or the first), focused from here: browsers
  // ignore `autofocus` in a cross-origin frame, and say so in the console.
  var focus = document.querySelector("main [data-focus]");
  if (focus) focus.focus();

  // The notice is rendered in a live region present from the start; putting its text back in
  // after load makes screen readers announce it (content already there at load may be skipped).
  var notice = document.getElementById("notice");
  var message = notice ? notice.textContent : "";
  if (message) {
    notice.textContent = "";
    setTimeout(function () {
      notice.textContent = message;
      body.setAttribute("data-ready", "");
    }, 50);
  } else {
    body.setAttribute("data-ready", "");
  }

  var url = body.getAttribute("data-redirect");
  if (url && body.getAttribute("data-js-redirect") !== "true") {
    if (body.getAttribute("data-inner-redirect") === "true" || !target) {
      window.location.assign(url);
    } else {
      // Messages reach the embedding page asynchronously, and moving its window can drop the
      // ones still queued (ACCOUNT_SELECTED, REDIRECT): give them a moment to land first.
      setTimeout(function () {
        try {
          // Cross-origin, a frame may only set the top window's location, not call its
          // methods.
          window.top.location.href = url;
        } catch (e) {
          // Browsers let a cross-origin frame move the top window only once the user has used
          // the frame (Chromium: a click on an earlier screen counts); should one refuse, the
          // Continue link (target=_top) stays on screen.
        }
      }, TOP_REDIRECT_DELAY_MS);
    }
  }
})();
