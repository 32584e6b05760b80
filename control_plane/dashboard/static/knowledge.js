// Follows the processing of knowledge files: while any is `processing`, asks for the files'
// status every two seconds and updates their rows; announces each file that finishes.
// Without this script the page has a Refresh link.

const table = document.getElementById("knowledge-files");
const live = document.getElementById("knowledge-live");

function badge(status) {
  const kinds = { ready: "ok", processing: "warn", failed: "danger" };
  const span = document.createElement("span");
  span.className = `badge ${kinds[status] ?? ""}`;
  span.textContent = status;
  return span;
}

async function follow() {
  let waiting = true;
  while (waiting) {
    await new Promise((resolve) => setTimeout(resolve, 2000));
    let files;
    try {
      const response = await fetch(table.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (!response.ok) return; // logged out or gone: the Refresh link still works
      files = (await response.json()).files;
    } catch {
      continue; // a network blip: try again
    }
    waiting = false;
    const finished = [];
    for (const file of files) {
      const row = document.getElementById(`file-${file.id}`);
      if (!row) continue;
      const cell = row.querySelector(".file-status");
      if (cell.textContent.trim().startsWith("processing") && file.status !== "processing") {
        finished.push(`${row.cells[0].textContent}: ${file.status}`);
      }
      const parts = [badge(file.status)];
      if (file.error) {
        const why = document.createElement("span");
        why.className = "muted";
        why.textContent = file.error;
        parts.push(" ", why);
      }
      cell.replaceChildren(...parts);
      row.querySelector(".file-chunks").textContent = file.chunk_count.toLocaleString("en-US");
      if (file.status === "processing") waiting = true;
    }
    if (finished.length) live.textContent = finished.join("; ");
  }
  document.getElementById("processing-hint")?.remove();
  delete table.dataset.processing;
}

if (table && table.dataset.processing !== undefined) follow();
