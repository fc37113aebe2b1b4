import { api, listAll } from "./api.js";
import { clearErrors, field, formError, h, replace, setFormError, showFieldError, table, when } from "./dom.js";

const FORMATS = { API_FORMAT_OPENAI: "OpenAI", API_FORMAT_ANTHROPIC: "Anthropic" };
const formatNames = (formats) => (formats || []).map((f) => FORMATS[f] || f).join(", ");

// Shows an API refusal at the controls its field violations name, the rest above the button.
export function showRefusal(form, failure, controls, summary) {
  let placed = false;
  for (const v of failure.violations || []) {
    const control = controls[v.field];
    if (control && showFieldError(control, `${v.field}: ${v.description}`)) placed = true;
  }
  setFormError(summary, placed ? "" : failure.message);
  if (placed) form.querySelector("[aria-invalid]")?.focus();
}

let openTab = "built-in"; // kept across re-renders, so a save on Custom stays on Custom

export async function providersPage(view, { refresh }) {
  const { providers = [] } = await api("GET", "/catalog/providers");
  const builtIn = providers.filter((p) => p.builtIn);
  const custom = providers.filter((p) => !p.builtIn);
  const panels = {};
  const tabs = h("div", { role: "tablist", "aria-label": "Provider kind" });
  const body = h("div", { class: "tab-panels" });
  const show = (name) => {
    openTab = name;
    for (const tab of tabs.children) {
      const on = tab.dataset.tab === name;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
    }
    for (const [key, panel] of Object.entries(panels)) panel.hidden = key !== name;
  };
  for (const [name, label] of [["built-in", "Built-in"], ["custom", "Custom"]]) {
    const tab = h("button", { type: "button", role: "tab", id: `tab-${name}`, "aria-controls": `panel-${name}`, "data-tab": name, onclick: () => show(name) }, label);
    tab.addEventListener("keydown", (event) => {
      if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
        const next = name === "built-in" ? "custom" : "built-in";
        show(next);
        tabs.querySelector(`[data-tab="${next}"]`).focus();
      }
    });
    tabs.append(tab);
  }
  panels["built-in"] = h("div", { role: "tabpanel", id: "panel-built-in", "aria-labelledby": "tab-built-in" },
    providerTable("Built-in providers", builtIn, "No built-in providers in this catalog."));
  panels.custom = h("div", { role: "tabpanel", id: "panel-custom", "aria-labelledby": "tab-custom" },
    providerTable("Custom providers", custom, "No custom providers yet: add one below to route to your own OpenAI- or Anthropic-compatible upstream."),
    customProviderForm(null, refresh));
  body.append(panels["built-in"], panels.custom);
  replace(view, h("h1", {}, "Providers"),
    h("p", {}, "Pick a provider to add its API keys. Apps never see these keys: they call the proxy with an access key."),
    tabs, body);
  show(openTab);
}

function providerTable(caption, providers, empty) {
  const rows = providers.map((p) => h("tr", {},
    h("td", {}, h("a", { href: `#/providers/${encodeURIComponent(p.id)}` }, p.id)),
    h("td", {}, p.name),
    h("td", {}, formatNames(p.formats)),
    h("td", { class: "wrap" }, p.baseUrl),
    h("td", { class: "wrap" }, (p.models || []).map((m) => m.id).join(", "))));
  return table(caption, ["Id", "Name", "API formats", "Base URL", "Models"], rows, empty);
}

