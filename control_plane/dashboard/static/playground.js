// The playground's chat: posts to the control plane, which relays the gateway's SSE stream;
// text is appended as each chunk arrives. Without this script the form posts normally.

const form = document.getElementById("chat-form");
const transcript = document.getElementById("transcript");
const input = document.getElementById("message");
const send = document.getElementById("send");
const status = document.getElementById("chat-status");
const errorBox = document.getElementById("chat-error");
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const history = JSON.parse(document.getElementById("history").value || "[]");

function bubble(who, text) {
  document.getElementById("transcript-empty")?.remove();
  const message = document.createElement("div");
  message.className = "message";
  const name = document.createElement("span");
  name.className = "who";
  name.textContent = who;
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  message.append(name, body);
  transcript.append(message);
  transcript.scrollTop = transcript.scrollHeight;
  return body;
}

function showMeters(headers) {
  const quota = headers.get("x-quota-remaining");
  if (quota !== null) document.getElementById("meter-quota").textContent = quota;
  const limit = headers.get("x-ratelimit-limit");
  if (limit !== null) {
    const left = headers.get("x-ratelimit-remaining");
    document.getElementById("meter-rate").textContent = `${left} of ${limit} left`;
    document.getElementById("meter-reset").textContent = `${headers.get("x-ratelimit-reset")} s`;
  }
}

function showError(message) {
  errorBox.textContent = message;
  errorBox.hidden = false;
}

// Reads `data:` lines of an SSE stream; calls onDelta with each piece of content.
async function readStream(response, onDelta) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const parsed = JSON.parse(data);
        if (parsed.error) throw new Error(parsed.error.message || "The stream failed.");
        const delta = parsed.choices?.[0]?.delta?.content;
        if (delta) onDelta(delta);
      }
    }
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  errorBox.hidden = true;
  send.disabled = true;
  status.textContent = "Waiting for the agent…";
  history.push({ role: "user", content: text });
  bubble("You", text);
  input.value = "";
  let answer = "";
  let target = null;
  try {
    const response = await fetch(`/playground/${form.dataset.agent}/chat`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify({ messages: history }),
      credentials: "same-origin",
    });
    showMeters(response.headers);
    if (!response.ok) {
      let message = `The call failed (HTTP ${response.status}).`;
      try { message = (await response.json()).error.message || message; } catch {}
      throw new Error(message);
    }
    target = bubble(form.dataset.agentName, "");
    status.textContent = "Streaming…";
    await readStream(response, (delta) => {
      answer += delta;
      target.textContent = answer;
      transcript.scrollTop = transcript.scrollHeight;
    });
    history.push({ role: "assistant", content: answer });
    // Admission spends a free trial before quota, so a trial was used if any was left.
    const trials = document.getElementById("meter-trials");
    const left = Number(trials.dataset.left);
    if (left > 0) {
      trials.dataset.left = String(left - 1);
      trials.textContent = `${left - 1} of ${trials.dataset.of}`;
    }
    status.textContent = "Done.";
  } catch (error) {
    history.pop();
    if (target && !answer) target.parentElement.remove();
    showError(error.message);
    status.textContent = "";
  } finally {
    send.disabled = false;
    document.getElementById("history").value = JSON.stringify(history);
    input.focus();
  }
});
