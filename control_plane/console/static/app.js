import { api, setCsrf, whenSignedOut } from "./api.js";
import { clearErrors, field, formError, h, replace, setFormError } from "./dom.js";
import { providersPage, providerPage } from "./providers.js";
import { accessKeysPage } from "./access_keys.js";
import { configurationsPage, configurationPage } from "./configurations.js";
import { proxiesPage } from "./proxies.js";
import { usagePage } from "./usage.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
let session = null;

const PAGES = [
  { path: "providers", title: "Providers", render: providersPage },
  { path: "access-keys", title: "Access keys", render: accessKeysPage },
  { path: "configurations", title: "Configurations", render: configurationsPage },
  { path: "proxies", title: "Proxies", render: proxiesPage },
  { path: "usage", title: "Usage", render: usagePage },
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
      start(started);
    } catch (failure) {
      setFormError(error, failure.message);
      token.focus();
    }
  });
  replace(main, form);
  token.focus();
}

async function signOut() {
  try {
    await api("DELETE", "/console/session");
  } finally {
    location.hash = "";
    signInPage("Signed out.");
  }
}

function start(found) {
  session = found;
  setCsrf(found.csrf);
  replace(nav, h("ul", {}, PAGES.map((p) => h("li", {}, h("a", { href: `#/${p.path}`, "data-page": p.path }, p.title)))));
  nav.hidden = false;
  const label = found.kind === "operator" ? "Operator" : `Account ${found.accountId}`;
  replace(who, h("span", {}, label), h("button", { type: "button", class: "link", onclick: signOut }, "Sign out"));
  route();
}

async function route() {
  if (!session) return;
  const [, page = "providers", id] = location.hash.replace(/^#/, "").split("/");
  const known = PAGES.find((p) => p.path === page) || PAGES[0];
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.page === known.path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const render = id && DETAIL[known.path] ? DETAIL[known.path] : known.render;
  const view = h("section", { class: "page" });
  replace(main, view);
  document.title = `${known.title} · Keyway console`;
  try {
    await render(view, { session, id: id ? decodeURIComponent(id) : undefined, refresh: route });
  } catch (failure) {
    replace(view, h("h1", {}, known.title), h("p", { class: "form-error", role: "alert" }, failure.message));
  }
}

whenSignedOut(() => signInPage("Your session ended: sign in again."));
window.addEventListener("hashchange", route);

api("GET", "/console/session").then(start, () => signInPage(""));