// Create (existing = null) or edit a custom provider, with the API's own validation messages.
function customProviderForm(existing, done) {
  const providerId = h("input", { name: "providerId", value: existing?.providerId || "", required: true, disabled: Boolean(existing), placeholder: "x-acme" });
  const name = h("input", { name: "name", value: existing?.name || "" });
  const baseUrl = h("input", { name: "baseUrl", value: existing?.baseUrl || "", placeholder: "https://llm.example.com/v1" });
  const openai = h("input", { type: "checkbox", checked: !existing || (existing.formats || []).includes("API_FORMAT_OPENAI") });
  const anthropic = h("input", { type: "checkbox", checked: (existing?.formats || []).includes("API_FORMAT_ANTHROPIC") });
  const models = h("input", { name: "models", value: (existing?.models || []).map((m) => m.id).join(", "), placeholder: "acme-large, acme-small" });
  const formats = h("fieldset", { id: "formats-of-provider" }, h("legend", {}, "API formats"),
    h("label", {}, openai, " OpenAI"), h("label", {}, anthropic, " Anthropic"),
    h("p", { class: "field-error", role: "alert", id: "formats-of-provider-error", hidden: true }));
  const summary = formError("");
  const form = h("form", { class: "card", "aria-label": existing ? "Edit custom provider" : "Add a custom provider" },
    h("h2", {}, existing ? "Edit custom provider" : "Add a custom provider"),
    field("Provider id", providerId, existing ? "The id is immutable." : "Starts with x- (lowercase letters, digits and -)."),
    field("Name", name), field("Base URL", baseUrl), formats,
    field("Models", models, "Comma-separated model ids."), summary,
    h("button", { type: "submit" }, existing ? "Save provider" : "Add provider"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const doc = {
      name: name.value,
      baseUrl: baseUrl.value,
      formats: [openai.checked && "API_FORMAT_OPENAI", anthropic.checked && "API_FORMAT_ANTHROPIC"].filter(Boolean),
      models: models.value.split(",").map((m) => m.trim()).filter(Boolean).map((id) => ({ id })),
    };
    try {
      if (existing) {
        await api("PATCH", `/providers/${encodeURIComponent(existing.id)}`, doc);
      } else {
        await api("POST", "/providers", { providerId: providerId.value, ...doc });
      }
      done();
    } catch (failure) {
      showRefusal(form, failure, { provider_id: providerId, name, base_url: baseUrl, formats: formats, models }, summary);
    }
  });
  return form;
}

export async function providerPage(view, { id, refresh }) {
  const [{ providers = [] }, keys] = await Promise.all([
    api("GET", "/catalog/providers"),
    listAll(`/provider-keys?providerId=${encodeURIComponent(id)}`, "providerKeys"),
  ]);
  const provider = providers.find((p) => p.id === id);
  if (!provider) {
    replace(view, h("h1", {}, "Provider not found"), h("p", {}, "No provider has the id ", h("code", {}, id), ". ", h("a", { href: "#/providers" }, "Back to providers")));
    return;
  }
  let edit = null;
  if (!provider.builtIn) {
    const custom = (await listAll("/providers", "customProviders")).find((c) => c.providerId === id);
    if (custom) edit = customProviderForm(custom, refresh);
  }
  const status = h("p", { role: "status", class: "status" });
  replace(view,
    h("p", {}, h("a", { href: "#/providers" }, "← Providers")),
    h("h1", {}, provider.name, " ", h("span", { class: "muted" }, `(${provider.id})`)),
    h("dl", { class: "facts" },
      h("dt", {}, "API formats"), h("dd", {}, formatNames(provider.formats)),
      h("dt", {}, "Base URL"), h("dd", {}, provider.baseUrl),
      h("dt", {}, "Models"), h("dd", {}, (provider.models || []).map((m) => m.id).join(", ") || "any (pass provider:model)")),
    edit,
    h("section", { "aria-labelledby": "api-keys" },
      h("h2", { id: "api-keys" }, "API keys"),
      status,
      keysTable(keys, status, refresh),
      addKeyForm(provider, status, refresh)));
}

