import { api, listAll } from "./api.js";
import { clearErrors, field, flash, formError, h, replace, setFormError, showFieldError, statusLine, table, when } from "./dom.js";

const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

export async function configurationsPage(view) {
  const [configurations, accessKeys] = await Promise.all([
    listAll("/access-key-configurations", "configurations"),
    listAll("/access-keys", "accessKeys"),
  ]);
  const rows = configurations.map((c) => h("tr", {},
    h("td", {}, h("a", { href: `#/configurations/${c.id}` }, c.name), h("br"), h("code", { class: "muted" }, c.id)),
    h("td", {}, (c.access?.providers?.allow || []).join(", ") || "all"),
    h("td", {}, (c.access?.models?.allow || []).join(", ") || "all"),
    h("td", {}, String((c.router?.rules || []).length)),
    h("td", {}, String(accessKeys.filter((k) => k.configurationId === c.id).length)),
    h("td", {}, when(c.updateTime))));
  replace(view, h("h1", {}, "Configurations"),
    h("p", {}, "A configuration says which providers and models an access key may call and, per provider or model, the keys to try in order."),
    h("p", {}, h("a", { href: "#/configurations/new", class: "button" }, "New configuration")),
    table("Configurations of this account", ["Name", "Providers", "Models", "Router rules", "Access keys", "Updated"], rows,
      "No configurations yet: create one to pin an app to chosen keys, then assign it on Access keys."));
}

export async function configurationPage(view, { id }) {
  const creating = id === "new";
  const [existing, keys, catalog] = await Promise.all([
    creating ? Promise.resolve({ configuration: { name: "" } }) : api("GET", `/access-key-configurations/${encodeURIComponent(id)}`),
    listAll("/provider-keys", "providerKeys"),
    api("GET", "/catalog/providers"),
  ]);
  let doc = structuredClone(existing.configuration);
  const status = statusLine();
  const summary = formError("");
  const panel = h("div", {});
  let mode = "form";
  let controls = {};
  const jsonText = h("textarea", { id: "configuration-json", rows: 18, spellcheck: "false" });
  const tabs = h("div", { role: "tablist", "aria-label": "Editor" });
  const datalist = h("datalist", { id: "known-keys" }, keys.map((k) => h("option", { value: k.id }, `${k.providerId}: ${k.name}`)));
  const providersList = h("datalist", { id: "known-providers" }, (catalog.providers || []).map((p) => h("option", { value: p.id }, p.name)));

  let shown = false;
  const collect = () => {
    if (!shown) return doc;
    if (mode === "json") return JSON.parse(jsonText.value);
    return formDoc(doc, controls);
  };
  // `fresh`: the form already wrote its changes into `doc` (a rule or key added or moved).
  const switchTo = (next, fresh = false) => {
    clearErrors(view);
    try {
      if (!fresh) doc = collect();
    } catch (failure) {
      setFormError(summary, `The JSON does not parse: ${failure.message}`);
      return;
    }
    mode = next;
    shown = true;
    for (const tab of tabs.children) tab.setAttribute("aria-selected", String(tab.dataset.mode === mode));
    if (mode === "json") {
      jsonText.value = JSON.stringify(editable(doc), null, 2);
      replace(panel, field("Configuration JSON", jsonText, "The same document the API and the CLI take (camelCase)."));
      controls = {};
    } else {
      controls = {};
      replace(panel, buildForm(doc, controls, () => switchTo("form", true)));
    }
  };
  for (const [name, label] of [["form", "Form"], ["json", "JSON"]]) {
    tabs.append(h("button", { type: "button", role: "tab", "data-mode": name, onclick: () => switchTo(name) }, label));
  }
  const save = async (event) => {
    event.preventDefault();
    clearErrors(view);
    let body;
    try {
      body = editable(collect());
    } catch (failure) {
      setFormError(summary, `The JSON does not parse: ${failure.message}`);
      return;
    }
    try {
      const path = creating ? "/access-key-configurations" : `/access-key-configurations/${encodeURIComponent(id)}?updateMask=name,description,metadata,access,router,limits`;
      const saved = await api(creating ? "POST" : "PATCH", path, body);
      const warnings = (saved.warnings || []).map((w) => `${w.field}: ${w.description}`);
      const message = `Saved ${saved.configuration.name}.${warnings.length ? ` Warnings: ${warnings.join("; ")}` : ""}`;
      if (creating) {
        flash(message);
        location.hash = `#/configurations/${saved.configuration.id}`;
      } else {
        doc = saved.configuration;
        switchTo(mode, true);
        status.textContent = message;
      }
    } catch (failure) {
      let placed = false;
      for (const v of failure.violations || []) {
        const control = closest(controls, v.field);
        if (control && showFieldError(control, `${v.field}: ${v.description}`)) placed = true;
      }
      const listed = (failure.violations || []).map((v) => `${v.field}: ${v.description}`);
      setFormError(summary, placed ? "" : listed.length ? listed.join("\n") : failure.message);
      view.querySelector("[aria-invalid]")?.focus();
    }
  };
  const form = h("form", { "aria-label": creating ? "New configuration" : `Configuration ${doc.name}` }, tabs, panel, summary,
    h("button", { type: "submit" }, creating ? "Create configuration" : "Save configuration"));
  form.addEventListener("submit", save);
  replace(view, h("p", {}, h("a", { href: "#/configurations" }, "← Configurations")),
    h("h1", {}, creating ? "New configuration" : doc.name), creating ? null : h("p", {}, h("code", {}, id)),
    status, datalist, providersList, form,
    creating ? null : deleteBox(id, doc.name));
  switchTo("form");
}

