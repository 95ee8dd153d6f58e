// reelgate's dashboard: fills in the server's page shells with the signed-in key's data.
//
// The key lives in this tab's sessionStorage only: never in a cookie, a URL or the page, and
// it is sent only as an Authorization header to this server. Everything the public API does
// (submit, upload, price preview, a key's own cancel, account and queue status) is asked of the
// public API; /dashboard/api/ lists and watches tasks and holds the admin's views.
// Text from the server is always set with textContent, never parsed as HTML.
"use strict";

(() => {
  const KEY_ITEM = "reelgate.apiKey";
  const body = document.body;
  const page = body.dataset.page;

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function element(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else if (name in node && typeof value !== "string") node[name] = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function announce(text) {
    const region = $("#announce");
    region.textContent = "";
    // A new text node after a tick, so that screen readers read it even when it repeats.
    setTimeout(() => { region.textContent = text; }, 50);
  }

  // -- talking to the server --------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, code, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
    // The key itself is refused (unknown, disabled): not a refusal of what was asked.
    get keyRefused() {
      return ["1002", "802", "401"].includes(String(this.code)) && this.status !== 403;
    }
  }

  // Every answer shape the API has: the v2 task object and price preview (errorCode), the v1
  // and upload envelopes (code), the dashboard's own ({error, message}).
  function problemOf(response, answer) {
    if (answer && typeof answer === "object" && !Array.isArray(answer)) {
      if (answer.errorCode) {
        return new ApiError(answer.errorMessage || `error ${answer.errorCode}`, answer.errorCode, response.status);
      }
      if ("code" in answer && answer.code !== 0) {
        const text = answer.errorMessage || answer.message || answer.msg || `error ${answer.code}`;
        return new ApiError(text, String(answer.code), response.status);
      }
      if (answer.error) return new ApiError(answer.message || answer.error, String(answer.error), response.status);
    }
    if (!response.ok) return new ApiError(`The server answered HTTP ${response.status}.`, String(response.status), response.status);
    return null;
  }

  async function call(path, { method = "GET", json, form, headers = {} } = {}) {
    const init = { method, headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY_ITEM)}`, ...headers }, cache: "no-store" };
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (form) {
      init.body = form;
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch {
      throw new ApiError("The server cannot be reached.", "network", 0);
    }
    let answer = null;
    try { answer = await response.json(); } catch { /* not JSON: judged by its status */ }
    const problem = problemOf(response, answer);
    if (problem) {
      if (problem.keyRefused) signOut("This key is not accepted any more. Sign in again.");
      throw problem;
    }
    return answer;
  }

  // Server-sent events over fetch (EventSource cannot send an Authorization header). Each
  // stream ends after a while; the next one resumes from the last event id, so nothing is
  // missed. ``onReady`` runs once, when the first stream is open: load the page's data then,
  // and every change after that moment arrives on the stream.
  function watch({ onTask, onReady }) {
    let cursor = null;
    let stopped = false;
    let controller = null;
    let ready = false;
    const markReady = () => { if (!ready) { ready = true; onReady(); } };
    const fallback = setTimeout(markReady, 3000); // the data anyway, if the stream cannot open

    function setState(state) {
      const text = $("#live-text");
      const holder = $("#live-state");
      if (!text || !holder) return;
      holder.dataset.state = state;
      text.textContent = state === "live" ? "live" : "reconnecting…";
    }

    function dispatch(block) {
      const message = { event: "message", data: "" };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") cursor = value;
        else if (field === "event") message.event = value;
        else if (field === "data") message.data += value;
      }
      if (message.event === "ready") {
        clearTimeout(fallback);
        markReady();
      } else if (message.event === "task") {
        onTask(JSON.parse(message.data));
      } else if (message.event === "signed-out") {
        signOut("This key is not accepted any more. Sign in again.");
        stopped = true;
      }
    }

    async function run() {
      let delay = 1000;
      while (!stopped) {
        controller = new AbortController();
        try {
          const query = cursor === null ? "" : `?after=${encodeURIComponent(cursor)}`;
          const response = await fetch(`/dashboard/api/events${query}`, {
            headers: { Authorization: `Bearer ${sessionStorage.getItem(KEY_ITEM)}`, Accept: "text/event-stream" },
            cache: "no-store",
            signal: controller.signal,
          });
          if (!response.ok || !response.body) {
            const answer = await response.json().catch(() => null);
            const problem = problemOf(response, answer) || new ApiError("no stream", "stream", response.status);
            if (problem.keyRefused) { signOut("This key is not accepted any more. Sign in again."); return; }
            throw problem;
          }
          setState("live");
          delay = 1000;
          const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
          let buffer = "";
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            buffer += value;
            let end;
            while ((end = buffer.indexOf("\n\n")) >= 0) {
              dispatch(buffer.slice(0, end));
              buffer = buffer.slice(end + 2);
              if (stopped) return;
            }
          }
        } catch {
          if (stopped) return;
          setState("reconnecting");
          await sleep(delay);
          delay = Math.min(delay * 2, 15000);
        }
      }
    }

    window.addEventListener("pagehide", () => { stopped = true; if (controller) controller.abort(); });
    run();
  }

  // -- formatting -------------------------------------------------------------------------

  function shortTime(iso) {
    if (!iso) return "—";
    return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  }

  function coinsText(item) {
    if (item.chargedCoins !== null && item.chargedCoins !== undefined) return `${item.chargedCoins} charged`;
    return `${item.reservedCoins} held`;
  }

  function percent(progress) {
    return `${Math.round(progress * 100)}%`;
  }

  function statusBadge(status) {
    return element("span", { className: `badge status-${status}`, text: status });
  }

  function seconds(value) {
    if (value < 60) return `${Math.round(value)} s`;
    return `${Math.floor(value / 60)} min ${Math.round(value % 60)} s`;
  }

  const OPEN = ["QUEUED", "RUNNING"];

  // -- signing in and out -----------------------------------------------------------------

  let me = null;

  function showSignIn(message = "") {
    $("#content").hidden = true;
    $("#who").hidden = true;
    $("#sign-in").hidden = false;
    $("#sign-in-error").textContent = message;
    $("#api-key").focus();
  }

  function signOut(message = "") {
    sessionStorage.removeItem(KEY_ITEM);
    me = null;
    showSignIn(message);
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $("#api-key");
    const value = input.value.trim();
    if (!value) {
      $("#sign-in-error").textContent = "Enter an API key.";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    sessionStorage.setItem(KEY_ITEM, value);
    try {
      const found = await call("/dashboard/api/me");
      input.value = "";
      input.removeAttribute("aria-invalid");
      start(found);
      $("#main").focus(); // the form that had the focus is gone
    } catch (error) {
      sessionStorage.removeItem(KEY_ITEM);
      input.setAttribute("aria-invalid", "true");
      $("#sign-in-error").textContent = error.keyRefused ? "This key is not accepted." : error.message;
      input.focus();
    }
  }

  function start(found) {
    me = found;
    $("#sign-in").hidden = true;
    $("#content").hidden = false;
    $("#who").hidden = false;
    $("#who-name").textContent = `${me.name} · ${me.prefix}…${me.admin ? " · admin" : ""}`;
    for (const node of $$(".admin-only")) node.hidden = !me.admin;
    const init = PAGES[page];
    if (init) init();
  }

  async function boot() {
    $("#sign-in-form").addEventListener("submit", signIn);
    $("#sign-out").addEventListener("click", () => {
      signOut();
      window.location.assign("/dashboard");
    });
    if (!sessionStorage.getItem(KEY_ITEM)) {
      showSignIn();
      return;
    }
    try {
      start(await call("/dashboard/api/me"));
    } catch (error) {
      if (!error.keyRefused) showSignIn(error.message);
    }
  }

  // -- the task list ----------------------------------------------------------------------

  function taskList() {
    const form = $("#filters");
    const rows = $("#task-rows");
    const byId = new Map();
    const state = { before: null, newer: [], older: null, limit: 20 };

    if (me.admin) {
      call("/dashboard/api/keys").then((keys) => {
        const select = $("#filter-key");
        for (const key of keys) {
          select.append(element("option", { value: String(key.id), text: `${key.name} (${key.prefix}…)` }));
        }
      }).catch((error) => { $("#tasks-error").textContent = error.message; });
    }

    function filters() {
      return {
        status: $("#filter-status").value,
        model: $("#filter-model").value,
        key: me.admin ? $("#filter-key").value : "",
      };
    }

    function matches(item) {
      const wanted = filters();
      return (!wanted.status || item.status === wanted.status)
        && (!wanted.model || item.model === wanted.model)
        && (!wanted.key || String(item.keyId) === wanted.key);
    }

    // One wrapper per cell: on a phone the label and the content are its two columns.
    function cell(label, ...children) {
      return element("td", { "data-label": label }, element("div", {}, ...children));
    }

    function fill(td, ...children) {
      td.replaceChildren(element("div", {}, ...children));
    }

    function row(item) {
      const tr = element("tr", { "data-task-id": item.taskId });
      tr.append(
        cell("Task",
          element("a", { href: `/dashboard/tasks/${item.taskId}`, className: "mono", text: item.taskId }),
          element("span", { className: "prompt", text: item.prompt })),
        cell("Model", element("span", { className: "mono", text: item.model })),
        cell("Status"),
        cell("Progress"),
        cell("Created", element("span", { text: shortTime(item.createdAt) })),
        cell("Coins"),
      );
      if (me.admin) tr.append(cell("Key", element("span", { text: `${item.keyName} (${item.keyPrefix}…)` })));
      update(tr, item);
      return tr;
    }

    function update(tr, item) {
      const [, , status, progress, , coins] = tr.children;
      fill(status, statusBadge(item.status));
      const bar = element("progress", { max: "1", value: String(item.progress), "aria-label": `Progress of task ${item.taskId}` });
      fill(progress, bar, element("span", { className: "percent", text: percent(item.progress) }));
      fill(coins, coinsText(item));
      tr.dataset.status = item.status;
    }

    function render(items) {
      rows.replaceChildren();
      byId.clear();
      for (const item of items) {
        const tr = row(item);
        byId.set(item.taskId, tr);
        rows.append(tr);
      }
      $("#no-tasks").hidden = items.length > 0;
      $("#task-table").hidden = items.length === 0;
      $("#task-count").textContent = items.length ? `${items.length} task${items.length === 1 ? "" : "s"} on this page.` : "";
      $("#newer").disabled = state.newer.length === 0;
      $("#older").disabled = state.older === null;
    }

    async function load() {
      const params = new URLSearchParams({ limit: String(state.limit) });
      const wanted = filters();
      for (const [name, value] of Object.entries(wanted)) if (value) params.set(name, value);
      if (state.before) params.set("before", state.before);
      try {
        const answer = await call(`/dashboard/api/tasks?${params}`);
        $("#tasks-error").textContent = "";
        state.older = answer.older;
        render(answer.tasks);
      } catch (error) {
        $("#tasks-error").textContent = error.message;
      }
    }

    function onTask(item) {
      const tr = byId.get(item.taskId);
      if (tr) {
        update(tr, item);
        return;
      }
      // A new task: shown at the top of the first page when it matches the filters.
      if (state.before !== null || !matches(item)) return;
      const first = rows.firstElementChild;
      if (first && BigInt(first.dataset.taskId) > BigInt(item.taskId)) return;
      const created = row(item);
      byId.set(item.taskId, created);
      rows.prepend(created);
      while (rows.children.length > state.limit) {
        const last = rows.lastElementChild;
        byId.delete(last.dataset.taskId);
        last.remove();
        // The next page starts below the last task still shown: the one pushed off comes first.
        state.older = rows.lastElementChild.dataset.taskId;
      }
      $("#no-tasks").hidden = true;
      $("#task-table").hidden = false;
      $("#older").disabled = state.older === null;
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      state.before = null;
      state.newer = [];
      load();
    });
    for (const select of $$("select", form)) {
      select.addEventListener("change", () => form.requestSubmit());
    }
    $("#older").addEventListener("click", () => {
      state.newer.push(state.before);
      state.before = state.older;
      load().then(() => rows.querySelector("a")?.focus());
    });
    $("#newer").addEventListener("click", () => {
      state.before = state.newer.pop() ?? null;
      load().then(() => rows.querySelector("a")?.focus());
    });

    watch({ onTask, onReady: load });
  }

  // -- one task ---------------------------------------------------------------------------

  function taskPage() {
    const taskId = body.dataset.taskId;
    let detail = null;
    let loading = null;

    function fact(id, text) { $(id).textContent = text; }

    function showSummary(item) {
      $("#task-status").replaceChildren(statusBadge(item.status));
      const bar = $("#task-progress");
      bar.value = item.progress;
      bar.setAttribute("aria-valuetext", percent(item.progress));
      fact("#task-progress-text", percent(item.progress));
      fact("#task-coins", coinsText(item));
      fact("#task-started", shortTime(item.startedAt));
      fact("#task-finished", shortTime(item.finishedAt));
      $("#cancel-task").hidden = !OPEN.includes(item.status);
      body.dataset.taskStatus = item.status;
    }

    function showOutputs(results) {
      const holder = $("#outputs");
      const already = $$("[data-url]", holder).map((node) => node.dataset.url);
      const urls = results.map((result) => result.url);
      // Left alone when unchanged: a player that is playing keeps playing.
      if (already.length === urls.length && already.every((url, i) => url === urls[i])) return;
      holder.replaceChildren();
      results.forEach((result, index) => {
        const label = `Output ${index + 1} of task ${taskId}`;
        const figure = element("figure", { className: "output", "data-url": result.url });
        if (result.outputType === "mp4" || result.outputType === "mov") {
          figure.append(element("video", { src: result.url, controls: true, preload: "metadata", playsInline: true, "aria-label": label }));
        } else if (["png", "jpg", "jpeg", "webp"].includes(result.outputType)) {
          figure.append(element("img", { src: result.url, alt: label }));
        }
        figure.append(element("figcaption", {},
          element("a", { href: result.url, download: "", text: `Download ${result.outputType.toUpperCase()} (output ${index + 1})` })));
        holder.append(figure);
      });
      $("#no-outputs").hidden = results.length > 0;
    }

    function showEvents(events) {
      const tbody = $("#task-events");
      tbody.replaceChildren();
      for (const event of events) {
        const change = event.fromStatus ? `${event.fromStatus} → ${event.toStatus}` : event.toStatus;
        tbody.append(element("tr", {},
          element("td", { "data-label": "Time", text: shortTime(event.at) }),
          element("td", { "data-label": "Change", text: change }),
          element("td", { "data-label": "By", text: event.actor }),
          element("td", { "data-label": "Detail", text: event.detail || "—" })));
      }
    }

    function render() {
      const item = detail.task;
      $("#task-body").hidden = false;
      fact("#task-model", item.model);
      fact("#task-key", `${item.keyName} (${item.keyPrefix}…)`);
      fact("#task-created", shortTime(item.createdAt));
      fact("#task-cost-time", detail.usage ? `${detail.usage.taskCostTime} s` : "—");
      showSummary(item);
      const failure = $("#task-failure");
      failure.hidden = !item.errorCode;
      failure.textContent = item.errorCode ? `Error ${item.errorCode}: ${item.errorMessage}` : "";
      showOutputs(detail.results);
      fact("#task-request", JSON.stringify(detail.request, null, 2));
      showEvents(detail.events);
    }

    async function load() {
      // One load at a time; a change during one loads again after it.
      if (loading) { loading.again = true; return; }
      loading = { again: false };
      try {
        do {
          loading.again = false;
          try {
            const before = detail ? detail.task.status : null;
            detail = await call(`/dashboard/api/tasks/${encodeURIComponent(taskId)}`);
            $("#task-error").textContent = "";
            render();
            if (before && before !== detail.task.status) announce(`Task ${detail.task.status}`);
          } catch (error) {
            $("#task-error").textContent = error.message;
          }
        } while (loading.again);
      } finally {
        loading = null;
      }
    }

    function onTask(item) {
      if (item.taskId !== taskId || !detail) return;
      const changed = item.status !== detail.task.status;
      detail.task = item;
      showSummary(item);
      if (changed) load();
    }

    $("#cancel-task").addEventListener("click", async () => {
      const button = $("#cancel-task");
      button.disabled = true;
      try {
        if (detail.own) await call("/task/openapi/cancel", { method: "POST", json: { taskId } });
        else await call(`/dashboard/api/tasks/${encodeURIComponent(taskId)}/cancel`, { method: "POST", json: {} });
        $("#action-result").textContent = "Cancelled; its coins are refunded.";
        await load();
      } catch (error) {
        $("#action-result").textContent = error.message;
      } finally {
        button.disabled = false;
      }
    });

    $("#run-again").addEventListener("click", async () => {
      const button = $("#run-again");
      button.disabled = true;
      $("#action-result").textContent = "Submitting the same request…";
      try {
        const task = await call(`/openapi/v2/${detail.task.model}`, {
          method: "POST",
          json: detail.request,
          headers: { "Idempotency-Key": crypto.randomUUID() },
        });
        window.location.assign(`/dashboard/tasks/${task.taskId}`);
      } catch (error) {
        $("#action-result").textContent = error.message;
        button.disabled = false;
      }
    });

    watch({ onTask, onReady: load });
  }

  // -- submit forms -----------------------------------------------------------------------

  // A stand-in for media not uploaded yet: the price preview checks the body's shape, and the
  // price depends on neither the frames nor the video.
  const PLACEHOLDER = { image: "https://example.com/price-preview.png", video: "https://example.com/price-preview.mp4" };

  function submitForm() {
    const form = $("#submit-form");
    const family = form.dataset.family;
    const prompt = $("#prompt");
    const shots = family === "image-to-video" ? shotEditor(form) : null;

    const model = () => $("input[name=model]:checked", form).value;
    const tier = () => $("input[name=model]:checked", form).dataset.tier;

    function showTier() {
      for (const node of $$(".pro-only", form)) {
        node.hidden = tier() !== "pro";
        for (const input of $$("input, textarea", node)) input.disabled = tier() !== "pro";
      }
    }

    function countPrompt() {
      $("#prompt-count").textContent = `${prompt.value.length} of ${prompt.maxLength} characters`;
    }

    function whole(text) {
      // A whole number as a number; anything else as typed, for the API to say what is wrong.
      return /^\s*-?\d+\s*$/.test(text) ? Number(text) : text;
    }

    function lines(text) {
      return text.split("\n").map((line) => line.trim()).filter(Boolean);
    }

    function mediaLink(id) {
      return $(`#${id}-url`).value.trim();
    }

    function mediaFile(id) {
      const files = $(`#${id}-file`).files;
      return files && files.length ? files[0] : null;
    }

    // The body, with ``media`` giving each media field's link (uploads done, or placeholders).
    function build(media) {
      const payload = { prompt: prompt.value };
      if (family === "image-to-video") {
        payload.firstImageUrl = media.first;
        if (media.last) payload.lastImageUrl = media.last;
        payload.duration = whole($("#duration").value);
        payload.sound = $("#sound").checked;
        const size = $("#size").value.trim();
        if (size) payload.size = size;
        payload.multiShot = $("#multi-shot").checked;
        if (payload.multiShot) {
          payload.shotType = $("input[name=shot-type]:checked", form).value;
          const given = shots.values();
          if (given.length) payload.multiPrompt = given;
        }
      } else {
        payload.videoUrl = media.video;
        if (media.images.length) payload.imageUrls = media.images;
        payload.keepOriginalSound = $("#keep-sound").checked;
      }
      if (tier() === "pro") {
        const elements = lines($("#elements").value);
        if (elements.length) payload.elementList = elements;
      }
      const seed = $("#seed").value.trim();
      if (seed) payload.seed = whole(seed);
      const webhook = $("#webhook-url").value.trim();
      if (webhook) payload.webhookUrl = webhook;
      return payload;
    }

    function referenceCount() {
      return ($("#reference-images-file").files || []).length + lines($("#reference-images-url").value).length;
    }

    function placeholders() {
      if (family === "image-to-video") {
        const last = mediaFile("last-image") || mediaLink("last-image");
        return { first: mediaLink("first-image") || PLACEHOLDER.image, last: last ? mediaLink("last-image") || PLACEHOLDER.image : null };
      }
      const images = lines($("#reference-images-url").value);
      for (let i = 0; i < ($("#reference-images-file").files || []).length; i += 1) images.push(PLACEHOLDER.image);
      return { video: mediaLink("source-video") || PLACEHOLDER.video, images };
    }

    let pricing = 0;
    async function price() {
      const asked = ++pricing;
      const output = $("#price");
      const note = $("#price-note");
      try {
        const payload = build(placeholders());
        if (!payload.prompt) payload.prompt = "price"; // not written yet: the price is the same
        const answer = await call(`/openapi/v2/price-preview/${model()}`, { method: "POST", json: payload });
        if (asked !== pricing) return;
        const coins = Math.round(answer.estimatedPrice * 100);
        if (family === "video-edit") {
          output.textContent = `at most ${coins} coins (¥${answer.estimatedPrice.toFixed(2)})`;
          note.textContent = "Held at submit; charged by the source clip's length, rounded up to whole seconds.";
        } else {
          output.textContent = `${coins} coins (¥${answer.estimatedPrice.toFixed(2)})`;
          note.textContent = "";
        }
        form.dataset.price = String(coins);
      } catch (error) {
        if (asked !== pricing) return;
        output.textContent = "—";
        note.textContent = error.message;
        delete form.dataset.price;
      }
    }

    let timer = null;
    function priceSoon() {
      clearTimeout(timer);
      timer = setTimeout(price, 250);
    }

    async function upload(file, what) {
      $("#submit-progress").textContent = `Uploading ${what} (${file.name})…`;
      const data = new FormData();
      data.append("file", file, file.name);
      const answer = await call("/openapi/v2/media/upload/binary", { method: "POST", form: data });
      return answer.data.download_url;
    }

    async function mediaOf(id, what) {
      const file = mediaFile(id);
      if (file) return upload(file, what);
      return mediaLink(id) || null;
    }

    function refuse(message, focus) {
      $("#submit-error").textContent = message;
      if (focus) {
        focus.setAttribute("aria-invalid", "true");
        focus.focus();
      }
    }

    async function submit(event) {
      event.preventDefault();
      $("#submit-error").textContent = "";
      for (const node of $$("[aria-invalid]", form)) node.removeAttribute("aria-invalid");
      if (!prompt.value.trim()) return refuse("Write a prompt.", prompt);
      const required = family === "image-to-video" ? "first-image" : "source-video";
      if (!mediaFile(required) && !mediaLink(required)) {
        return refuse(`Choose the ${family === "image-to-video" ? "first frame" : "source video"}: a file or a link.`, $(`#${required}-file`));
      }
      if (family === "video-edit" && referenceCount() > Number(form.dataset.maxImages)) {
        return refuse(`At most ${form.dataset.maxImages} reference images.`, $("#reference-images-file"));
      }
      const button = $("#submit-button");
      button.disabled = true;
      try {
        let media;
        if (family === "image-to-video") {
          media = { first: await mediaOf("first-image", "the first frame"), last: await mediaOf("last-image", "the last frame") };
        } else {
          const images = [];
          for (const file of $("#reference-images-file").files || []) images.push(await upload(file, "a reference image"));
          images.push(...lines($("#reference-images-url").value));
          media = { video: await mediaOf("source-video", "the source video"), images };
        }
        $("#submit-progress").textContent = "Submitting…";
        const task = await call(`/openapi/v2/${model()}`, {
          method: "POST",
          json: build(media),
          headers: { "Idempotency-Key": crypto.randomUUID() },
        });
        $("#submit-progress").textContent = `Submitted task ${task.taskId}.`;
        window.location.assign(`/dashboard/tasks/${task.taskId}`);
      } catch (error) {
        $("#submit-progress").textContent = "";
        refuse(error.message);
        button.disabled = false;
      }
    }

    prompt.addEventListener("input", countPrompt);
    for (const radio of $$("input[name=model]", form)) radio.addEventListener("change", showTier);
    form.addEventListener("input", priceSoon);
    form.addEventListener("change", priceSoon);
    form.addEventListener("submit", submit);
    if (shots) shots.onChange = priceSoon;
    showTier();
    countPrompt();
    price();
  }

  // The multi-shot editor: up to maxShots shots, each a prompt and optional whole seconds.
  function shotEditor(form) {
    const list = $("#shots");
    const template = $("#shot-template");
    const max = Number(form.dataset.maxShots);
    const editor = { onChange: () => {} };
    let made = 0;

    function renumber() {
      const items = $$("li", list);
      items.forEach((item, index) => {
        const number = index + 1;
        item.setAttribute("aria-label", `Shot ${number}`);
        for (const label of $$("label[data-for]", item)) {
          const role = label.dataset.for;
          const text = role === "prompt" ? `Shot ${number} prompt` : `Shot ${number} seconds`;
          label.firstChild.textContent = `${text} `;
        }
        $("[data-action=up]", item).disabled = index === 0;
        $("[data-action=down]", item).disabled = index === items.length - 1;
      });
      $("#add-shot").disabled = items.length >= max;
      const duration = Number($("#duration").value) || 0;
      const given = items.map((item) => Number($("[data-role=seconds]", item).value) || 0);
      const fixed = given.reduce((sum, value) => sum + value, 0);
      const free = given.filter((value) => !value).length;
      let text = `${items.length} of ${max} shots. `;
      if (items.length) {
        text += free
          ? `${fixed} s given; the other ${free} shot${free === 1 ? "" : "s"} share the remaining ${Math.max(0, duration - fixed)} s.`
          : `Their seconds add up to ${fixed} of ${duration} s${fixed === duration ? "." : ": they must add up to the duration."}`;
      }
      $("#shots-summary").textContent = text;
      editor.onChange();
    }

    function add(focus = true) {
      if ($$("li", list).length >= max) return;
      made += 1;
      const item = template.content.firstElementChild.cloneNode(true);
      for (const label of $$("label[data-for]", item)) {
        const input = $(`[data-role=${label.dataset.for}]`, item);
        input.id = `shot-${made}-${label.dataset.for}`;
        label.htmlFor = input.id;
      }
      list.append(item);
      renumber();
      if (focus) $("textarea", item).focus();
    }

    list.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-action]");
      if (!button) return;
      const item = button.closest("li");
      const action = button.dataset.action;
      if (action === "remove") {
        const next = item.nextElementSibling || item.previousElementSibling;
        item.remove();
        renumber();
        (next ? $("textarea", next) : $("#add-shot")).focus();
        return;
      }
      if (action === "up" && item.previousElementSibling) list.insertBefore(item, item.previousElementSibling);
      if (action === "down" && item.nextElementSibling) list.insertBefore(item.nextElementSibling, item);
      renumber();
      button.disabled ? $("textarea", item).focus() : button.focus();
    });
    list.addEventListener("input", renumber);
    $("#duration").addEventListener("input", renumber);
    $("#add-shot").addEventListener("click", () => add());
    $("#multi-shot").addEventListener("change", (event) => {
      $("#shots-panel").hidden = !event.target.checked;
      if (event.target.checked && !$$("li", list).length) { add(false); add(false); }
    });

    editor.values = () => $$("li", list).map((item, index) => {
      const shot = { index: index + 1, prompt: $("[data-role=prompt]", item).value };
      const secs = $("[data-role=seconds]", item).value.trim();
      if (secs) shot.duration = secs;
      return shot;
    });
    renumber();
    return editor;
  }

  // -- account ----------------------------------------------------------------------------

  function accountPage() {
    const error = (e) => { $("#account-error").textContent = e.message; };
    $("#me-name").textContent = me.name;
    $("#me-prefix").textContent = `${me.prefix}…`;
    $("#me-role").textContent = me.admin ? "admin: sees every key's tasks, manages keys" : "key";

    async function loadOwn() {
      const [account, queue] = await Promise.all([
        call("/uc/openapi/accountStatus", { method: "POST", json: {} }),
        call("/openapi/v2/queue/status"),
      ]);
      $("#coins").textContent = `${account.data.remainCoins} coins`;
      $("#money").textContent = `¥${account.data.remainMoney}`;
      $("#concurrency").textContent = `${queue.data.concurrentLimit} at once`;
      $("#running").textContent = String(queue.data.runningCount);
      $("#queued").textContent = String(queue.data.queuedCount);
    }
    loadOwn().catch(error);
    if (!me.admin) return;

    $("#admin").hidden = false;

    async function loadFleet() {
      const fleet = await call("/dashboard/api/fleet");
      $("#fleet-queued").textContent = String(fleet.queued);
      $("#fleet-running").textContent = String(fleet.running);
      $("#fleet-oldest").textContent = fleet.queued ? seconds(fleet.oldestQueuedSeconds) : "—";
      const tbody = $("#workers");
      tbody.replaceChildren();
      for (const worker of fleet.workers) {
        tbody.append(element("tr", {},
          element("td", { "data-label": "Worker", className: "mono", text: worker.id }),
          element("td", { "data-label": "Host", text: worker.hostname }),
          element("td", { "data-label": "PID", text: String(worker.pid) }),
          element("td", { "data-label": "Last seen", text: shortTime(worker.lastSeenAt) })));
      }
      if (!fleet.workers.length) {
        tbody.append(element("tr", {}, element("td", { colSpan: 4, text: "No worker heard from lately." })));
      }
    }

    const template = $("#key-actions-template");
    let made = 0;

    function actions(key) {
      const holder = template.content.firstElementChild.cloneNode(true);
      made += 1;
      const amount = $("[data-role=amount]", holder);
      amount.id = `coins-${made}`;
      const label = $("label[data-for=amount]", holder);
      label.htmlFor = amount.id;
      label.textContent = `Coins to add to key ${key.id}`;
      $("form[data-role=coins]", holder).addEventListener("submit", async (event) => {
        event.preventDefault();
        try {
          const changed = await call(`/dashboard/api/keys/${key.id}/coins`, { method: "POST", json: { amount: Number(amount.value) } });
          $("#keys-result").textContent = `Key ${key.id} now has ${changed.coins} coins.`;
          await loadKeys();
        } catch (e) {
          $("#keys-result").textContent = e.message;
        }
      });
      const details = $("details[data-role=disable]", holder);
      // A disabled key has nothing left to disable; the signed-in key is not cut off from here.
      if (key.disabled || key.id === me.id) {
        details.remove();
        return holder;
      }
      $("summary", details).textContent = `Disable key ${key.id}…`;
      $("[data-role=confirm-disable]", holder).addEventListener("click", async () => {
        try {
          const done = await call(`/dashboard/api/keys/${key.id}/disable`, {
            method: "POST",
            json: { cancelRunning: $("[data-role=cancel-running]", holder).checked },
          });
          $("#keys-result").textContent = `Key ${key.id} disabled; ${done.cancelled} task${done.cancelled === 1 ? "" : "s"} cancelled, ${done.coinsRefunded} coins refunded.`;
          await loadKeys();
        } catch (e) {
          $("#keys-result").textContent = e.message;
        }
      });
      return holder;
    }

    async function loadKeys() {
      const keys = await call("/dashboard/api/keys");
      const tbody = $("#keys");
      tbody.replaceChildren();
      for (const key of keys) {
        const state = [key.disabled ? "disabled" : "active", key.admin ? "admin" : ""].filter(Boolean).join(", ");
        tbody.append(element("tr", { "data-key-id": String(key.id) },
          element("td", { "data-label": "Id", text: String(key.id) }),
          element("td", { "data-label": "Name", text: key.name }),
          element("td", { "data-label": "Prefix", className: "mono", text: `${key.prefix}…` }),
          element("td", { "data-label": "Coins", text: String(key.coins) }),
          element("td", { "data-label": "Concurrency", text: String(key.concurrency) }),
          element("td", { "data-label": "Running", text: String(key.running) }),
          element("td", { "data-label": "State", text: state }),
          element("td", { "data-label": "Actions" }, actions(key))));
      }
    }

    const created = $("#created-key");
    function forget() {
      $("#created-key-value").textContent = "";
      created.hidden = true;
    }

    $("#new-key").addEventListener("submit", async (event) => {
      event.preventDefault();
      $("#new-key-error").textContent = "";
      const name = $("#new-key-name");
      if (!name.value.trim()) {
        $("#new-key-error").textContent = "Give the key a name.";
        name.focus();
        return;
      }
      const payload = { name: name.value, admin: $("#new-key-admin").checked };
      const coins = $("#new-key-coins").value.trim();
      const concurrency = $("#new-key-concurrency").value.trim();
      if (coins) payload.coins = Number(coins);
      if (concurrency) payload.concurrency = Number(concurrency);
      try {
        const answer = await call("/dashboard/api/keys", { method: "POST", json: payload });
        event.target.reset();
        $("#created-key-value").textContent = answer.apiKey;
        created.hidden = false;
        created.focus();
        await loadKeys();
      } catch (e) {
        $("#new-key-error").textContent = e.message;
      }
    });
    $("#copy-key").addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText($("#created-key-value").textContent);
        announce("Copied");
      } catch {
        window.getSelection().selectAllChildren($("#created-key-value"));
      }
    });
    $("#dismiss-key").addEventListener("click", () => { forget(); $("#new-key-name").focus(); });
    window.addEventListener("pagehide", forget);

    Promise.all([loadFleet(), loadKeys()]).catch(error);
    setInterval(() => { if (!document.hidden) loadFleet().catch(error); }, 5000);
  }

  const PAGES = {
    tasks: taskList,
    task: taskPage,
    "image-to-video": submitForm,
    "video-edit": submitForm,
    account: accountPage,
  };

  boot();
})();
