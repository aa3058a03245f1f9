// "My files", enhanced: several files at once, drag and drop, a progress bar
// and a Cancel button per file, and a dialog before a delete. Without this
// script the page is a plain form post of one file, and delete posts at once.
"use strict";

(function () {
  const form = document.querySelector("form.upload");
  if (!form || !window.XMLHttpRequest || !window.FormData) {
    return;
  }
  const input = form.querySelector("input[type=file]");
  const zone = form.querySelector(".dropzone");
  const rows = document.querySelector("ol.uploads");
  const status = document.getElementById("messages");
  const token = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const apiUrl = form.dataset.apiUrl;
  const maxSize = Number(form.dataset.maxSize);
  const maxSizeLabel = form.dataset.maxSizeLabel;
  // What is allowed, and the server's own sentence refusing each kind of
  // file (one table on the server words the hint, its refusals and these).
  const kinds = JSON.parse(form.dataset.kinds);
  const allowed = kinds.allowed;
  const queue = [];
  let current = null;
  let stored = 0;
  // What became of this batch's files, for its one summary line.
  let tally = { uploaded: 0, refused: 0, failed: 0, cancelled: 0 };
  // The last file's message with its name: a batch of one says just that.
  let lastMessage = "";
  // Files that failed for a reason that may pass (busy, out of reach, the
  // connection lost), offered again by the "Retry failed" button.
  let retryable = [];
  // A busy server (429 from our own rate limits, 503 while the store is out of
  // reach) says when to come back with Retry-After: each file waits that long
  // and is sent again, a few times at most, before it counts as failed.
  const MAX_ATTEMPTS = 8;
  const MAX_WAIT_SECONDS = 60;
  const BUSY = [429, 503];
  const retryButton = document.createElement("button");
  retryButton.type = "button";
  retryButton.className = "retry-failed";
  retryButton.textContent = "Retry failed uploads";
  retryButton.hidden = true;
  rows.after(retryButton);

  input.multiple = true;
  // Picking uploads at once, as dropping does: the plain form's Upload
  // button would be a second step that does nothing more.
  form.querySelector("label[for='" + input.id + "']").append(", or several, to upload");
  form.querySelector("button[type=submit]").hidden = true;
  form.querySelector(".drop-hint").hidden = false;

  // Django's filesizeformat, non-breaking space included.
  function humanSize(bytes) {
    const units = ["KB", "MB", "GB", "TB"];
    if (bytes < 1024) {
      return bytes + "\u00a0" + (bytes === 1 ? "byte" : "bytes");
    }
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return value.toFixed(1) + "\u00a0" + units[unit];
  }

  function refusal(file) {
    if (file.size > maxSize) {
      return (
        file.name + " is too large (" + humanSize(file.size) + "). Files may be up to " +
        maxSizeLabel + "; nothing was uploaded."
      );
    }
    // The server judges the type from the bytes; the browser guesses from
    // the name. A guess of some other text type may still be plain UTF-8
    // text, unless it is markup.
    const type = file.type;
    const textLike = type.startsWith("text/") && allowed.includes("text/plain");
    if (type && !allowed.includes(type) && (!textLike || kinds.markup.includes(type))) {
      const sentence = Object.hasOwn(kinds.refusals, type) ? kinds.refusals[type] : kinds.otherwise;
      return file.name + ": " + sentence + " Nothing was uploaded.";
    }
    return null;
  }

  // The live region holds one line: the batch's summary, once it is over.
  // Each file's own message is in its row.
  function announce(text, kind) {
    const line = document.createElement("p");
    line.className = kind;
    line.textContent = text;
    status.replaceChildren(line);
  }

  function plural(count, one, many) {
    return count + " " + (count === 1 ? one : many);
  }

  function summary() {
    const parts = [];
    if (tally.uploaded) {
      parts.push(plural(tally.uploaded, "file uploaded", "files uploaded"));
    }
    if (tally.refused) {
      parts.push(tally.refused + " refused");
    }
    if (tally.failed) {
      parts.push(tally.failed + " failed");
    }
    if (tally.cancelled) {
      parts.push(tally.cancelled + " cancelled");
    }
    let text = parts.join(", ");
    text = text.charAt(0).toUpperCase() + text.slice(1);
    if (tally.refused || tally.failed) {
      text += ": each file below says why.";
    } else {
      text += ".";
    }
    return text;
  }

  function row(file) {
    const item = document.createElement("li");
    item.className = "upload-row";
    item.tabIndex = -1;
    const name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = file.name;
    const state = document.createElement("p");
    state.className = "upload-state";
    item.append(name);
    rows.append(item);
    rows.hidden = false;
    return {
      file: file,
      item: item,
      state: state,
      progress: null,
      cancel: null,
      xhr: null,
      timer: null,
      attempts: 0,
    };
  }

  function addCancel(job) {
    job.cancel = document.createElement("button");
    job.cancel.type = "button";
    job.cancel.textContent = "Cancel";
    job.cancel.setAttribute("aria-label", "Cancel the upload of " + job.file.name);
    job.cancel.addEventListener("click", function () {
      cancel(job);
    });
    job.item.insertBefore(job.cancel, job.progress);
  }

  // Seconds to wait before sending again, from Retry-After (bounded), or
  // null when the answer does not invite another try.
  function waitOf(xhr) {
    if (!BUSY.includes(xhr.status)) {
      return null;
    }
    const seconds = Number.parseInt(xhr.getResponseHeader("Retry-After") || "", 10);
    if (!Number.isFinite(seconds) || seconds < 0) {
      return 2;
    }
    return Math.min(Math.max(seconds, 1), MAX_WAIT_SECONDS);
  }

  // ``outcome``: uploaded, refused, failed or cancelled.
  function finish(job, outcome, text, message) {
    const kind = outcome === "uploaded" ? "done" : "error";
    tally[outcome] += 1;
    lastMessage = message;
    job.state.textContent = text;
    job.item.classList.add(kind);
    if (job.cancel) {
      const hadFocus = document.activeElement === job.cancel;
      job.cancel.remove();
      job.cancel = null;
      if (hadFocus) {
        job.item.focus();
      }
    }
  }

  function choose(files) {
    if (!files.length) {
      return;
    }
    if (!current && !queue.length) {
      // A new batch: earlier messages and finished rows make way for it.
      status.replaceChildren();
      rows.replaceChildren();
      stored = 0;
      tally = { uploaded: 0, refused: 0, failed: 0, cancelled: 0 };
      retryable = [];
      retryButton.hidden = true;
    }
    for (const file of files) {
      const job = row(file);
      const refused = refusal(file);
      if (refused) {
        job.item.append(job.state);
        finish(job, "refused", refused, refused);
        continue;
      }
      prepare(job);
      queue.push(job);
    }
    input.value = "";
    next();
  }

  function prepare(job) {
    job.progress = document.createElement("progress");
    job.progress.max = job.file.size || 1;
    job.progress.value = 0;
    job.progress.setAttribute("aria-label", "Upload of " + job.file.name);
    job.state.textContent = "Waiting…";
    job.item.append(job.progress, job.state);
    addCancel(job);
  }

  // "Retry failed": the files that failed for a reason that may pass, sent again.
  retryButton.addEventListener("click", function () {
    const again = retryable;
    retryable = [];
    tally.failed -= again.length;
    retryButton.hidden = true;
    for (const job of again) {
      job.item.classList.remove("error");
      job.attempts = 0;
      prepare(job);
      queue.push(job);
    }
    if (again.length) {
      again[0].item.focus();
    }
    next();
  });

  function cancel(job) {
    const waiting = queue.indexOf(job);
    if (waiting >= 0) {
      queue.splice(waiting, 1);
    }
    if (current === job) {
      // Only while the body is still on its way (the button goes once it is
      // all sent): nginx buffers a request body in full before passing it
      // on, so an aborted upload never reaches Django and nothing is stored.
      // Or while waiting to be sent again: nothing is on its way.
      current = null;
      if (job.timer !== null) {
        clearTimeout(job.timer);
        job.timer = null;
      } else {
        job.xhr.abort();
      }
    }
    job.progress.remove();
    finish(
      job,
      "cancelled",
      "Cancelled; nothing was stored.",
      "Cancelled " + job.file.name + "; nothing was stored.",
    );
    next();
  }

  function answer(xhr) {
    try {
      const body = JSON.parse(xhr.responseText);
      if (body && typeof body.error === "string") {
        return body.error;
      }
    } catch (error) {
      // Not JSON: nginx itself answered (a limit, or the app is down).
    }
    if (xhr.status === 413) {
      return "The file is larger than the limit of " + maxSizeLabel + ".";
    }
    if (xhr.status === 0) {
      return "The connection was lost; nothing was stored.";
    }
    return "The server refused the file (HTTP " + xhr.status + ").";
  }

  // One upload at a time: the server limits each client's concurrent uploads.
  function next() {
    if (current) {
      return;
    }
    const job = queue.shift();
    if (!job) {
      done();
      return;
    }
    current = job;
    send(job);
  }

  function send(job) {
    job.timer = null;
    job.attempts += 1;
    const xhr = new XMLHttpRequest();
    job.xhr = xhr;
    job.state.textContent = "Uploading…";
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) {
        job.progress.max = event.total;
        job.progress.value = event.loaded;
      }
    });
    xhr.upload.addEventListener("load", function () {
      if (job.cancel) {
        job.progress.value = job.progress.max;
        job.state.textContent = "Checking…";
        const hadFocus = document.activeElement === job.cancel;
        job.cancel.remove();
        job.cancel = null;
        if (hadFocus) {
          job.item.focus();
        }
      }
    });
    xhr.addEventListener("loadend", function () {
      if (current !== job) {
        return; // cancelled
      }
      const wait = waitOf(xhr);
      if (wait !== null && job.attempts < MAX_ATTEMPTS) {
        // Still this file's turn: it waits, then goes again (Cancel works).
        job.progress.value = 0;
        job.state.textContent =
          "Waiting " + wait + (wait === 1 ? " second" : " seconds") + ": the server is busy…";
        if (!job.cancel) {
          addCancel(job);
        }
        job.timer = setTimeout(function () {
          if (current === job) {
            send(job);
          }
        }, wait * 1000);
        return;
      }
      current = null;
      if (xhr.status === 201) {
        job.progress.value = job.progress.max;
        stored += 1;
        finish(job, "uploaded", "Uploaded.", "Uploaded " + job.file.name + ".");
      } else {
        job.progress.remove();
        const why = answer(xhr);
        if (wait !== null || xhr.status === 0 || xhr.status >= 500) {
          retryable.push(job);
          finish(job, "failed", why, job.file.name + ": " + why);
        } else {
          finish(job, "refused", why, job.file.name + ": " + why);
        }
      }
      next();
    });
    xhr.open("POST", apiUrl);
    xhr.setRequestHeader("X-CSRFToken", token);
    xhr.setRequestHeader("Accept", "application/json");
    const body = new FormData();
    body.append("file", job.file, job.file.name);
    xhr.send(body);
  }

  // The batch is over: its uploaded rows fold into one line that opens to
  // list them, so that the files stay near the top after a big batch; the
  // rows that say what went wrong stay in view. A batch of one keeps its row.
  function foldUploaded() {
    const uploaded = Array.from(rows.querySelectorAll(":scope > li.done"));
    let fold = rows.querySelector(":scope > li.upload-fold");
    if (!uploaded.length || (!fold && uploaded.length < 2)) {
      return;
    }
    if (!fold) {
      fold = document.createElement("li");
      fold.className = "upload-fold";
      const details = document.createElement("details");
      const list = document.createElement("ol");
      list.className = "uploads";
      list.setAttribute("aria-label", "Uploaded files");
      details.append(document.createElement("summary"), list);
      fold.append(details);
      rows.prepend(fold);
    }
    const list = fold.querySelector("ol");
    list.append(...uploaded);
    fold.querySelector("summary").textContent = plural(
      list.children.length, "file uploaded", "files uploaded",
    );
  }

  // The batch is over: show the new files by fetching this page again and
  // swapping in its list of files (the status and the rows stay).
  function done() {
    foldUploaded();
    retryButton.hidden = retryable.length === 0;
    const finished = tally.uploaded + tally.refused + tally.failed + tally.cancelled;
    if (finished) {
      announce(
        finished === 1 ? lastMessage : summary(),
        tally.uploaded === finished ? "success" : "error",
      );
    }
    if (!stored) {
      return;
    }
    stored = 0;
    fetch(window.location.pathname, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.ok ? response.text() : Promise.reject(response.status);
      })
      .then(function (html) {
        const fresh = new DOMParser().parseFromString(html, "text/html").querySelector("section.files");
        const old = document.querySelector("section.files");
        if (fresh && old) {
          old.replaceWith(document.adoptNode(fresh));
          window.protectedMediaLocalTimes(fresh);
        }
      })
      .catch(function () {
        window.location.reload();
      });
  }

  input.addEventListener("change", function () {
    choose(Array.from(input.files));
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    choose(Array.from(input.files));
  });

  // Dropping anywhere else must not open the file in place of the page.
  for (const type of ["dragover", "drop"]) {
    document.addEventListener(type, function (event) {
      if (event.dataTransfer && Array.from(event.dataTransfer.types).includes("Files")) {
        event.preventDefault();
      }
    });
  }
  zone.addEventListener("dragenter", function () {
    zone.classList.add("dragover");
  });
  zone.addEventListener("dragover", function (event) {
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    zone.classList.add("dragover");
  });
  zone.addEventListener("dragleave", function (event) {
    if (!zone.contains(event.relatedTarget)) {
      zone.classList.remove("dragover");
    }
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    zone.classList.remove("dragover");
    choose(Array.from(event.dataTransfer.files));
  });
})();