function deleteBox(id, name) {
  const box = h("div", { class: "card" });
  const failed = formError("");
  replace(box, h("h2", {}, "Delete"), failed, h("button", { type: "button", class: "danger", onclick: async () => {
    try {
      await api("DELETE", `/access-key-configurations/${encodeURIComponent(id)}`);
      location.hash = "#/configurations";
    } catch (failure) {
      setFormError(failed, failure.message);
    }
  } }, `Delete ${name}`));
  return box;
}

// The fields a caller may write (output-only ones dropped).
function editable(doc) {
  const out = { name: doc.name || "", description: doc.description || "", metadata: doc.metadata || "" };
  if (doc.access) out.access = doc.access;
  if (doc.router) out.router = doc.router;
  if (doc.limits) out.limits = doc.limits;
  return out;
}

// The registered control whose path is the longest prefix of the violation's field.
function closest(controls, path) {
  let found = null;
  let best = -1;
  for (const [key, control] of Object.entries(controls)) {
    if ((path === key || path.startsWith(`${key}.`) || path.startsWith(`${key}[`)) && key.length > best) {
      found = control;
      best = key.length;
    }
  }
  return found;
}

function buildForm(doc, controls, rerender) {
  const name = h("input", { value: doc.name || "" });
  const description = h("input", { value: doc.description || "" });
  const providers = h("input", { value: (doc.access?.providers?.allow || []).join(", "), placeholder: "all providers" });
  const models = h("input", { value: (doc.access?.models?.allow || []).join(", "), placeholder: "all models" });
  Object.assign(controls, { name, description, "access.providers": providers, "access.models": models });
  const rules = doc.router?.rules || [];
  const rulesBox = h("div", { class: "rules" });
  rules.forEach((rule, r) => rulesBox.append(ruleCard(doc, rule, r, controls, rerender)));
  const addRule = h("button", { type: "button", onclick: () => {
    Object.assign(doc, formDoc(doc, controls));
    doc.router = doc.router || { rules: [] };
    doc.router.rules = [...(doc.router.rules || []), { provider: "", steps: [{ type: "user", keySelectionStrategy: "ordered", keys: [{ id: "" }] }] }];
    rerender();
  } }, "Add router rule");
  return h("div", {},
    field("Name", name), field("Description", description),
    h("fieldset", {}, h("legend", {}, "Access"),
      field("Allowed providers", providers, "Comma-separated provider ids; empty allows all."),
      field("Allowed models", models, "Comma-separated model ids (gpt-4o or openai:gpt-4o); empty allows all.")),
    h("fieldset", {}, h("legend", {}, "Router"),
      h("p", { class: "hint" }, "Per provider or model, the keys to try in order; the proxy fails over down the list."),
      rules.length ? null : h("p", { class: "empty" }, "No rules: every provider uses its first enabled key."),
      rulesBox, addRule));
}

