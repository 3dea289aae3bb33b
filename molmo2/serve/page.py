"""The web page of ``molmo2 serve`` (``GET /``): pick an image or a video, ask, watch the answer arrive token
by token, then see it drawn: points and tracks over the media and a timeline of the video's events.

Why it is built this way:

* **One self-contained page, no external assets** (no CDN, no fonts): it works on a machine without
  internet, like the server.
* **It speaks the public API only.** The question goes to ``POST /v1/chat/completions`` with
  ``"stream": true`` (the media as a ``data:`` URL, the prompt of the chosen verb from the pipeline's
  ``PROMPTS``), the text is shown as it streams, and the last chunk's ``delta.grounding`` is drawn.
* **The drawing is ``molmo2.viz.write_viewer``'s**: the page posts the media and the grounding to
  ``POST /viewer/render``, which returns the viewer page (the same overlay, colours, trails and clickable
  timeline as ``molmo2 point ... --out``), shown in an ``<iframe srcdoc>``. So there is one implementation
  of the drawing rules, and the media is sent twice (once to ask, once to draw): fine for a local tool;
  ``--max-body-mb`` bounds both.
* With ``--api-key`` the key is typed into the page and sent as a bearer token; the page itself is public
  (it holds no data).
"""

from __future__ import annotations

import html
import json


def page_html(model_name: str, prompts: dict[str, str], max_tokens: int) -> str:
    """The page for a server of ``model_name``; ``prompts``: the pipeline's ``PROMPTS``."""
    data = json.dumps({"model": model_name, "prompts": prompts, "maxTokens": max_tokens})
    data = data.replace("</", "<\\/").replace("<!--", "<\\!--")
    return (_PAGE.replace("__TITLE__", html.escape(f"molmo2: {model_name}"))
            .replace("__MODEL__", html.escape(model_name)).replace("__DATA__", data).replace("__SCRIPT__", _SCRIPT))


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
  body { margin: 0; padding: 16px; font: 14px/1.4 system-ui, sans-serif; color: #222; background: #fff; }
  h1 { font-size: 18px; margin: 0 0 12px; }
  form { display: grid; grid-template-columns: max-content minmax(0, 520px); gap: 8px 12px; align-items: center; }
  label { color: #444; }
  input[type=text], input[type=password], select, input[type=number] { font: inherit; padding: 4px 6px; }
  button { font: inherit; padding: 6px 16px; cursor: pointer; }
  #status { margin: 12px 0 4px; color: #555; min-height: 1.4em; }
  #status.error { color: #a00; }
  #answer { white-space: pre-wrap; background: #fafafa; border: 1px solid #e4e4e4; padding: 8px; border-radius: 4px;
            min-height: 1.4em; max-width: 960px; }
  #viewer { width: 100%; max-width: 1000px; height: 640px; border: 1px solid #e4e4e4; margin-top: 12px; display: none; }
</style>
</head>
<body>
<h1>molmo2 &middot; __MODEL__</h1>
<form id="ask">
  <label for="file">image or video</label>
  <input id="file" type="file" accept="image/*,video/*" required>
  <label for="verb">task</label>
  <select id="verb">
    <option value="point">point to</option>
    <option value="count">count</option>
    <option value="track">track (video)</option>
    <option value="ask">ask a question</option>
    <option value="caption">caption</option>
  </select>
  <label for="question">what</label>
  <input id="question" type="text" placeholder="e.g. dogs, or a question">
  <label for="max-tokens">max tokens</label>
  <input id="max-tokens" type="number" min="1" step="1">
  <label for="key">API key</label>
  <input id="key" type="password" placeholder="only if the server was started with --api-key" autocomplete="off">
  <span></span>
  <button id="go" type="submit">Ask</button>
</form>
<div id="status"></div>
<div id="answer"></div>
<iframe id="viewer" title="the answer drawn on the media"></iframe>
<script type="application/json" id="molmo2-page">__DATA__</script>
<script>
__SCRIPT__
</script>
</body>
</html>
"""

_SCRIPT = r"""
"use strict";
const D = JSON.parse(document.getElementById("molmo2-page").textContent);
const $ = id => document.getElementById(id);
$("max-tokens").value = D.maxTokens;
const VIDEO_EXT = /\.(mp4|m4v|mov|mkv|webm|avi|mpe?g|ogv|3gp|ts|wmv|flv)$/i;

function setStatus(text, error) { $("status").textContent = text; $("status").className = error ? "error" : ""; }

function readDataURL(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(new Error("could not read " + file.name));
    r.readAsDataURL(file);
  });
}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function errorOf(resp) {
  try { const e = await resp.json(); return e.error.message; } catch (_) { return resp.status + " " + resp.statusText; }
}