// Delete: ask first, in a dialog; "Keep it" (or Escape) changes nothing.
(function () {
  const dialog = document.querySelector("dialog.confirm");
  if (!dialog || typeof dialog.showModal !== "function") {
    return;
  }
  let pending = null;
  let opener = null;
  // Delegated: the list of files is swapped in again after uploads.
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!form.matches("form.delete") || form === pending) {
      return;
    }
    event.preventDefault();
    pending = form;
    opener = event.submitter || form.querySelector("button");
    dialog.querySelector(".confirm-name").textContent = form.dataset.name;
    dialog.returnValue = "";
    dialog.showModal();
  });
  dialog.addEventListener("close", function () {
    const form = pending;
    if (dialog.returnValue === "delete" && form) {
      form.submit();
      return;
    }
    pending = null;
    if (opener && opener.isConnected) {
      opener.focus();
    }
  });
})();

// Times in the visitor's own time zone and words: the server writes UTC
// (each <time> keeps it in its datetime attribute), and a time to come says
// how far off it is ("in 7 days").
(function () {
  const format =
    window.Intl && Intl.DateTimeFormat
      ? new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" })
      : null;
  const relative =
    window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined) : null;
  const UNITS = [
    ["day", 86400000],
    ["hour", 3600000],
    ["minute", 60000],
  ];

  function howFar(when) {
    const ahead = when - Date.now();
    if (!relative || ahead <= 0) {
      return "";
    }
    for (const [unit, size] of UNITS) {
      if (ahead >= size) {
        return " (" + relative.format(Math.round(ahead / size), unit) + ")";
      }
    }
    return " (" + relative.format(1, "minute") + ")";
  }

  function localTimes(root) {
    if (!format) {
      return;
    }
    root.querySelectorAll("time[datetime]").forEach(function (element) {
      const when = new Date(element.getAttribute("datetime"));
      if (!isNaN(when)) {
        element.textContent = format.format(when) + howFar(when);
      }
    });
  }

  window.protectedMediaLocalTimes = localTimes;
  localTimes(document);
})();

// A new share link, shown only once, is copied with one press.
(function () {
  const field = document.getElementById("new-share-url");
  const status = document.getElementById("messages");
  if (!field || !navigator.clipboard || !status) {
    return;
  }
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = "Copy link";
  field.insertAdjacentElement("afterend", button);
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(field.value).then(
      function () {
        status.replaceChildren(Object.assign(document.createElement("p"), {
          textContent: "Link copied to the clipboard.",
        }));
      },
      function () {
        field.select();
        status.replaceChildren(Object.assign(document.createElement("p"), {
          textContent: "The browser would not copy it: the link is selected, copy it yourself.",
        }));
      }
    );
  });
})();