function ruleCard(doc, rule, r, controls, rerender) {
  const provider = h("input", { value: rule.provider || "", list: "known-providers" });
  const model = h("input", { value: rule.model || "" });
  controls[`router.rules[${r}].provider`] = provider;
  controls[`router.rules[${r}].model`] = model;
  controls[`router.rules[${r}]`] = provider;
  const steps = rule.steps && rule.steps.length ? rule.steps : [{ type: "user", keySelectionStrategy: "ordered", keys: [] }];
  const keys = steps[0].keys || [];
  const mutate = (change) => {
    Object.assign(doc, formDoc(doc, controls));
    change(doc.router.rules[r].steps[0].keys);
    rerender();
  };
  const keyRows = keys.map((key, k) => {
    const input = h("input", { value: key.id || "", list: "known-keys" });
    controls[`router.rules[${r}].steps[0].keys[${k}].id`] = input;
    controls[`router.rules[${r}].steps[0].keys[${k}]`] = input;
    return h("li", {}, field(`Key ${k + 1} of rule ${r + 1}`, input),
      h("div", { class: "actions" },
        h("button", { type: "button", "aria-label": `Move key ${k + 1} of rule ${r + 1} up`, disabled: k === 0, onclick: () => mutate((ks) => ks.splice(k - 1, 0, ks.splice(k, 1)[0])) }, "↑"),
        h("button", { type: "button", "aria-label": `Move key ${k + 1} of rule ${r + 1} down`, disabled: k === keys.length - 1, onclick: () => mutate((ks) => ks.splice(k + 1, 0, ks.splice(k, 1)[0])) }, "↓"),
        h("button", { type: "button", "aria-label": `Remove key ${k + 1} of rule ${r + 1}`, onclick: () => mutate((ks) => ks.splice(k, 1)) }, "Remove")));
  });
  controls[`router.rules[${r}].steps`] = provider;
  return h("fieldset", { class: "rule" }, h("legend", {}, `Rule ${r + 1}`),
    field(`Provider of rule ${r + 1}`, provider), field(`Model of rule ${r + 1}`, model, "Optional: the rule then applies to this model only."),
    h("ol", { class: "keys" }, keyRows),
    h("button", { type: "button", onclick: () => mutate((ks) => ks.push({ id: "" })) }, `Add key to rule ${r + 1}`),
    h("button", { type: "button", class: "danger", onclick: () => {
      Object.assign(doc, formDoc(doc, controls));
      doc.router.rules.splice(r, 1);
      rerender();
    } }, `Remove rule ${r + 1}`));
}

// The document the form shows, read back (steps after the first, limits and the rest kept).
function formDoc(doc, controls) {
  const out = structuredClone(doc);
  out.name = controls.name.value;
  out.description = controls.description.value;
  const providers = list(controls["access.providers"].value);
  const models = list(controls["access.models"].value);
  out.access = {};
  if (providers.length) out.access.providers = { allow: providers };
  if (models.length) out.access.models = { allow: models };
  if (!providers.length && !models.length) delete out.access;
  const rules = (doc.router?.rules || []).map((rule, r) => {
    const steps = structuredClone(rule.steps && rule.steps.length ? rule.steps : [{ type: "user", keySelectionStrategy: "ordered", keys: [] }]);
    const first = steps[0];
    first.keys = (first.keys || []).map((_, k) => ({ id: controls[`router.rules[${r}].steps[0].keys[${k}].id`].value.trim() }));
    const next = { provider: controls[`router.rules[${r}].provider`].value.trim(), steps };
    const model = controls[`router.rules[${r}].model`].value.trim();
    if (model) next.model = model;
    return next;
  });
  out.router = { rules };
  return out;
}