function prompt(verb, query, isVideo) {
  if (verb === "caption") return D.prompts[isVideo ? "caption_video" : "caption_image"];
  if (verb === "ask") return query;
  return D.prompts[verb].replace("{query}", query.replace(/\.+$/, ""));
}

// Reads the server-sent events of a streamed answer; calls onChunk per parsed event.
async function readEvents(resp, onChunk) {
  const reader = resp.body.getReader(), decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut); buffer = buffer.slice(cut + 2);
      if (!block.startsWith("data: ")) continue;
      const data = block.slice(6);
      if (data === "[DONE]") return;
      onChunk(JSON.parse(data));
    }
  }
}

$("ask").addEventListener("submit", async ev => {
  ev.preventDefault();
  const file = $("file").files[0];
  const verb = $("verb").value, query = $("question").value.trim();
  if (!file) { setStatus("choose an image or a video first", true); return; }
  const isVideo = (file.type || "").startsWith("video/") || VIDEO_EXT.test(file.name);
  if (verb === "track" && !isVideo) { setStatus("tracking needs a video; use 'point to' for an image", true); return; }
  if (verb !== "caption" && !query) { setStatus(verb === "ask" ? "type a question" : "say what to look for, e.g. dogs", true); return; }
  $("go").disabled = true; $("answer").textContent = ""; $("viewer").style.display = "none";
  try {
    setStatus("reading " + file.name + " ...");
    const url = await readDataURL(file);
    const part = isVideo ? { type: "video_url", video_url: { url } } : { type: "image_url", image_url: { url } };
    const body = { model: D.model, stream: true,
                   messages: [{ role: "user", content: [part, { type: "text", text: prompt(verb, query, isVideo) }] }] };
    const maxTokens = parseInt($("max-tokens").value, 10);
    if (maxTokens > 0) body.max_tokens = maxTokens;
    setStatus("asking the model ...");
    const resp = await fetch("v1/chat/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!resp.ok) { setStatus(await errorOf(resp), true); return; }
    let grounding = null, failure = null;
    await readEvents(resp, chunk => {
      if (chunk.error) { failure = chunk.error.message; return; }
      for (const c of chunk.choices || []) {
        if (c.delta.content) { $("answer").textContent += c.delta.content; setStatus("generating ..."); }
        if (c.delta.grounding) grounding = c.delta.grounding;
      }
    });
    if (failure) { setStatus(failure, true); return; }
    if (!grounding) { setStatus("the answer ended without its grounding; see the server log", true); return; }
    setStatus("drawing ...");
    const render = await fetch("viewer/render", { method: "POST", headers: headers(),
      body: JSON.stringify({ media: [url], kind: isVideo ? "video" : "image", grounding }) });
    if (!render.ok) { setStatus(await errorOf(render), true); return; }
    $("viewer").srcdoc = await render.text();
    $("viewer").style.display = "block";
    setStatus("done: " + grounding.points.length + " points, " + grounding.tracks.length + " tracks" +
              (grounding.count.stated !== null ? ", count " + grounding.count.stated : ""));
    document.body.dataset.state = "done";
  } catch (e) {
    setStatus(String(e), true);
  } finally {
    $("go").disabled = false;
  }
});
"""
