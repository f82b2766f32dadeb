// The page /protect: pictures are hashed here (hashing.js) and only their hashes are sent.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const hashing = globalThis.meldpuntHashing;
  const chosen = []; // {name, pdq, quality, md5, orientations}

  function say(text) {
    const box = $("message");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function ready() {
    const minor = $("age-minor").checked;
    $("under-18").hidden = !minor;
    $("steps").hidden = minor || !$("age-adult").checked || !$("own").checked;
  }

  function text(tag, content, className) {
    const element = document.createElement(tag);
    element.textContent = content;
    if (className) element.className = className;
    return element;
  }

  async function choose() {
    const files = [...$("pictures").files];
    say("");
    for (const [n, file] of files.entries()) {
      $("progress").textContent = `Hashing picture ${n + 1} of ${files.length} on this device…`;
      const row = document.createElement("li");
      try {
        const hashes = await hashing.hashFile(file);
        const picture = { name: file.name, pdq: hashes.pdq, quality: hashes.quality, md5: hashes.md5,
          orientations: Object.entries(hashes.orientations)
            .filter(([name, value]) => name !== "original" && value !== hashes.pdq)
            .map(([, value]) => value) };
        chosen.push(picture);
        const shown = document.createElement("img");
        shown.alt = file.name;
        shown.className = "local-picture";
        shown.src = URL.createObjectURL(file); // a blob: address on this device, never sent
        row.append(shown, text("span", file.name, "name"), text("code", `PDQ ${picture.pdq}`, "pdq"),
          text("code", `MD5 ${picture.md5}`, "md5"), text("span", `quality ${picture.quality}`, "quality"));
      } catch (error) {
        row.append(text("span", `${file.name}: this file could not be read as a picture (${error.message})`));
      }
      $("chosen").append(row);
    }
    $("progress").textContent = chosen.length ? `${chosen.length} pictures hashed on this device.` : "";
  }

  function wire(picture) {
    return { pdq: picture.pdq, quality: picture.quality, md5: picture.md5,
             orientations: [...new Set(picture.orientations)].slice(0, 7) };
  }

  async function post(path, body) {
    const answer = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                                       body: JSON.stringify(body), credentials: "omit" });
    const data = await answer.json().catch(() => ({}));
    if (!answer.ok) {
      const message = data.error ? data.error.message : `the service answered ${answer.status}`;
      throw new Error(message);
    }
    return data;
  }

  function showCase(data) {
    $("case-view").hidden = false;
    $("case-shown").textContent = data.number;
    $("case-state").textContent = data.withdrawn ? "withdrawn" : `${data.pictures.length} pictures`;
    const list = $("case-pictures");
    list.replaceChildren(...data.pictures.map((p) => text("li", `${p.pdq} (${p.status})`)));
    $("add").hidden = $("withdraw").hidden = data.withdrawn;
  }

  async function send() {
    say("");
    if (!chosen.length) return say("Choose at least one picture first.");
    if ($("pin").value !== $("pin2").value) return say("The two PINs differ.");
    try {
      const data = await post("/v1/protect/cases", { adult: $("age-adult").checked, own_pictures: $("own").checked,
                                                     pin: $("pin").value, pictures: chosen.map(wire) });
      $("case-number").textContent = data.number;
      $("result").hidden = false;
      $("case").value = data.number;
      chosen.length = 0;
    } catch (error) {
      say(error.message);
    }
  }

  async function act(path, extra) {
    say("");
    const number = $("case").value.trim();
    if (!number) return say("Give your case number.");
    try {
      showCase(await post(`/v1/protect/cases/${encodeURIComponent(number)}${path}`,
                          { pin: $("case-pin").value, ...extra }));
    } catch (error) {
      say(error.message);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const id of ["age-adult", "age-minor", "own"]) $(id).addEventListener("change", ready);
    $("pictures").addEventListener("change", choose);
    $("send").addEventListener("click", send);
    $("show").addEventListener("click", () => act(""));
    $("add").addEventListener("click", async () => {
      if (!chosen.length) return say("Choose the pictures to add above first.");
      await act("/pictures", { pictures: chosen.map(wire) });
      chosen.length = 0;
    });
    $("withdraw").addEventListener("click", () => {
      if (window.confirm("Withdraw your case? Its hashes are removed everywhere.")) act("/withdraw");
    });
    ready();
  });
})();
