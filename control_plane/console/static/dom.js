// Every element is built with DOM calls and every value enters as a text node, so a name such
// as <img src=x onerror=...> is shown as those characters, never parsed as HTML.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "value") {
      el.value = value;
    } else if (name === "checked") {
      el.checked = Boolean(value);
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let counter = 0;
export function uid(prefix) {
  counter += 1;
  return `${prefix}-${counter}`;
}

// A labelled form control; `attrs` go to the control. Returns the wrapper and the control.
export function field(label, control, hint) {
  const id = control.id || uid("f");
  control.id = id;
  const error = h("p", { class: "field-error", role: "alert", id: `${id}-error`, hidden: true });
  control.setAttribute("aria-describedby", `${id}-error`);
  const wrapper = h("div", { class: "field" }, h("label", { for: id }, label), control,
    hint ? h("p", { class: "hint" }, hint) : null, error);
  return wrapper;
}

export function showFieldError(control, message) {
  const error = document.getElementById(`${control.id}-error`);
  if (!error) return false;
  error.textContent = message;
  error.hidden = false;
  control.setAttribute("aria-invalid", "true");
  return true;
}

export function clearErrors(root) {
  for (const el of root.querySelectorAll(".field-error")) {
    el.textContent = "";
    el.hidden = true;
  }
  for (const el of root.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of root.querySelectorAll(".form-error")) {
    el.textContent = "";
    el.hidden = true;
  }
}

export function formError(message) {
  return h("p", { class: "form-error", role: "alert", hidden: !message }, message || "");
}

export function setFormError(el, message) {
  el.textContent = message;
  el.hidden = !message;
}

export function when(time) {
  if (!time) return "never";
  const date = new Date(time);
  return Number.isNaN(date.getTime()) ? String(time) : date.toISOString().replace(".000Z", "Z");
}

export function table(caption, headings, rows, empty) {
  if (!rows.length) return h("p", { class: "empty" }, empty);
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)));
}

// A message for the next page rendered (a save that navigates): shown in its status line.
let pending = "";
export function flash(message) {
  pending = message;
}

export function statusLine() {
  const el = h("p", { role: "status", class: "status" }, pending);
  pending = "";
  return el;
}
