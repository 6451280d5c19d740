// dnsward dashboard. Reads /api/ui/ with the admin token (asked once, kept in sessionStorage),
// renders every name, client and list text with textContent (never as markup) and shows control
// characters as visible escapes; times are shown in the browser's zone.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const TEXTS = window.DW_TEXTS;
  const TOKEN_KEY = "dnsward-token", WHO_KEY = "dnsward-who", LANG_KEY = "dnsward-lang";
  const PAGE = 50;
  const S = {
    lang: localStorage.getItem(LANG_KEY) || ((navigator.language || "en").toLowerCase().startsWith("vi") ? "vi" : "en"),
    tab: "overview", offset: 0, search: null, tail: null, paused: false, client: null, domain: null,
    action: null,
  };

  // ---- texts ----
  function t(key, vars) {
    let s = (TEXTS[S.lang] && TEXTS[S.lang][key]) || TEXTS.en[key] || key;
    if (vars) for (const k in vars) s = s.split("{" + k + "}").join(String(vars[k]));
    return s;
  }
  function applyTexts() {
    document.documentElement.lang = S.lang;
    document.querySelectorAll("[data-i18n]").forEach((e) => { e.textContent = t(e.dataset.i18n); });
    document.querySelectorAll("[data-i18n-ph]").forEach((e) => { e.placeholder = t(e.dataset.i18nPh); });
    $("lang").textContent = S.lang === "vi" ? "EN" : "VI";
    $("tail-toggle").textContent = t(S.paused ? "tail.resume" : "tail.pause");
  }

  // Control and bidirectional-override characters shown as escapes, so a name cannot hide or
  // reorder what is around it. The result is only ever put into textContent.
  function shown(v) {
    if (v === null || v === undefined || v === "") return t("none");
    return String(v).replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g, (c) => {
      const h = c.charCodeAt(0).toString(16).toUpperCase();
      return c.charCodeAt(0) < 0x100 ? "\\x" + h.padStart(2, "0") : "\\u{" + h + "}";
    });
  }
  function fmtTime(sec) {
    if (sec === null || sec === undefined) return t("none");
    return new Date(sec * 1000).toLocaleString(S.lang === "vi" ? "vi-VN" : "en-GB");
  }
  function fmtNum(n) {
    return n === null || n === undefined ? t("none") : Number(n).toLocaleString(S.lang === "vi" ? "vi-VN" : "en-GB");
  }
  function status(msg, isError) {
    const s = $("status");
    s.textContent = msg || "";
    s.className = isError ? "status error" : "status";
  }

  // ---- the API ----
  function token() { return sessionStorage.getItem(TOKEN_KEY); }
  async function api(path, opts) {
    opts = opts || {};
    const headers = { Authorization: "Bearer " + token() };
    if (opts.body) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method: opts.method || "GET", headers: headers, body: opts.body, signal: opts.signal, cache: "no-store" });
    if (r.status === 401) {
      logout(t("login.wrong"));
      throw new Error(t("login.wrong"));
    }
    if (opts.raw) return r;
    const text = await r.text();
    let v = null;
    try { v = JSON.parse(text); } catch (e) { v = text; }
    if (!r.ok) throw new Error((v && v.error) || ("HTTP " + r.status));
    return v;
  }
  function rangeParams(extra) {
    const p = new URLSearchParams();
    const range = $("range").value;
    if (range === "custom") {
      if ($("since").value) p.set("since", new Date($("since").value).toISOString().replace(/\.\d+Z$/, "Z"));
      if ($("until").value) p.set("until", new Date($("until").value).toISOString().replace(/\.\d+Z$/, "Z"));
    } else {
      p.set("since", range);
    }
    if ($("group").value) p.set("group", $("group").value);
    if ($("resolver").value) p.set("resolver", $("resolver").value);
    p.set("source", $("source").value);
    for (const k in extra || {}) if (extra[k] !== "" && extra[k] !== null && extra[k] !== undefined) p.set(k, extra[k]);
    return p.toString();
  }

  // ---- tables ----
  function td(tr, v, cls) {
    const c = document.createElement("td");
    c.textContent = shown(v);
    if (cls) c.className = cls;
    tr.appendChild(c);
    return c;
  }
  function linkTd(tr, label, onClick, cls) {
    const c = document.createElement("td");
    if (cls) c.className = cls;
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.textContent = shown(label);
    b.addEventListener("click", onClick);
    c.appendChild(b);
    tr.appendChild(c);
    return b;
  }
  function fill(tableId, rows, each) {
    const body = $(tableId).tBodies[0];
    body.replaceChildren();
    for (const r of rows || []) {
      const tr = document.createElement("tr");
      each(tr, r);
      body.appendChild(tr);
    }
  }
  function blockButton(tr, name) {
    const c = document.createElement("td");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "row-block";
    b.textContent = t("row.block");
    b.addEventListener("click", () => openAction("block", name));
    c.appendChild(b);
    const a = document.createElement("button");
    a.type = "button";
    a.className = "row-allow";
    a.textContent = t("row.allow");
    a.addEventListener("click", () => openAction("allow", name));
    c.appendChild(a);
    tr.appendChild(c);
  }
  const ACTION_TITLES = {
    block: "act.block", unblock: "act.unblock", allow: "act.allow", allow_remove: "act.allowremove",
    flush: "act.flush", nta_add: "act.nta", nta_remove: "act.ntaremove",
  };

  // ---- tabs ----
  function show(tab) {
    S.tab = tab;
    document.querySelectorAll(".tab").forEach((s) => { s.hidden = s.id !== "tab-" + tab; });
    document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === tab));
    if (tab === "tail") startTail(); else stopTail();
    if (tab === "actions") loadActions();
  }

  // ---- overview ----
  function card(k, v) {
    const d = document.createElement("div");
    d.className = "card";
    const vv = document.createElement("div"); vv.className = "v"; vv.textContent = v;
    const kk = document.createElement("div"); kk.className = "k"; kk.textContent = t(k);
    d.appendChild(vv); d.appendChild(kk);
    d.dataset.card = k;
    return d;
  }
  async function loadOverview() {
    status(t("loading"));
    const q = rangeParams();
    const [o, top, infected] = await Promise.all([
      api("/api/ui/overview?" + q),
      api("/api/ui/top?" + q + "&limit=10"),
      api("/api/ui/clients?" + q + "&min_blocked=10&min_domains=3&limit=20"),
    ]);
    const tl = o.timeline, live = o.live;
    $("cards").replaceChildren(
      card("card.queries", fmtNum(tl.queries)),
      card("card.blocked", fmtNum(tl.blocked)),
      card("card.qps", live.qps === null ? t("none") : live.qps.toFixed(1)),
      card("card.hit", live.cache_hit_ratio === null ? t("none") : (100 * live.cache_hit_ratio).toFixed(1) + " %"),
      card("card.upstream", live.upstream_latency_ms === null ? t("none") : live.upstream_latency_ms.toFixed(1) + " ms"),
      card("card.bogus", live.dnssec_bogus === null ? t("none") : fmtNum(live.dnssec_bogus)),
      card("card.runtime", fmtNum(o.runtime_entries)),
    );
    const ts = tl.points.map((p) => p.t);
    DW_CHART.lines($("chart"), ts, [
      { label: t("chart.all"), values: tl.points.map((p) => p.queries), ci: 7, fill: true },
      { label: t("chart.blocked"), values: tl.points.map((p) => p.blocked), ci: 0 },
    ], fmtTime);
    DW_CHART.bars($("chart-cat"), tl.by_category.map((s) => ({ label: shown(s.key), value: s.total })));
    fill("top-domains", top.domains, (tr, d) => {
      linkTd(tr, d.qname, () => openDomain(d.qname), "name");
      td(tr, fmtNum(d.blocked), "num"); td(tr, fmtNum(d.clients), "num"); td(tr, d.category);
      blockButton(tr, d.qname);
    });
    fill("top-clients", top.clients, (tr, c) => {
      linkTd(tr, c.client, () => openClient(c.client), "name");
      td(tr, c.client_name); td(tr, fmtNum(c.blocked), "num"); td(tr, fmtNum(c.domains), "num");
    });
    fill("infected", infected, (tr, c) => {
      linkTd(tr, c.client, () => openClient(c.client), "name");
      td(tr, c.client_name); td(tr, fmtNum(c.blocked), "num"); td(tr, fmtNum(c.domains), "num");
      td(tr, c.categories.join(", ")); td(tr, c.last_seen);
    });
    fill("lists", o.lists, (tr, l) => {
      linkTd(tr, l.list, () => { resetSearch({ list: l.list, action: "blocked" }); });
      td(tr, l.category); td(tr, fmtNum(l.blocked), "num"); td(tr, (100 * l.share).toFixed(1) + " %", "num");
    });
    fill("events", o.events, (tr, e) => {
      td(tr, e.name); td(tr, e.next_change); td(tr, e.lists.join(", ")); td(tr, e.groups.join(", "));
    });
    fill("recent-alerts", (o.alerts || []).slice().reverse(), (tr, a) => {
      td(tr, fmtTime(a.ts_us / 1e6)); td(tr, a.rule); td(tr, a.client_name || a.client);
      td(tr, a.message); td(tr, a.outcome);
    });
    fill("feeds", o.feeds, (tr, f) => {
      td(tr, f.name); td(tr, fmtNum(f.entries) + " · " + shown(f.source));
      td(tr, f.age_secs === null || f.age_secs === undefined ? t("never") : Math.round(f.age_secs / 60) + " min");
      td(tr, (f.last_error || "") + (f.rejected ? " " + t("feed.rejected") : ""));
    });
    const p = o.policy;
    $("policy-line").textContent = t("policy.line", {
      names: fmtNum(p.names), addresses: fmtNum(p.addresses),
      time: p.last_reload_unix ? fmtTime(p.last_reload_unix) : t("never"), ok: t(p.last_reload_ok ? "policy.ok" : "policy.failed"),
    });
    const g = $("group"), keep = g.value;
    if (g.options.length === 1 && o.groups) {
      for (const name of o.groups) {
        if (name === "default") continue;
        const opt = document.createElement("option");
        opt.value = name; opt.textContent = shown(name);
        g.appendChild(opt);
      }
      g.value = keep;
    }
    showResolvers(o.resolvers || []);
    status("");
    document.body.dataset.loaded = "overview";
  }

  // The resolver select: the store's resolvers in the range, shown when there are several
  // (the fleet's ClickHouse); the chosen one stays listed.
  function showResolvers(names) {
    const r = $("resolver"), keep = r.value;
    const all = names.slice();
    if (keep && !all.includes(keep)) all.push(keep);
    while (r.options.length > 1) r.remove(1);
    for (const name of all) {
      const opt = document.createElement("option");
      opt.value = name; opt.textContent = shown(name);
      r.appendChild(opt);
    }
    r.value = keep;
    $("resolver-scope").hidden = all.length < 2;
  }

  // ---- drill-downs ----
  async function openClient(client) {
    S.client = client;
    show("client");
    status(t("loading"));
    const c = await api("/api/ui/client?" + rangeParams({ client: client }));
    $("client-title").textContent = shown(client);
    $("client-meta").textContent = [
      shown(c.client_name), t("drill.group") + " " + shown(c.group),
      t("card.queries") + " " + fmtNum(c.queries), t("card.blocked") + " " + fmtNum(c.blocked),
      t("drill.seen") + " " + fmtTime(c.first_seen) + " – " + fmtTime(c.last_seen),
      c.truncated ? t("drill.truncated") : "",
    ].join(" · ");
    DW_CHART.lines($("client-chart"), c.timeline.map((p) => p.t), [
      { label: t("chart.all"), values: c.timeline.map((p) => p.queries), ci: 7, fill: true },
      { label: t("chart.blocked"), values: c.timeline.map((p) => p.blocked), ci: 0 },
    ], fmtTime);
    fill("client-blocked", c.top_blocked, (tr, n) => {
      linkTd(tr, n.qname, () => openDomain(n.qname), "name"); td(tr, fmtNum(n.queries), "num"); td(tr, n.list);
      blockButton(tr, n.qname);
    });
    fill("client-allowed", c.top_allowed, (tr, n) => {
      linkTd(tr, n.qname, () => openDomain(n.qname), "name"); td(tr, fmtNum(n.queries), "num");
      blockButton(tr, n.qname);
    });
    status("");
    document.body.dataset.loaded = "client";
  }

  async function openDomain(name) {
    S.domain = name;
    show("domain");
    status(t("loading"));
    const d = await api("/api/ui/domain?" + rangeParams({ name: name }));
    $("domain-title").textContent = shown(name);
    $("domain-meta").textContent = [
      t("card.queries") + " " + fmtNum(d.queries), t("card.blocked") + " " + fmtNum(d.blocked),
      d.logged_list ? t("drill.logged", { list: shown(d.logged_list), rule: shown(d.logged_rule) }) : "",
      d.truncated ? t("drill.truncated") : "",
    ].filter((s) => s).join(" · ");
    const ex = d.explain || {}, rules = ex.rules || [];
    const allow = rules.find((r) => r.kind === "allow"), block = rules.find((r) => r.kind !== "allow");
    $("domain-explain").textContent = allow
      ? t("drill.allowedby", { list: shown(allow.list), rule: shown(allow.rule) })
      : block ? t("drill.blockedby", { list: shown(block.list), rule: shown(block.rule), category: shown(block.category) })
        : t("drill.notblocked");
    DW_CHART.lines($("domain-chart"), d.timeline.map((p) => p.t), [
      { label: t("chart.all"), values: d.timeline.map((p) => p.queries), ci: 7, fill: true },
      { label: t("chart.blocked"), values: d.timeline.map((p) => p.blocked), ci: 0 },
    ], fmtTime);
    fill("domain-clients", d.clients, (tr, c) => {
      linkTd(tr, c.client, () => openClient(c.client), "name");
      td(tr, c.client_name); td(tr, c.group); td(tr, fmtNum(c.queries), "num"); td(tr, fmtNum(c.blocked), "num");
      td(tr, fmtTime(c.last_seen));
    });
    status("");
    document.body.dataset.loaded = "domain";
  }

  // ---- search ----
  function searchFields() {
    return {
      client: $("s-client").value.trim(), name: $("s-name").value.trim(), suffix: $("s-suffix").checked ? "1" : "",
      action: $("s-action").value, category: $("s-category").value.trim(), list: $("s-list").value.trim(),
      client_name: $("s-clientname").value.trim(), qtype: $("s-qtype").value.trim(), rcode: $("s-rcode").value.trim(),
    };
  }
  function resetSearch(fields) {
    $("s-client").value = fields.client || ""; $("s-name").value = fields.name || "";
    $("s-action").value = fields.action || ""; $("s-category").value = fields.category || "";
    $("s-list").value = fields.list || ""; $("s-clientname").value = fields.client_name || "";
    $("s-qtype").value = ""; $("s-rcode").value = "";
    show("search");
    S.offset = 0;
    runSearch();
  }
  function searchQuery() {
    return rangeParams(Object.assign(searchFields(), { offset: S.offset, limit: PAGE }));
  }
  async function runSearch() {
    status(t("loading"));
    const r = await api("/api/ui/search?" + searchQuery());
    fill("results", r.rows, (tr, row) => {
      td(tr, fmtTime(row.ts_us / 1e6));
      linkTd(tr, row.client, () => openClient(row.client), "name");
      td(tr, row.client_name);
      linkTd(tr, row.qname, () => openDomain(row.qname), "name");
      td(tr, row.qtype);
      td(tr, row.action + (row.cached ? "*" : ""), row.action === "blocked" ? "blocked" : "");
      td(tr, row.rcode); td(tr, row.category); td(tr, row.list);
      blockButton(tr, row.qname);
    });
    $("s-page").textContent = t("search.page", { from: r.rows.length ? S.offset + 1 : 0, to: S.offset + r.rows.length });
    $("s-prev").disabled = S.offset === 0;
    $("s-next").disabled = !r.more;
    status("");
    document.body.dataset.loaded = "search";
  }
  async function exportCsv() {
    const r = await api("/api/ui/search.csv?" + searchQuery(), { raw: true });
    if (!r.ok) throw new Error("HTTP " + r.status);
    const text = await r.text();
    const rows = Math.max(text.split("\n").filter((l) => l).length - 1, 0);
    const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    const a = document.createElement("a");
    a.href = url; a.download = "dnsward-search.csv";
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    document.body.dataset.csvRows = String(rows);
    status(t("search.exported", { n: rows }));
  }

  // ---- live tail (server-sent events read with fetch, so the token stays in a header) ----
  function startTail() {
    if (S.tail || S.paused) return;
    const ctrl = new AbortController();
    S.tail = ctrl;
    $("tail-state").textContent = t("tail.live");
    (async () => {
      try {
        const r = await api("/api/ui/tail?" + rangeParams(), { raw: true, signal: ctrl.signal });
        const reader = r.body.getReader(), dec = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, i); buf = buf.slice(i + 2);
            let ev = "message", data = "";
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) ev = line.slice(6).trim();
              else if (line.startsWith("data:")) data += line.slice(5).trim();
            }
            if (ev === "rows" && data) addTailRows(JSON.parse(data));
          }
        }
      } catch (e) {
        if (!ctrl.signal.aborted) status(t("error", { error: e.message }), true);
      }
      if (S.tail === ctrl) S.tail = null;
    })();
  }
  function stopTail() {
    if (S.tail) { S.tail.abort(); S.tail = null; }
  }
  function addTailRows(rows) {
    const body = $("tail").tBodies[0];
    for (const row of rows) {
      const tr = document.createElement("tr");
      td(tr, fmtTime(row.ts_us / 1e6));
      linkTd(tr, row.client, () => openClient(row.client), "name");
      td(tr, row.client_name);
      linkTd(tr, row.qname, () => openDomain(row.qname), "name");
      td(tr, row.qtype); td(tr, row.category); td(tr, row.list);
      body.insertBefore(tr, body.firstChild);
    }
    while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
  }

  // ---- actions ----
  function openAction(kind, name) {
    const who = $("who").value.trim();
    if (!who) { status(t("act.needwho"), true); $("who").focus(); return; }
    S.action = { kind: kind, name: name };
    $("act-title").textContent = t(ACTION_TITLES[kind]);
    $("act-name").textContent = shown(name);
    $("act-error").textContent = "";
    $("act-why").value = ""; $("act-ref").value = ""; $("act-exp").value = "";
    document.querySelectorAll(".block-only").forEach((e) => { e.hidden = kind !== "block" && kind !== "allow"; });
    $("act-dialog").showModal();
    $("act-why").focus();
  }
  async function confirmAction() {
    const a = S.action;
    const body = { kind: a.kind, name: a.name, who: $("who").value.trim(), why: $("act-why").value.trim() };
    if (a.kind === "block" || a.kind === "allow") { body.reference = $("act-ref").value.trim(); body.expires = $("act-exp").value.trim(); }
    try {
      await api("/api/ui/actions", { method: "POST", body: JSON.stringify(body) });
      $("act-dialog").close();
      status(t("act.done", { kind: t(ACTION_TITLES[a.kind]), name: shown(a.name) }));
      document.body.dataset.lastAction = a.kind + " " + a.name;
    } catch (e) {
      $("act-error").textContent = t("act.failed", { error: e.message });
    }
  }
  async function loadActions() {
    const list = await api("/api/ui/actions");
    fill("action-log", list, (tr, a) => {
      td(tr, fmtTime(a.at)); td(tr, a.who); td(tr, a.kind); td(tr, a.name, "name"); td(tr, a.why); td(tr, a.status);
    });
  }

  // ---- sign in / out ----
  function logout(msg) {
    sessionStorage.removeItem(TOKEN_KEY);
    stopTail();
    $("app").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = msg || "";
    $("login-token").focus();
  }
  async function start() {
    $("login").hidden = true;
    $("app").hidden = false;
    show("overview");
    await guard(loadOverview)();
  }
  function guard(f) {
    return async function () {
      try { await f.apply(null, arguments); } catch (e) { status(t("error", { error: e.message }), true); }
    };
  }

  document.addEventListener("DOMContentLoaded", () => {
    applyTexts();
    $("who").value = sessionStorage.getItem(WHO_KEY) || "";
    $("who").addEventListener("change", () => sessionStorage.setItem(WHO_KEY, $("who").value.trim()));
    $("login-form").addEventListener("submit", (e) => {
      e.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, $("login-token").value.trim());
      $("login-token").value = "";
      start();
    });
    $("logout").addEventListener("click", () => logout(""));
    $("lang").addEventListener("click", () => {
      S.lang = S.lang === "vi" ? "en" : "vi";
      localStorage.setItem(LANG_KEY, S.lang);
      applyTexts();
      guard(refresh)();
    });
    document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => {
      show(b.dataset.tab);
      if (b.dataset.tab === "overview") guard(loadOverview)();
      if (b.dataset.tab === "search") guard(runSearch)();
    }));
    $("range").addEventListener("change", () => { $("custom-range").hidden = $("range").value !== "custom"; guard(refresh)(); });
    for (const id of ["group", "resolver", "source", "since", "until"]) $(id).addEventListener("change", () => guard(refresh)());
    $("refresh").addEventListener("click", () => guard(refresh)());
    $("search-form").addEventListener("submit", (e) => { e.preventDefault(); S.offset = 0; guard(runSearch)(); });
    $("s-csv").addEventListener("click", () => guard(exportCsv)());
    $("s-prev").addEventListener("click", () => { S.offset = Math.max(0, S.offset - PAGE); guard(runSearch)(); });
    $("s-next").addEventListener("click", () => { S.offset += PAGE; guard(runSearch)(); });
    $("tail-toggle").addEventListener("click", () => {
      S.paused = !S.paused;
      if (S.paused) { stopTail(); $("tail-state").textContent = t("tail.paused"); } else startTail();
      applyTexts();
    });
    $("client-search").addEventListener("click", () => resetSearch({ client: S.client }));
    $("domain-search").addEventListener("click", () => resetSearch({ name: S.domain }));
    $("domain-block").addEventListener("click", () => openAction("block", S.domain));
    $("domain-unblock").addEventListener("click", () => openAction("unblock", S.domain));
    $("domain-allow").addEventListener("click", () => openAction("allow", S.domain));
    $("domain-allowremove").addEventListener("click", () => openAction("allow_remove", S.domain));
    $("domain-flush").addEventListener("click", () => openAction("flush", S.domain));
    $("domain-nta").addEventListener("click", () => openAction("nta_add", S.domain));
    $("act-ok").addEventListener("click", () => guard(confirmAction)());
    $("act-cancel").addEventListener("click", () => $("act-dialog").close());
    if (token()) start(); else logout("");
    // the overview refreshes itself every 30 s while it is shown (q/s needs two samples)
    setInterval(() => {
      if (S.tab === "overview" && !$("app").hidden && !document.hidden) guard(loadOverview)();
    }, 30000);
  });

  async function refresh() {
    if (S.tab === "overview") await loadOverview();
    else if (S.tab === "client" && S.client) await openClient(S.client);
    else if (S.tab === "domain" && S.domain) await openDomain(S.domain);
    else if (S.tab === "search") await runSearch();
    else if (S.tab === "actions") await loadActions();
    else if (S.tab === "tail") { stopTail(); startTail(); }
  }
})();
