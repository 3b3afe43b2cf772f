// In-page dialogs for confirming and asking, instead of the browser's confirm() and prompt(): they look like the
// page, say which room or message they are about, work with the keyboard (Enter confirms, Esc cancels, focus
// stays inside while open and returns where it was) and never block the page's connection.

const $ = (id) => document.getElementById(id);

function run({ title, text = "", ok, danger = false, field = null }) {
  const dialog = $("page-dialog");
  const input = $("page-dialog-input");
  const okButton = $("page-dialog-ok");
  $("page-dialog-title").textContent = title;
  $("page-dialog-text").textContent = text;
  $("page-dialog-text").hidden = !text;
  $("page-dialog-field").hidden = !field;
  okButton.textContent = ok;
  okButton.classList.toggle("danger", danger);
  if (field) {
    $("page-dialog-label").textContent = field.label;
    input.value = field.value ?? "";
    input.maxLength = field.maxlength ?? 500;
  }
  const back = document.activeElement;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      back?.focus?.();
      const confirmed = dialog.returnValue === "ok";
      resolve(field ? (confirmed ? input.value : null) : confirmed);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    (field ? input : okButton).focus();
    if (field) input.select();
  });
}

/** Ask for a yes or no; resolves true when confirmed. */
export function confirmInPage({ title, text, ok, danger = false }) {
  return run({ title, text, ok, danger });
}

/** Ask for one line of text; resolves with it, or null when cancelled. */
export function promptInPage({ title, text, label, value, ok, maxlength }) {
  return run({ title, text, ok, field: { label, value, maxlength } });
}