function keysTable(keys, status, refresh) {
  const rows = keys.map((key) => h("tr", { "data-key": key.id },
    h("td", {}, key.name, h("br"), h("code", { class: "muted" }, key.id)),
    h("td", {}, h("code", {}, key.redactedValue)),
    h("td", {}, key.disabled ? "disabled" : "enabled"),
    h("td", {}, when(key.lastUsedTime)),
    h("td", { class: "wrap" }, key.lastError ? `${key.lastError.reason} at ${when(key.lastError.time)}` : "none"),
    h("td", {}, keyActions(key, status, refresh))));
  return table("Keys of this provider", ["Name", "Value", "State", "Last used", "Last error", "Actions"], rows,
    "No API keys yet: add one below, then create an access key for your app.");
}

function keyActions(key, status, refresh) {
  const box = h("div", { class: "actions" });
  const inline = (label, build) => h("button", { type: "button", onclick: () => replace(box, build()) }, label);
  const act = async (work, message) => {
    try {
      await work();
      await refresh();
      document.querySelector('[role="status"]').textContent = message;
    } catch (failure) {
      status.textContent = "";
      replace(box, h("p", { class: "form-error", role: "alert" }, failure.message), h("button", { type: "button", onclick: refresh }, "OK"));
    }
  };
  const mini = (title, label, control, submit, done) => {
    const summary = formError("");
    const form = h("form", { class: "inline", "aria-label": `${title} ${key.name}` }, field(label, control), summary,
      h("button", { type: "submit" }, "Save"), h("button", { type: "button", onclick: refresh }, "Cancel"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearErrors(form);
      try {
        await submit();
        const message = done(); // read before the refresh replaces the form
        await refresh();
        document.querySelector('[role="status"]').textContent = message;
      } catch (failure) {
        showRefusal(form, failure, { name: control, value: control }, summary);
      }
    });
    setTimeout(() => control.focus());
    return form;
  };
  box.append(
    inline(`Rename`, () => {
      const name = h("input", { value: key.name });
      return mini("Renaming", "New name", name, () => api("PATCH", `/provider-keys/${key.id}`, { name: name.value }), () => `Renamed to ${name.value}.`);
    }),
    inline(`Rotate`, () => {
      const value = h("input", { type: "password", autocomplete: "off" });
      return mini("Rotating", "New key value", value, () => api("POST", `/provider-keys/${key.id}/rotate`, { value: value.value }),
        () => `Rotated ${key.name}: the id ${key.id} is unchanged, so configurations and apps keep working with the new value.`);
    }),
    h("button", { type: "button", onclick: () => act(() => api("PATCH", `/provider-keys/${key.id}`, { disabled: !key.disabled }),
      key.disabled ? `Enabled ${key.name}.` : `Disabled ${key.name}: proxies skip it until it is enabled.`) }, key.disabled ? "Enable" : "Disable"),
    h("button", { type: "button", class: "danger", onclick: () => replace(box,
      h("p", {}, `Delete ${key.name}? Apps routed to it fail over to other keys.`),
      h("button", { type: "button", class: "danger", onclick: () => act(() => api("DELETE", `/provider-keys/${key.id}`), `Deleted ${key.name}.`) }, "Delete for good"),
      h("button", { type: "button", onclick: refresh }, "Cancel")) }, "Delete"));
  return box;
}

function addKeyForm(provider, status, refresh) {
  const name = h("input", { name: "name", required: true, autocomplete: "off" });
  const value = h("input", { name: "value", type: "password", required: true, autocomplete: "off" });
  const summary = formError("");
  const form = h("form", { class: "card", "aria-label": "Add an API key" },
    h("h3", {}, `Add an API key for ${provider.name}`),
    field("Key name", name), field("Key value", value, "Write-only: afterwards only its first 10 and last 4 characters are shown."),
    summary, h("button", { type: "submit" }, "Add key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      const { providerKey } = await api("POST", "/provider-keys", { providerId: provider.id, name: name.value, value: value.value });
      value.value = "";
      await refresh();
      document.querySelector('[role="status"]').textContent = `Added ${providerKey.name} (${providerKey.redactedValue}).`;
    } catch (failure) {
      showRefusal(form, failure, { name, value, "provider_key.name": name }, summary);
    }
  });
  return form;
}
