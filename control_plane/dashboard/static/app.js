// Small enhancements on top of pages that work without JavaScript.
// Copy buttons are rendered hidden and shown only here, where they can work.

function copyButtons() {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const target = document.getElementById(button.dataset.copy);
    if (!target || !navigator.clipboard) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      const label = button.textContent;
      try {
        await navigator.clipboard.writeText(target.textContent.trim());
        button.textContent = "Copied";
      } catch {
        button.textContent = "Copy failed: select the text";
      }
      const status = document.getElementById(button.dataset.copy + "-status");
      if (status) status.textContent = button.textContent;
      setTimeout(() => { button.textContent = label; }, 2000);
    });
  }
}

function confirmations() {
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
}

copyButtons();
confirmations();
