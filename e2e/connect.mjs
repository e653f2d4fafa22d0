// Drives bankgate's Connect page in a real headless Chromium, embedded in an iframe of a parent
// page on another origin, the way a fintech embeds it.
//
// Run by the Rust test `connect_browser` (crates/bankgate/tests/it/connect_browser.rs), which
// starts bankgate, writes a plan (JSON) to stdin, and asserts on what this prints (JSON):
// for each scenario, the screens seen, the events the parent page received, where the redirect
// went. This script only acts like a user; the assertions live in the Rust test.
//
//   node connect.mjs < plan.json
//
// plan: { chromium, artifacts, scenarios: [{ name, url, username, password, viewport,
//         reloadAt?, search?, accounts?: "one"|"two", waitFor: "landing"|"top"|"event"|"screen",
//         mfa?: [[answer…]…], questions?: "blank"|"skip", declineConsent?, closeAt? }] }
// `declineConsent` declines once before accepting; `closeAt` names the screen where the user
// presses Close.
//
// On every screen it also records what an accessibility audit looks at (`audits`): axe-core's
// violations (axe runs inside the page, from e2e/node_modules, offline), the contrast of field
// borders and of the focus ring (WCAG 1.4.11, which axe does not check), the title, the
// heading, the focused field, the fields marked invalid, whether the alert follows the heading
// and was announced (its text put into a live region after load), and the addresses the forms
// post to.
// `mfa`, when given, is what to send on each arrival at an MFA screen, one entry per challenge:
// "text:…" types into a text field, "pick:0,2" ticks those choices (radio or checkbox).
// `questions` (the enhancedMFA step): "skip" presses Skip; "blank" first sends one answer as
// spaces, then all; absent, all answered.
// `url` may contain __PARENT__, replaced by the parent page's origin (for redirectUrl).

import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const plan = JSON.parse(fs.readFileSync(0, "utf8"));
fs.mkdirSync(plan.artifacts, { recursive: true });

