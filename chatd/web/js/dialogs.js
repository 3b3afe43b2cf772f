// In-page dialogs for confirming and asking, instead of the browser's confirm() and prompt(): they look like the
// page, say which room or message they are about, work with the keyboard (Enter confirms, Esc cancels, focus
// stays inside while open and returns where it was) and never block the page's connection.

const $ = (id) => document.getElementById(id);

// One dialog serves every page (chat and admin); it is made the first time one is asked for.
const MARKUP = `
  <dialog id="page-dialog" class="page-dialog" aria-labelledby="page-dialog-title">
    <form method="dialog" id="page-dialog-form" class="card">
      <h2 id="page-dialog-title"></h2>
      <p id="page-dialog-text" class="hint"></p>
      <div id="page-dialog-field" hidden>
        <label for="page-dialog-input" id="page-dialog-label"></label>
        <input id="page-dialog-input" autocomplete="off">
      </div>
      <div class="dialog-buttons">
        <button type="submit" value="ok" id="page-dialog-ok">OK</button>
        <button type="submit" value="cancel" id="page-dialog-cancel" class="secondary" formnovalidate>Cancel</button>
      </div>
    </form>
  </dialog>`;

function pageDialog() {
  if (!$("page-dialog")) document.body.insertAdjacentHTML("beforeend", MARKUP);
  return $("page-dialog");
}

function run({ title, text = "", ok, danger = false, field = null }) {
  const dialog = pageDialog();
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
