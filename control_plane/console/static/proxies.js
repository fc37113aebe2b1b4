import { api, listAll } from "./api.js";
import { h, replace, table, when } from "./dom.js";

const STATES = {
  DATA_PLANE_STATE_IN_SYNC: "IN_SYNC",
  DATA_PLANE_STATE_STALE: "STALE",
  DATA_PLANE_STATE_REJECTED: "REJECTED",
  DATA_PLANE_STATE_DISCONNECTED: "DISCONNECTED",
};

export async function proxiesPage(view) {
  const planes = await listAll("/data-planes", "dataPlanes", { asOperator: true });
  const rows = planes.map((p) => {
    const state = STATES[p.state] || "UNKNOWN";
    const rejection = p.lastRejection
      ? `version ${p.lastRejection.version || "?"}${p.lastRejection.message ? `: ${p.lastRejection.message}` : ""} at ${when(p.lastRejection.time)}`
      : "none";
    return h("tr", {},
      h("td", {}, h("code", {}, p.nodeId), p.pool ? h("span", { class: "muted" }, ` pool ${p.pool}`) : null),
      h("td", {}, h("span", { class: `state state-${state.toLowerCase()}` }, state)),
      h("td", {}, String(p.appliedVersion || 0)),
      h("td", {}, String(p.latestVersion || 0)),
      h("td", {}, when(p.lastSeenTime)),
      h("td", { class: "wrap" }, rejection));
  });
  replace(view, h("h1", {}, "Proxies"),
    h("p", {}, "Every proxy that has connected, and whether it serves the latest snapshot: IN_SYNC (applied the latest), STALE (behind), REJECTED (refused the latest; see why), DISCONNECTED."),
    table("Proxies", ["Proxy", "State", "Applied version", "Latest version", "Last seen", "Last rejection"], rows,
      "No proxy has connected yet: start one with `keyway proxy --control-plane …` (make run starts one)."),
    h("button", { type: "button", onclick: () => proxiesPage(view) }, "Refresh"));
}
