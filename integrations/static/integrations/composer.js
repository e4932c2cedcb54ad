/* The composer, enhanced: a live counter (announced politely), "Add part" / "Remove part" in place, a thumbnail of
 * each image as soon as it is chosen (all four slots at hand, each alt text field shown once its slot has an image,
 * and required before submitting, as the server requires it), "Schedule" on the button once a time is set, the post
 * a "Reply to" or "Quote" field names shown as it is typed, focus on the first error of a refused submission, and,
 * for a user with many channels, the channel list searched as one types (the same markup as the page's, from
 * data-channel-search). Without this file the page works the same through its submit buttons ("Find" included).
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
    var submit = form.querySelector("[data-submit]");
    var when = form.querySelector("input[name=scheduled_at]");
    var preview = form.querySelector("[data-preview]");
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

    function slotHasImage(slot) {  // a file chosen, an upload kept (and not ticked for removal), or a first frame
      var file = slot.querySelector("input[type=file]");
      if (file) return file.files.length > 0;
      var removed = slot.querySelector("input[type=checkbox]");
      return !(removed && removed.checked);
    }

    function showSlot(slot) {  // the alt text field appears once the slot holds an image (or alt text already)
      var alt = slot.querySelector("[data-alt] textarea");
      slot.classList.toggle("chosen", slotHasImage(slot) || !!(alt && alt.value));
      if (alt && d.altRequired !== undefined) {
        if (slotHasImage(slot)) alt.setAttribute("aria-required", "true"); else alt.removeAttribute("aria-required");
      }
    }

    function showThumb(slot) {  // the picture as chosen, before anything is sent
      var file = slot.querySelector("input[type=file]");
      var thumb = slot.querySelector("[data-thumb]");
      if (!file || !thumb) return;
      if (thumb.dataset.url) URL.revokeObjectURL(thumb.dataset.url);
      var clear = slot.querySelector("[data-clear]");
      if (file.files.length && /^image\//.test(file.files[0].type)) {
        thumb.dataset.url = URL.createObjectURL(file.files[0]);
        thumb.src = thumb.dataset.url;
        thumb.hidden = false;
      } else {
        delete thumb.dataset.url;
        thumb.removeAttribute("src");
        thumb.hidden = true;
      }
      if (clear) clear.hidden = !file.files.length;
    }

    function missingAlt() {  // the alt text fields of slots with an image and no alt text (when it is required)
      if (d.altRequired === undefined) return [];
      var missing = [];
      form.querySelectorAll("[data-part] [data-slot]").forEach(function (slot) {
        var alt = slot.querySelector("[data-alt] textarea");
        var error = slot.querySelector("[data-alt-error]");
        var empty = alt && slotHasImage(slot) && !alt.value.trim();
        if (error) error.remove();
        if (!alt) return;
        if (!empty) {
          if (alt.dataset.invalid) { alt.removeAttribute("aria-invalid"); delete alt.dataset.invalid; }
          return;
        }
        var list = document.createElement("ul");
        list.className = "errorlist";
        list.id = alt.id + "_client_error";
        list.setAttribute("data-alt-error", "");
        var item = document.createElement("li");
        item.textContent = d.msgAltRequired;
        list.appendChild(item);
        alt.before(list);
        alt.setAttribute("aria-invalid", "true");
        alt.dataset.invalid = "1";
        var described = (alt.getAttribute("aria-describedby") || "").split(" ").filter(function (id) {
          return id && id !== list.id;
        });
        alt.setAttribute("aria-describedby", described.concat([list.id]).join(" "));
        missing.push(alt);
      });
      return missing;
    }

    function markStale() {  // the server's preview no longer shows what is written: say so, keep it for reference
      if (!preview || preview.classList.contains("stale")) return;
      preview.classList.add("stale");
      var note = document.createElement("p");
      note.className = "stale-note";
      note.textContent = d.msgStale;
      preview.querySelector("h2").after(note);
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
        part.querySelectorAll("button[value^='frame-'], button[value^='noframe-']").forEach(function (button) {
          button.value = button.value.replace(/^(no)?frame-\d+-/, function (m, no) { return (no || "") + "frame-" + index + "-"; });
        });
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
      return Array.prototype.some.call(part.querySelectorAll("[data-slot]"), slotHasImage);
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
      textarea.addEventListener("input", function () { update(part, true); markStale(); cardChanged(true); });
      part.querySelectorAll("[data-slot]").forEach(function (slot) {
        slot.querySelectorAll("input, textarea").forEach(function (el) {
          el.addEventListener("change", function () {
            markStale();
            if (el.type === "file") showThumb(slot);
            showSlot(slot);
          });
        });
        var clear = slot.querySelector("[data-clear]");
        if (clear) {
          clear.addEventListener("click", function () {  // the file chosen is dropped before anything is sent
            var file = slot.querySelector("input[type=file]");
            file.value = "";
            showThumb(slot);
            showSlot(slot);
            cardChanged(false);
            file.focus();
          });
        }
        showSlot(slot);
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
    function wireChannelSearch() {  // a user with many channels finds one by typing; the list changes in place
      var search = form.querySelector("[data-channel-search]");
      if (!search) return;
      var choices = form.querySelector("[data-channel-choices]");
      var latest = 0, waiting = null;
      form.querySelector("[data-channel-find]").hidden = true;  // without this script, it submits the search

      function chosen() {
        var checked = choices.querySelector("input[type=radio]:checked");
        return checked ? checked.value : "";
      }

      function find() {
        var sent = chosen();
        var query = "?q=" + encodeURIComponent(search.value) + "&chosen=" + sent;
        var mine = ++latest;
        fetch(search.dataset.channelSearch + query, {credentials: "same-origin", headers: {"Accept": "text/html"}})
          .then(function (response) { return response.ok ? response.text() : null; })
          .then(function (html) {
            if (html === null || mine !== latest) return;
            if (chosen() !== sent) {  // a channel was chosen while the answer was on its way: it must stay chosen
              find();
              return;
            }
            choices.innerHTML = html;
            var count = choices.querySelector("[data-channel-count]");
            announce(count ? count.textContent.trim() : "");
          })
          .catch(function () { /* the list stays as it was; "Find" without the script still works */ });
      }

      search.addEventListener("input", function () {
        window.clearTimeout(waiting);
        waiting = window.setTimeout(find, 300);
      });
      search.addEventListener("keydown", function (event) {
        if (event.key !== "Enter") return;
        event.preventDefault();  // Enter here searches; it never previews nor publishes
        window.clearTimeout(waiting);
        find();
      });
    }

    parts().forEach(wire);
    renumber();

    // "Schedule" once a time is set (the edit page's button always says "Save changes").
    if (submit && when && submit.dataset.labelNow) {
      var label = function () { submit.textContent = when.value ? submit.dataset.labelLater : submit.dataset.labelNow; };
      when.addEventListener("input", label);
      when.addEventListener("change", label);
      label();
    }
    form.querySelectorAll("input[name=langs], input[name=scheduled_at], [data-references] input").forEach(function (el) {
      el.addEventListener("input", markStale);
    });

    form.addEventListener("submit", function (event) {
      var action = event.submitter ? event.submitter.value : "preview";
      if (action !== "publish" && action !== "preview") return;
      var missing = missingAlt();
      if (missing.length) {
        event.preventDefault();
        missing[0].focus();
        announce(d.msgAltRequired);
      }
    });

    wireReferences();
    focusFirstError();
    wireChannelSearch();

    // Sent once: a second click, a double click or Enter while the page is on its way sends nothing more, and the
    // Publish button says it is sending (the server's one-time token, submit_token, catches any second send left).
    var sending = false;
    form.addEventListener("submit", function (event) {
      if (event.defaultPrevented) return;  // not sent after all (an image without its alt text)
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

  function focusFirstError() {  // after a refused submission, the first thing to fix has the focus
    var form = document.querySelector("form[data-composer]");
    var list = form && form.querySelector(".errorlist");
    if (!list) return;
    var target = null;
    if (list.closest("[data-form-errors]")) {
      target = list.closest("[data-form-errors]");
    } else {
      var box = list.closest("fieldset.picker, .field, .slot .pick, .slot .alt, .slot, .reference, .card-fields, p");
      if (box && box.matches("fieldset.picker")) {
        // A channel, not the search field above the list (a user with many channels has one).
        target = box.querySelector("input[type=radio]:checked:not([disabled])") ||
          box.querySelector("input[type=radio]:not([disabled])");
      } else if (box) {
        target = box.querySelector("[aria-invalid=true]") || box.querySelector("input:not([type=hidden]), textarea, select, button");
      }
    }
    if (target) target.focus();
  }

  function wireReferences() {  // the post a "Reply to" or "Quote" field names, shown as it is typed
    var form = document.querySelector("form[data-composer]");
    var endpoint = form && form.dataset.referenceEndpoint;
    if (!endpoint) return;
    var csrf = form.querySelector("input[name=csrfmiddlewaretoken]");
    form.querySelectorAll("[data-reference]").forEach(function (box) {
      var input = box.querySelector("input");
      var shown = box.querySelector("[data-target-box]");
      var waiting = null, latest = 0, asked = input.value.trim();
      function render(answer) {
        shown.textContent = "";
        if (!answer) return;
        if (!answer.found) {
          var note = document.createElement("p");
          note.className = "small target-note";
          note.textContent = answer.problem;
          shown.appendChild(note);
          return;
        }
        var card = document.createElement("div");
        card.className = "target";
        card.setAttribute("data-target", "");
        var head = document.createElement("p");
        head.className = "target-head";
        var name = document.createElement("span");
        name.className = "name";
        name.textContent = answer.handle ? "@" + answer.handle : answer.did;
        head.appendChild(name);
        if (answer.time) {
          var time = document.createElement("span");
          time.className = "muted";
          time.textContent = " · " + answer.time;
          head.appendChild(time);
        }
        var text = document.createElement("p");
        text.className = "target-text";
        text.textContent = answer.text || form.dataset.msgNoText;
        card.appendChild(head);
        card.appendChild(text);
        shown.appendChild(card);
      }
      function ask() {
        var address = input.value.trim();
        if (address === asked) return;
        asked = address;
        if (!/^(https:\/\/(www\.)?bsky\.app\/profile\/[^/]+\/post\/[^/?#]+\/?|at:\/\/\S+)$/.test(address)) {
          render(null);
          return;
        }
        var chosen = form.querySelector("input[name=channel]:checked");
        var body = new FormData();
        body.append("csrfmiddlewaretoken", csrf.value);
        body.append("address", address);
        body.append("channel", chosen ? chosen.value : (form.dataset.channel || ""));
        var mine = ++latest;
        fetch(endpoint, {method: "POST", body: body, credentials: "same-origin", headers: {"Accept": "application/json"}})
          .then(function (response) { return response.ok ? response.json() : null; })
          .then(function (answer) { if (answer && mine === latest) render(answer); })
          .catch(function () { /* Preview shows it */ });
      }
      input.addEventListener("input", function () {
        window.clearTimeout(waiting);
        waiting = window.setTimeout(ask, 700);
      });
      input.addEventListener("change", ask);
    });
  }

  document.documentElement.classList.add("js");
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("form[data-composer]").forEach(init);
  });

  window.skyportMeasure = measure;  // for the browser tests, which compare it with the server's count
})();
