import { api } from "./api.js";
import { stackedBars } from "./charts.js";
import { clearErrors, field, formError, h, replace, setFormError, table, when } from "./dom.js";

const DIMENSIONS = {
  model: { label: "Model", dimension: "USAGE_DIMENSION_MODEL", key: "model" },
  providerKey: { label: "Provider key", dimension: "USAGE_DIMENSION_PROVIDER_KEY", key: "providerKeyId" },
  accessKey: { label: "Access key", dimension: "USAGE_DIMENSION_ACCESS_KEY", key: "accessKeyId" },
};
const n = (v) => Number(v || 0);
const usd = (v) => `$${n(v).toFixed(n(v) >= 1 ? 2 : 4)}`;
const day = (time) => String(time || "").slice(0, 10);

export async function usagePage(view) {
  const days = h("select", { id: "usage-days" }, [7, 14, 30, 90].map((d) => h("option", { value: d }, `Last ${d} days`)));
  const by = h("select", { id: "usage-by" }, Object.entries(DIMENSIONS).map(([k, d]) => h("option", { value: k }, d.label)));
  const results = h("div", { "aria-live": "polite" });
  const summary = formError("");
  const controls = h("form", { class: "inline card", "aria-label": "Usage range" }, field("Range", days), field("Group by", by), summary,
    h("button", { type: "submit" }, "Show usage"));
  const load = async () => {
    clearErrors(controls);
    const end = new Date();
    const start = new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth(), end.getUTCDate() - Number(days.value) + 1));
    const dimension = DIMENSIONS[by.value];
    const query = new URLSearchParams({ startTime: start.toISOString(), endTime: end.toISOString(), bucket: "USAGE_BUCKET_DAY", groupBy: dimension.dimension });
    try {
      const { rows = [] } = await api("GET", `/usage?${query}`);
      const labels = [];
      for (let t = start.getTime(); t < end.getTime(); t += 86400000) labels.push(new Date(t).toISOString().slice(0, 10));
      replace(results, usageView(rows, labels, dimension));
    } catch (failure) {
      setFormError(summary, failure.message);
    }
  };
  controls.addEventListener("submit", (event) => { event.preventDefault(); load(); });
  replace(view, h("h1", {}, "Usage"),
    h("p", {}, "What the proxies served: requests, tokens and cost per day. Costs use the catalog's prices; attempts with an unknown price are counted apart."),
    controls, results, requestSearch());
  await load();
}

function usageView(rows, labels, dimension) {
  if (!rows.length) {
    return h("p", { class: "empty" }, "No requests in this range yet: call the proxy with an access key (see Access keys), then come back.");
  }
  const groups = [...new Set(rows.map((r) => r[dimension.key] || "(none)"))];
  const series = (metric) => groups.map((g) => ({
    name: g,
    values: labels.map((l) => rows.filter((r) => day(r.bucketStart) === l && (r[dimension.key] || "(none)") === g).reduce((s, r) => s + metric(r), 0)),
  }));
  const tableRows = rows.map((r) => h("tr", {},
    h("td", {}, day(r.bucketStart)), h("td", {}, r[dimension.key] || "(none)"),
    h("td", {}, String(n(r.requests))), h("td", {}, String(n(r.attempts))), h("td", {}, String(n(r.failovers))),
    h("td", {}, String(n(r.inputTokens))), h("td", {}, String(n(r.outputTokens))),
    h("td", {}, usd(r.costUsd) + (n(r.unpricedAttempts) ? ` (+${n(r.unpricedAttempts)} unpriced)` : "")),
    h("td", {}, Object.entries(r.errors || {}).map(([k, v]) => `${k} ${v}`).join(", ") || "none")));
  return h("div", {},
    h("div", { class: "charts" },
      stackedBars(`Requests per day by ${dimension.label.toLowerCase()}`, labels, series((r) => n(r.requests))),
      stackedBars(`Tokens per day by ${dimension.label.toLowerCase()}`, labels, series((r) => n(r.inputTokens) + n(r.outputTokens))),
      stackedBars(`Cost per day by ${dimension.label.toLowerCase()}`, labels, series((r) => n(r.costUsd)), usd)),
    table("Usage per day", ["Day", dimension.label, "Requests", "Attempts", "Failovers", "Input tokens", "Output tokens", "Cost", "Errors"], tableRows, ""));
}

function requestSearch() {
  const id = h("input", { id: "request-id", autocomplete: "off", placeholder: "the x-keyway-request-id of a response" });
  const summary = formError("");
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card", "aria-label": "Find a request" }, h("h2", {}, "Find a request"),
    field("Request id", id), summary, h("button", { type: "submit" }, "Find request"), out);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    replace(out);
    if (!id.value.trim()) {
      setFormError(summary, "Enter a request id (the x-keyway-request-id header of a proxy response).");
      return;
    }
    try {
      const { request } = await api("GET", `/requests/${encodeURIComponent(id.value.trim())}`);
      const attempts = (request.attempts || []).map((a) => h("tr", {},
        h("td", {}, String(a.attempt || 0)), h("td", {}, a.providerId || "-"), h("td", {}, a.upstreamModel || "-"),
        h("td", {}, a.providerKeyId || "-"), h("td", {}, a.outcome || "-"), h("td", { class: "wrap" }, a.reason || ""),
        h("td", {}, String(a.status || "-")), h("td", {}, `${Math.round(n(a.durationMs))} ms`),
        h("td", {}, a.tokensKnown ? `${n(a.inputTokens)} in / ${n(a.outputTokens)} out` : "unknown"),
        h("td", {}, a.costKnown ? usd(a.costUsd) : "unknown")));
      replace(out,
        h("dl", { class: "facts" },
          h("dt", {}, "Time"), h("dd", {}, when(request.requestTime)),
          h("dt", {}, "Access key"), h("dd", {}, request.accessKeyId || "-"),
          h("dt", {}, "Path"), h("dd", {}, request.surface || "-"),
          h("dt", {}, "Requested model"), h("dd", {}, request.requestedModel || "-"),
          h("dt", {}, "Proxy"), h("dd", {}, request.nodeId || "-")),
        table(`Attempts of ${request.requestId}`, ["#", "Provider", "Model", "Provider key", "Outcome", "Reason", "Status", "Duration", "Tokens", "Cost"], attempts,
          "This request was refused before any upstream attempt."));
    } catch (failure) {
      setFormError(summary, failure.message);
    }
  });
  return form;
}
