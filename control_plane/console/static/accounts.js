import { api, listAll } from "./api.js";
import { clearErrors, field, formError, h, replace, statusLine, table, when } from "./dom.js";
import { showRefusal } from "./providers.js";

const STATES = {
  ACCOUNT_SNAPSHOT_STATE_PUBLISHED: "published",
  ACCOUNT_SNAPSHOT_STATE_PENDING: "pending",
  ACCOUNT_SNAPSHOT_STATE_QUARANTINED: "quarantined",
};

// The operator's accounts, and the way into one (the account switcher does the same).
export async function accountsPage(view, { switchTo, refresh }) {
  const accounts = await listAll("/accounts", "accounts", { asOperator: true });
  const rows = accounts.map((a) => h("tr", {},
    h("td", {}, a.displayName, h("br"), h("code", { class: "muted" }, a.id)),
    h("td", {}, STATES[a.snapshotStatus?.state] || "unknown", a.snapshotStatus?.reason ? `: ${a.snapshotStatus.reason}` : ""),
    h("td", {}, when(a.createTime)),
    h("td", {}, h("button", { type: "button", onclick: () => switchTo(a.id) }, `Work in ${a.displayName}`))));
  const name = h("input", { required: true, autocomplete: "off" });
  const summary = formError("");
  const form = h("form", { class: "card", "aria-label": "Create an account" }, h("h2", {}, "Create an account"),
    field("Account name", name), summary, h("button", { type: "submit" }, "Create account"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      await api("POST", "/accounts", { displayName: name.value }, { asOperator: true });
      await refresh();
    } catch (failure) {
      showRefusal(form, failure, { display_name: name }, summary);
    }
  });
  replace(view, h("h1", {}, "Accounts"),
    h("p", {}, "Each team's keys, access keys and configurations live in an account of its own. Working in one makes an admin API key for it, deleted again when you switch back or sign out."),
    statusLine(),
    table("Accounts", ["Account", "Snapshot", "Created", ""], rows, "No accounts yet: create one below."), form);
}