// The embedding page and the landing page of redirects, on 127.0.0.1 (another site than the
// iframe's toolbox-iframe.localhost).
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://127.0.0.1");
  res.setHeader("Content-Type", "text/html; charset=utf-8");
  if (url.pathname === "/parent.html") {
    const src = url.searchParams.get("src") || "";
    const attr = src.replace(/&/g, "&amp;").replace(/"/g, "&quot;");
    res.end(`<!doctype html><html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fintech</title>
<style>body{margin:0;font-family:sans-serif} iframe{border:0;width:100%;height:100vh;display:block}</style>
<script>
window.__events = [];
window.addEventListener("message", function (e) {
  window.__events.push({ origin: e.origin, data: e.data });
  // Also to the console, which the test reads: it outlives a redirect of this page.
  console.log("bankgate-event " + JSON.stringify({ origin: e.origin, data: e.data }));
});
</script></head><body><iframe id="connect" name="connect" title="Connect your bank" src="${attr}"></iframe></body></html>`);
  } else if (url.pathname === "/favicon.ico") {
    // Browsers ask the top page's origin; a 404 would be a console error.
    res.statusCode = 204;
    res.end();
  } else if (url.pathname === "/landing") {
    res.end(`<!doctype html><html><head><meta charset="utf-8"><title>Landed</title></head><body><h1 id="landed">Landed</h1></body></html>`);
  } else {
    res.statusCode = 404;
    res.end("not found");
  }
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const parent = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: plan.chromium,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const answers = [
  [/city|ville/i, "Montreal"],
  [/country|pays/i, "Canada"],
  [/shape|forme/i, "Triangle"],
];

// The screen shown in the frame; "landing" once an inner redirect has left bankgate.
async function screenOf(frame) {
  // data-ready: connect.js has run (focus, the alert announced).
  await frame.waitForSelector("body[data-screen][data-ready], #landed", { timeout: 15000 });
  return frame.evaluate(() =>
    document.getElementById("landed") ? "landing" : document.body.getAttribute("data-screen"),
  );
}

// Clicks (or presses) something that submits a form, and waits for the frame's next document:
// a navigation, or (where the page posts the step itself) the document it writes in place.
// Resolves to "top" when the step took the embedding page itself to the redirect.
async function submit(frame, act) {
  const page = frame.page();
  await frame.evaluate(() => document.documentElement.setAttribute("data-driver-seen", ""));
  await act();
  const landed = page.waitForURL(/\/landing\?/, { timeout: 15000 }).then(() => "top");
  const next = frame
    .waitForFunction(
      () => !document.documentElement.hasAttribute("data-driver-seen") && document.readyState !== "loading",
      null,
      { timeout: 15000 },
    )
    .then(() => "frame");
  // One of them settles; the other's rejection (the frame detached, or no redirect) is moot.
  landed.catch(() => {});
  next.catch(() => {});
  return Promise.any([landed, next]);
}

// Runs in the frame: what the audit looks at besides axe.
function inspect() {
  const rgb = (value) => {
    const m = /rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)/.exec(value || "");
    return m ? [m[1], m[2], m[3]].map(Number) : null;
  };
  const luminance = (c) => {
    const [r, g, b] = c.map((v) => {
      const s = v / 255;
      return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const ratio = (a, b) => {
    if (!a || !b) return null;
    const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
    return Math.round(((x + 0.05) / (y + 0.05)) * 100) / 100;
  };
  const bg = rgb(getComputedStyle(document.body).backgroundColor);
  // The ring as the focused field draws it, else the page's focus colour.
  const probe = document.createElement("span");
  probe.style.color = "var(--focus)";
  document.body.appendChild(probe);
  const focusColour = rgb(getComputedStyle(probe).color);
  probe.remove();
  const active = document.activeElement;
  const ring =
    active && active !== document.body && getComputedStyle(active).outlineStyle !== "none"
      ? rgb(getComputedStyle(active).outlineColor)
      : focusColour;
  const fields = [...document.querySelectorAll("main input[type=text], main input[type=password], main input[type=search]")];
  const notice = document.getElementById("notice");
  const h1 = document.querySelector("h1");
  return {
    title: document.title,
    heading: h1 ? h1.textContent.trim() : null,
    text: document.querySelector("main").innerText,
    url: location.href,
    // (getAttribute: the forms have a field named "action", which shadows `form.action`.)
    actions: [...document.forms].map((f) => new URL(f.getAttribute("action") || "", location.href).href),
    focused: active && active !== document.body ? active.id || active.name || active.tagName : null,
    invalid: [...document.querySelectorAll("[aria-invalid=true]")].map((e) => ({
      id: e.id || e.tagName.toLowerCase(),
      describedBy: (e.getAttribute("aria-describedby") || "")
        .split(/\s+/)
        .filter(Boolean)
        .map((id) => (document.getElementById(id) || {}).textContent || null),
    })),
    alert: notice && notice.textContent ? notice.textContent : null,
    alertRole: notice ? notice.getAttribute("role") : null,
    alertAfterHeading: !!(notice && h1 && h1.compareDocumentPosition(notice) & Node.DOCUMENT_POSITION_FOLLOWING),
    announced: window.__announced || [],
    autofocus: document.querySelectorAll("[autofocus]").length,
    borderContrast: fields.map((f) => ratio(rgb(getComputedStyle(f).borderTopColor), bg)),
    focusContrast: ratio(ring, bg),
  };
}

async function audit(frame, screen) {
  if (!(await frame.evaluate(() => typeof window.axe === "object"))) {
    // As an expression through the DevTools protocol: the page's CSP (script-src 'self')
    // stays in force for the page itself.
    await frame.evaluate(axeSource);
  }
  const found = await frame.evaluate(async () => {
    const result = await window.axe.run(document, { resultTypes: ["violations"] });
    return {
      version: window.axe.version,
      // How many rules applied and passed: proof that the audit ran.
      passed: result.passes.length,
      violations: result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      nodes: v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary.replace(/\s+/g, " ")}`),
      })),
    };
  });
  return { screen, axe: found.version, axePassed: found.passed, violations: found.violations, ...(await frame.evaluate(inspect)) };
}

async function run(scenario) {
  const result = { name: scenario.name, screens: [], events: [], notes: [] };
  const context = await browser.newContext({ viewport: scenario.viewport });
  // In every frame, before its scripts: which texts reach the live region after the page has
  // loaded (what a screen reader announces).
  await context.addInitScript(() => {
    window.__announced = [];
    new MutationObserver(() => {
      const notice = document.getElementById("notice");
      if (document.readyState !== "loading" && notice && notice.textContent) {
        window.__announced.push(notice.textContent);
      }
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  const page = await context.newPage();
  result.audits = [];
  result.requests = [];
  page.on("request", (r) => result.requests.push(`${r.method()} ${r.url()}`));
  const console_ = [];
  const events = [];
  page.on("console", (m) => {
    const text = m.text();
    if (text.startsWith("bankgate-event ")) {
      events.push(JSON.parse(text.slice("bankgate-event ".length)));
    } else {
      console_.push(`${m.type()}: ${text}`);
    }
  });
  page.on("pageerror", (e) => console_.push(`pageerror: ${e.message}`));
  let shot = 0;
  const screenshot = async (label) => {
    shot += 1;
    const file = path.join(plan.artifacts, `${scenario.name}-${String(shot).padStart(2, "0")}-${label}.png`);
    await page.screenshot({ path: file, fullPage: true });
  };
  try {
    const src = scenario.url.replace("__PARENT__", parent);
    await page.goto(`${parent}/parent.html?src=${encodeURIComponent(src)}`);
    const frame = page.frame({ name: "connect" });
    let reloaded = false;
    for (let i = 0; i < 20; i += 1) {
      const screen = await screenOf(frame);
      result.screens.push(screen);
      await screenshot(screen);
      // (A success screen that redirects by itself may be gone before an audit ends.)
      const leaves = screen === "success" && ["landing", "top"].includes(scenario.waitFor);
      if (screen !== "landing" && !leaves) result.audits.push(await audit(frame, screen));
      if (scenario.closeAt === screen) {
        scenario.closeAt = null;
        await submit(frame, () => frame.click("button[value=close]"));
        continue;
      }
      if (screen === "consent" && scenario.declineConsent) {
        scenario.declineConsent = false;
        await submit(frame, () => frame.click("button[value=deny_consent]"));
        continue;
      }
      if (screen === "consent") {
        await submit(frame, () => frame.click("button[value=accept_consent]"));
      } else if (screen === "institutions") {
        if (scenario.search) {
          // Live filtering as the user types, then the search button (works without JS too).
          await frame.fill("#query", "zzz");
          result.filteredOut = await frame.isHidden("#institutions li");
          await frame.fill("#query", scenario.search);
          result.filteredIn = await frame.isVisible("#institutions li");
          await submit(frame, () => frame.click("button[value=search]"));
          result.screens.push(await screenOf(frame));
        }
        await submit(frame, () => frame.click("button[value=FlinksCapital]"));
      } else if (screen === "credentials") {
        if (scenario.reloadAt === "credentials" && !reloaded) {
          reloaded = true;
          // The embedding page reloads the iframe: a GET of its first URL, whose token is
          // spent; the session cookie must bring the same screen back.
          await Promise.all([
            frame.waitForNavigation({ timeout: 15000 }),
            page.evaluate(() => {
              const iframe = document.getElementById("connect");
              iframe.src = iframe.src;
            }),
          ]);
          result.notes.push("iframe reloaded by the parent");
          continue;
        }
        if (result.screens.filter((s) => s === "credentials").length > 2) break;
        // Keyboard only: the username has focus, Tab reaches the password, Enter submits.
        result.focusedAtLoad = await frame.evaluate(() => document.activeElement && document.activeElement.id);
        await frame.focus("#username");
        await page.keyboard.type(scenario.username);
        await page.keyboard.press("Tab");
        result.focusedAfterTab = await frame.evaluate(() => document.activeElement && document.activeElement.id);
        await page.keyboard.type(scenario.password);
        await submit(frame, () => page.keyboard.press("Enter"));
        const after = await screenOf(frame);
        if (after === "credentials") {
          // A refusal the user may retry: show it, and stop here.
          result.screens.push(after);
          await screenshot("credentials-retry");
          result.audits.push(await audit(frame, after));
          result.alert = await frame.textContent("[role=alert]");
          break;
        }
      } else if (screen === "mfa") {
        if (scenario.reloadAt === "mfa" && !reloaded) {
          reloaded = true;
          // The user reloads the frame: the browser posts the last form again.
          await submit(frame, () => frame.evaluate(() => window.location.reload()));
          result.notes.push("frame reloaded by the user");
          continue;
        }
        // Usable at the size it is shown: nothing wider than the frame, every field labelled.
        const layout = await frame.evaluate(() => ({
          overflow: document.documentElement.scrollWidth > document.documentElement.clientWidth,
          unlabelled: [...document.querySelectorAll("form input:not([type=hidden])")]
            .filter((input) => !input.labels || input.labels.length === 0)
            .map((input) => input.id || input.name),
          kinds: [...document.querySelectorAll("[data-kind]")].map((e) => e.getAttribute("data-kind")),
          alert: (document.querySelector("[role=alert]") || {}).textContent || null,
        }));
        (result.mfaScreens ||= []).push(layout);
        if (scenario.mfa) {
          const submission = scenario.mfa[result.mfaScreens.length - 1];
          if (!submission) break;
          for (const [i, answer] of submission.entries()) {
            if (answer.startsWith("text:")) {
              await frame.fill(`#answer_${i}`, answer.slice(5));
            } else {
              for (const j of answer.slice(5).split(",")) {
                // As a user does: a click on the choice's label.
                await frame.click(`label[for=answer_${i}_${j}]`);
              }
            }
          }
        } else {
          const prompt = await frame.textContent("label[for=answer_0]");
          const answer = (answers.find(([re]) => re.test(prompt)) || [null, "?"])[1];
          await frame.fill("#answer_0", answer);
        }
        await submit(frame, () => frame.click("button[value=submit_mfa]"));
      } else if (screen === "security_questions") {
        // enhancedMFA: one labelled field per question left, fitting the frame.
        const layout = await frame.evaluate(() => ({
          overflow: document.documentElement.scrollWidth > document.documentElement.clientWidth,
          unlabelled: [...document.querySelectorAll("form input:not([type=hidden])")]
            .filter((input) => !input.labels || input.labels.length === 0)
            .map((input) => input.id || input.name),
          labels: [...document.querySelectorAll("form label")].map((l) => l.textContent),
          skip: !!document.querySelector("button[value=skip_security_answers]"),
          alert: (document.querySelector("[role=alert]") || {}).textContent || null,
        }));
        (result.questionScreens ||= []).push(layout);
        if (scenario.questions === "skip") {
          await submit(frame, () => frame.click("button[value=skip_security_answers]"));
          continue;
        }
        const fields = await frame.$$eval("form input[type=text]", (inputs) =>
          inputs.map((input) => ({ id: input.id, label: input.labels[0].textContent })),
        );
        for (const [i, field] of fields.entries()) {
          const answer = (answers.find(([re]) => re.test(field.label)) || [null, "?"])[1];
          // "blank": the first time, spaces in the last field (the browser's `required` lets
          // them through; the server refuses them).
          const blank = scenario.questions === "blank" && result.questionScreens.length === 1;
          await frame.fill(`#${field.id}`, blank && i === fields.length - 1 ? "   " : answer);
        }
        await submit(frame, () => frame.click("button[value=submit_security_answers]"));
      } else if (screen === "accounts") {
        const boxes = await frame.$$("input[name=account]");
        result.accountCount = boxes.length;
        const wanted = scenario.accounts === "two" && boxes.length > 1 ? [0, 1] : [0];
        for (const i of wanted) await boxes[i].check();
        // Once in CI (load ~7) the page posted one account of two. Playwright's check() sees
        // each box checked right after its click, so say what the form holds just before the
        // post, and check again what is not (the note is printed with the scenario's outcome).
        const checked = await frame.$$eval("input[name=account]", (inputs) =>
          inputs.map((input) => input.checked),
        );
        const lost = wanted.filter((i) => !checked[i]);
        if (lost.length > 0) {
          result.notes.push(`account boxes ${lost.join(",")} unchecked before the post; checked again`);
          for (const i of lost) await boxes[i].check();
        }
        if ((await submit(frame, () => frame.click("button[value=select_accounts]"))) === "top") {
          result.notes.push("top navigated by script");
          result.screens.push("landing");
          result.finalUrl = page.url();
          await screenshot("landing");
          break;
        }
      } else if (screen === "landing") {
        result.finalUrl = frame.url();
        break;
      } else if (screen === "success") {
        if (scenario.waitFor === "landing") {
          await frame.waitForURL(/\/landing\?/, { timeout: 15000 });
          result.finalUrl = frame.url();
          await screenshot("landing");
        } else if (scenario.waitFor === "top") {
          result.screens.push("landing");
          try {
            await page.waitForURL(/\/landing\?/, { timeout: 3000 });
            result.notes.push("top navigated by script");
          } catch (e) {
            // The browser refused a script navigating the top window: the user clicks
            // Continue (target=_top).
            result.notes.push("top navigation needed the Continue link");
            await Promise.all([page.waitForURL(/\/landing\?/), frame.click("#continue")]);
          }
          result.finalUrl = page.url();
          await screenshot("landing");
        } else {
          await page.waitForFunction(
            () => window.__events.some((e) => e.data && e.data.step === "REDIRECT"),
            null,
            { timeout: 15000 },
          );
          // jsRedirect: the page must stay where it is.
          await page.waitForTimeout(300);
          result.finalUrl = frame.url();
        }
        break;
      } else {
        // failed / closed: nothing more to do.
        result.alert = await frame.textContent("[role=alert]").catch(() => null);
        break;
      }
    }
  } catch (error) {
    result.error = String(error && error.stack ? error.stack : error);
    await screenshot("error").catch(() => {});
  }
  // Let the last postMessage calls land.
  await page.waitForTimeout(200);
  result.events = events;
  result.parentOrigin = parent;
  result.console = console_;
  await context.close();
  return result;
}

const results = [];
for (const scenario of plan.scenarios) {
  results.push(await run(scenario));
}
await browser.close();
server.close();
process.stdout.write(JSON.stringify({ results }));
