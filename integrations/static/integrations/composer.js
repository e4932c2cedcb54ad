/* The composer, enhanced: a live counter (announced politely), "Add part" / "Remove part" in place, and one empty
 * image slot shown at a time. Without this file the page works the same through its submit buttons.
 *
 * The count is of the text as it will be sent, as integrations/bluesky/richtext.py `measure` counts it: the text
 * prepared (no leading blank lines, no trailing white space, at most one empty line in a row), each http(s) link
 * shown as bsky.app shortens it (host + the first 13 characters of the rest and "..."), graphemes counted with
 * Intl.Segmenter. Preview shows the server's count, which is the one that decides.
 *
 * The link card: once a part's text has a link (and no images), the server is asked for the card it will carry
 * (POST to data-card-endpoint, answered by integrations/bluesky/composer.py `card_for`); its title and description
 * can be edited (the part's card becomes "edited") or the card removed ("none") and added back ("auto"). The card's
 * thumbnail is shown from the link the server gives with it (`thumb`, signed for this user: the image view fetches
 * nothing for a URL of anyone else's choosing), never from a URL built here.
 *
 * The form is sent once: while it is on its way, Publish is disabled and says so. */
(function () {
  "use strict";

  var URL_RE = /(^|\s|\()((https?:\/\/[\S]+)|(([a-z][a-z0-9]*(\.[a-z0-9]+)+)[\S]*))/gim;
  var segmenter = typeof Intl !== "undefined" && Intl.Segmenter ? new Intl.Segmenter(undefined, {granularity: "grapheme"}) : null;
  var encoder = new TextEncoder();

  function prepare(text) {
    text = text.replace(/^(\s*\n)+/, "");
    text = text.replace(/\s+$/, "");
    return text.replace(/[\r\n]([\u00ad\u2060\u200d\u200c\u200b\s]*[\r\n]){2,}/g, "\n\n");
  }

  function toShortUrl(url) {  // social-app src/lib/strings/url-helpers.ts
    try {
      var u = new URL(url);
      if (u.protocol !== "http:" && u.protocol !== "https:") return url;
      var path = (u.pathname === "/" ? "" : u.pathname) + u.search + u.hash;
      return path.length > 15 ? u.host + path.slice(0, 13) + "..." : u.host + path;
    } catch (e) {
      return url;
    }
  }

  function stripLinkEnd(uri) {
    if (/[.,;:!?]$/.test(uri)) uri = uri.slice(0, -1);
    if (uri.endsWith(")") && uri.split(")").length > uri.split("(").length) uri = uri.slice(0, -1);
    return uri;
  }

  function asSent(text) {
    var prepared = prepare(text);
    return prepared.replace(URL_RE, function (match, before, visible, full) {
      if (!full || !visible.startsWith("http")) return match;  // bare domains are sent as written
      var linked = stripLinkEnd(visible);
      return before + toShortUrl(linked) + visible.slice(linked.length);
    });
  }

  function measure(text) {
    var sent = asSent(text);
    var graphemes = 0;
    if (segmenter) {
      for (var it = segmenter.segment(sent)[Symbol.iterator](), step = it.next(); !step.done; step = it.next()) graphemes++;
    } else {
      graphemes = Array.from(sent).length;
    }
    return {graphemes: graphemes, bytes: encoder.encode(sent).length, exact: !!segmenter};
  }

  function format(template, values) {
    return template.replace(/%\((\w+)\)s/g, function (_, key) { return values[key]; });
  }

  function init(form) {
    var d = form.dataset;
    var maxG = +d.maxGraphemes, maxB = +d.maxBytes, bytesFrom = +d.bytesFrom, maxParts = +d.maxParts;
    var lang = document.documentElement.lang || undefined;
    var number = function (n) { return n.toLocaleString(lang); };
    var partsBox = form.querySelector("[data-parts]");
    var template = form.querySelector("template[data-part-template]");
    var total = form.querySelector("input[name='parts-TOTAL_FORMS']");
    var status = form.querySelector("[data-status]");
    var addButton = form.querySelector("[data-add-part]");
    var csrf = form.querySelector("input[name=csrfmiddlewaretoken]");
    var timer = null;

    function parts() { return Array.prototype.slice.call(partsBox.querySelectorAll("[data-part]")); }

    function counterText(length) {
      var text = format(d.msgCount, {count: number(length.graphemes), max: number(maxG)});
      if (length.bytes >= bytesFrom || length.bytes > maxB) {
        text += " · " + format(d.msgBytes, {count: number(length.bytes), max: number(maxB)});
      }
      var over = length.graphemes > maxG || length.bytes > maxB;
      if (over) text = d.msgTooLong + " " + text;
      if (!length.exact) text += " " + d.msgApproximate;
      return {text: text, over: over};
    }

    function announce(message) {
      status.textContent = "";  // a repeated message is announced again
      window.setTimeout(function () { status.textContent = message; }, 50);
    }

    function update(part, speak) {
      var textarea = part.querySelector("[data-text]");
      var counter = part.querySelector("[data-counter]");
      var shown = counterText(measure(textarea.value));
      counter.textContent = shown.text;
      counter.classList.toggle("over", shown.over);
      if (speak) {
        window.clearTimeout(timer);
        var index = parts().indexOf(part) + 1;
        var message = (parts().length > 1 ? format(d.msgPart, {number: index}) + " " : "") + shown.text;
        timer = window.setTimeout(function () { announce(message); }, 600);  // once the typing pauses
      }
    }

    function showSlots(part) {  // every filled slot, and the first empty one
      var shownEmpty = false;
      part.querySelectorAll("[data-slot]").forEach(function (slot) {
        var file = slot.querySelector("input[type=file]");
        var alt = slot.querySelector("textarea");
        var empty = file && !file.files.length && !(alt && alt.value);
        slot.hidden = empty && shownEmpty;
        if (empty) shownEmpty = true;
      });
    }

    function markStale(part) {  // a server preview no longer shows what is written: say so, keep it for reference
      var preview = part.querySelector(".preview");
      if (!preview || preview.classList.contains("stale")) return;
      preview.classList.add("stale");
      var note = document.createElement("p");
      note.className = "stale-note";
      note.textContent = d.msgStale;
      preview.querySelector(".preview-title").after(note);
    }

    function renumber() {
      var all = parts();
      all.forEach(function (part, index) {
        part.querySelectorAll("[name], [id], [for], [aria-describedby], [aria-labelledby]").forEach(function (el) {
          ["name", "id", "for", "aria-describedby", "aria-labelledby"].forEach(function (attr) {
            var value = el.getAttribute(attr);
            if (value) el.setAttribute(attr, value.replace(/parts-(\d+|__prefix__)-/g, "parts-" + index + "-"));
          });
        });
        part.querySelectorAll(".part-number").forEach(function (el) { el.textContent = index + 1; });
        part.querySelector("[data-remove-part]").value = "remove-" + index;
        var cardRemove = part.querySelector("[data-card-remove]"), cardRestore = part.querySelector("[data-card-restore]");
        if (cardRemove) cardRemove.value = "nocard-" + index;
        if (cardRestore) cardRestore.value = "card-" + index;
        part.querySelector("[data-part-actions]").hidden = all.length < 2;
      });
      total.value = all.length;
      if (addButton) addButton.hidden = all.length >= maxParts;
    }

    function firstLink(text) {  // a link the server may make a card of (it decides which, and whether)
      URL_RE.lastIndex = 0;
      var match = URL_RE.exec(prepare(text));
      return match ? stripLinkEnd(match[2]) : "";
    }

    function hasImages(part) {
      return Array.prototype.some.call(part.querySelectorAll("[data-slot]"), function (slot) {
        var file = slot.querySelector("input[type=file]");
        var removed = slot.querySelector("input[type=checkbox]");
        return file ? file.files.length > 0 : !(removed && removed.checked);
      });
    }

    function wireCard(part) {  // returns what to call when the text or the images change
      var box = part.querySelector("[data-card]");
      if (!box || !d.cardEndpoint) return function () {};
      var el = function (name) { return box.querySelector("[data-card-" + name + "]"); };
      var mode = el("mode"), url = el("url"), title = el("title"), description = el("description");
      var asked = url.value ? firstLink(part.querySelector("[data-text]").value) : null;
      var latest = 0, waiting = null;
      var link = box.dataset.link;  // the part's first link as the server last said ("" when none)
      var note = el("note").textContent;

      function show() {
        var covered = hasImages(part);
        box.hidden = !link;
        el("box").hidden = !url.value || mode.value === "none" || covered;
        el("removed").hidden = mode.value !== "none" || covered;
        el("covered").hidden = !covered;
        el("note").hidden = !note || mode.value === "none" || covered;
        el("note").textContent = note;
      }

      function fill(card) {
        link = card.link;
        note = card.note;
        if (card.url !== url.value || mode.value !== "edited") {
          if (mode.value === "edited") mode.value = "auto";  // an edited card belongs to the link it was for
          title.value = card.title;
          description.value = card.description;
        }
        url.value = card.url;
        el("host").textContent = card.host;
        el("thumb").hidden = !card.thumb;
        if (card.thumb) el("thumb").src = card.thumb; else el("thumb").removeAttribute("src");
        show();
      }

      function ask(force) {
        var text = part.querySelector("[data-text]").value;
        var candidate = firstLink(text);
        if (!candidate) {
          asked = null;
          fill({link: "", url: "", title: "", description: "", thumb: "", host: "", note: ""});
          return;
        }
        if (candidate === asked && !force) return show();
        asked = candidate;
        var body = new FormData();
        body.append("csrfmiddlewaretoken", csrf.value);
        body.append("text", text);
        var mine = ++latest;
        fetch(d.cardEndpoint, {method: "POST", body: body, credentials: "same-origin", headers: {"Accept": "application/json"}})
          .then(function (response) { return response.ok ? response.json() : null; })
          .then(function (card) { if (card && mine === latest) fill(card); })
          .catch(function () { /* the card stays as it was; Preview shows the server's */ });
      }

      [title, description].forEach(function (input) {
        input.addEventListener("input", function () { if (mode.value !== "none") mode.value = "edited"; });
      });
      el("remove").addEventListener("click", function (event) {
        event.preventDefault();
        mode.value = "none";
        show();
        el("restore").focus();
        announce(d.msgCardRemoved);
      });
      el("restore").addEventListener("click", function (event) {
        event.preventDefault();
        mode.value = "auto";
        show();
        ask(true);
        title.focus();
        announce(d.msgCardRestored);
      });
      show();
      if (!url.value) ask(false);
      return function (typed) {
        window.clearTimeout(waiting);
        if (typed) waiting = window.setTimeout(function () { ask(false); }, 700); else { show(); ask(false); }
      };
    }

    function wire(part) {
      var textarea = part.querySelector("[data-text]");
      var cardChanged = wireCard(part);
      textarea.addEventListener("input", function () { update(part, true); markStale(part); cardChanged(true); });
      part.querySelectorAll("[data-slot] input, [data-slot] textarea").forEach(function (el) {
        el.addEventListener("change", function () { markStale(part); });
      });
      part.querySelectorAll("[data-slot] input[type=file], [data-slot] textarea").forEach(function (el) {
        el.addEventListener("change", function () { showSlots(part); });
      });
      part.querySelectorAll("[data-slot] input").forEach(function (el) {
        el.addEventListener("change", function () { cardChanged(false); });
      });
      part.querySelector("[data-remove-part]").addEventListener("click", function (event) {
        event.preventDefault();
        var all = parts();
        var index = all.indexOf(part);
        part.remove();
        renumber();
        var next = parts()[Math.max(0, index - 1)];
        next.querySelector("[data-text]").focus();
        announce(format(d.msgRemoved, {number: index + 1}));
      });
      showSlots(part);
      update(part, false);
    }

    if (addButton) {
      addButton.addEventListener("click", function (event) {
        if (parts().length >= maxParts) return;
        event.preventDefault();
        var index = parts().length;
        var html = template.innerHTML.replace(/__prefix__/g, index).replace(/__number__/g, index + 1);
        var holder = document.createElement("div");
        holder.innerHTML = html.trim();
        var part = holder.querySelector("[data-part]");
        partsBox.appendChild(part);
        wire(part);
        renumber();
        part.querySelector("[data-text]").focus();
        announce(format(d.msgAdded, {number: index + 1}));
      });
    }
    parts().forEach(wire);
    renumber();

    // Sent once: a second click, a double click or Enter while the page is on its way sends nothing more, and the
    // Publish button says it is sending (the server's one-time token, submit_token, catches any second send left).
    var sending = false;
    form.addEventListener("submit", function (event) {
      if (sending) {
        event.preventDefault();
        return;
      }
      sending = true;
      var button = event.submitter;
      if (!button || button.value !== "publish") return;
      window.setTimeout(function () {  // once the browser has put the button's action into what it sends
        button.disabled = true;
        button.setAttribute("aria-busy", "true");
        button.dataset.label = button.textContent;
        button.textContent = d.msgSending;
      }, 0);
    });
    window.addEventListener("pageshow", function (event) {  // back on the page from the history: usable again
      if (!event.persisted) return;
      sending = false;
      form.querySelectorAll("button[aria-busy]").forEach(function (button) {
        button.disabled = false;
        button.removeAttribute("aria-busy");
        button.textContent = button.dataset.label;
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("input[data-time-zone]").forEach(function (input) {
      try {  // "Publish later" is read on the browser's clock
        var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
        if (!zone) return;
        input.value = zone;
        // A stored time (editing a scheduled post) was written on the server's idea of the user's clock:
        // show it on the browser's, which is the zone it is now read in.
        input.form.querySelectorAll("input[data-instant]").forEach(function (field) {
          var at = new Date(field.dataset.instant);
          if (isNaN(at)) return;
          var pad = function (n) { return String(n).padStart(2, "0"); };
          field.value = at.getFullYear() + "-" + pad(at.getMonth() + 1) + "-" + pad(at.getDate()) + "T" +
            pad(at.getHours()) + ":" + pad(at.getMinutes()) + (at.getSeconds() ? ":" + pad(at.getSeconds()) : "");
        });
      } catch (e) { /* the zone the user last used, or the site's */ }
    });
    document.querySelectorAll("form[data-composer]").forEach(init);
  });

  window.skyportMeasure = measure;  // for the browser tests, which compare it with the server's count
})();
