import { api, listAll, setCsrf, whenSignedOut } from "./api.js";
import { clearErrors, field, formError, h, replace, setFormError } from "./dom.js";
import { providersPage, providerPage } from "./providers.js";
import { accessKeysPage } from "./access_keys.js";
import { configurationsPage, configurationPage } from "./configurations.js";
import { proxiesPage } from "./proxies.js";
import { usagePage } from "./usage.js";
import { accountsPage } from "./accounts.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let session = null;

// `account`: the page acts on one account (an operator picks one first).
const PAGES = [
  { path: "providers", title: "Providers", render: providersPage, account: true },
  { path: "access-keys", title: "Access keys", render: accessKeysPage, account: true },
  { path: "configurations", title: "Configurations", render: configurationsPage, account: true },
  { path: "proxies", title: "Proxies", render: proxiesPage },
  { path: "usage", title: "Usage", render: usagePage },
  { path: "accounts", title: "Accounts", render: accountsPage, operator: true },
];
const DETAIL = { providers: providerPage, configurations: configurationPage };

function signInPage(message) {
  session = null;
  setCsrf("");
  nav.hidden = true;
  replace(who);
  const token = h("input", { type: "password", name: "token", autocomplete: "off", required: true });
  const error = formError(message);
  const form = h("form", { class: "card narrow", "aria-label": "Sign in" },
    h("h1", {}, "Sign in to Keyway"),
    h("p", {}, "Paste an admin API key (kwadm_…, in admin.token of the data directory after ",
      h("code", {}, "make run"), ") or the operator token (kwop_…, in operator.token)."),
    field("Token", token, "Exchanged for a session cookie; the token is not kept in the browser."),
    error,
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      const started = await api("POST", "/console/session", { token: token.value });
      token.value = "";
      start(started, started.kind === "operator" ? "#/accounts" : undefined);
    } catch (failure) {
      setFormError(error, failure.message);
      token.focus();
    }
  });
  replace(main, form);
  token.focus();
}

// An operator works in an account through an admin API key made for it (the REST API's own
// call), handed to the session; leaving deletes that key again.
async function leaveAccount() {
  const left = await api("DELETE", "/console/session/account");
  if (left.leftKeyId) await api("DELETE", `/api-keys/${left.leftKeyId}`, undefined, { asOperator: true });
  return left;
}

async function switchTo(accountId) {
  let found = session.actingAccountId ? await leaveAccount() : session;
  if (accountId) {
    const made = await api("POST", `/accounts/${encodeURIComponent(accountId)}/api-keys`,
      { name: "web console (operator)", description: "made by the console for an operator session; deleted when it switches back or signs out" },
      { asOperator: true });
    found = await api("PUT", "/console/session/account", { token: made.token, keyId: made.adminApiKey.id });
  }
  start(found, accountId ? "#/providers" : "#/accounts");
}

async function signOut() {
  try {
    if (session?.actingAccountId) await leaveAccount();
    await api("DELETE", "/console/session");
  } finally {
    location.hash = "";
    signInPage("Signed out.");
  }
}

function visible() {
  const operator = session.kind === "operator";
  return PAGES.filter((p) => (operator || !p.operator) && (!p.account || !operator || session.actingAccountId));
}

async function accountSwitcher() {
  const accounts = await listAll("/accounts", "accounts", { asOperator: true });
  const select = h("select", { id: "account-switcher" },
    h("option", { value: "" }, "All accounts (operator)"),
    accounts.map((a) => h("option", { value: a.id, selected: a.id === session.actingAccountId }, `${a.displayName} (${a.id})`)));
  select.addEventListener("change", () => switchTo(select.value).catch((failure) => {
    replace(main, h("p", { class: "form-error", role: "alert" }, failure.message));
  }));
  return h("span", { class: "inline" }, h("label", { for: "account-switcher" }, "Account"), select);
}

async function start(found, hash) {
  session = found;
  setCsrf(found.csrf);
  replace(nav, h("ul", {}, visible().map((p) => h("li", {}, h("a", { href: `#/${p.path}`, "data-page": p.path }, p.title)))));
  nav.hidden = false;
  const label = found.kind === "operator" ? await accountSwitcher() : h("span", {}, `Account ${found.accountId}`);
  replace(who, label, h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"));
  if (hash && location.hash !== hash) location.hash = hash;
  else route();
}

async function route() {
  if (!session) return;
  const [, page = "providers", id] = location.hash.replace(/^#/, "").split("/");
  const pages = visible();
  const known = pages.find((p) => p.path === page) || pages[0];
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.page === known.path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const render = id && DETAIL[known.path] ? DETAIL[known.path] : known.render;
  const view = h("section", { class: "page" });
  replace(main, view);
  document.title = `${known.title} · Keyway console`;
  try {
    await render(view, { session, id: id ? decodeURIComponent(id) : undefined, refresh: route, switchTo });
  } catch (failure) {
    replace(view, h("h1", {}, known.title), h("p", { class: "form-error", role: "alert" }, failure.message));
  }
}

whenSignedOut(() => signInPage("Your session ended: sign in again."));
window.addEventListener("hashchange", route);

api("GET", "/console/session").then(start, () => signInPage(""));
