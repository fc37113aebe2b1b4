import { api, listAll } from "./api.js";
import { clearErrors, field, formError, h, replace, table, when } from "./dom.js";
import { showRefusal } from "./providers.js";

function configurationSelect(configurations, selected, label) {
  return h("select", { "aria-label": label },
    h("option", { value: "" }, "(no configuration: every provider, first enabled key)"),
    configurations.map((c) => h("option", { value: c.id, selected: c.id === selected }, `${c.name} (${c.id})`)));
}

export async function accessKeysPage(view, { refresh }) {
  const [keys, configurations] = await Promise.all([
    listAll("/access-keys", "accessKeys"),
    listAll("/access-key-configurations", "configurations"),
  ]);
  const status = h("p", { role: "status", class: "status" });
  const reveal = h("div", { class: "reveal-slot" });
  const rows = keys.map((key) => {
    const select = configurationSelect(configurations, key.configurationId, `Configuration of ${key.name}`);
    const cell = h("div", { class: "actions" });
    const failed = (failure) => replace(cell, h("p", { class: "form-error", role: "alert" }, failure.message));
    const save = h("button", { type: "button", onclick: async () => {
      try {
        await api("PATCH", `/access-keys/${key.id}?updateMask=configurationId`, { configurationId: select.value });
        await refresh();
        document.querySelector('[role="status"]').textContent = select.value
          ? `${key.name} now uses ${select.value}.` : `${key.name} has no configuration now.`;
      } catch (failure) { failed(failure); }
    } }, "Assign");
    const revoke = h("button", { type: "button", class: "danger", onclick: () => replace(cell,
      h("p", {}, `Revoke ${key.name}? Apps using its token get 401 from the proxies within a second.`),
      h("button", { type: "button", class: "danger", onclick: async () => {
        try {
          await api("DELETE", `/access-keys/${key.id}`);
          await refresh();
          document.querySelector('[role="status"]').textContent = `Revoked ${key.name}.`;
        } catch (failure) { failed(failure); }
      } }, "Revoke for good"),
      h("button", { type: "button", onclick: refresh }, "Cancel")) }, "Delete");
    const toggle = h("button", { type: "button", onclick: async () => {
      try {
        await api("PATCH", `/access-keys/${key.id}`, { disabled: !key.disabled });
        await refresh();
        document.querySelector('[role="status"]').textContent = key.disabled
          ? `Enabled ${key.name}.` : `Disabled ${key.name}: proxies answer 401 access_key_disabled until it is enabled.`;
      } catch (failure) { failed(failure); }
    } }, key.disabled ? "Enable" : "Disable");
    cell.append(toggle, revoke);
    return h("tr", { "data-key": key.id },
      h("td", {}, key.name, h("br"), h("code", { class: "muted" }, key.id)),
      h("td", {}, h("code", {}, key.redactedToken)),
      h("td", {}, h("div", { class: "inline" }, select, save)),
      h("td", {}, key.disabled ? "disabled" : "enabled"),
      h("td", {}, when(key.lastUsedTime)),
      h("td", {}, cell));
  });

  const name = h("input", { name: "name", required: true, autocomplete: "off" });
  const chosen = configurationSelect(configurations, "", "Configuration");
  chosen.id = "new-access-key-configuration";
  const summary = formError("");
  const form = h("form", { class: "card", "aria-label": "Create an access key" },
    h("h2", {}, "Create an access key"),
    field("Access key name", name, "Name it after the app that will use it."),
    field("Configuration", chosen), summary, h("button", { type: "submit" }, "Create access key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      const created = await api("POST", "/access-keys", { name: name.value, configurationId: chosen.value });
      await refresh();
      showToken(created);
    } catch (failure) {
      showRefusal(form, failure, { name, configuration_id: chosen }, summary);
    }
  });
  replace(view, h("h1", {}, "Access keys"),
    h("p", {}, "Apps call the proxy with an access key (OpenAI or Anthropic SDK, base URL of your proxy). Its configuration decides which providers, models and keys it gets."),
    status, reveal,
    table("Access keys of this account", ["Name", "Token", "Configuration", "State", "Last used", "Actions"], rows,
      "No access keys yet: create one below and give its token to your app."),
    form);
}

// The token exists in this answer only: shown once, never stored, gone on the next page.
function showToken(created) {
  const slot = document.querySelector(".reveal-slot");
  const token = h("input", { readonly: true, value: created.token, id: "new-token", class: "token" });
  const copied = h("span", { role: "status" });
  const copy = h("button", { type: "button", onclick: async () => {
    token.select();
    try {
      await navigator.clipboard.writeText(token.value);
      copied.textContent = "Copied.";
    } catch {
      copied.textContent = "Select the token and copy it (the browser refused the clipboard).";
    }
  } }, "Copy token");
  replace(slot, h("div", { class: "card reveal", role: "region", "aria-label": "New access key token" },
    h("h2", {}, `Token of ${created.accessKey.name}`),
    h("p", { class: "warning" }, "Copy this token now: it is shown only once and Keyway keeps only its hash. If you lose it, delete the key and create another."),
    h("label", { for: "new-token" }, "Access key token"), token, copy, copied,
    h("button", { type: "button", onclick: () => replace(slot) }, "I have copied it")));
  copy.focus();
}
